"""Kernel-side latency and memory of the slice viewer on a 1 GiB int16 volume.

Usage::

    python benchmarks/bench_viewer.py [--dir DIR] [--keep] [--json OUT] [--only zoom]

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

``--only zoom`` (issue 11) instead measures frames at display resolution, zoom and pan
on a 4096 x 4096 x 24 uint8 volume (structure down to single voxels) and on the 4 GiB
demo phantom (``scripts/make_sample.py``), each viewer in a fresh process: median
cache-miss step, frame pixels, frame bytes and bytes read at zoom 1, 4 and 16 (the
viewer of commit 2d7325a, without zoom, alongside from ``git archive``, with ratios);
pans at zoom 8 and 16; the reduction (strided read vs full read + block mean) and the
encodings (PNG levels, JPEG, WebP) of the frames the viewer makes.
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


def write_streamed(path: str, shape, dtype, aff: np.ndarray, slab) -> None:
    """Write an uncompressed NIfTI-1 file slab by slab: ``slab(z)`` gives plane ``z``."""
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr.set_zooms(tuple(np.abs(np.diag(aff)[:3])))
    hdr.set_sform(aff, code=1)
    hdr.set_qform(aff, code=1)
    hdr["vox_offset"] = 352
    with open(path + ".part", "wb") as f:
        f.write(hdr.binaryblock + b"\0" * 4)
        for z in range(shape[2]):
            f.write(np.ascontiguousarray(slab(z).T).tobytes())
    os.replace(path + ".part", path)


def make_phantom(path: str) -> None:
    """Write the phantom as an uncompressed NIfTI-1 file, one slab at a time."""
    aff = np.diag([*ZOOMS, 1.0])
    aff[:3, 3] = -np.array(SHAPE) * ZOOMS / 2
    write_streamed(path, SHAPE, np.int16, aff, phantom_slab)


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
    res["png_bytes_last"] = parts["frame_bytes"]  # "bytes" is now what was read from disk
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


# --- issue 11: frames at display resolution, zoom and pan -------------------------------
BIG_SHAPE = (4096, 4096, 24)
OLD_COMMIT = "2d7325a"  # the viewer before issue 11 (no zoom, full-resolution frames)
ZOOM_LEVELS = (1, 4, 16)

# One viewer in a fresh process: median cache-miss and hit steps at each zoom.
STEP_SCRIPT = r"""
import io, json, statistics, sys, time
from PIL import Image
import nilazyview
from nilazyview.viewer import view
path, axis, zooms, n = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
out = {"nilazyview": nilazyview.__file__}
for z in zooms:
    v = view(path, prefetch=0, poll_interval=0, axis=axis)
    if z != 1:
        v.zoom = z
    start, size = v.index, v.slider.max + 1
    idx = [i for i in range(start + 1, size) if i % max(1, size // (2 * n)) == 0][:n]
    idx = idx + [i for i in range(start - 1, -1, -1) if i % max(1, size // (2 * n)) == 0]
    idx = idx[:n]
    miss, hit, read, touched = [], [], [], []
    for i in idx:
        t0 = time.perf_counter()
        v.index = i
        miss.append(time.perf_counter() - t0)
        assert v.error.value == "", v.error.value
        st = v.last_step
        if "wanted_bytes" in st:
            read.append(st["bytes"])
            touched.append(st["touched_bytes"])
        else:  # the old viewer: 'bytes' was the PNG; the slab's plan says what was read
            plan = v.img.read_plan(tuple(i if a == axis else slice(None) for a in range(3)))
            read.append(plan.nbytes)
    for i in idx[::-1][1:]:
        t0 = time.perf_counter()
        v.index = i
        hit.append(time.perf_counter() - t0)
    im = Image.open(io.BytesIO(v.image.value))
    st = v.last_step
    out[str(z)] = {
        "miss_median_ms": round(1e3 * statistics.median(miss), 2),
        "hit_median_ms": round(1e3 * statistics.median(hit), 2),
        "steps": len(miss),
        "frame_px": list(im.size),
        "frame_bytes": len(v.image.value),
        "display_css_px": [int(v.image.width), int(v.image.height)],
        "bytes_read_median": int(statistics.median(read)),
        "touched_bytes_median": int(statistics.median(touched)) if touched else None,
        "zoom_shown": getattr(v, "zoom", 1) if "zoom" in st else "no zoom",
        "method": st.get("method"),
        "reduce_steps": st.get("steps"),
    }
    v.close()
print(json.dumps(out))
"""

# Pans at a zoom: centre moved by ``d`` voxels per step, in a fresh process.
PAN_SCRIPT = r"""
import json, statistics, sys, time
from nilazyview.viewer import view
path, zoom, d, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
v = view(path, prefetch=int(sys.argv[5]), poll_interval=0)
v.zoom = zoom
times, reads = [], []
for k in range(n):
    c = v.center
    if v._prefetcher is not None and int(sys.argv[5]):
        v._prefetcher.idle(2)  # a person pans at most every few tens of ms
    t0 = time.perf_counter()
    v.center = (c[0] + d, c[1] + d / 2)
    times.append(time.perf_counter() - t0)
    reads.append(v.last_step["bytes"])
print(json.dumps({"zoom": zoom, "pan_voxels": d, "pans": n,
    "median_ms": round(1e3 * statistics.median(times), 2),
    "max_ms": round(1e3 * max(times), 2),
    "bytes_read_max": max(reads), "bytes_read_median": int(statistics.median(reads)),
    "misses": sum(1 for r in reads if r)}))
"""


def big_slab(z: int) -> np.ndarray:
    """Axial slab ``z`` (x, y) of a 4096^2 uint8 phantom with detail down to one voxel."""
    small = phantom_slab(int(z * 511 / (BIG_SHAPE[2] - 1)), (1024, 1024, 512))
    base = np.repeat(np.repeat(small, 4, 0), 4, 1).astype(np.float32) * (200 / 1800)
    x = np.arange(BIG_SHAPE[0], dtype=np.float32)[:, None]
    y = np.arange(BIG_SHAPE[1], dtype=np.float32)[None, :]
    fine = 20 * np.sin(x * 0.9 + z) * np.sin(y * 1.3)  # a pattern a strided read aliases
    rng = np.random.default_rng(z)
    noise = rng.integers(0, 12, base.shape, dtype=np.uint8)
    return np.clip(base + (base > 10) * fine + noise, 0, 255).astype(np.uint8)


def make_big(path: str) -> None:
    """Write the 4096 x 4096 x 24 uint8 volume (384 MiB), one slab at a time."""
    write_streamed(path, BIG_SHAPE, np.uint8, np.diag([0.05, 0.05, 1.0, 1.0]), big_slab)


def old_viewer_tree(folder: str) -> str:
    """The package as of :data:`OLD_COMMIT`, unpacked into ``folder`` (``git archive``)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dest = os.path.join(folder, f"old-{OLD_COMMIT}")
    if not os.path.isdir(os.path.join(dest, "nilazyview")):
        os.makedirs(dest, exist_ok=True)
        arch = subprocess.run(
            ["git", "-C", root, "archive", OLD_COMMIT, "nilazyview"],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", dest], input=arch.stdout, check=True)
    return dest


def _run(script: str, pythonpath: str, *args) -> dict:
    env = dict(os.environ, PYTHONPATH=pythonpath, MPLBACKEND="agg")
    out = subprocess.run(  # cwd: not a checkout, whose package 'python -c' would import first
        [sys.executable, "-c", script, *map(str, args)],
        cwd=tempfile.gettempdir(),
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_zoom_steps(path: str, axis: int, old: str, steps: int = 15) -> dict:
    """New viewer at zoom 1, 4, 16 and the old one (zoom 1 only), in fresh processes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    new = _run(STEP_SCRIPT, root, path, axis, json.dumps(ZOOM_LEVELS), steps)
    before = _run(STEP_SCRIPT, old, path, axis, json.dumps([1]), steps)
    assert "old-" in before.pop("nilazyview") and "old-" not in new.pop("nilazyview")
    ref = before["1"]
    ratios = {}
    for z in ZOOM_LEVELS:
        r = new[str(z)]
        ratios[str(z)] = {
            "miss_step_speedup": round(ref["miss_median_ms"] / r["miss_median_ms"], 1),
            "frame_px_ratio": round(
                (r["frame_px"][0] * r["frame_px"][1]) / (ref["frame_px"][0] * ref["frame_px"][1]), 4
            ),
            "frame_bytes_ratio": round(r["frame_bytes"] / ref["frame_bytes"], 4),
            "bytes_read_ratio": round(r["bytes_read_median"] / max(1, ref["bytes_read_median"]), 4),
        }
    return {"axis": axis, "new": new, "old_2d7325a": ref, "new_over_old": ratios}


def bench_pans(path: str) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {
        "zoom8_pan16_prefetch0": _run(PAN_SCRIPT, root, path, 8, 16, 40, 0),
        "zoom16_pan32_prefetch0": _run(PAN_SCRIPT, root, path, 16, 32, 40, 0),
        "zoom8_pan64_prefetch3": _run(PAN_SCRIPT, root, path, 8, 64, 30, 3),
    }


def _median_ms(fn, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return ms(statistics.median(times))


def bench_reduction(path: str, axis: int, step: int) -> dict:
    """Strided read vs full read + block mean of one whole slab at ``step``: time, bytes, pages."""
    import nilazyview as nlv
    from nilazyview.viewer import reduce as red

    img = nlv.load(path)
    k = img.shape[axis] // 2
    full = tuple(k if a == axis else slice(None) for a in range(3))
    strided = tuple(k if a == axis else slice(None, None, step) for a in range(3))
    steps = tuple(step for a in range(3) if a != axis)
    out = {}
    for name, idx, fn in (
        ("stride", strided, lambda: img.slicecopy[strided]),
        ("mean", full, lambda: red.block_mean(img.slicecopy[full], steps)),
    ):
        plan = img.read_plan(idx)
        out[name] = {
            "ms": _median_ms(fn),
            "plan": plan.describe(),
            "bytes_read": plan.nbytes,
            "pages_touched": red.pages_touched(plan),
        }
    arr = img.slicecopy[full]
    out["block_mean_only_ms"] = _median_ms(lambda: red.block_mean(arr, steps))
    out["chosen"] = red.choose(img.read_plan(full), img.read_plan(strided), steps)
    # aliasing: how far each reduction is from the exact block mean (in grey levels of 255)
    exact = red.block_mean(arr, steps)
    sub = img.slicecopy[strided].astype(np.float32)
    lo, hi = np.percentile(exact, [1, 99.5])
    out["stride_rms_error_levels"] = round(
        float(np.sqrt(np.mean((sub - exact) ** 2))) * 254 / (hi - lo), 2
    )
    return out


def bench_frame_encoding(path: str) -> dict:
    """Encode the viewer's zoom-1 frame and a zoom-16 frame with each option."""
    from nilazyview.viewer import render, view

    res = {}
    for zoom in (1, 16):
        v = view(path, prefetch=0, poll_interval=0)
        v.zoom = zoom
        screen = v._screen
        levels = render.to_levels(screen, *v.window)
        opts = {f"png_z{z}": {"compress_level": z} for z in (0, 1, 3, 6, 9)}
        opts |= {f"jpeg_q{q}": {"fmt": "jpeg", "quality": q} for q in (80, 90)}
        opts |= {
            "webp_q80": {"fmt": "webp", "quality": 80},
            "webp_lossless": {"fmt": "webp", "lossless": True},
        }
        r = {"frame_px": list(screen.shape[::-1])}
        for name, kw in opts.items():
            data = render.encode(levels, "gray", **kw)
            r[name] = {
                "ms": _median_ms(lambda kw=kw, lv=levels: render.encode(lv, "gray", **kw)),
                "kib": round(len(data) / 1024, 1),
            }
        res[f"zoom{zoom}"] = r
        v.close()
    return res


def main_zoom(folder: str, demo_gib: float) -> dict:
    """Issue 11's measurements (``--only zoom``)."""
    sys.path.insert(
        0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")
    )
    import make_sample

    big = os.path.join(folder, "big_4096x4096x24_uint8.nii")
    if not os.path.exists(big):
        t0 = time.perf_counter()
        make_big(big)
        print(f"wrote {big} in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    demo = str(make_sample.make_huge(folder, gib=demo_gib))
    print(f"demo phantom {demo} ready in {time.perf_counter() - t0:.1f} s", flush=True)
    old = old_viewer_tree(folder)
    out = {"big": {"file": big, "shape": BIG_SHAPE, "dtype": "uint8"}}
    out["big"]["axial"] = bench_zoom_steps(big, 2, old, steps=15)
    out["big"]["sagittal"] = bench_zoom_steps(big, 0, old, steps=15)
    out["big"]["pans"] = bench_pans(big)
    out["big"]["reduction_axial_step8"] = bench_reduction(big, 2, 8)
    out["big"]["encoding"] = bench_frame_encoding(big)
    import nibabel as nib

    shape = nib.load(demo).shape
    axes = {nib.aff2axcodes(nib.load(demo).affine)[a]: a for a in range(3)}
    sag = next(a for c, a in axes.items() if c in "LR")
    ax = next(a for c, a in axes.items() if c in "SI")
    out["demo"] = {"file": demo, "shape": shape, "gib": demo_gib}
    out["demo"]["axial"] = bench_zoom_steps(demo, ax, old, steps=15)
    out["demo"]["sagittal"] = bench_zoom_steps(demo, sag, old, steps=9)
    out["demo"]["reduction_sagittal_step2"] = bench_reduction(demo, sag, 2)
    out["demo"]["reduction_axial_step2"] = bench_reduction(demo, ax, 2)
    out["demo"]["encoding"] = bench_frame_encoding(demo)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", help="folder for the phantom (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the phantom file")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--only", choices=["zoom"], help="zoom: issue 11's measurements only")
    ap.add_argument("--demo-gib", type=float, default=4.0, help="demo phantom size (--only zoom)")
    args = ap.parse_args(argv)
    if args.only == "zoom":
        folder = args.dir or tempfile.mkdtemp(prefix="nlv-bench-")
        os.makedirs(folder, exist_ok=True)
        try:
            results = main_zoom(folder, args.demo_gib)
        finally:
            if not args.keep and not args.dir:
                shutil.rmtree(folder, ignore_errors=True)
        text = json.dumps(results, indent=2, default=str)
        print(text)
        if args.json:
            with open(args.json, "w") as f:
                f.write(text + "\n")
        return results

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
