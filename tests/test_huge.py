"""A 64 GiB sparse NIfTI: load it, read one 64 MiB slice, with bounded memory.

The file is a NIfTI-1 header plus ``os.truncate`` to the full size (a sparse
file: holes read as zeros and take no disk space), with a few known values
``pwrite``-n at chosen voxels. The read runs in a fresh Python process so its
peak resident memory is its own (the test process has touched far more).
Memory is asserted with a generous bound; time is only reported.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

SHAPE = (4096, 4096, 1024)  # float32: 64 GiB of data, 64 MiB per last-axis slice
VOX_OFFSET = 352
K = 700  # the slice read
# (i, j, k) -> value; a few in slice K, some in the slices either side (must not leak in)
KNOWN = {
    (0, 0, K): 1.5,
    (4095, 4095, K): -2.25,
    (17, 4000, K): 3.0e8,
    (2048, 1, K): -7.0,
    (100, 200, K - 1): 11.0,
    (100, 200, K + 1): 13.0,
    (4095, 4095, K - 1): 99.0,
    (0, 0, K + 1): 42.0,
}
MAX_GROWTH = 200 * 2**20  # the slice itself is 64 MiB

CHILD = r"""
import json, sys, time
import numpy as np
import nilazyview as nlv

def kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])

path, k = sys.argv[1], int(sys.argv[2])
img = nlv.load(path)
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS counter
except OSError:
    pass
before = kib("VmRSS")
t0 = time.perf_counter()
plane = img.slicecopy[:, :, k]
seconds = time.perf_counter() - t0
peak = kib("VmHWM")
nz = np.nonzero(plane)
print(json.dumps({
    "shape": list(plane.shape), "dtype": str(plane.dtype), "is_proxy": img.is_proxy,
    "plan": img.slicecopy.plan[:, :, k].describe(), "seconds": seconds,
    "growth": (peak - before) * 1024, "before": before * 1024,
    "nonzero": [[int(i), int(j), float(plane[i, j])] for i, j in zip(*nz)],
}))
"""


def _nifti1_header(shape, dtype_code=16, bitpix=32) -> bytes:
    """A minimal little-endian single-file NIfTI-1 header (float32), 348 bytes + 4."""
    hdr = bytearray(348)
    struct.pack_into("<i", hdr, 0, 348)
    dims = [len(shape), *shape] + [1] * (7 - len(shape))
    struct.pack_into("<8h", hdr, 40, *dims)
    struct.pack_into("<hh", hdr, 70, dtype_code, bitpix)
    struct.pack_into("<8f", hdr, 76, 1.0, 1.0, 1.0, 1.0, 0, 0, 0, 0)
    struct.pack_into("<f", hdr, 108, float(VOX_OFFSET))
    struct.pack_into("<f", hdr, 112, 1.0)  # scl_slope: unscaled
    struct.pack_into("<h", hdr, 252, 0)  # qform_code
    struct.pack_into("<h", hdr, 254, 0)  # sform_code
    hdr[344:348] = b"n+1\0"
    return bytes(hdr) + b"\0\0\0\0"  # no extensions


@pytest.fixture(scope="module")
def huge_nifti(tmp_path_factory):
    if not sys.platform.startswith("linux"):
        pytest.skip("peak-RSS measurement uses /proc (Linux)")
    path = tmp_path_factory.mktemp("huge") / "huge64g.nii"
    nbytes = VOX_OFFSET + int(np.prod(SHAPE)) * 4
    with open(path, "wb") as f:
        f.write(_nifti1_header(SHAPE))
    try:
        os.truncate(path, nbytes)
    except OSError as exc:
        path.unlink()
        pytest.skip(f"filesystem cannot hold a {nbytes >> 30} GiB sparse file: {exc}")
    st = os.stat(path)
    if st.st_size != nbytes or st.st_blocks * 512 > 2**30:
        path.unlink()
        pytest.skip("filesystem does not make sparse files")
    fd = os.open(path, os.O_WRONLY)
    try:
        for (i, j, k), v in KNOWN.items():
            off = VOX_OFFSET + 4 * (i + SHAPE[0] * (j + SHAPE[1] * k))
            os.pwrite(fd, np.float32(v).tobytes(), off)
    finally:
        os.close(fd)
    yield path
    path.unlink()


def test_header_loads_without_reading_data(huge_nifti):
    import nilazyview as nlv

    img = nlv.load(huge_nifti)
    assert img.shape == SHAPE
    assert img.dtype == np.float32
    assert img.is_proxy
    plan = img.slicecopy.plan[:, :, K]
    assert plan.n_runs == 1 and plan.nbytes == SHAPE[0] * SHAPE[1] * 4
    # a single voxel reads one element, wherever it is
    assert img.slicecopy[4095, 4095, K] == np.float32(-2.25)
    assert img.slicecopy[100, 200, K + 1] == np.float32(13.0)
    assert img.is_proxy


def test_one_64mib_slice_with_bounded_memory(huge_nifti):
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(huge_nifti), str(K)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["shape"] == [SHAPE[0], SHAPE[1]]
    assert res["dtype"] == "float32"
    assert res["is_proxy"]
    expect = sorted([i, j, float(np.float32(v))] for (i, j, k), v in KNOWN.items() if k == K)
    assert sorted(res["nonzero"]) == expect
    growth = res["growth"]
    print(
        f"\n64 GiB sparse file, slice [:, :, {K}] (64 MiB): {res['seconds'] * 1e3:.0f} ms, "
        f"peak RSS growth {growth / 2**20:.0f} MiB; {res['plan']}"
    )
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / 2**20:.0f} MiB"
    assert growth > 32 * 2**20, "the 64 MiB slice itself should show in RSS"
