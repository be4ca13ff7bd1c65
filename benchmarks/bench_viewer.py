"""Kernel-side latency and memory of the slice viewer on a 1 GiB int16 volume.

Usage::

    python benchmarks/bench_viewer.py [--dir DIR] [--keep] [--json OUT]

Writes a smooth procedural head phantom (1024 x 1024 x 512 int16, 1 GiB, real
structure plus mild noise: not random data) slab by slab, then measures, with
a cold slab cache:

* first display: ``view(path)`` until the first image is encoded;
* step latency: ``v.index = i`` until ``v.image.value`` holds the new slice,
  on a cache miss (prefetch off) and on a hit, for the 1024 x 1024 axial slab;
* memory while scrubbing every slice (prefetch on, 256 MiB cache);
* nibabel ``get_fdata`` of the same file (in a subprocess), for comparison;
* encoding options for the viewer's image (PNG zlib level, palette vs RGB, JPEG).

"Cold disk" runs evict the file from the OS page cache first
(``posix_fadvise(DONTNEED)``, this file only). Targets are in issue 4.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

SHAPE = (1024, 1024, 512)
ZOOMS = (0.2, 0.2, 0.4)
MIB = 2**20


# --- the phantom -----------------------------------------------------------------------
def phantom_slab(z: int, shape=SHAPE) -> np.ndarray:
    """Axial slab ``z`` (x, y) of a smooth head phantom: scalp, skull, brain, ventricles."""
    nx, ny, nz = shape
    x = np.linspace(-1.2, 1.2, nx, dtype=np.float32)[:, None]
    y = np.linspace(-1.2, 1.2, ny, dtype=np.float32)[None, :]
    zz = np.float32(-1.2 + 2.4 * z / (nz - 1))
    r = np.sqrt((x / 0.8) ** 2 + (y / 1.0) ** 2 + (zz / 0.9) ** 2)
    out = np.zeros((nx, ny), np.float32)
    out += 300 * ((r > 0.95) & (r < 1.0))  # scalp
    out += 1500 * ((r > 0.88) & (r <= 0.95))  # skull
    brain = r <= 0.88
    folds = np.sin(9 * x + 2 * zz) * np.cos(8 * y - zz) * np.sin(5 * zz + x * y * 4)
    out += brain * (700 + 250 * np.tanh(3 * folds))  # grey/white "gyri"
    vent = ((x - 0.12) / 0.1) ** 2 + (y / 0.35) ** 2 + (zz / 0.3) ** 2 < 1
    vent |= ((x + 0.12) / 0.1) ** 2 + (y / 0.35) ** 2 + (zz / 0.3) ** 2 < 1
    out[vent] = 150
    rng = np.random.default_rng(z)
    out += rng.normal(0, 12, out.shape).astype(np.float32) * (out > 0)
    return np.clip(out, 0, 32767).astype(np.int16)


def make_phantom(path: str) -> None:
    """Write the phantom as an uncompressed NIfTI-1 file, one slab at a time."""
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(SHAPE)
    hdr.set_data_dtype(np.int16)
    hdr.set_zooms(ZOOMS)
    aff = np.diag([*ZOOMS, 1.0])
    aff[:3, 3] = -np.array(SHAPE) * ZOOMS / 2
    hdr.set_sform(aff, code=1)
    hdr.set_qform(aff, code=1)
    hdr["vox_offset"] = 352
    with open(path + ".part", "wb") as f:
        f.write(hdr.binaryblock + b"\0" * 4)
        for z in range(SHAPE[2]):
            f.write(np.ascontiguousarray(phantom_slab(z).T).tobytes())
    os.replace(path + ".part", path)


# --- helpers ---------------------------------------------------------------------------
def evict(path: str) -> None:
    """Drop ``path`` from the OS page cache (this file only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def rss_mib() -> tuple[float, float]:
    """(VmRSS, RssAnon) of this process in MiB."""
    vals = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                vals[key] = int(rest.split()[0]) / 1024
    return vals["VmRSS"], vals["RssAnon"]


def ms(seconds: float) -> float:
    return round(seconds * 1e3, 2)


def timed_steps(v, indices, pace: float = 0.0) -> list[float]:
    """Latency of each ``v.index = i``; with ``pace``, one step per ``pace`` seconds."""
    out = []
    for i in indices:
        if pace:
            time.sleep(max(0.0, pace - (out[-1] if out else 0.0)))
        t0 = time.perf_counter()
        v.index = i
        out.append(time.perf_counter() - t0)
        assert v.error.value == "", v.error.value
    return out


# --- measurements ----------------------------------------------------------------------
def bench_first_display(path: str, view, runs: int = 5) -> dict:
    res = {}
    for label, cold in (("cold_disk", True), ("warm_disk", False)):
        times = []
        for _ in range(runs):
            if cold:
                evict(path)
            t0 = time.perf_counter()
            v = view(path, prefetch=0, poll_interval=0)
            times.append(time.perf_counter() - t0)
            assert v.image.value and v.error.value == "", v.error.value
            v.close()
        res[label] = ms(statistics.median(times))
    return res


def bench_steps(path: str, view) -> dict:
    res = {}
    for label, cold in (("cold_disk", True), ("warm_disk", False)):
        if cold:
            evict(path)
        v = view(path, prefetch=0, poll_interval=0)
        assert v.axis == 2
        idx = list(range(100, 160))
        miss = timed_steps(v, idx)
        hits_before = v.cache.hits
        hit = timed_steps(v, idx[::-1][1:])
        assert v.cache.hits - hits_before == len(idx) - 1
        parts = v.last_step
        res[label] = {
            "miss_median_ms": ms(statistics.median(miss)),
            "hit_median_ms": ms(statistics.median(hit)),
        }
        v.close()
    # realistic scrubbing: sequential steps with the background prefetcher on
    v = view(path, prefetch=3, poll_interval=0)
    seq = timed_steps(v, range(200, 260))
    res["sequential_with_prefetch_median_ms"] = ms(statistics.median(seq))
    res["sequential_hits"] = v.cache.hits
    v.close()
    # the same at a key-repeat rhythm (one step every 40 ms, 25 Hz)
    v = view(path, prefetch=3, poll_interval=0)
    paced = timed_steps(v, range(300, 360), pace=0.040)
    res["paced_40ms_with_prefetch_median_ms"] = ms(statistics.median(paced))
    res["paced_hits"] = v.cache.hits
    res["slab_shape"] = list(v._screen.shape)
    res["png_bytes_last"] = parts["bytes"]
    plan = v.img.slicecopy.plan[..., 200]
    res["read_plan"] = plan.describe()
    v.close()
    return res


def bench_scrub_memory(path: str, view, cache_bytes: int = 256 * MIB) -> dict:
    import gc

    gc.collect()
    base_rss, base_anon = rss_mib()
    v = view(path, prefetch=3, cache_bytes=cache_bytes, poll_interval=0)
    peak_rss, peak_anon = base_rss, base_anon
    t0 = time.perf_counter()
    for i in range(SHAPE[2]):
        v.index = i
        if i % 8 == 0:
            r, a = rss_mib()
            peak_rss, peak_anon = max(peak_rss, r), max(peak_anon, a)
    elapsed = time.perf_counter() - t0
    r, a = rss_mib()
    peak_rss, peak_anon = max(peak_rss, r), max(peak_anon, a)
    out = {
        "slices": SHAPE[2],
        "seconds": round(elapsed, 2),
        "cache_budget_mib": cache_bytes / MIB,
        "cache_nbytes_mib": round(v.cache.nbytes / MIB, 1),
        "rss_growth_mib": round(peak_rss - base_rss, 1),
        "anon_growth_mib": round(peak_anon - base_anon, 1),
        "limit_mib": cache_bytes / MIB + 100,
    }
    v.close()
    return out


def bench_nibabel(path: str) -> dict:
    """``nibabel.load(path).get_fdata()`` in a fresh process (cold disk)."""
    evict(path)
    code = (
        "import sys, time, nibabel as nib\n"
        "t0 = time.perf_counter(); a = nib.load(sys.argv[1]).get_fdata()\n"
        "t = time.perf_counter() - t0\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(t, int(hwm) / 1024, a.dtype)\n"
    )
    cmd = [sys.executable, "-c", code, path]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    t, hwm, dtype = out.stdout.split()
    return {"get_fdata_ms": ms(float(t)), "peak_rss_mib": round(float(hwm)), "dtype": dtype}


def bench_encoding(path: str) -> dict:
    """Encode the middle axial slab (and a 512 x 512 crop) with each option."""
    import nilazyview as nlv
    from nilazyview.viewer import render

    img = nlv.load(path)
    slab = img.slicecopy[..., SHAPE[2] // 2].T[::-1]
    results = {}
    for size, part in (("1024", slab), ("512", slab[256:768, 256:768])):
        levels = render.to_levels(part, *render.robust_window(part))
        options = {f"png_palette_z{z}": {"compress_level": z} for z in (0, 1, 3, 6, 9)}
        options |= {f"png_rgb_z{z}": {"compress_level": z, "rgb": True} for z in (1, 6)}
        options |= {"jpeg_q90": {"fmt": "jpeg", "quality": 90}}
        res = {}
        for name, kw in options.items():
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                data = render.encode(levels, "gray", **kw)
                times.append(time.perf_counter() - t0)
            res[name] = {"ms": ms(statistics.median(times)), "kib": round(len(data) / 1024, 1)}
        t0 = time.perf_counter()
        for _ in range(7):
            render.to_levels(part, 0, 1000)
        res["window_and_levels_ms"] = ms((time.perf_counter() - t0) / 7)
        results[size] = res
    # pick: fastest lossless option (palette PNG is exact) at most 512 KiB per 1024^2 image
    ok = {
        k: v
        for k, v in results["1024"].items()
        if k.startswith("png") and isinstance(v, dict) and v["kib"] <= 512
    }
    results["chosen"] = min(ok, key=lambda k: ok[k]["ms"])
    return results


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", help="folder for the phantom (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the phantom file")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    from nilazyview.viewer import view

    folder = args.dir or tempfile.mkdtemp(prefix="nlv-bench-")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "phantom_1GiB_int16.nii")
    try:
        if not os.path.exists(path):
            t0 = time.perf_counter()
            make_phantom(path)
            print(f"wrote {path} in {time.perf_counter() - t0:.1f} s", flush=True)
        results = {
            "file": {"shape": SHAPE, "dtype": "int16", "mib": os.path.getsize(path) / MIB},
            "first_display_ms": bench_first_display(path, view),
            "steps": bench_steps(path, view),
            "encoding": bench_encoding(path),
            "scrub_memory": bench_scrub_memory(path, view),
            "nibabel": bench_nibabel(path),
        }
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return results


if __name__ == "__main__":
    main()
