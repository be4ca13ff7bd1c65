"""nibabel adapter: PAR/REC phantoms through from_nibabel, and to_nibabel round trips."""

from __future__ import annotations

import os
import pickle

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv
from nilazyview.adapters import NilazyviewDataobj, as_image

DATA = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
PARREC = ("phantom_EPI_asc_CLEAR_2_1.PAR", "phantom_varscale.PAR")


def _indexes(shape):
    out = [(...,)]
    for ax, n in enumerate(shape):
        for item in (n // 2, slice(None, None, -2)):
            idx = [slice(None)] * len(shape)
            idx[ax] = item
            out.append(tuple(idx))
    out.append((None, 0, ..., slice(1, None, 2)))
    return out


@pytest.mark.parametrize("name", PARREC)
def test_parrec_slicing_equals_nibabel(name):
    ref = nib.load(os.path.join(DATA, name))
    full = np.asanyarray(ref.dataobj)
    img = nlv.from_nibabel(ref)
    assert img.is_proxy and not img.dirty
    assert img.shape == full.shape
    assert img.dtype == full.dtype
    np.testing.assert_array_equal(img.affine, ref.affine)
    for idx in _indexes(img.shape):
        np.testing.assert_array_equal(img.slicecopy[idx], full[idx])
    assert img.is_proxy
    np.testing.assert_array_equal(img.get_data(), full)
    assert not img.is_proxy


def test_parrec_as_file_saves_nifti():
    ref = nib.load(os.path.join(DATA, PARREC[0]))
    img = nlv.from_nibabel(ref)
    original = nlv.as_file(img)  # unchanged file source: handed off as it is
    assert not original.is_temporary and original == ref.get_filename()
    with nlv.as_file(img, ext=".nii") as path:  # a tool that needs NIfTI asks for it
        assert path.is_temporary and path.endswith(".nii")
        back = nib.load(path)
        np.testing.assert_array_equal(back.get_fdata(), np.asanyarray(ref.dataobj))
        np.testing.assert_allclose(back.affine, ref.affine, atol=1e-5)
    assert not os.path.exists(path)


def test_pickle_and_raw_of_nibabel_proxy():
    ref = nib.load(os.path.join(DATA, PARREC[1]))
    img = nlv.from_nibabel(ref)
    clone = pickle.loads(pickle.dumps(img))
    np.testing.assert_array_equal(clone.slicecopy[..., 1], np.asanyarray(ref.dataobj)[..., 1])
    raw = img.slicecopy.raw[:, :, 0]
    np.testing.assert_array_equal(raw, ref.dataobj.get_unscaled()[:, :, 0])
    with pytest.raises(TypeError, match="no byte plan"):
        img.slicecopy.plan[0]


def test_to_nibabel_round_trip(tmp_path):
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    aff = np.diag([2.0, 3.0, 4.0, 1.0])
    aff[:3, 3] = [-4, 5, 6]
    hdr = nib.Nifti1Header()
    hdr.set_slope_inter(2.0, -1.0)
    src = str(tmp_path / "src.nii.gz")
    nib.save(nib.Nifti1Image(arr, aff, hdr), src)
    expected = nib.load(src).get_fdata()

    img = nlv.load(src)
    nimg = img.to_nibabel()
    assert isinstance(nimg.dataobj, NilazyviewDataobj) and nib.is_proxy(nimg.dataobj)
    np.testing.assert_array_equal(nimg.affine, img.affine)
    np.testing.assert_array_equal(np.asarray(nimg.dataobj[:, 2]), expected[:, 2])
    assert img.is_proxy  # slicing through nibabel read only the slab
    np.testing.assert_array_equal(nimg.get_fdata(), expected)
    again = nlv.from_nibabel(nimg)
    np.testing.assert_array_equal(again.slicecopy[1:3, ::-1], expected[1:3, ::-1])

    out = str(tmp_path / "via_nibabel.nii")
    nib.save(nimg, out)
    np.testing.assert_allclose(nlv.load(out).get_data(), expected)
    np.testing.assert_array_equal(nib.load(out).affine, aff)

    mem = nlv.Image(np.ones((2, 3, 4), np.float32), aff).to_nibabel()
    assert isinstance(mem.dataobj, np.ndarray)
    np.testing.assert_array_equal(mem.affine, aff)


def test_from_nibabel_of_in_memory_nifti_and_as_image():
    arr = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    nimg = nib.Nifti1Image(arr, np.eye(4))
    img = nlv.from_nibabel(nimg)
    assert img.header.kind == "nifti1"
    np.testing.assert_array_equal(img.slicecopy[:, :, 2], arr[:, :, 2])
    assert as_image(nimg).shape == arr.shape
    assert as_image(img) is img
    assert as_image(arr).shape == arr.shape
    with pytest.raises(TypeError):
        nlv.from_nibabel(arr)
