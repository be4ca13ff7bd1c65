"""Bad files raise the ImageFileError family, name the file, and allocate nothing big."""

from __future__ import annotations

import gzip
import os
import struct
import time
import tracemalloc

import nibabel as nib
import numpy as np
import pytest
from conftest import write_image

import nilazyview as nlv

# NIfTI-1 field offsets (from the standard)
DIM, DATATYPE, BITPIX, VOX_OFFSET, MAGIC = 40, 70, 72, 108, 344


def test_exception_family():
    for cls in (nlv.HeaderError, nlv.TruncatedDataError, nlv.UnsupportedFormatError):
        assert issubclass(cls, nlv.ImageFileError)
    assert issubclass(nlv.ImageFileError, Exception)


@pytest.fixture
def good(tmp_path):
    """Bytes of a valid little-endian NIfTI-1 single file (int16, 4x5x6)."""
    path = str(tmp_path / "good.nii")
    write_image(path, nib.Nifti1Header, np.zeros((4, 5, 6), np.int16), single=True)
    with open(path, "rb") as f:
        return bytearray(f.read())


def _put(buf: bytearray, offset: int, fmt: str, *vals) -> bytearray:
    out = bytearray(buf)
    struct.pack_into("<" + fmt, out, offset, *vals)
    return out


def _load_fails(tmp_path, payload: bytes, exc=nlv.ImageFileError, name="bad.nii"):
    path = tmp_path / name
    path.write_bytes(payload)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(exc) as info:
            img = nlv.load(str(path))
            img.get_data()  # errors found only when reading count too
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 2.0
    assert peak < 64 * 2**20, f"allocated {peak} bytes before failing"
    assert name in str(info.value), f"message does not name the file: {info.value}"
    return info.value


CASES = {
    "bad-sizeof_hdr": (lambda b: _put(b, 0, "i", 123), nlv.ImageFileError),
    "bad-magic": (lambda b: b[:MAGIC] + b"zz9\x00" + b[MAGIC + 4 :], nlv.ImageFileError),
    "nifti2-magic-in-nifti1": (lambda b: b[:MAGIC] + b"n+2\x00" + b[MAGIC + 4 :], nlv.HeaderError),
    "unknown-datatype": (lambda b: _put(b, DATATYPE, "h", 999), nlv.HeaderError),
    "float128-datatype": (lambda b: _put(b, DATATYPE, "hh", 1536, 128), nlv.ImageFileError),
    "dim0-zero": (lambda b: _put(b, DIM, "h", 0), nlv.HeaderError),
    "dim0-eight": (lambda b: _put(b, DIM, "h", 8), nlv.HeaderError),
    "dim0-negative": (lambda b: _put(b, DIM, "h", -3), nlv.ImageFileError),
    "negative-dim": (lambda b: _put(b, DIM + 4, "h", -5), nlv.HeaderError),
    "dims-exceed-file": (
        lambda b: _put(b, DIM + 2, "hhh", 30000, 30000, 30000),
        nlv.ImageFileError,
    ),
    "vox_offset-past-end": (lambda b: _put(b, VOX_OFFSET, "f", 1e6), nlv.ImageFileError),
    "vox_offset-non-integer": (lambda b: _put(b, VOX_OFFSET, "f", 352.5), nlv.HeaderError),
    "vox_offset-too-small": (lambda b: _put(b, VOX_OFFSET, "f", 100.0), nlv.HeaderError),
    "vox_offset-nan": (lambda b: _put(b, VOX_OFFSET, "f", float("nan")), nlv.HeaderError),
    "vox_offset-negative": (lambda b: _put(b, VOX_OFFSET, "f", -352.0), nlv.HeaderError),
    "truncated-data": (lambda b: b[:-7], nlv.TruncatedDataError),
    "truncated-header": (lambda b: b[:200], nlv.ImageFileError),
    "empty-file": (lambda b: b"", nlv.ImageFileError),
    "huge-extension": (  # esize far past vox_offset and the end of the file
        lambda b: _put(
            b[:348] + b"\x01\x00\x00\x00" + struct.pack("<ii", 2**31 - 8, 4) + b"x" * 20 + b[352:],
            VOX_OFFSET,
            "f",
            384.0,
        ),
        nlv.HeaderError,
    ),
    "declares-2^40-bytes": (
        lambda b: _put(b, DIM, "hhhh", 4, 32767, 32767, 1024),
        nlv.TruncatedDataError,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_corrupt_single_file(tmp_path, good, case):
    change, exc = CASES[case]
    _load_fails(tmp_path, bytes(change(good)), exc)


@pytest.mark.parametrize(
    "case", ["dims-exceed-file", "declares-2^40-bytes", "truncated-data", "unknown-datatype"]
)
def test_corrupt_gzipped(tmp_path, good, case):
    change, exc = CASES[case]
    _load_fails(tmp_path, gzip.compress(bytes(change(good))), exc, name="bad.nii.gz")


def test_truncated_gzip_stream(tmp_path, good):
    comp = gzip.compress(bytes(good[:352]) + os.urandom(4 * 5 * 6 * 2))  # incompressible
    _load_fails(tmp_path, comp[: len(comp) - 100], nlv.ImageFileError, name="cut.nii.gz")


def test_garbage_gzip(tmp_path):
    _load_fails(tmp_path, b"\x1f\x8b" + os.urandom(2000), nlv.ImageFileError, name="junk.nii.gz")


def test_garbage_after_valid_gzip_header(tmp_path, good):
    comp = bytearray(gzip.compress(bytes(good)))
    comp[40:] = os.urandom(len(comp) - 40)
    _load_fails(tmp_path, bytes(comp), nlv.ImageFileError, name="mangled.nii.gz")


def test_nifti2_dims_overflowing(tmp_path):
    path = str(tmp_path / "n2.nii")
    write_image(path, nib.Nifti2Header, np.zeros((2, 2, 2), np.float64), single=True)
    buf = bytearray(open(path, "rb").read())
    struct.pack_into("<qqq", buf, 16 + 8, 2**62, 2**62, 2**62)  # dim[1..3] (int64)
    _load_fails(tmp_path, bytes(buf), nlv.ImageFileError, name="huge2.nii")


def test_pair_header_with_huge_extension(tmp_path):
    hdr = str(tmp_path / "e.hdr")
    write_image(hdr, nib.nifti1.Nifti1PairHeader, np.zeros((2, 2, 2), np.uint8), single=False)
    block = open(hdr, "rb").read()[:348]
    with open(hdr, "wb") as f:
        f.write(block + b"\x01\x00\x00\x00" + struct.pack("<ii", 2**31 - 8, 4) + b"abc" * 8)
    with pytest.raises(nlv.HeaderError, match=r"e\.hdr"):
        nlv.load(hdr)


def test_pair_with_short_image(tmp_path):
    hdr = str(tmp_path / "p.hdr")
    write_image(hdr, nib.nifti1.Nifti1PairHeader, np.zeros((4, 5, 6), np.int32), single=False)
    img_file = tmp_path / "p.img"
    img_file.write_bytes(img_file.read_bytes()[:100])
    with pytest.raises(nlv.TruncatedDataError, match=r"p\.img"):
        nlv.load(hdr)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        nlv.load(str(tmp_path / "nope.nii"))
    hdr = str(tmp_path / "lonely.hdr")
    write_image(hdr, nib.nifti1.Nifti1PairHeader, np.zeros((2, 2, 2), np.uint8), single=False)
    os.remove(tmp_path / "lonely.img")
    with pytest.raises(FileNotFoundError, match=r"lonely\.img"):
        nlv.load(hdr)


def test_not_an_image(tmp_path):
    path = tmp_path / "text.nii"
    path.write_bytes(b"hello world, this is not an image\n" * 20)
    with pytest.raises(nlv.ImageFileError, match=r"text\.nii"):
        nlv.load(str(path))


@pytest.mark.parametrize("name", ["folder", "folder.nii", "folder.nii.gz"])
def test_a_directory_raises_is_a_directory_error(tmp_path, name):
    """As the README promises: a directory is the OS error, whatever its name."""
    path = tmp_path / name
    path.mkdir()
    with pytest.raises(IsADirectoryError):
        nlv.load(path)
