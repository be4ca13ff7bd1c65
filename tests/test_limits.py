"""Limits: header-declared sizes are checked against the file before anything is allocated.

* extensions: at most ``nifti.MAX_EXTENSION_BYTES`` (256 MiB) in total;
* plain files must hold the declared data (``vox_offset + nbytes <= size``);
* gzip files can hold at most ``GZIP_MAX_RATIO`` (1032) x their size, plus 1 MiB;
* shapes must be representable by numpy (``nifti.MAX_ELEMENTS``, zero dims counted as 1).
"""

from __future__ import annotations

import gzip
import os
import struct
import tracemalloc

import numpy as np
import pytest

import nilazyview as nlv
from nilazyview.formats import nifti
from nilazyview.formats.codec import GZIP_MAX_RATIO

VOX_OFFSET, DIM = 108, 40


def _nii_bytes(tmp_path, arr, exts=()) -> bytearray:
    path = str(tmp_path / "base.nii")
    img = nlv.Image(arr)
    nlv.save(img, path)
    if exts:
        loaded = nlv.load(path)
        loaded.header.extensions = list(exts)
        nlv.save(loaded, str(tmp_path / "ext.nii"))
        path = str(tmp_path / "ext.nii")
    return bytearray(open(path, "rb").read())


def _fails_small(path: str, exc, match: str, budget: int = 2**20) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(exc, match=match):
            nlv.load(path).get_data()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < budget, f"allocated {peak} B before refusing"


def test_documented_caps():
    assert nifti.MAX_EXTENSION_BYTES == 256 * 2**20
    assert GZIP_MAX_RATIO == 1032
    assert nifti.MAX_ELEMENTS * 16 <= 2**63 - 1


def test_plain_extension_over_the_cap_is_refused_before_reading(tmp_path):
    buf = _nii_bytes(tmp_path, np.zeros((2, 2, 2), np.uint8), [nlv.Extension(6, b"hi")])
    off = nifti.MAX_EXTENSION_BYTES + 352 + 16
    struct.pack_into("<f", buf, VOX_OFFSET, float(off))
    path = tmp_path / "big-ext.nii"
    with open(path, "wb") as f:  # a sparse file: the data really are there
        f.write(buf[: 352 + 32])
        f.truncate(off + 8)
    _fails_small(str(path), nlv.HeaderError, "limit")


def test_gzip_extension_block_bounded_by_the_stream(tmp_path):
    """A 1 KB .nii.gz claiming 200 MiB of extensions is refused before any allocation."""
    buf = _nii_bytes(tmp_path, np.zeros((2, 2, 2), np.uint8), [nlv.Extension(6, b"hi")])
    struct.pack_into("<f", buf, VOX_OFFSET, float(200 * 2**20))
    path = tmp_path / "ext.nii.gz"
    path.write_bytes(gzip.compress(bytes(buf)))
    assert os.path.getsize(path) < 1024
    _fails_small(str(path), nlv.ImageFileError, "ext.nii.gz", budget=20 * 2**20)


def test_gzip_declared_data_over_ratio(tmp_path):
    buf = _nii_bytes(tmp_path, np.zeros((2, 2, 2), np.uint8))
    struct.pack_into("<4h", buf, DIM, 3, 1000, 1000, 1000)  # 1 GB from a ~100-byte stream
    path = tmp_path / "bomb.nii.gz"
    path.write_bytes(gzip.compress(bytes(buf)))
    _fails_small(str(path), nlv.TruncatedDataError, "1032", budget=20 * 2**20)


def test_gzip_vox_offset_far_past_the_stream(tmp_path):
    buf = _nii_bytes(tmp_path, np.zeros((2, 2, 2), np.uint8))
    struct.pack_into("<f", buf, VOX_OFFSET, 2.0**60)
    path = tmp_path / "far.nii.gz"
    path.write_bytes(gzip.compress(bytes(buf)))
    _fails_small(str(path), nlv.ImageFileError, "far.nii.gz", budget=20 * 2**20)


def test_genuinely_compressible_gzip_within_the_ratio_loads(tmp_path):
    arr = np.zeros((256, 256, 160), np.uint8)  # 10 MB of zeros: compresses ~1000:1
    path = str(tmp_path / "zeros.nii.gz")
    nlv.save(nlv.Image(arr), path, compresslevel=9)
    ratio = arr.nbytes / os.path.getsize(path)
    assert ratio > 500
    img = nlv.load(path)
    assert img.slicecopy[..., 80].sum() == 0


def test_plain_file_must_back_the_data(tmp_path):
    arr = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    buf = _nii_bytes(tmp_path, arr)
    path = tmp_path / "short.nii"
    path.write_bytes(bytes(buf[:-1]))
    _fails_small(str(path), nlv.TruncatedDataError, "has 399 bytes")
    path.write_bytes(bytes(buf))  # exactly enough
    np.testing.assert_array_equal(nlv.load(str(path)).get_data(), arr)


def test_zero_dim_with_huge_others_is_refused(tmp_path):
    """0 x 2^62 x 2^62 declares 0 bytes, but no array can have that shape."""
    from nibabel import Nifti2Image

    path = str(tmp_path / "n2.nii")
    Nifti2Image(np.zeros((1, 1, 1), np.float32), np.eye(4)).to_filename(path)
    buf = bytearray(open(path, "rb").read())
    struct.pack_into("<4q", buf, 16, 3, 0, 2**62, 2**62)
    open(path, "wb").write(bytes(buf))
    _fails_small(path, nlv.HeaderError, "too many elements")


def test_gzipped_pair_header_with_extensions_loads(tmp_path):
    """Extensions in a .hdr.gz are read, bounded by the stream, not refused outright."""
    base = str(tmp_path / "p.hdr.gz")
    nlv.save(nlv.Image(np.zeros((2, 2, 2), np.uint8)), base)
    img = nlv.load(base)
    img.header.extensions = [nlv.Extension(6, b"kept")]
    nlv.save(img, str(tmp_path / "q.hdr.gz"))
    back = nlv.load(str(tmp_path / "q.hdr.gz"))
    assert [e.content for e in back.header.extensions] == [b"kept"]
