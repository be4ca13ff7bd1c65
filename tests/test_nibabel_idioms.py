"""nibabel's image and header idioms on ``nlv.Image``, with nibabel as the oracle.

Every file is read through both libraries: values, zooms, shapes, dtypes and
scaling must agree. ``to_nibabel()`` keeps the stored type and scaling, so
``nib.save`` of it writes the source's stored values byte for byte.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

import nilazyview as nlv

nib = pytest.importorskip("nibabel")


def _scaled_int16(shape=(6, 5, 4, 3)):
    rng = np.random.default_rng(7)
    return rng.integers(-3000, 3000, shape, dtype=np.int16)


def _write(path, arr, slope=0.5, inter=10.0, pair=False, two=False, endian="<"):
    cls = {(False, False): nib.Nifti1Image, (True, False): nib.Nifti1Pair,
           (False, True): nib.Nifti2Image, (True, True): nib.Nifti2Pair}[(pair, two)]  # fmt: skip
    hdr = cls.header_class(endianness=endian)
    img = cls(arr, np.diag([2.0, 3.0, 4.0, 1.0]), hdr)
    img.header.set_zooms((2.0, 3.0, 4.0, 1.5)[: arr.ndim])
    img.header.set_xyzt_units("mm", "msec")
    img.header["descrip"] = b"idioms test"
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment"))
    img.set_data_dtype(arr.dtype)
    img.header.set_slope_inter(slope, inter)
    nib.save(img, str(path))
    return str(path)


CASES = {
    "nii": dict(name="a.nii"),
    "nii.gz": dict(name="a.nii.gz"),
    "pair": dict(name="a.hdr", pair=True),
    "nifti2": dict(name="a2.nii", two=True),
    "big-endian": dict(name="be.nii", endian=">"),
    "unscaled": dict(name="u.nii", slope=np.nan, inter=np.nan),
}


@pytest.fixture(params=list(CASES))
def both(request, tmp_path):
    """(nilazyview image, nibabel image, path) of the same file."""
    case = dict(CASES[request.param])
    path = _write(tmp_path / case.pop("name"), _scaled_int16(), **case)
    return nlv.load(path), nib.load(path), path


def _file_header(path):
    """nibabel's header as stored in the file (a loaded image's header drops the scaling)."""
    ref = nib.load(path)
    hdr_file = ref.file_map.get("header", ref.file_map["image"]).filename
    with nib.openers.ImageOpener(hdr_file) as f:
        return type(ref.header).from_fileobj(f)


def test_header_methods_match_nibabel(both):
    img, ref, path = both
    hdr = img.header
    assert hdr.get_zooms() == ref.header.get_zooms()
    assert all(type(z) is float for z in hdr.get_zooms())
    assert hdr.get_data_shape() == ref.header.get_data_shape() == img.shape
    assert hdr.get_data_dtype() == ref.header.get_data_dtype()
    assert hdr.get_data_dtype().byteorder == ref.header.get_data_dtype().byteorder
    assert hdr.get_xyzt_units() == ref.header.get_xyzt_units() == ("mm", "msec")
    assert hdr.get_slope_inter() == _file_header(path).get_slope_inter()
    copy = hdr.copy()
    assert copy.get_zooms() == hdr.get_zooms()  # a copy keeps the methods


def test_image_methods_and_dataobj_match_nibabel(both):
    img, ref, _ = both
    assert img.ndim == ref.ndim == 4
    assert img.get_data_dtype() == ref.get_data_dtype()
    assert img.get_filename() == ref.get_filename()
    obj, robj = img.dataobj, ref.dataobj
    assert (obj.shape, obj.ndim, obj.dtype) == (robj.shape, robj.ndim, robj.dtype)
    assert (obj.slope, obj.inter) == (robj.slope, robj.inter)
    for index in [(slice(1, 4), ..., 2), (0, 0, 0), (..., slice(None, None, -2)), (None, 2)]:
        np.testing.assert_array_equal(obj[index], robj[index])
    np.testing.assert_array_equal(np.asarray(obj), np.asarray(robj))
    np.testing.assert_array_equal(np.asarray(obj, np.float64), np.asarray(robj, np.float64))
    np.testing.assert_array_equal(obj.get_unscaled(), robj.get_unscaled())
    assert img.is_proxy and not img.dirty  # reading through dataobj never loads


def test_get_fdata_equals_nibabel_and_caches(both):
    img, ref, _ = both
    assert np.array_equal(img.get_fdata(caching="unchanged"), ref.get_fdata(), equal_nan=True)
    assert img.is_proxy and not img.dirty
    f32 = img.get_fdata(caching="unchanged", dtype=np.float32)
    assert f32.dtype == np.float32
    np.testing.assert_array_equal(f32, ref.get_fdata(dtype=np.float32, caching="unchanged"))
    data = img.get_fdata()
    assert data.dtype == np.float64 and img.dirty and not img.is_proxy
    np.testing.assert_array_equal(data, ref.get_fdata())
    assert img.get_fdata() is data and img.get_data() is data  # one cached array
    assert img.dtype == np.float64
    assert img.dataobj is data  # in memory, as nibabel's dataobj of an array image


def test_get_fdata_of_a_wrapped_nibabel_image_equals_nibabel(both):
    _, ref, _ = both
    wrapped = nlv.from_nibabel(ref)
    assert np.array_equal(wrapped.get_fdata(caching="unchanged"), ref.get_fdata(), equal_nan=True)
    assert wrapped.get_data_dtype() == ref.get_data_dtype() and wrapped.is_proxy
    again = nlv.from_nibabel(nlv.load(ref.get_filename()).to_nibabel())
    np.testing.assert_array_equal(
        again.slicecopy.raw[1, ..., 2], ref.dataobj.get_unscaled()[1, ..., 2]
    )


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, "i4", bool])
def test_get_fdata_refuses_non_float_types_as_nibabel(both, dtype):
    img, ref, _ = both
    with pytest.raises(ValueError, match="should be floating point type") as ours:
        img.get_fdata(dtype=dtype)
    with pytest.raises(ValueError) as theirs:
        ref.get_fdata(dtype=dtype)
    assert str(ours.value) == str(theirs.value)


def test_get_fdata_of_an_image_in_memory(tmp_path):
    path = _write(tmp_path / "m.nii", _scaled_int16())
    img = nlv.load(path)
    arr = img.get_data()
    assert arr.dtype == np.float32
    img.dirty = False
    f64 = img.get_fdata()
    assert f64.dtype == np.float64 and f64 is not arr and img.get_data() is arr
    np.testing.assert_array_equal(f64, arr.astype(np.float64))
    img.dirty = False
    assert img.get_fdata(dtype=np.float32) is arr and img.dirty  # the kept array itself
    mem = nlv.Image(np.arange(6, dtype=np.uint8).reshape(1, 2, 3))
    assert mem.get_data_dtype() == np.uint8 and mem.get_filename() is None
    np.testing.assert_array_equal(mem.get_fdata(), np.arange(6.0).reshape(1, 2, 3))
    with pytest.raises(ValueError, match="caching"):
        mem.get_fdata(caching="sometimes")


def test_asarray_of_an_image_is_a_clear_type_error(both):
    img, _, _ = both
    with pytest.raises(TypeError, match=r"get_data\(\).*slicecopy"):
        np.asarray(img)
    assert img.is_proxy


def test_mgh_header_methods_match_nibabel(tmp_path):
    arr = np.arange(4 * 5 * 6 * 2, dtype=np.int16).reshape(4, 5, 6, 2)
    ref_img = nib.MGHImage(arr, np.diag([1.5, 2.0, 2.5, 1.0]))
    path = str(tmp_path / "a.mgz")
    nib.save(ref_img, path)
    img, ref = nlv.load(path), nib.load(path)
    assert img.header.get_zooms() == tuple(float(z) for z in ref.header.get_zooms())
    assert img.header.get_data_shape() == ref.header.get_data_shape()
    assert img.header.get_data_dtype() == ref.header.get_data_dtype()
    assert img.header.get_slope_inter() == ref.header.get_slope_inter() == (None, None)
    assert img.get_data_dtype() == ref.get_data_dtype()
    np.testing.assert_array_equal(img.get_fdata(), ref.get_fdata())


# --- to_nibabel: lossless ------------------------------------------------------------


def test_nib_save_of_to_nibabel_keeps_int16_and_slope_byte_for_byte(tmp_path):
    src = _write(tmp_path / "src.nii.gz", _scaled_int16((40, 30, 20, 3)))
    img = nlv.load(src)
    nimg = img.to_nibabel()
    assert nimg.get_filename() == src == nib.load(src).get_filename()
    assert nimg.get_data_dtype() == np.int16
    out = str(tmp_path / "out.nii")
    nib.save(nimg, out)
    assert img.is_proxy and not img.dirty
    ref, got = nib.load(src), nib.load(out)
    assert got.get_data_dtype() == np.int16
    assert (got.dataobj.slope, got.dataobj.inter) == (ref.dataobj.slope, ref.dataobj.inter)
    raw_src, raw_out = ref.dataobj.get_unscaled(), got.dataobj.get_unscaled()
    assert raw_out.dtype == raw_src.dtype and raw_out.tobytes() == raw_src.tobytes()
    np.testing.assert_array_equal(got.get_fdata(), ref.get_fdata())
    assert os.path.getsize(out) < raw_src.nbytes + 1024  # int16, not float32
    hdr = got.header
    assert bytes(hdr["descrip"]).rstrip(b"\0") == b"idioms test"
    assert hdr.get_xyzt_units() == ("mm", "msec")
    assert hdr.get_zooms() == ref.header.get_zooms()
    assert [(e.get_code(), e.get_content()) for e in hdr.extensions] == [(6, b"a comment")]
    np.testing.assert_array_equal(got.affine, ref.affine)
    # the nibabel image still behaves as nibabel's own
    assert nimg.header.get_slope_inter() == (None, None)
    np.testing.assert_array_equal(nimg.get_fdata(), ref.get_fdata())


def test_to_nibabel_of_a_pair_and_pickles(tmp_path):
    src = _write(tmp_path / "p.hdr", _scaled_int16(), pair=True)
    nimg = nlv.load(src).to_nibabel()
    assert isinstance(nimg, nib.Nifti1Pair)
    assert nimg.get_filename() == nib.load(src).get_filename()
    back = pickle.loads(pickle.dumps(nimg))
    assert isinstance(back, nib.Nifti1Pair)
    np.testing.assert_array_equal(back.get_fdata(), nib.load(src).get_fdata())
    out = str(tmp_path / "again.img")
    nib.save(back, out)
    assert nib.load(out).dataobj.get_unscaled().tobytes() == (
        nib.load(src).dataobj.get_unscaled().tobytes()
    )


def test_to_nibabel_asked_for_another_type_saves_values(tmp_path):
    src = _write(tmp_path / "s.nii", _scaled_int16())
    nimg = nlv.load(src).to_nibabel()
    assert nimg.get_data_dtype() == np.int16  # the stored type, as nib.load(src) says
    nimg.set_data_dtype(np.float32)
    out = str(tmp_path / "f.nii")
    nib.save(nimg, out)
    got = nib.load(out)
    assert got.get_data_dtype() == np.float32
    np.testing.assert_array_equal(got.get_fdata(), nib.load(src).get_fdata())


def test_save_accepts_nibabel_images(tmp_path):
    src = _write(tmp_path / "n.nii.gz", _scaled_int16())
    ref = nib.load(src)
    out = nlv.save(ref, tmp_path / "from_nib.nii")
    np.testing.assert_array_equal(nib.load(out).get_fdata(), ref.get_fdata())
    np.testing.assert_array_equal(nib.load(out).affine, ref.affine)
    mem = nib.Nifti1Image(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), np.eye(4))
    out = nlv.save(mem, tmp_path / "mem.nii.gz")
    back = nib.load(out)
    assert back.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(back.get_fdata(), np.arange(24.0).reshape(2, 3, 4))
    with pytest.raises(TypeError, match="nilazyview or nibabel image"):
        nlv.save(np.zeros(3), tmp_path / "x.nii")
