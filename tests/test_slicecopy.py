"""Image semantics (BIAP1/BIAP2): proxy and dirty states, slicecopy, uncache, header."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

import nibabel as nib
import numpy as np
import pytest
from conftest import write_image

import nilazyview as nlv


@pytest.fixture
def scaled_be(tmp_path):
    """A big-endian, scaled int16 NIfTI-1 file and nibabel's view of it."""
    rng = np.random.default_rng(1)
    data = rng.integers(-3000, 3000, (9, 8, 7, 3)).astype(np.int16)
    path = str(tmp_path / "be.nii")
    write_image(path, nib.Nifti1Header, data, endian=">", slope_inter=(0.25, 10.0), single=True)
    ref = nib.load(path)
    return path, np.asanyarray(ref.dataobj), np.asanyarray(ref.dataobj.get_unscaled())


def test_load_is_proxy_and_clean(scaled_be):
    path, full, _ = scaled_be
    img = nlv.load(path)
    assert img.is_proxy is True
    assert img.dirty is False
    assert img.shape == full.shape


def test_slicecopy_never_unproxies(scaled_be):
    path, full, _ = scaled_be
    img = nlv.load(path)
    for index in [(Ellipsis, 1), (slice(None), 2), (0,), (Ellipsis,), ()]:
        a = img.slicecopy[index]
        np.testing.assert_allclose(a, full[index], rtol=1e-6)
        assert img.is_proxy and not img.dirty


def test_get_data_loads_caches_and_dirties(scaled_be):
    path, full, _ = scaled_be
    img = nlv.load(path)
    arr = img.get_data()
    assert not img.is_proxy
    assert img.dirty
    assert img.get_data() is arr
    assert img.data is arr
    np.testing.assert_allclose(arr, full, rtol=1e-6)


def test_slicecopy_on_in_memory_image_is_a_copy(scaled_be):
    path, _, _ = scaled_be
    img = nlv.load(path)
    arr = img.get_data()
    for index in [(Ellipsis, 1), (slice(None), 2), (Ellipsis,), (1, 2, 3, 0)]:
        sl = img.slicecopy[index]
        assert isinstance(sl, np.ndarray)
        assert not np.shares_memory(sl, arr)
        np.testing.assert_array_equal(sl, arr[index])
    before = arr.copy()
    sl = img.slicecopy[..., 0]
    sl[...] = -1
    np.testing.assert_array_equal(arr, before)


def test_slicecopy_reflects_in_memory_changes(scaled_be):
    path, _, _ = scaled_be
    img = nlv.load(path)
    img.get_data()[..., 0] = 42
    assert np.all(img.slicecopy[..., 0] == 42)


def test_in_memory_image_from_array():
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    img = nlv.Image(data)
    assert not img.is_proxy
    sl = img.slicecopy[:, ::-1]
    np.testing.assert_array_equal(sl, data[:, ::-1])
    assert not np.shares_memory(sl, data)
    np.testing.assert_array_equal(img.affine, np.eye(4))


def test_uncache_refuses_when_dirty(scaled_be):
    path, full, _ = scaled_be
    img = nlv.load(path)
    img.get_data()[0, 0, 0, 0] = 1e6
    with pytest.raises(nlv.DirtyImageError):
        img.uncache()
    assert issubclass(nlv.DirtyImageError, Exception)
    assert not img.is_proxy and img.get_data()[0, 0, 0, 0] == 1e6
    img.uncache(force=True)
    assert img.is_proxy and not img.dirty
    np.testing.assert_allclose(img.slicecopy[0, 0, 0, 0], full[0, 0, 0, 0])


def test_uncache_after_clearing_dirty(scaled_be):
    path, _, _ = scaled_be
    img = nlv.load(path)
    img.get_data()
    img.dirty = False
    img.uncache()
    assert img.is_proxy and not img.dirty


def test_uncache_of_a_proxy_is_harmless(scaled_be):
    img = nlv.load(scaled_be[0])
    img.uncache()
    assert img.is_proxy


def test_returned_arrays_are_native(scaled_be):
    path, _, unscaled = scaled_be
    img = nlv.load(path)
    raw = img.slicecopy.raw[..., 1]
    assert raw.dtype.isnative and raw.dtype == np.int16
    np.testing.assert_array_equal(raw, unscaled[..., 1])
    assert img.slicecopy[..., 1].dtype.isnative
    assert img.get_data().dtype.isnative
    assert img.dtype.isnative


def test_raw_gives_stored_values(scaled_be):
    path, _, unscaled = scaled_be
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy.raw[1:4, ::-2], unscaled[1:4, ::-2])
    assert img.is_proxy


def test_header_is_an_assignable_mapping(scaled_be, tmp_path):
    path, _, _ = scaled_be
    img = nlv.load(path)
    hdr = img.header
    assert isinstance(hdr, Mapping) and isinstance(hdr, MutableMapping)
    assert "descrip" in hdr and "pixdim" in hdr
    ref = nib.load(path).header
    np.testing.assert_array_equal(hdr["pixdim"][1:5], ref["pixdim"][1:5])
    assert int(hdr["datatype"]) == int(ref["datatype"])
    hdr["descrip"] = b"x"
    assert hdr["descrip"] == b"x"
    with pytest.raises(KeyError):
        hdr["no_such_field"]
    out = str(tmp_path / "d.nii")
    nlv.save(img, out)
    assert nib.load(out).header["descrip"] == b"x"


def test_stale_file_is_detected(tmp_path):
    path = str(tmp_path / "s.nii")
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    img = nlv.load(path)
    nib.save(nib.Nifti1Image(data[..., :4] + 1, np.eye(4)), path)  # replaced under us
    with pytest.raises(nlv.StaleFileError):
        img.slicecopy[..., 0]


def test_pair_found_from_either_member_and_case(tmp_path):
    data = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    nib.save(nib.Nifti1Pair(data, np.eye(4)), str(tmp_path / "p.hdr"))
    for name in ("p.hdr", "p.img"):
        np.testing.assert_array_equal(nlv.load(os.path.join(tmp_path, name)).get_data(), data)


def test_zero_sized_image(tmp_path):
    path = str(tmp_path / "z.nii")
    data = np.zeros((3, 0, 4), np.float32)
    write_image(path, nib.Nifti1Header, data, single=True)
    img = nlv.load(path)
    assert img.shape == (3, 0, 4)
    assert img.get_data().shape == (3, 0, 4)
    assert img.slicecopy[1].shape == (0, 4)


@pytest.mark.parametrize(
    "index", [[0, 1], np.array([0, 1]), (np.array([True, False]),), (0, [1, 2]), 1.5]
)
def test_in_memory_slicecopy_refuses_what_the_proxy_refuses(scaled_be, index):
    path, _, _ = scaled_be
    img = nlv.load(path)
    with pytest.raises(IndexError) as proxied:
        img.slicecopy[index]
    img.get_data()
    with pytest.raises(IndexError) as in_memory:
        img.slicecopy[index]
    assert str(in_memory.value) == str(proxied.value)


def test_in_memory_slicecopy_is_native_byte_order():
    big = np.arange(24, dtype=">i2").reshape(2, 3, 4)
    rgb = np.zeros((2, 2), dtype=[("R", ">u2"), ("G", ">u2")])
    rgb["R"] = [[1, 2], [3, 4]]
    for arr in (big, rgb):
        got = nlv.Image(arr).slicecopy[0]
        assert got.dtype.isnative and all(got.dtype[f].isnative for f in (got.dtype.names or ()))
        np.testing.assert_array_equal(got, arr[0])
