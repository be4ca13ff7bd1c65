"""Peak memory of loading a whole scaled volume: nilazyview vs nibabel.

Writes an int16 NIfTI-1 file with ``scl_slope``/``scl_inter`` (default
512^3: 256 MiB on disk, a 512 MiB float32 result) in a temporary folder, then
for each reader starts a fresh Python process that loads the image, resets
its peak-RSS counter, reads the whole array and reports how far resident
memory peaked above where it started. Run from the repository root::

    .venv/bin/python benchmarks/bench_memory.py            # 512^3, the acceptance run
    .venv/bin/python benchmarks/bench_memory.py --size 128 --json -

Peak RSS comes from ``/proc/self/status`` (``VmHWM``, reset by writing 5 to
``/proc/self/clear_refs``); where that reset is not allowed the child measures
from ``resource.getrusage(...).ru_maxrss`` and says so. RSS counts file pages
mapped into the process too, so a reader that memory-maps the file pays for it.

Target (issue 2): nilazyview's peak at most ~1.1x the array it returns.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

TARGET_RATIO = 1.1
SLOPE, INTER = 0.5, -3.0

CHILD = r"""
import json, os, resource, sys
import numpy as np

def rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

path, case = sys.argv[1], sys.argv[2]
if case == "nilazyview":
    import nilazyview as nlv
    img = nlv.load(path)
    read = img.get_data
else:
    import nibabel as nib
    img = nib.load(path)
    read = {
        "nibabel get_fdata": lambda: img.get_fdata(),
        "nibabel get_fdata(float32)": lambda: img.get_fdata(dtype=np.float32),
        "nibabel asanyarray(dataobj)": lambda: np.asanyarray(img.dataobj),
    }[case]
hwm = reset_peak()
before = rss_kib("VmRSS")
max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
arr = read()
if hwm:
    peak, method = rss_kib("VmHWM"), "VmHWM after clear_refs"
else:
    peak, method = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    if max_before > before:
        method += " (lower bound: earlier peak was higher)"
after = rss_kib("VmRSS")
print(json.dumps({
    "case": case, "dtype": str(arr.dtype), "shape": list(arr.shape),
    "result_bytes": int(arr.nbytes), "peak_growth_bytes": (peak - before) * 1024,
    "held_growth_bytes": (after - before) * 1024, "method": method,
    "checksum": float(arr[::7, ::5, ::3].astype(np.float64).sum()),
}))
"""

CASES = (
    "nilazyview",
    "nibabel get_fdata",
    "nibabel get_fdata(float32)",
    "nibabel asanyarray(dataobj)",
)


def write_scaled_int16(path: str, n: int) -> None:
    """An n^3 int16 NIfTI-1 with slope/inter, written raw (no rescaling by a writer)."""
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape((n, n, n))
    hdr.set_data_dtype(np.int16)
    hdr["scl_slope"], hdr["scl_inter"] = SLOPE, INTER
    hdr["vox_offset"] = 352
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        f.write(hdr.binaryblock)
        f.write(b"\0" * (352 - len(hdr.binaryblock)))
        for _ in range(n):  # one plane at a time: the writer stays small
            plane = rng.integers(-32768, 32767, size=(n, n), dtype=np.int16, endpoint=True)
            f.write(plane.tobytes(order="F"))


def run_case(path: str, case: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, path, case], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{case} failed:\n{proc.stderr}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["ratio_peak_vs_result"] = res["peak_growth_bytes"] / res["result_bytes"]
    return res


def run(n: int, tmpdir: str | None) -> dict:
    out: dict = {"size": n, "file_bytes": 352 + 2 * n**3, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="nlv-mem-", dir=tmpdir) as d:
        path = os.path.join(d, f"scaled{n}.nii")
        write_scaled_int16(path, n)
        for case in CASES:
            out["cases"][case] = run_case(path, case)
            print(f"  {case} done", file=sys.stderr)
    sums = {c["checksum"] for c in out["cases"].values()}
    out["same_values"] = len(sums) == 1 or np.ptp(list(sums)) <= 1e-6 * max(map(abs, sums))
    nlv = out["cases"]["nilazyview"]
    out["target_met"] = nlv["ratio_peak_vs_result"] <= TARGET_RATIO
    return out


def print_table(res: dict) -> None:
    mib = 2**20
    n = res["size"]
    print(
        f"\nget_data of a scaled {n}^3 int16 NIfTI-1 ({res['file_bytes'] / mib:.0f} MiB on disk, "
        f"slope {SLOPE}, inter {INTER}); fresh process per reader"
    )
    head = f"{'reader':30s} {'dtype':>8s} {'result MiB':>11s} {'peak MiB':>9s} {'peak/result':>12s}"
    print(head)
    print("-" * len(head))
    for case, c in res["cases"].items():
        print(
            f"{case:30s} {c['dtype']:>8s} {c['result_bytes'] / mib:11.0f} "
            f"{c['peak_growth_bytes'] / mib:9.0f} {c['ratio_peak_vs_result']:12.2f}"
        )
    nlv = res["cases"]["nilazyview"]
    print(f"\nmeasured with {nlv['method']}; values agree across readers: {res['same_values']}")
    for case, c in res["cases"].items():
        if case != "nilazyview":
            print(
                f"  {case}: peaks {c['peak_growth_bytes'] / max(nlv['peak_growth_bytes'], 1):.1f}x "
                "nilazyview's peak"
            )
    verdict = "met" if res["target_met"] else "MISSED"
    print(
        f"target: nilazyview peak <= {TARGET_RATIO}x its result: {verdict} "
        f"({nlv['ratio_peak_vs_result']:.3f}x)"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512, help="edge of the cube (default 512)")
    ap.add_argument("--json", metavar="PATH", help="also write results as JSON ('-': stdout)")
    ap.add_argument("--tmpdir", help="folder for the temporary file (default: system temp)")
    args = ap.parse_args(argv)
    if args.size < 2:
        ap.error("--size must be at least 2")
    res = run(args.size, args.tmpdir)
    print_table(res)
    if args.json:
        text = json.dumps(res, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
