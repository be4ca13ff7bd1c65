"""Remote slabs over HTTP at 0, 20 and 80 ms added latency: nilazyview vs nibabel vs download.

Usage::

    python benchmarks/bench_remote.py [--size 256] [--latency 0,20,80] [--mbps 50] [--json OUT]

Serves a ``size``^3 float32 ``.nii`` (64 MiB at 256) and its ``.nii.gz`` from
the range server of the tests (``tests/rangeserver.py``, 127.0.0.1, latency
slept before each answer, each answer's body throttled to ``--mbps`` MB/s: a
per-connection cap, not a shared link) and reads, each from a fresh open
(``load + slab``):

* **nilazyview**: ``nlv.load(url)`` then an axial slab ``[:, :, k]``, a
  middle-axis slab ``[:, k, :]`` and a deep ``.nii.gz`` slab (first read; then
  a fresh reader with the persisted index);
* **nibabel + fsspec**: ``Nifti1Image.from_stream`` on an ``fsspec.open`` file
  object (fsspec's read-ahead block cache), the same slabs through ``dataobj``;
* **download**: the whole file with ``fsspec``'s ``cat``.

Reports seconds, requests and bytes (counted by the server) per case.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from rangeserver import RangeServer  # the tests' server

MIB = 2**20


def _volume(n: int) -> tuple[bytes, bytes]:
    import nibabel as nib

    x = np.linspace(0, 50, n**3, dtype=np.float32).reshape((n,) * 3, order="F")
    noise = np.random.default_rng(0).random(x.shape, dtype=np.float32)
    a = (np.sin(x) * 1000 + noise).astype(np.float32)
    raw = nib.Nifti1Image(a, np.eye(4)).to_bytes()
    return raw, gzip.compress(raw, compresslevel=1)


def _measure(srv: RangeServer, fn) -> dict:
    srv.reset()
    t0 = time.perf_counter()
    fn()
    return {"s": time.perf_counter() - t0, "requests": srv.requests, "bytes": srv.bytes}


def _cases(url: str, gzurl: str, k: int) -> list:
    """(name, function) of each measured read; each opens the file afresh."""
    import fsspec
    import nibabel as nib

    import nilazyview as nlv

    def nib_slab(u, index):
        with fsspec.open(u, "rb", compression="infer") as f:
            img = nib.Nifti1Image.from_stream(f)
            np.asarray(img.dataobj[index])

    http = fsspec.filesystem("http", skip_instance_cache=True)
    return [
        ("nlv load", lambda: nlv.load(url)),
        ("nlv axial", lambda: nlv.load(url).slicecopy[:, :, k]),
        ("nlv middle", lambda: nlv.load(url).slicecopy[:, k, :]),
        ("nlv gz deep, first", lambda: nlv.load(gzurl).slicecopy[:, :, -9]),
        ("nlv gz deep, fresh", lambda: nlv.load(gzurl).slicecopy[:, :, -20]),
        ("nibabel+fsspec axial", lambda: nib_slab(url, np.s_[:, :, k])),
        ("nibabel+fsspec middle", lambda: nib_slab(url, np.s_[:, k, :])),
        ("nibabel+fsspec gz deep", lambda: nib_slab(gzurl, np.s_[:, :, -9])),
        ("download .nii", lambda: http.cat(url)),
        ("download .nii.gz", lambda: http.cat(gzurl)),
    ]


def run(n: int, latencies: list[float], mbps: float = 0.0) -> list[dict]:
    raw, gz = _volume(n)
    k = n // 2 + 7
    rows = []
    with RangeServer({"v.nii": raw, "v.nii.gz": gz}) as srv:
        srv.bandwidth = mbps * 1e6
        for lat in latencies:
            os.environ["NILAZYVIEW_CACHE_DIR"] = tempfile.mkdtemp(prefix="nlv-bench-")
            srv.latency = lat / 1000
            url, gzurl = srv.url("v.nii"), srv.url("v.nii.gz")
            row: dict = {"latency_ms": lat, "mbps": mbps}
            for name, fn in _cases(url, gzurl, k):
                row[name] = _measure(srv, fn)
            rows.append(row)
            print(f"--- {lat} ms per request, {mbps or 'unlimited'} MB/s ({n}^3 float32, "
                  f".nii {len(raw) / MIB:.0f} MiB, .nii.gz {len(gz) / MIB:.0f} MiB)")  # fmt: skip
            for name, m in row.items():
                if name not in ("latency_ms", "mbps"):
                    print(f"  {name:<24} {m['s']:7.3f} s {m['requests']:5d} req "
                          f"{m['bytes'] / MIB:9.2f} MiB")  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--latency", default="0,20,80", help="ms per request, comma-separated")
    ap.add_argument("--mbps", type=float, default=0.0, help="MB/s per answer (0: unlimited)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    rows = run(args.size, [float(x) for x in args.latency.split(",")], args.mbps)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
