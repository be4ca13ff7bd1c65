"""Saving: round trips read back with nibabel, saving over the source, atomicity."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from conftest import AFFINE, RGB24, make_data, write_image

import nilazyview as nlv
from nilazyview.array.bytes import ArrayProxy
from nilazyview.formats import writer as save_mod

EXTS = [".nii", ".nii.gz", ".hdr", ".img", ".hdr.gz", ".img.gz"]


def _files(folder) -> set[str]:
    return set(os.listdir(folder))


def _nib_full(path):
    img = nib.load(path)
    return img, np.asanyarray(img.dataobj)


@pytest.mark.parametrize("ext", EXTS)
@pytest.mark.parametrize("dtype", ["uint8", ">i2", "float32", "<u8", "complex128", "rgb24"])
def test_round_trip_in_memory(tmp_path, ext, dtype):
    dt = RGB24 if dtype == "rgb24" else np.dtype(dtype)
    data = make_data(dt, (4, 5, 3, 2), seed=4)
    img = nlv.Image(data, AFFINE)
    img.header = None
    written = nlv.save(img, str(tmp_path / ("out" + ext)))
    ref, full = _nib_full(written)
    assert full.shape == data.shape
    assert np.array_equal(full, data, equal_nan=dt.kind in "fc")
    np.testing.assert_allclose(ref.affine, AFFINE, rtol=1e-6, atol=1e-5)
    back = nlv.load(written)
    assert np.array_equal(back.get_data(), data, equal_nan=dt.kind in "fc")


@pytest.mark.parametrize("ext", EXTS)
def test_round_trip_proxy_scaled_big_endian(tmp_path, ext):
    src = str(tmp_path / "src.nii.gz")
    data = make_data(np.dtype("int16"), (6, 5, 4), seed=5)
    write_image(src, nib.Nifti1Header, data, endian=">", slope_inter=(0.5, -3.0), single=True)
    _, want = _nib_full(src)
    img = nlv.load(src)
    img.header["descrip"] = b"saved by nilazyview"
    written = nlv.save(img, str(tmp_path / ("out" + ext)))
    assert img.is_proxy
    ref, got = _nib_full(written)
    np.testing.assert_array_equal(got, want)  # stored values and scaling copied exactly
    np.testing.assert_allclose(ref.affine, nib.load(src).affine, rtol=1e-6, atol=1e-5)
    assert ref.header["descrip"] == b"saved by nilazyview"


@pytest.mark.parametrize("src_name", ["a.hdr", "a.img.gz", "b.nii"])
def test_round_trip_from_analyze_and_nifti2(tmp_path, src_name):
    data = make_data(np.dtype("float32"), (5, 4, 3), seed=6)
    hclass = nib.Nifti2Header if src_name.endswith(".nii") else nib.AnalyzeHeader
    src = str(tmp_path / src_name)
    write_image(src, hclass, data, single=src_name.endswith(".nii"))
    ref_src = nib.load(src)
    out = str(tmp_path / "out.nii")
    nlv.save(nlv.load(src), out)
    ref, full = _nib_full(out)
    assert np.array_equal(full, data, equal_nan=True)
    np.testing.assert_allclose(ref.affine, ref_src.affine, rtol=1e-6, atol=1e-5)


def test_long_dimension_writes_nifti2(tmp_path):
    data = np.arange(40000, dtype=np.uint8).reshape(40000, 1, 1)
    out = str(tmp_path / "long.nii")
    nlv.save(nlv.Image(data), out)
    ref, full = _nib_full(out)
    assert isinstance(ref, nib.Nifti2Image)
    np.testing.assert_array_equal(full, data)


@pytest.mark.parametrize("name", ["self.nii", "self.nii.gz", "self.hdr", "self.img.gz"])
@pytest.mark.parametrize("loaded", [False, True], ids=["proxy", "get_data"])
def test_save_over_own_file(tmp_path, name, loaded):
    """nibabel issue 492: saving over the mapped source must not lose data."""
    path = str(tmp_path / name)
    data = make_data(np.dtype("<i2"), (7, 6, 5, 2), seed=7)
    single = ".nii" in name
    hclass = nib.Nifti1Header if single else nib.nifti1.Nifti1PairHeader
    write_image(path, hclass, data, slope_inter=(2.0, 1.0), single=single)
    _, want = _nib_full(path)
    img = nlv.load(path)
    img.slicecopy[..., 0]  # open (and maybe map) the file first
    if loaded:
        arr = img.get_data()
        arr[0, 0, 0, 0] = 12345.0
        want = want.copy()
        want[0, 0, 0, 0] = 12345.0
    nlv.save(img, path)
    _, got = _nib_full(path)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    # the image object afterwards: correct data or a clear StaleFileError, never garbage
    try:
        again = img.slicecopy[...]
    except nlv.StaleFileError:
        return
    np.testing.assert_allclose(again, want, rtol=1e-6)


@pytest.mark.parametrize("name", ["f.nii", "f.nii.gz", "f.hdr"])
@pytest.mark.parametrize("loaded", [False, True], ids=["proxy", "get_data"])
def test_failed_save_leaves_old_file_intact(tmp_path, monkeypatch, name, loaded):
    path = str(tmp_path / name)
    data = make_data(np.dtype("int16"), (30, 20, 10), seed=8)
    hclass = nib.Nifti1Header if ".nii" in name else nib.nifti1.Nifti1PairHeader
    write_image(path, hclass, data, single=".nii" in name)
    before = {f: (tmp_path / f).read_bytes() for f in _files(tmp_path)}
    img = nlv.load(path)
    if loaded:
        img.get_data()[...] = 7

    def boom(out, *args, **kwargs):
        out.write(b"\x00" * 1000)  # part of the data made it out
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(save_mod, "_write_array", boom)
    monkeypatch.setattr(save_mod, "_copy_stored", boom)
    with pytest.raises(OSError, match="simulated"):
        nlv.save(img, path)
    after = {f: (tmp_path / f).read_bytes() for f in _files(tmp_path)}
    assert after == before  # byte-identical, no temporary file left behind


def test_failed_save_to_new_name_leaves_nothing(tmp_path, monkeypatch):
    img = nlv.Image(np.zeros((4, 4, 4), np.float32))

    def boom(out, arr):
        raise RuntimeError("killed")

    monkeypatch.setattr(save_mod, "_write_array", boom)
    with pytest.raises(RuntimeError):
        nlv.save(img, str(tmp_path / "new.nii.gz"))
    assert _files(tmp_path) == set()


def test_saving_a_proxy_streams(tmp_path, monkeypatch):
    """A proxied image is saved without get_data and without a whole-array read."""
    src = str(tmp_path / "big.nii")
    data = make_data(np.dtype("int16"), (64, 64, 40), seed=9)
    write_image(src, nib.Nifti1Header, data, slope_inter=(3.0, 0.0), single=True)
    img = nlv.load(src)

    def no(*a, **k):
        raise AssertionError("save loaded the whole array")

    monkeypatch.setattr(nlv.Image, "get_data", no)
    real_read = ArrayProxy.read

    def bounded_read(self, index=..., raw=False):
        assert index is not Ellipsis, "save read the whole array at once"
        return real_read(self, index, raw)

    monkeypatch.setattr(ArrayProxy, "read", bounded_read)
    monkeypatch.setattr(save_mod, "CHUNK_BYTES", 4096)  # force many chunks
    out = str(tmp_path / "copy.nii.gz")
    nlv.save(img, out)
    assert img.is_proxy
    monkeypatch.undo()
    np.testing.assert_array_equal(_nib_full(out)[1], _nib_full(src)[1])


def test_saved_file_mode_and_no_temp_files(tmp_path):
    path = str(tmp_path / "m.nii")
    nlv.save(nlv.Image(np.ones((2, 2, 2), np.uint8)), path)
    os.chmod(path, 0o640)
    nlv.save(nlv.Image(np.zeros((2, 2, 2), np.uint8)), path)
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert _files(tmp_path) == {"m.nii"}


def test_bad_output_extension(tmp_path):
    with pytest.raises(nlv.ImageFileError):
        nlv.save(nlv.Image(np.zeros((2, 2, 2))), str(tmp_path / "x.png"))


@pytest.mark.parametrize("name", ["p.hdr", "p.hdr.gz"])
def test_pair_save_failing_at_the_header_keeps_the_old_pair(tmp_path, monkeypatch, name):
    """Image and header are replaced together: a failure writing either keeps both."""
    path = str(tmp_path / name)
    data = make_data(np.dtype("int16"), (6, 5, 4), seed=10)
    write_image(path, nib.nifti1.Nifti1PairHeader, data, single=False)
    before = {f: (tmp_path / f).read_bytes() for f in _files(tmp_path)}
    img = nlv.Image(np.ones((3, 3, 3), np.float64))  # another dtype and shape
    real = save_mod._maybe_gzip
    calls = []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("header write failed (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(save_mod, "_maybe_gzip", second_fails)
    with pytest.raises(OSError, match="simulated"):
        nlv.save(img, path)
    assert {f: (tmp_path / f).read_bytes() for f in _files(tmp_path)} == before
    np.testing.assert_array_equal(_nib_full(path)[1], data)
