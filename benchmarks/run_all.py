"""The read-performance suite: every reader side by side, warm, cold and in fresh processes.

Datasets (generated once into ``--data`` and reused; ~2.6 GB):

* ``v512``: 512^3 float32 NIfTI-1, ``.nii`` and ``.nii.gz`` (nibabel's writer);
* ``f4d``: 96x96x60x600 int16 fMRI-like ``.nii`` (one volume; one voxel's time series);
* ``s1g``: 1024x1024x512 int16 with ``scl_slope``/``scl_inter`` (1 GiB);
* ``gzcores``: ``bench_gzip.py``'s 256^3 and 128x128x64x50 int16 ``.nii.gz`` (160^3
  and x24 with ``--quick``): gzip in fresh processes pinned to 1 and 2 cores against
  nibabel, isal and rapidgzip (issue 17; run ``bench_gzip.py`` itself for full size).
* ``layers``: ``bench_layers.py``'s 384^3 int16 anatomical (192^3 with ``--quick``) and
  oblique 2 mm stat map: first image and peak memory of ``nlv.view(anat, layers=...)``
  against nilearn's ``view_img``, and the viewer's frames with the layer.

Readers: ``nilazyview`` (``img.slicecopy[idx]``), ``nibabel`` (``img.dataobj[idx]``,
with ``indexed_gzip``, and ``nibabel-noigz`` without it), ``memmap``
(``numpy.memmap(...)[idx].copy()``), ``pread`` (the fewest ``os.preadv`` calls that
read exactly the slice, from one thread) and, for gzip, ``isal`` (decompressing
the whole stream, the floor of a one-pass strided plane).

Conditions:

* ``warm``: file in the page cache, readers open; medians over interleaved
  repetitions (``bench_slices.median_times``).
* ``cold``: before every single read the file's pages are dropped
  (``posix_fadvise(POSIX_FADV_DONTNEED)``, or ``--drop-caches``: ``echo 1 >
  /proc/sys/vm/drop_caches`` as root) and the reader is opened anew; a read is
  only counted if a ``RWF_NOWAIT`` probe confirmed the drop.
* ``fresh``: a new Python process per sample (``subprocess``), timing
  ``load`` + the first read (imports excluded), then further reads in that process.

Run from the repository root::

    .venv/bin/python benchmarks/run_all.py              # everything (~10 min)
    .venv/bin/python benchmarks/run_all.py --quick      # smaller files, fewer reps
    .venv/bin/python benchmarks/run_all.py --only gz    # v512, f4d, s1g, gz, gzcores, layers

It prints a table of medians with ratios, checks the targets of issues 2 and
5, and writes ``benchmarks/results/run_all.json`` and ``run_all.png`` (the
README's copy is ``docs/benchmarks.png``: ``--docs`` refreshes it).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_slices import median_times

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")

FULL = slice(None)
FRESH = "fresh process"
GROUPS = ["v512", "f4d", "s1g", "gz", "gzcores", "layers"]


# ----------------------------------------------------------------- datasets


def _save(data: np.ndarray, path: str, slope=None, inter=None) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(data, np.eye(4))
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    tmp = path + ".part" + (".nii.gz" if path.endswith(".gz") else ".nii")
    nib.save(img, tmp)
    os.replace(tmp, path)


def make_data(folder: str, quick: bool) -> dict:
    """Write the datasets (once: existing files of the right size are reused)."""
    os.makedirs(folder, exist_ok=True)
    n = 256 if quick else 512
    t = 150 if quick else 600
    big = (512, 512, 256) if quick else (1024, 1024, 512)
    specs = {
        "v512": (os.path.join(folder, f"v{n}.nii"), (n, n, n), "f4"),
        "v512gz": (os.path.join(folder, f"v{n}.nii.gz"), (n, n, n), "f4"),
        "f4d": (os.path.join(folder, f"f4d_{t}.nii"), (96, 96, 60, t), "i2"),
        "s1g": (os.path.join(folder, f"s1g_{big[0]}.nii"), big, "i2"),
    }
    for key, (path, shape, kind) in specs.items():
        want = 352 + int(np.prod(shape)) * np.dtype(kind).itemsize
        if os.path.exists(path) and (key.endswith("gz") or os.path.getsize(path) == want):
            continue
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        if kind == "f4":
            data = rng.standard_normal(shape, dtype=np.float32)
        else:
            data = rng.integers(-2000, 2000, size=shape, dtype=np.int16)
        _save(data, path, *((0.5, -3.0) if key == "s1g" else (None, None)))
        del data
        print(f"wrote {path} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return {k: v[0] for k, v in specs.items()} | {"n": n, "t": t, "big": big}


# ----------------------------------------------------------------- readers


def _memmap(path: str):
    import nibabel as nib

    im = nib.load(path)
    h = im.header
    return np.memmap(
        path,
        dtype=h.get_data_dtype(),
        mode="r",
        offset=int(im.dataobj.offset),
        shape=im.shape,
        order="F",
    )


def _pread_reader(path: str, idx):
    """Fewest preadv calls reading exactly ``idx`` (a basic index, F order, step 1)."""
    import nibabel as nib

    from nilazyview.core.plan import plan_read, run_offsets

    im = nib.load(path)
    layout_src = __import__("nilazyview").load(path).proxy.layout
    plan = plan_read(layout_src, idx)
    offsets, length = run_offsets(layout_src, plan.box)
    offs = offsets.tolist()
    dtype = im.header.get_data_dtype()
    shape = tuple(plan.box.count)
    fd = os.open(path, os.O_RDONLY)
    if len(offs) > 4096:  # a call per 4-byte run is no fair baseline: gather from a map
        import mmap

        whole = np.ndarray(
            im.shape,
            dtype,
            buffer=mmap.mmap(fd, 0, access=mmap.ACCESS_READ),
            offset=layout_src.offset,
            order="F",
        )
        return (lambda: np.array(whole[idx], order="F")), lambda: os.close(fd)

    def read():
        out = np.empty(shape, dtype, order="F")
        buf = memoryview(out.reshape(-1, order="F").view(np.uint8))
        for i, off in enumerate(offs):
            os.preadv(fd, [buf[i * length : (i + 1) * length]], off)
        return out[plan.post]

    return read, lambda: os.close(fd)


def readers_for(path: str, idx) -> dict:
    """name -> (open() -> (read(), close())) for a plain .nii file and an index."""
    import nibabel as nib

    import nilazyview as nlv

    def nlv_open():
        img = nlv.load(path)
        return (lambda: img.slicecopy[idx]), (lambda: img.proxy.source.close())

    def nib_open():
        img = nib.load(path)
        return (lambda: np.asarray(img.dataobj[idx])), (lambda: None)

    proxy = nib.load(path).dataobj  # nibabel moves scl_slope/scl_inter to its proxy
    slope, inter = float(proxy.slope), float(proxy.inter)
    if (slope, inter) == (1.0, 0.0) or slope == 0 or np.isnan(slope):
        scale = None
    else:  # raw readers scale too, into float32 like nilazyview
        f32 = np.float32
        scale = (f32(slope), f32(0.0 if inter is None or np.isnan(inter) else inter))

    def scaled(read):
        if scale is None:
            return read
        return lambda: read().astype(np.float32) * scale[0] + scale[1]

    def mm_open():
        mm = _memmap(path)
        return scaled(lambda: np.array(mm[idx], order="K")), (lambda: mm._mmap.close())

    def pread_open():
        read, close = _pread_reader(path, idx)
        return scaled(read), close

    return {
        "nilazyview": nlv_open,
        "nibabel": nib_open,
        "memmap": mm_open,
        "pread": pread_open,
    }


# ----------------------------------------------------------------- cache control


def drop_file(path: str, system: bool = False) -> None:
    gc.collect()
    if system:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1")
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_fraction(path: str) -> float:
    """Fraction of the file's pages in the page cache (``mincore``; starts no I/O)."""
    import ctypes
    import mmap

    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pages = -(-size // mmap.PAGESIZE)
        vec = (ctypes.c_ubyte * pages)()
        view = np.frombuffer(m, np.uint8)  # for the mapping's address
        try:
            if libc.mincore(ctypes.c_void_p(view.ctypes.data), ctypes.c_size_t(size), vec):
                return 1.0
        finally:
            del view
        return float(np.count_nonzero(np.frombuffer(vec, np.uint8) & 1)) / pages
    finally:
        m.close()


def is_cold(path: str) -> bool:
    """True when (almost) none of the file is cached (a header page may be)."""
    return resident_fraction(path) < 0.001


def warm_file(path: str) -> None:
    with open(path, "rb") as f:
        while f.read(64 * 2**20):
            pass


# ----------------------------------------------------------------- measurements


def measure_warm(path: str, idx, reps: int, budget_s: float) -> dict:
    warm_file(path)
    opened = {name: op() for name, op in readers_for(path, idx).items()}
    try:
        expect = np.asarray(opened["nibabel"][0]())
        for name, (read, _) in opened.items():
            got = np.asarray(read())
            if got.shape != expect.shape or not np.allclose(got, expect, rtol=1e-6, atol=0):
                raise AssertionError(f"{name} reads {idx} wrong")
        fns = {name: read for name, (read, _) in opened.items()}
        res = median_times(fns, reps, budget_s=budget_s)
    finally:
        for _, close in opened.values():
            close()
        gc.collect()
    return {name: v["median_s"] for name, v in res.items()}


def measure_cold(path: str, idx, reps: int, system_drop: bool) -> dict:
    samples: dict = {}
    names = list(readers_for(path, idx))
    for r in range(reps):
        random.Random(r).shuffle(names)
        for name in names:
            drop_file(path, system_drop)
            if not is_cold(path):
                samples.setdefault(name, [])
                continue
            read, close = readers_for(path, idx)[name]()
            t0 = time.perf_counter()
            read()
            dt = time.perf_counter() - t0
            close()
            del read, close
            samples.setdefault(name, []).append(dt)
    gc.collect()
    return {n: statistics.median(v) if v else None for n, v in samples.items()}


CHILD = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
reader = spec["reader"]
if reader == "nibabel-noigz":
    sys.modules["indexed_gzip"] = None  # nibabel then falls back to gzip
import numpy as np
if reader.startswith("nibabel"):
    import nibabel as nib
    load = nib.load
    get = lambda img, idx: np.asarray(img.dataobj[idx])
elif reader == "nilazyview":
    import nilazyview as nlv
    from nilazyview.sources import gzindex, gzwhole
    load = nlv.load
    get = lambda img, idx: img.slicecopy[idx]
elif reader == "isal":
    from isal import isal_zlib
times = []
if reader == "isal":
    t0 = time.perf_counter()
    d = isal_zlib.decompressobj(31)
    n = 0
    with open(spec["path"], "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            n += len(d.decompress(b))
    times.append(time.perf_counter() - t0)
else:
    t0 = time.perf_counter()
    img = load(spec["path"])
    for k, idx in enumerate(spec["ops"]):
        if k:
            t0 = time.perf_counter()
        a = get(img, eval(idx))
        times.append(time.perf_counter() - t0)
    extra = spec.get("compare")
    if extra:  # the same reads from the uncompressed file, in this process (page cache warm)
        with open(extra[0], "rb") as f:
            while f.read(1 << 26):
                pass
        img2 = load(extra[0])
        for k, idx in enumerate(spec["ops"]):
            t0 = time.perf_counter()
            get(img2, eval(idx))
            if k:
                times.append(time.perf_counter() - t0)
out = {"times": times}
if reader == "nilazyview":
    out["gzindex"] = gzindex.stats
    out["gzwhole"] = gzwhole.stats
print(json.dumps(out))
"""


def fresh(reader: str, path: str, ops, env: dict, compare=None) -> dict:
    spec = {"reader": reader, "path": path, "ops": ops, "compare": compare}
    res = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if res.returncode:
        raise RuntimeError(f"{reader} child failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- groups


def run_plain(rows: list, key: str, path: str, cases: dict, args) -> None:
    for case, idx in cases.items():
        warm = measure_warm(path, idx, args.reps, args.budget)
        for reader, t in warm.items():
            rows.append(dict(group=key, case=case, cond="warm", reader=reader, s=t))
        if not args.no_cold:
            cold = measure_cold(path, idx, args.cold_reps, args.drop_caches)
            for reader, t in cold.items():
                rows.append(dict(group=key, case=case, cond="cold", reader=reader, s=t))
        print(f"  {key} {case} done", file=sys.stderr)


def run_gz(rows: list, data: dict, args) -> None:
    gz, plain, n = data["v512gz"], data["v512"], data["n"]
    deep = f"(slice(None), slice(None), {n - 12})"
    deep2 = f"(slice(None), slice(None), {n - 11})"
    first = f"({n // 2}, slice(None), slice(None))"
    first2 = f"({n // 2 - 100}, slice(None), slice(None))"
    middle = f"(slice(None), {n // 2}, slice(None))"
    cache = tempfile.mkdtemp(prefix="nlv-bench-cache-")
    env = os.environ | {"NILAZYVIEW_CACHE_DIR": cache, "TQDM_DISABLE": "1"}
    warm_file(gz)
    reps = args.fresh_reps

    def add(case, cond, reader, values):
        values = [v for v in values if v is not None]
        if values:
            rows.append(
                dict(group="gz", case=case, cond=cond, reader=reader, s=statistics.median(values))
            )

    try:
        # deep slice, first access in a fresh process (and the neighbour after it)
        for reader in ("nibabel", "nibabel-noigz"):
            ts = [fresh(reader, gz, [deep, deep2], env)["times"] for _ in range(reps)]
            add("deep slice, 1st access", FRESH, reader, [t[0] for t in ts])
            add("deep slice, next one", FRESH, reader, [t[1] for t in ts])
        ts = []
        for _ in range(reps):
            shutil.rmtree(os.path.join(cache, "gzindex"), ignore_errors=True)
            ts.append(fresh("nilazyview", gz, [deep, deep2], env)["times"])
        add("deep slice, 1st access", FRESH, "nilazyview, no index", [t[0] for t in ts])
        add("deep slice, next one", FRESH, "nilazyview, no index", [t[1] for t in ts])
        # index built once (by the runs above): every new process imports it
        ts, imported = [], []
        for _ in range(max(reps, 5)):
            r = fresh("nilazyview", gz, [deep, deep2], env)
            ts.append(r["times"])
            imported.append(r["gzindex"]["imports"])
        if not all(imported):
            raise AssertionError("the persisted index was not imported")
        add("deep slice, 1st access", FRESH, "nilazyview", [t[0] for t in ts])
        add("deep slice, next one", FRESH, "nilazyview", [t[1] for t in ts])
        print("  gz deep done", file=sys.stderr)
        # strided planes in a fresh process, then a second one, vs the uncompressed file
        for label, a, b in (
            ("first-axis plane", first, first2),
            ("middle-axis plane", middle, None),
        ):
            b = b or f"(slice(None), {n // 2 - 100}, slice(None))"
            for reader in ("nibabel", "nibabel-noigz", "nilazyview"):
                if reader == "nibabel-noigz" and label != "first-axis plane":
                    continue  # ~10 s a sample, and no different from the first-axis plane
                compare = [plain] if reader == "nilazyview" else None
                ts = [fresh(reader, gz, [a, b], env, compare)["times"] for _ in range(reps)]
                add(f"{label}, 1st", FRESH, reader, [t[0] for t in ts])
                add(f"{label}, 2nd same process", FRESH, reader, [t[1] for t in ts])
                if reader == "nilazyview":
                    add(f"{label}, 2nd same process", FRESH, "nilazyview .nii", [t[2] for t in ts])
            print(f"  gz {label} done", file=sys.stderr)
        ts = [fresh("isal", gz, [], env)["times"][0] for _ in range(reps)]
        add("first-axis plane, 1st", FRESH, "isal (whole stream)", ts)
        add("middle-axis plane, 1st", FRESH, "isal (whole stream)", ts)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def run_gzcores(rows: list, args) -> list:
    """bench_gzip at a size that takes a few minutes; its rows, and its targets."""
    import bench_gzip

    size, frames = (160, 24) if args.quick else (256, 50)
    argv = ["--size", str(size), "--frames", str(frames), "--repeat", str(args.fresh_reps)]
    gargs = bench_gzip.parse([*argv, "--data", args.data])
    res = bench_gzip.run(gargs)
    med = res["medians"]
    for case, label in bench_gzip.CASES.items():
        for cores in gargs.cores:
            for tool in res["info"]["tools"]:
                s = med.get(f"{case}|{tool}|{cores}")
                cond = f"fresh, {cores} core" + ("s" if cores > 1 else "")
                if s is not None:
                    rows.append(dict(group="gzcores", case=label, cond=cond, reader=tool, s=s))
    for note in res["info"]["notes"]:
        print(f"  gzcores note: {note}", file=sys.stderr)
    print("  gzcores done", file=sys.stderr)
    return [
        (f"gzip {size}^3 (issue 17) {name}", ok, detail)
        for name, ok, detail in bench_gzip.targets(res)
        if ok is not None
    ]


def run_layers(rows: list, args) -> dict:
    """``bench_layers``: nilazyview with a stat layer against nilearn's ``view_img``."""
    import bench_layers

    size, reps = (192, 2) if args.quick else (384, 3)
    cmd = ["--size", str(size), "--reps", str(reps), "--data", args.data]
    out = bench_layers.run(bench_layers.parser().parse_args(cmd))
    case = f"first image, {size}^3 + stat layer"
    for name, r in out["first_image"].items():
        if "first_s" in r:
            rows.append(dict(group="layers", case=case, cond=FRESH, reader=name, s=r["first_s"]))
    for kind, r in (out["frames"] or {}).items():
        for reader, key in (("nilazyview", "median_ms"), ("no layer", "plain_median_ms")):
            rows.append(
                dict(group="layers", case=f"frame, {kind}", cond="warm", reader=reader,
                     s=r[key] / 1e3)
            )  # fmt: skip
    print(bench_layers.table(out["first_image"], out["frames"], out["info"]), file=sys.stderr)
    return out


def layer_targets(out: dict | None) -> list[tuple[str, bool | None, str]]:
    """Issue 12: the first image with a layer stays far ahead of nilearn's ``view_img``."""
    first = (out or {}).get("first_image", {})
    nlv, peer = first.get("nilazyview", {}), first.get("nilearn view_img", {})
    if "first_s" not in nlv or "first_s" not in peer:
        return []
    speed, mem = peer["first_s"] / nlv["first_s"], peer["peak_mib"] / nlv["peak_mib"]
    return [
        (
            "layers: first image with a stat layer >= 10x faster than nilearn view_img, "
            "peak RSS >= 5x lower",
            speed >= 10 and mem >= 5,
            f"{speed:.0f}x faster ({nlv['first_s']:.2f} vs {peer['first_s']:.1f} s), "
            f"{mem:.1f}x less memory ({nlv['peak_mib']:.0f} vs {peer['peak_mib']:.0f} MiB)",
        )
    ]


# ----------------------------------------------------------------- report


def fmt(s) -> str:
    if s is None:
        return "n/a"
    ms = s * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def table(rows: list) -> str:
    keys = []
    for r in rows:
        k = (r["group"], r["case"], r["cond"])
        if k not in keys:
            keys.append(k)
    lines = []
    head = (
        f"{'group':6s} {'case':34s} {'condition':14s} {'reader':22s} "
        f"{'median ms':>10s} {'vs nlv':>8s}"
    )
    lines += [head, "-" * len(head)]
    for k in keys:
        sub = [r for r in rows if (r["group"], r["case"], r["cond"]) == k]
        nlv = next((r["s"] for r in sub if r["reader"] == "nilazyview" and r["s"]), None)
        for r in sub:
            ratio = f"{r['s'] / nlv:8.1f}x" if nlv and r["s"] else ""
            lines.append(
                f"{k[0]:6s} {k[1]:34s} {k[2]:14s} {r['reader']:22s} {fmt(r['s']):>10s} {ratio:>9s}"
            )
    lines.append("vs nlv: the reader's median over nilazyview's in the same row group (>1: slower)")
    return "\n".join(lines)


def find(rows, group, case, cond, reader):
    for r in rows:
        if (r["group"], r["case"], r["cond"], r["reader"]) == (group, case, cond, reader):
            return r["s"]
    return None


def targets(rows: list) -> list[tuple[str, bool | None, str]]:
    out = []

    def check(name, ok, detail):
        out.append((name, ok, detail))

    nib = find(rows, "gz", "deep slice, 1st access", FRESH, "nibabel")
    nlv = find(rows, "gz", "deep slice, 1st access", FRESH, "nilazyview")
    if nib and nlv:
        check(
            ".nii.gz deep slice, fresh process, index cached: >= 15x nibabel's 1st access",
            nib / nlv >= 15,
            f"{nib / nlv:.0f}x ({fmt(nlv)} vs {fmt(nib)} ms)",
        )
    for plane in ("first-axis plane", "middle-axis plane"):
        nib = find(rows, "gz", f"{plane}, 1st", FRESH, "nibabel")
        nlv = find(rows, "gz", f"{plane}, 1st", FRESH, "nilazyview")
        if nib and nlv:
            check(
                f".nii.gz {plane}, fresh process: >= 2x nibabel",
                nib / nlv >= 2,
                f"{nib / nlv:.1f}x ({fmt(nlv)} vs {fmt(nib)} ms)",
            )
        second = find(rows, "gz", f"{plane}, 2nd same process", FRESH, "nilazyview")
        plain = find(rows, "gz", f"{plane}, 2nd same process", FRESH, "nilazyview .nii")
        if second and plain:
            check(
                f".nii.gz {plane}, 2nd in the same process: as fast as the .nii (<= 1.5x)",
                second / plain <= 1.5,
                f"{second / plain:.2f}x ({fmt(second)} vs {fmt(plain)} ms)",
            )
    for group, case in (("v512", "middle-axis slice"), ("f4d", "voxel time series")):
        nlv = find(rows, group, case, "cold", "nilazyview")
        nib = find(rows, group, case, "cold", "nibabel")
        if nlv and nib:
            check(
                f"cold {group} {case}: <= 15 ms and >= 2.5x nibabel",
                nlv <= 0.015 and nib / nlv >= 2.5,
                f"{fmt(nlv)} ms, nibabel {fmt(nib)} ms ({nib / nlv:.1f}x)",
            )
    for case in ("last-axis slice", "middle-axis slice", "first-axis slice"):
        t = {
            r["reader"]: r["s"]
            for r in rows
            if (r["group"], r["case"], r["cond"]) == ("v512", case, "warm")
        }
        if {"nilazyview", "memmap", "pread"} <= t.keys():
            best = min(t["memmap"], t["pread"])
            check(
                f"warm v512 {case}: within 1.5x of the best of memmap and pread (issue 2)",
                t["nilazyview"] / best <= 1.5,
                f"{t['nilazyview'] / best:.2f}x",
            )
    return out


def plot(rows: list, path: str) -> None:
    """One panel per dataset; per case, a bar per reader (log time axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = []
    readers = []
    for r in rows:
        if r["group"] not in groups:
            groups.append(r["group"])
        if r["reader"] not in readers:
            readers.append(r["reader"])
    colors = dict(zip(readers, plt.cm.tab10.colors, strict=False))
    titles = {
        "v512": "512^3 float32 .nii",
        "f4d": "96x96x60x600 int16 .nii (fMRI-like)",
        "s1g": "1 GiB scaled int16 .nii",
        "gz": "512^3 float32 .nii.gz",
        "gzcores": "int16 .nii.gz in fresh processes at 1 and 2 cores (bench_gzip.py)",
        "layers": "anatomical + oblique 2 mm stat layer (nilazyview vs nilearn view_img)",
    }
    counts = [sum(1 for r in rows if r["group"] == g and r["s"]) for g in groups]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(10, 0.19 * sum(counts) + 1.3 * len(groups) + 1),
        gridspec_kw={"height_ratios": [c + 2 for c in counts]},
        squeeze=False,
    )
    for ax, g in zip(axes[:, 0], groups, strict=True):
        keys = []
        for r in rows:
            k = (r["case"], r["cond"])
            if r["group"] == g and k not in keys:
                keys.append(k)
        y, ticks, labels = 0.0, [], []
        for k in keys:
            sub = [r for r in rows if r["group"] == g and (r["case"], r["cond"]) == k and r["s"]]
            start = y
            for r in sub:
                ax.barh(y, r["s"] * 1e3, color=colors[r["reader"]], height=0.85)
                ax.text(r["s"] * 1e3 * 1.08, y, fmt(r["s"]), va="center", fontsize=6.5)
                y += 1
            ticks.append((start + y - 1) / 2)
            labels.append(f"{k[0]} ({k[1]})")
            y += 0.7
        ax.set_yticks(ticks)
        ax.set_yticklabels(labels, fontsize=7.5)
        ax.set_ylim(y - 0.5, -0.8)
        ax.set_xscale("log")
        ax.grid(axis="x", which="major", alpha=0.3)
        ax.set_title(titles.get(g, g), fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("median ms per read (log scale; shorter is faster)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[r]) for r in readers]
    fig.suptitle("nilazyview vs nibabel, numpy.memmap, raw pread, isal", y=0.998, fontsize=10)
    fig.legend(
        handles,
        readers,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.985),
        ncol=4,
        fontsize=7.5,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.955))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(RESULTS, "data"), help="dataset folder")
    ap.add_argument("--quick", action="store_true", help="smaller files, fewer repetitions")
    ap.add_argument("--only", nargs="*", choices=GROUPS, help="groups")
    ap.add_argument("--reps", type=int, default=15, help="minimum warm repetitions")
    ap.add_argument("--budget", type=float, default=6.0, help="seconds per warm case")
    ap.add_argument("--cold-reps", type=int, default=7, help="cold samples per reader")
    ap.add_argument("--fresh-reps", type=int, default=3, help="fresh processes per reader")
    ap.add_argument("--no-cold", action="store_true", help="skip cold-cache runs")
    ap.add_argument("--drop-caches", action="store_true", help="root: drop all page caches")
    ap.add_argument("--json", default=os.path.join(RESULTS, "run_all.json"))
    ap.add_argument("--png", default=os.path.join(RESULTS, "run_all.png"))
    ap.add_argument("--docs", action="store_true", help="also copy the plot to docs/")
    args = ap.parse_args(argv)
    if args.quick:
        args.reps, args.budget, args.cold_reps, args.fresh_reps = 5, 2.0, 3, 2
    os.makedirs(RESULTS, exist_ok=True)
    groups = args.only or GROUPS
    reads = [g for g in groups if g not in ("layers", "gzcores")]  # these write their own files
    data = make_data(args.data, args.quick) if reads else {"n": 0, "t": 0, "big": (0, 0, 0)}
    n, t, big = data["n"], data["t"], data["big"]
    rows: list = []
    t0 = time.perf_counter()
    if "v512" in groups:
        run_plain(
            rows,
            "v512",
            data["v512"],
            {
                "last-axis slice": (FULL, FULL, n // 2),
                "middle-axis slice": (FULL, n // 2, FULL),
                "first-axis slice": (n // 2, FULL, FULL),
            },
            args,
        )
    if "f4d" in groups:
        run_plain(
            rows,
            "f4d",
            data["f4d"],
            {
                "one volume": (Ellipsis, t // 2),
                "voxel time series": (48, 48, 30, FULL),
            },
            args,
        )
    if "s1g" in groups:
        run_plain(
            rows,
            "s1g",
            data["s1g"],
            {
                "last-axis slice": (FULL, FULL, big[2] // 2),
                "middle-axis slice": (FULL, big[1] // 2, FULL),
                "first-axis slice": (big[0] // 2, FULL, FULL),
            },
            args,
        )
    if "gz" in groups:
        run_gz(rows, data, args)
    more_checks = run_gzcores(rows, args) if "gzcores" in groups else []
    layers = run_layers(rows, args) if "layers" in groups else None
    print(f"\nsuite took {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(table(rows))
    checks = targets(rows) + more_checks + layer_targets(layers)
    print("\ntargets:")
    for name, ok, detail in checks:
        print(f"  {'ok    ' if ok else 'MISSED'} {name}: {detail}")
    from nilazyview.sources import gzwhole

    info = {
        "python": sys.version.split()[0],
        "inflater": gzwhole.inflater_name(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "drop": "drop_caches" if args.drop_caches else "posix_fadvise DONTNEED",
    }
    with open(args.json, "w") as f:
        json.dump({"info": info, "rows": rows, "targets": checks, "layers": layers}, f, indent=1)
    plot(rows, args.png)
    print(f"\nwrote {args.json} and {args.png}")
    if args.docs:
        os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
        shutil.copy(args.png, os.path.join(ROOT, "docs", "benchmarks.png"))
        print("copied the plot to docs/benchmarks.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
