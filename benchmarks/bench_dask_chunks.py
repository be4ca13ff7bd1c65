"""``to_dask()`` chunk shapes: a mean over time and per-volume work on a 4D file.

Writes a 4D int16 NIfTI with ``scl_slope`` 0.5 (values float32) in a temporary
folder -- by default 256x256x256x32, 1 GiB on disk, 2 GiB of values, so one
value volume is 64 MiB -- warms the page cache and times, per chunk shape:

* ``mean_t``: ``arr.mean(axis=-1)`` (a reduction over time, a 3D result);
* ``vol_mean``: ``arr.mean(axis=(0, 1, 2))`` (one number per volume);
* ``vol_filter``: a 3x3x3 box filter of every whole volume, then its maximum
  (``rechunk`` to whole volumes first when chunks split them).

on the threaded scheduler and on a two-worker ``LocalCluster`` (one thread
each). Medians of ``--repeats`` runs, in seconds::

    .venv/bin/python benchmarks/bench_dask_chunks.py
    .venv/bin/python benchmarks/bench_dask_chunks.py --shape 64 64 32 16 --repeats 1  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import nilazyview as nlv
from nilazyview.image import default_chunks


def write_file(path: str, shape: tuple[int, ...]) -> None:
    import nibabel as nib

    rng = np.random.default_rng(0)
    arr = np.asfortranarray(rng.integers(-1000, 1000, shape, dtype=np.int16))
    img = nib.Nifti1Image(arr, np.eye(4))
    img.set_data_dtype(np.int16)
    img.header.set_slope_inter(0.5, 0.0)
    nib.save(img, path)


def old_default(shape, itemsize, target=64 * 2**20):
    """The rule before issue 14: whole but the last axis, ~64 MiB."""
    plane = max(1, int(np.prod(shape[:-1])) * itemsize)
    return (*shape[:-1], max(1, min(shape[-1], target // plane)))


def ops():
    from scipy import ndimage

    def block(b):
        out = ndimage.uniform_filter(b, size=(3, 3, 3, 1))
        return out.max(axis=(0, 1, 2), keepdims=True)

    def vol_filter(arr):
        whole = arr.rechunk({0: -1, 1: -1, 2: -1})
        chunks = ((1,), (1,), (1,), whole.chunks[3])
        return whole.map_blocks(block, chunks=chunks, dtype=arr.dtype)

    return {
        "mean_t": lambda a: a.mean(axis=-1),
        "vol_mean": lambda a: a.mean(axis=(0, 1, 2)),
        "vol_filter": vol_filter,
    }


def run(img, chunks, scheduler_kw, repeats):
    import dask

    out = {}
    for name, op in ops().items():
        times = []
        for _ in range(repeats):
            arr = img.to_dask(chunks=chunks)
            t0 = time.perf_counter()
            with dask.config.set(**scheduler_kw):
                op(arr).compute()
            times.append(time.perf_counter() - t0)
        out[name] = round(statistics.median(times), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=4, default=[256, 256, 256, 32])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--schedulers", nargs="+", default=["threads", "cluster"])
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--only", nargs="+", help="labels of the chunk shapes to run")
    args = ap.parse_args()
    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory(dir=os.environ.get("NLV_BENCH_DIR")) as tmp:
        path = os.path.join(tmp, "bold.nii")
        write_file(path, shape)
        img = nlv.load(path)
        with open(path, "rb") as f:  # warm the page cache
            while f.read(64 * 2**20):
                pass
        itemsize = img.dtype.itemsize
        x, y, z, t = shape
        candidates = {
            "old default": old_default(shape, itemsize),
            "new default": default_chunks(shape, itemsize),
            "issue (x, y, 16, 16)": (x, y, min(z, 16), min(t, 16)),
            "(x, y, 32, 8)": (x, y, min(z, 32), min(t, 8)),
            "(x, y, 8, 32)": (x, y, min(z, 8), min(t, 32)),
            "(x, y, z, 4)": (x, y, z, min(t, 4)),
            "(x, y, z, 8)": (x, y, z, min(t, 8)),
        }
        if args.only:
            candidates = {k: v for k, v in candidates.items() if k in args.only}
        results = {"shape": shape, "values": str(img.dtype), "runs": {}}
        for sched in args.schedulers:
            client = None
            if sched == "cluster":
                from distributed import Client, LocalCluster

                cluster = LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
                )
                client = Client(cluster)
                kw = {}
            else:
                kw = {"scheduler": "threads"}
            try:
                for label, chunks in candidates.items():
                    got = run(img, chunks, kw, args.repeats)
                    results["runs"][f"{sched} | {label} {tuple(chunks)}"] = got
                    print(f"{sched:8s} {label:22s} {tuple(chunks)!s:24s} {got}", flush=True)
            finally:
                if client is not None:
                    client.close()
                    cluster.close()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
