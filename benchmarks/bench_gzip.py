"""gzip at 1 and 2 cores (issue 17): nilazyview against nibabel, isal and rapidgzip.

Every sample is a fresh Python process pinned to 1 or 2 cores
(``os.sched_setaffinity`` before anything is imported), with an empty nilazyview
index cache (``NILAZYVIEW_CACHE_DIR`` and ``XDG_CACHE_HOME`` pointed at a new
folder), timing ``load`` + the read (imports excluded). The compressed files stay
in the OS page cache (they are read through before every sample): this measures
CPU-bound inflate, not the disk. Samples are interleaved in a shuffled order and
each row is the median over ``--repeat`` samples.

Files (written once into ``--data`` from a fixed seed and reused): a 3D
``N^3`` int16 ``.nii.gz`` (``--size``, default 512: 256 MiB raw) and a 4D
``128x128x64xT`` int16 ``.nii.gz`` (``--frames``, default 200: 400 MiB raw), a
smooth head phantom plus Rician-like noise everywhere (compressed to ~0.7 of
its size by ``gzip`` level 6, like a real scan's noisy background).

Cases: (a) strided plane ``[N//2, :, :]``; (b) first deep read ``[:, :, N-3]``;
(c) ``get_data()``; (d) the deep read with the index cached (warmed by a separate
process first); (e) the 4D voxel time series ``[64, 64, 32, :]``.
Tools: ``nilazyview`` (the tree under ``--nlv``, default this checkout; plus
``nilazyview@baseline`` with ``--baseline PATH``), ``nibabel`` (``dataobj``, with
``indexed_gzip`` when installed), ``isal`` (one-thread inflate: the whole stream
for (a) and (c), up to the last wanted byte for (b) and (e)) and ``rapidgzip``
(``parallelization`` = cores: a full inflate for (a) and (c), ``seek`` + ``read``
for the rest; (d) imports an index exported by a warm-up process). Every result is
checked against checksums computed from the generated numpy arrays, so a fast wrong
answer is reported as an error, not a time.

Usage::

    python benchmarks/bench_gzip.py                      # 512^3 and 128x128x64x200
    python benchmarks/bench_gzip.py --size 256 --frames 50 --repeat 3
    python benchmarks/bench_gzip.py --baseline /path/to/old/checkout --json out.json

It prints a table (median seconds at each core count, the 2-core speedup) and the
issue's targets with PASS/MISS; a miss never fails the run (exit 0): it is a report.
"1 core" is the first CPU this process may use, so on a shared machine it also carries
whatever else runs there: one-thread tools (isal) vary more at 1 core than at 2.

Measured before issue 17 (``--repeat 5``, loaded 2-core machine, ~7 min; 194 and 306 MiB
files): strided plane 1.49 / 1.23 s at 1 / 2 cores, 1.46x isal's one-thread inflate
(0.84 s); first deep read 1.22 / 1.19 s; ``get_data()`` 1.32 / 1.28 s; the cached deep
read 42 / 38 ms (rapidgzip with an imported index: 16 ms); nibabel's strided plane 3.9 s.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_viewer import phantom_slab  # noqa: E402

VOX_OFFSET = 352
SHAPE4 = (128, 128, 64)
VOXEL4 = (64, 64, 32)
NOISE = 150.0  # sigma of the noise, everywhere (background too)
FORMAT = 1  # bump when the generated data changes
CASES = {
    "plane": "strided plane [N/2,:,:]",
    "deep": "first deep read [:,:,N-3]",
    "get_data": "get_data()",
    "cached": "deep read, index cached",
    "series": "4D time series [64,64,32,:]",
}
# what each peer does per case (None: not meaningful)
PEER_OPS = {
    "isal": {"plane": "full", "deep": "ranges", "get_data": "full", "series": "ranges"},
    "rapidgzip": {
        "plane": "full",
        "deep": "ranges",
        "get_data": "full",
        "cached": "ranges",
        "series": "ranges",
    },
    "nibabel": {"plane": "index", "deep": "index", "get_data": "all", "series": "index"},
}
NEEDS = {"nibabel": "nibabel", "isal": "isal", "rapidgzip": "rapidgzip"}


# ------------------------------------------------------------------ data and oracles


def _noisy(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of signal + complex Gaussian noise (Rician, like an MRI background)."""
    re = clean + rng.normal(0, NOISE, clean.shape).astype(np.float32)
    im = rng.normal(0, NOISE, clean.shape).astype(np.float32)
    return np.clip(np.hypot(re, im), 0, 32767).astype(np.int16)


def _header(shape) -> bytes:
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.int16)
    hdr["vox_offset"] = VOX_OFFSET
    hdr.set_sform(np.eye(4), code=1)
    hdr.set_qform(np.eye(4), code=1)
    return hdr.binaryblock + b"\0" * 4


def _digest(a: np.ndarray) -> str:
    """sha256 of an array's int16 values in Fortran order (and of its shape)."""
    a = np.asarray(a)
    if a.dtype != np.int16:  # a wider type is fine if it holds the same integers
        b = a.astype(np.int16)
        if not np.array_equal(a, b):
            return "values-not-int16"
        a = b
    h = hashlib.sha256(repr(a.shape).encode())
    h.update(np.asfortranarray(a).tobytes(order="F"))
    return h.hexdigest()


def make_files(folder: str, n: int, frames: int, seed: int = 17) -> dict:
    """Write the 3D and 4D files (once) and their oracles: digests of the numpy arrays."""
    os.makedirs(folder, exist_ok=True)
    p3 = os.path.join(folder, f"gz3d_{n}.nii.gz")
    p4 = os.path.join(folder, f"gz4d_{frames}.nii.gz")
    meta_path = os.path.join(folder, f"gz_{n}_{frames}.oracle.json")
    key = {"format": FORMAT, "seed": seed, "n": n, "frames": frames, "noise": NOISE}
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta["key"] == key and os.path.exists(p3) and os.path.exists(p4):
            return meta
    t0 = time.perf_counter()
    shape3 = (n, n, n)
    plane = np.empty((n, n), np.int16)  # [n//2, :, :]
    whole = hashlib.sha256(repr(shape3).encode())
    deep = None
    with open(p3 + ".part", "wb") as raw, gzip.GzipFile("", "wb", 6, raw, mtime=0) as gz:
        gz.write(_header(shape3))
        for z in range(n):
            rng = np.random.default_rng([seed, z])
            s = _noisy(phantom_slab(z, shape3).astype(np.float32), rng)
            plane[:, z] = s[n // 2, :]
            if z == n - 3:
                deep = s.copy()
            b = np.asfortranarray(s).tobytes(order="F")
            whole.update(b)
            gz.write(b)
    os.replace(p3 + ".part", p3)
    shape4 = (*SHAPE4, frames)
    base = np.stack([phantom_slab(z, SHAPE4) for z in range(SHAPE4[2])], axis=2)
    base = base.astype(np.float32)
    series = np.empty(frames, np.int16)
    with open(p4 + ".part", "wb") as raw, gzip.GzipFile("", "wb", 6, raw, mtime=0) as gz:
        gz.write(_header(shape4))
        for t in range(frames):
            rng = np.random.default_rng([seed, 10_000 + t])
            v = _noisy(base * np.float32(1 + 0.02 * np.sin(t / 5)), rng)
            series[t] = v[VOXEL4]
            gz.write(np.asfortranarray(v).tobytes(order="F"))
    os.replace(p4 + ".part", p4)
    meta = {
        "key": key,
        "p3": p3,
        "p4": p4,
        "raw3": VOX_OFFSET + 2 * n**3,
        "raw4": VOX_OFFSET + 2 * int(np.prod(shape4)),
        "gz3": os.path.getsize(p3),
        "gz4": os.path.getsize(p4),
        "plane": _digest(plane),
        "deep": _digest(deep),
        "get_data": whole.hexdigest(),
        "series": _digest(series),
    }
    meta["cached"] = meta["deep"]
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    print(
        f"wrote {p3} ({meta['gz3'] / 2**20:.0f} MiB) and {p4} ({meta['gz4'] / 2**20:.0f} MiB)"
        f" in {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    return meta


def specs(meta: dict) -> dict:
    """case -> (path, nilazyview/nibabel index, raw byte ranges, result shape)."""
    n, frames = meta["key"]["n"], meta["key"]["frames"]
    nx, ny, nz = SHAPE4
    i, j, k = VOXEL4
    slab = n * n * 2
    first = VOX_OFFSET + (i + nx * (j + ny * k)) * 2
    return {
        "plane": (meta["p3"], f"({n // 2}, slice(None), slice(None))", None, None),
        "deep": (
            meta["p3"],
            f"(slice(None), slice(None), {n - 3})",
            [[VOX_OFFSET + (n - 3) * slab, slab]],
            (n, n),
        ),
        "get_data": (meta["p3"], None, None, None),
        "series": (
            meta["p4"],
            f"({i}, {j}, {k}, slice(None))",
            [[first + t * nx * ny * nz * 2, 2] for t in range(frames)],
            (frames,),
        ),
    } | {"cached": None}


# ------------------------------------------------------------------ the child


def child(spec: dict) -> dict:
    """Run one sample in this (fresh, pinned) process; return its time and checks."""
    tool, path = spec["tool"], spec["path"]
    out: dict = {"affinity": sorted(os.sched_getaffinity(0))}
    if tool.startswith("nilazyview"):
        import nilazyview as nlv

        out["nlv_file"] = nlv.__file__
        t0 = time.perf_counter()
        img = nlv.load(path)
        a = img.get_data() if spec["index"] is None else img.slicecopy[eval(spec["index"])]
        out["s"] = time.perf_counter() - t0
        out["digest"] = _digest(a)
        del a
        t0 = time.perf_counter()
        source = getattr(getattr(img, "proxy", None), "source", None)
        if source is not None and hasattr(source, "close"):
            source.close()  # saves the index, if the code does it at close
        out["close_s"] = time.perf_counter() - t0
        try:  # the index counters of the code measured, when it has them
            from nilazyview.sources import gzindex

            out["gzindex"] = dict(gzindex.stats)
        except (ImportError, AttributeError):
            pass
    elif tool == "nibabel":
        import nibabel as nib

        t0 = time.perf_counter()
        img = nib.load(path)
        idx = spec["index"]
        a = np.asanyarray(img.dataobj) if idx is None else np.asarray(img.dataobj[eval(idx)])
        out["s"] = time.perf_counter() - t0
        out["digest"] = _digest(a)
        try:  # which gzip reader nibabel chose (private API: only for the note)
            with img.dataobj._get_fileobj() as f:
                out["indexed_gzip"] = "indexed_gzip" in type(f.fobj).__module__
        except AttributeError:
            pass
    elif tool == "isal":
        from isal import isal_zlib

        t0 = time.perf_counter()
        d = isal_zlib.decompressobj(31)
        got, total = _gather(d.decompress, path, spec.get("ranges"))
        out["s"] = time.perf_counter() - t0
        out.update(_check_raw(spec, got, total))
        if got is None and not d.eof:  # a full inflate ends at the trailer (CRC checked)
            out["digest"] = "no-gzip-trailer"
    elif tool == "rapidgzip":
        import rapidgzip

        t0 = time.perf_counter()
        f = rapidgzip.open(path, parallelization=spec["cores"])
        try:  # always closed: a file left open at exit aborts the interpreter
            if spec.get("import_index"):
                with open(spec["import_index"], "rb") as ix:
                    f.import_index(ix)
            if spec.get("ranges") is None:
                buf = memoryview(bytearray(16 * 2**20))
                total = 0
                while k := f.readinto(buf):
                    total += k
                got = None
            else:
                got, total = [], None
                for off, length in spec["ranges"]:
                    f.seek(off)
                    got.append(f.read(length))
            out["s"] = time.perf_counter() - t0
            if spec.get("export_index"):
                with open(spec["export_index"], "wb") as ix:
                    f.export_index(ix)
        finally:
            f.close()
        out.update(_check_raw(spec, got, total))
    return out


def _gather(decompress, path: str, ranges):
    """Inflate from the start; return the bytes of ``ranges`` (sorted) and the total."""
    want = list(ranges or [])
    got = [bytearray() for _ in want]
    pos, r = 0, 0
    with open(path, "rb", buffering=0) as f:
        while b := f.read(2**20):
            chunk = decompress(b)
            end = pos + len(chunk)
            while r < len(want):
                off, length = want[r]
                start = off + len(got[r])
                if start >= end:
                    break
                got[r] += chunk[start - pos : min(off + length, end) - pos]
                if len(got[r]) < length:
                    break  # the range goes on in the next chunk
                r += 1
            pos = end
            if want and r == len(want):
                break
    return ([bytes(g) for g in got] if want else None), pos


def _check_raw(spec: dict, got, total) -> dict:
    """Digest of gathered ranges, or the byte count of a full inflate."""
    if got is None:
        return {"digest": f"bytes:{total}"}
    a = np.frombuffer(b"".join(got), "<i2").reshape(spec["shape"], order="F")
    return {"digest": _digest(a)}


# ------------------------------------------------------------------ the parent


def _run_child(spec: dict, env: dict, cwd: str, timeout: float) -> dict:
    cpus = sorted(os.sched_getaffinity(0))[: spec["cores"]]
    prelude = (
        f"import os, sys, json; os.sched_setaffinity(0, {cpus!r}); "
        f"sys.path.insert(0, {HERE!r}); import bench_gzip as b; "
        "print(json.dumps(b.child(json.loads(sys.argv[1]))))"
    )
    t0 = time.perf_counter()
    try:
        res = subprocess.run(
            [sys.executable, "-c", prelude, json.dumps(spec)],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,  # not the checkout: '' on sys.path must not shadow --nlv
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if res.returncode:
        return {"error": f"rc {res.returncode}: {res.stderr.strip()[-600:]}"}
    try:
        out = json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": f"no result: {res.stderr.strip()[-600:]}"}
    out["wall_s"] = time.perf_counter() - t0  # the whole process: start-up, exit, index saves
    return out


def _warm(path: str) -> None:
    """Read the compressed file through so it sits in the page cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(64 * 2**20):
            pass


def _cache_bytes(folder: str) -> int:
    return sum(
        os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files
    )


def available_tools(nlv: str, baseline: str | None) -> tuple[dict, list[str]]:
    """tool -> PYTHONPATH (None for peers); and a note per peer that is missing."""
    tools: dict = {"nilazyview": nlv}
    if baseline:
        tools["nilazyview@baseline"] = baseline
    notes = []
    for tool, module in NEEDS.items():
        if importlib.util.find_spec(module) is None:
            notes.append(f"{tool}: not installed ({module}), column skipped")
        else:
            tools[tool] = None
    if "nibabel" in tools and importlib.util.find_spec("indexed_gzip") is None:
        notes.append("nibabel: indexed_gzip not installed, nibabel reads with gzip")
    return tools, notes


def run(args) -> dict:
    """Generate the files, run every sample, return the results (``samples``, ``medians``)."""
    meta = make_files(args.data, args.size, args.frames)
    sp = specs(meta)
    tools, notes = available_tools(args.nlv, args.baseline)
    cores = [c for c in args.cores if c <= len(os.sched_getaffinity(0))]
    notes += [f"{c} cores: fewer CPUs allowed, skipped" for c in args.cores if c not in cores]
    work = tempfile.mkdtemp(prefix="nlv-bench-gzip-")
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    base_env |= {"TQDM_DISABLE": "1", "PYTHONDONTWRITEBYTECODE": "1"}

    def env_for(tool: str, cache: str) -> dict:
        env = base_env | {"NILAZYVIEW_CACHE_DIR": cache, "XDG_CACHE_HOME": cache}
        path = tools[tool]
        env["PYTHONPATH"] = path if path else ROOT
        return env

    def spec_for(tool: str, case: str, c: int) -> dict | None:
        path, index, ranges, shape = sp["deep" if case == "cached" else case]
        if tool.startswith("nilazyview"):
            return {"tool": tool, "op": case, "path": path, "index": index, "cores": c}
        op = PEER_OPS[tool].get(case)
        if op is None:
            return None
        return {
            "tool": tool,
            "op": op,
            "path": path,
            "index": None if op == "all" else index,
            "ranges": ranges if op == "ranges" else None,
            "shape": shape,
            "cores": c,
        }

    def expected(tool: str, case: str, spec: dict) -> str:
        if spec["op"] == "full":
            return f"bytes:{meta['raw4' if case == 'series' else 'raw3']}"
        return meta[case]

    jobs = [
        (case, tool, c)
        for case in args.cases
        for tool in tools
        for c in cores
        if spec_for(tool, case, c) is not None
    ]
    # (d): each variant's index cache (and rapidgzip's exported index) warmed once, apart
    warm_caches: dict = {}
    if "cached" in args.cases:
        for tool in tools:
            if tool.startswith("nilazyview"):
                cache = os.path.join(work, f"warm-{tool}")
                os.makedirs(cache)
                spec = spec_for(tool, "deep", max(cores))
                r = _run_child(spec, env_for(tool, cache), work, args.timeout)
                warm_caches[tool] = cache
                if "error" in r or not _cache_bytes(cache):
                    notes.append(f"{tool}: warm-up left no index ({r.get('error', 'empty')})")
            elif tool == "rapidgzip":
                warm_caches[tool] = os.path.join(work, "rapidgzip.index")
                spec = spec_for(tool, "deep", max(cores)) | {"export_index": warm_caches[tool]}
                r = _run_child(spec, env_for(tool, work), work, args.timeout)
                if "error" in r:
                    notes.append(f"rapidgzip: index export failed ({r['error']})")
    samples = []
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    try:
        for rep in range(args.repeat):
            order = list(jobs)
            random.Random(rep).shuffle(order)
            for case, tool, c in order:
                spec = spec_for(tool, case, c)
                cache = tempfile.mkdtemp(prefix="cache-", dir=work)
                if case == "cached":
                    if tool.startswith("nilazyview"):
                        shutil.rmtree(cache)
                        shutil.copytree(warm_caches[tool], cache)
                    else:
                        spec["import_index"] = warm_caches[tool]
                _warm(spec["path"])
                r = _run_child(spec, env_for(tool, cache), work, args.timeout)
                row = {"case": case, "tool": tool, "cores": c, "rep": rep} | r
                if "error" not in r and r.get("digest") != expected(tool, case, spec):
                    row["error"] = f"WRONG RESULT (digest {r.get('digest')})"
                if tool.startswith("nilazyview"):
                    row["index_bytes_left"] = _cache_bytes(cache)
                    want = os.path.realpath(tools[tool])
                    got = os.path.realpath(r.get("nlv_file", want))
                    if "error" not in r and not got.startswith(want + os.sep):
                        row["error"] = f"imported nilazyview from {got}, not {want}"
                shutil.rmtree(cache, ignore_errors=True)
                samples.append(row)
                status = row.get("error") or f"{r['s']:.3f} s"
                print(f"  [{rep + 1}/{args.repeat}] {case} {tool} {c}c: {status}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info = {
        "python": sys.version.split()[0],
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "seconds": round(time.perf_counter() - t_start, 1),
        "files": {k: meta[k] for k in ("p3", "p4", "raw3", "raw4", "gz3", "gz4")},
        "page_cache": "compressed files read through before every sample (warm)",
        "tools": {t: (p or "installed") for t, p in tools.items()},
        "notes": notes,
    }
    res = {"info": info, "samples": samples, "medians": medians(samples)}
    return res | {"best": medians(samples, min)}


def medians(samples: list, stat=statistics.median) -> dict:
    """(case, tool, cores) as 'case|tool|cores' -> median seconds of the good samples."""
    groups: dict = {}
    for s in samples:
        if "error" not in s:
            groups.setdefault(f"{s['case']}|{s['tool']}|{s['cores']}", []).append(s["s"])
    return {k: stat(v) for k, v in groups.items()}


def isal_reference(samples: list) -> float | None:
    """Median one-thread ``isal`` full inflate of the 3D file.

    isal inflates on one thread whatever the affinity, so its full-inflate samples of
    cases (a) and (c) at every core count are one measurement: pooling them makes the
    reference the targets divide by less noisy on a shared machine.
    """
    ts = [
        s["s"]
        for s in samples
        if s["tool"] == "isal" and s["case"] in ("plane", "get_data") and "error" not in s
    ]
    return statistics.median(ts) if ts else None


def targets(res: dict) -> list[tuple[str, bool | None, str]]:
    """The issue's targets on 2 cores (None: not measurable in this run)."""
    med = res["medians"]

    def get(case, tool, c):
        return med.get(f"{case}|{tool}|{c}")

    out = []

    def ratio(name, num, den, limit, less=True):
        if not num or not den:
            out.append((name, None, "not measured"))
            return
        r = num / den
        detail = f"{r:.2f}x ({num:.3f} s / {den:.3f} s)"
        out.append((name, r <= limit if less else r >= limit, detail))

    isal1 = isal_reference(res["samples"])
    ratio(
        "strided plane, 2 cores <= 1.0x isal's one-thread full inflate",
        get("plane", "nilazyview", 2),
        isal1,
        1.0,
    )
    ratio(
        "first deep read, 2 cores <= 0.6x the baseline's",
        get("deep", "nilazyview", 2),
        get("deep", "nilazyview@baseline", 2),
        0.6,
    )
    ratio(
        "get_data(), 2 cores <= 1.0x isal's one-thread full inflate",
        get("get_data", "nilazyview", 2),
        isal1,
        1.0,
    )
    for case in CASES:
        ratio(
            f"{CASES[case]}: 2 cores >= 1.5x faster than 1 core",
            get(case, "nilazyview", 1),
            get(case, "nilazyview", 2),
            1.5,
            less=False,
        )
    return out


def report(res: dict) -> str:
    med, samples = res["medians"], res["samples"]
    cores = sorted({s["cores"] for s in samples})
    tools = [t for t in res["info"]["tools"] if any(s["tool"] == t for s in samples)]
    head = f"{'case':30s} {'tool':22s}" + "".join(f"{f'{c} core(s) s':>13s}" for c in cores)
    head += f"{'speedup':>9s}  note"
    lines = [head, "-" * len(head)]
    for case, label in CASES.items():
        for tool in tools:
            ts = [med.get(f"{case}|{tool}|{c}") for c in cores]
            errs = {s.get("error") for s in samples if (s["case"], s["tool"]) == (case, tool)}
            errs.discard(None)
            if all(t is None for t in ts) and not errs:
                continue
            cells = "".join(f"{t:13.3f}" if t else f"{'-':>13s}" for t in ts)
            sp = f"{ts[0] / ts[-1]:8.2f}x" if len(ts) > 1 and ts[0] and ts[-1] else f"{'':9s}"
            note = _note(case, tool, samples)
            if errs:
                note += " ERRORS: " + "; ".join(sorted(errs))[:200]
            lines.append(f"{label:30s} {tool:22s}{cells}{sp}  {note}")
    lines.append("\ntargets (2 cores; a report, never a failure):")
    for name, ok, detail in targets(res):
        mark = "n/a " if ok is None else "PASS" if ok else "MISS"
        lines.append(f"  {mark} {name}: {detail}")
    for note in res["info"]["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _note(case: str, tool: str, samples: list) -> str:
    if tool in ("isal", "rapidgzip"):
        op = PEER_OPS[tool][case]
        return {"full": "full inflate", "ranges": "inflate/seek to the bytes"}[op] + (
            " + imported index" if case == "cached" else ""
        )
    if tool == "nibabel":
        igz = any(s.get("indexed_gzip") for s in samples if s["tool"] == "nibabel")
        return "with indexed_gzip" if igz else "without indexed_gzip"
    mine = [s for s in samples if (s["case"], s["tool"]) == (case, tool) and "error" not in s]
    left = [s.get("index_bytes_left", 0) for s in mine]
    if case == "cached":
        used = [s.get("gzindex", {}).get("imports") for s in mine]
        return "index imported" if used and all(used) else ""
    return "index left: " + ("yes" if left and all(left) else "some" if any(left) else "no")


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512, help="the 3D file is SIZE^3 int16")
    ap.add_argument("--frames", type=int, default=200, help="the 4D file is 128x128x64xFRAMES")
    ap.add_argument("--repeat", type=int, default=3, help="samples per case, tool and cores")
    ap.add_argument("--cores", type=lambda s: [int(c) for c in s.split(",")], default=[1, 2])
    ap.add_argument("--cases", nargs="*", choices=list(CASES), default=list(CASES))
    ap.add_argument("--nlv", default=ROOT, help="PYTHONPATH of the nilazyview measured")
    ap.add_argument("--baseline", help="PYTHONPATH of an older nilazyview to compare")
    ap.add_argument("--data", default=os.path.join(HERE, "results", "data"))
    ap.add_argument("--timeout", type=float, default=900, help="seconds per sample")
    ap.add_argument("--json", help="write the results here")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    res = run(args)
    print(report(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res | {"targets": targets(res)}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
