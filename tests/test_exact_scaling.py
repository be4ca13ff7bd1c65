"""Scaled values rounded once: float32 results equal ``np.float32`` of nibabel's float64.

nibabel computes ``raw * slope + inter`` in float64 (``get_fdata``); nilazyview
returns float32 for 8/16-bit data with float32 slope and intercept, and each value
must be exactly that float64 value rounded to float32, on every read path (one
piece, chunked, memory-map gather, the pattern fast path, gzip).
"""

from __future__ import annotations

import dataclasses
import os

import nibabel as nib
import numpy as np
import pytest
from conftest import make_data, write_image
from nibabel.testing import data_path

import nilazyview as nlv
from nilazyview.core.values import BLOCK_ITEMS, Scaling

INDICES = [(..., 1), (slice(None, None, -1), 2), (slice(1, None, 3), ..., 0), (5, ..., None)]
F32_SCALING = (float(np.float32(0.0754069685935974)), 3100.76171875)  # float32 values
SCALINGS = [(0.07540697, 3100.7617), (1 / 3, -0.1), (-2.7182817, 1e-3)]


def _oracle(path):
    """nibabel's float64 (complex128) values, rounded once to float32 (complex64)."""
    full = np.asanyarray(nib.load(path).dataobj)
    assert full.dtype in (np.float64, np.complex128)
    return full.astype(np.complex64 if full.dtype.kind == "c" else np.float32)


def _check(img, want):
    got = img.slicecopy[...]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    for idx in INDICES:
        np.testing.assert_array_equal(img.slicecopy[idx], want[idx])
    np.testing.assert_array_equal(img.get_data(), want)


def test_functional_nii_is_rounded_once():
    """The issue's file: 1,962 of 21,420 voxels were 1 ulp off."""
    path = os.path.join(data_path, "functional.nii")
    img = nlv.load(path)
    _check(img, _oracle(path))


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "uint16", "float32", "complex64"])
@pytest.mark.parametrize("slope_inter", SCALINGS)
@pytest.mark.parametrize("name", ["s.nii", "s.nii.gz", "p.hdr"])
def test_generated_scaled_files_are_rounded_once(tmp_path, dtype, slope_inter, name):
    slope, inter = (float(np.float32(v)) for v in slope_inter)
    if dtype == "float32":
        slope = float(np.float32(slope / 4))  # |slope| <= 1 keeps float32 data float32
    data = make_data(np.dtype(dtype), (20, 17, 12, 2), seed=3)
    if dtype.startswith(("float", "complex")):
        data[~np.isfinite(data)] = 1.5  # keep to finite values
    path = str(tmp_path / name)
    single = ".nii" in name
    header = nib.Nifti1Header if single else nib.Nifti1Pair.header_class
    write_image(path, header, data, slope_inter=(slope, inter), single=single)
    want = _oracle(path)
    img = nlv.load(path)
    assert img.dtype == want.dtype
    _check(img, want)


@pytest.mark.parametrize("chunk_bytes", [4096, 2**30])
def test_chunked_and_blocked_reads_are_rounded_once(tmp_path, chunk_bytes):
    """A read in many chunks, and one piece larger than a float64 scaling block."""
    shape = (70, 64, 64)
    assert np.prod(shape) > BLOCK_ITEMS
    data = make_data(np.dtype("int16"), shape, seed=5)
    path = str(tmp_path / "big.nii")
    write_image(path, nib.Nifti1Header, data, slope_inter=F32_SCALING,
                single=True)  # fmt: skip
    img = nlv.load(path)
    source = img.proxy.source
    source.heuristic = dataclasses.replace(source.heuristic, chunk_bytes=chunk_bytes)
    want = _oracle(path)
    np.testing.assert_array_equal(img.slicecopy[::-1, 1:, ::2], want[::-1, 1:, ::2])
    np.testing.assert_array_equal(img.slicecopy[:, 4, :], want[:, 4, :])
    np.testing.assert_array_equal(img.get_data(), want)


@pytest.mark.parametrize("shape", [(600, 600, 1), (1, 600, 600), (1, 1, 300000), (300000,)])
def test_thin_volumes_larger_than_a_block(tmp_path, shape):
    """Block splitting skips axes of length 1 (a 2D image stored as 3D, say)."""
    data = make_data(np.dtype("int16"), shape, seed=7)
    path = str(tmp_path / "thin.nii")
    header = nib.Nifti2Header if max(shape) > 32767 else nib.Nifti1Header
    write_image(path, header, data, slope_inter=F32_SCALING,
                single=True)  # fmt: skip
    np.testing.assert_array_equal(nlv.load(path).get_data(), _oracle(path))


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("shape", [(700, 400, 1), (1, 400, 700), (3, 1, 200000)])
def test_apply_into_either_order_and_views(order, shape):
    src = make_data(np.dtype("uint16"), shape, seed=9).copy(order=order)
    sc = Scaling(float(np.float32(1 / 3)), float(np.float32(-7.1)))
    want = (src.astype(np.float64) * sc.slope + sc.inter).astype(np.float32)
    out = np.empty(shape, np.float32, order=order)
    sc.apply(src, out)
    np.testing.assert_array_equal(out, want)
    view = np.zeros((shape[0] + 2, *shape[1:]), np.float32, order=order)[1:-1][::-1]
    sc.apply(src[::-1], view)  # non-contiguous both sides
    np.testing.assert_array_equal(view, want[::-1])
