"""NIfTI-2 stays NIfTI-2 on save (CIFTI-2 included), float64 fields exact; a user choice.

nibabel is the oracle: it must load what we wrote as the same image class, with
the same float64 header fields, affine, values and (for CIFTI-2) the same matrix.
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from conftest import write_image
from nibabel.nifti2 import Nifti2Header
from nibabel.testing import data_path

import nilazyview as nlv
from nilazyview.core.values import Scaling
from nilazyview.formats.nifti import nifti_kind

CIFTI = os.path.join(data_path, "row_major.dconn.nii")


@pytest.mark.parametrize("in_memory", [False, True])
def test_cifti2_round_trip_stays_cifti2(tmp_path, in_memory):
    ref = nib.load(CIFTI)
    assert isinstance(ref, nib.Cifti2Image)
    img = nlv.load(CIFTI)
    if in_memory:
        img.get_data()
    out = nlv.save(img, str(tmp_path / "out.dconn.nii"))
    back = nib.load(out)
    assert isinstance(back, nib.Cifti2Image)  # CIFTI-2 needs NIfTI-2
    np.testing.assert_array_equal(back.get_fdata(), ref.get_fdata())
    assert back.header.to_xml() == ref.header.to_xml()
    assert back.nifti_header.get_intent() == ref.nifti_header.get_intent()


def test_generated_cifti2_dscalar_round_trip(tmp_path):
    axes = (
        nib.cifti2.ScalarAxis(["a", "b"]),
        nib.cifti2.BrainModelAxis.from_mask(np.ones((2, 3, 2), bool), affine=np.eye(4)),
    )
    data = np.arange(24, dtype=np.float32).reshape(2, 12) / 7
    src = str(tmp_path / "src.dscalar.nii")
    nib.save(nib.Cifti2Image(data, axes), src)
    out = nlv.save(nlv.load(src), str(tmp_path / "out.dscalar.nii"))
    back = nib.load(out)
    assert isinstance(back, nib.Cifti2Image)
    np.testing.assert_array_equal(back.get_fdata(), data)
    assert back.header.get_axis(1) == axes[1]


def _nifti2_source(path):
    aff = np.array(
        [
            [1 / 3, 0.1, 0.0, -90.123456789012],
            [0.0, 2 / 3, 0.2, 1e-9],
            [0.0, 0.0, 0.7, 3.3],
            [0, 0, 0, 1],
        ]
    )
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    write_image(path, Nifti2Header, data, slope_inter=(0.1, 2.6e-9), affine=aff, single=True)
    ref = nib.load(path)
    assert (ref.dataobj.slope, ref.dataobj.inter) == (0.1, 2.6e-9)
    return ref


@pytest.mark.parametrize("name", ["out.nii", "out.nii.gz", "out.hdr"])
@pytest.mark.parametrize("in_memory", [False, True])
def test_nifti2_float64_fields_exact(tmp_path, name, in_memory):
    ref = _nifti2_source(str(tmp_path / "src.nii"))
    img = nlv.load(ref.get_filename())
    if in_memory:
        img.get_data()
    back = nib.load(nlv.save(img, str(tmp_path / name)))
    assert isinstance(back.header, nib.Nifti2Header)
    np.testing.assert_array_equal(back.affine, ref.affine)  # float64 srow, exactly
    for field in ("qoffset_x", "qoffset_y", "qoffset_z", "srow_x", "srow_y", "srow_z"):
        np.testing.assert_array_equal(back.header[field], ref.header[field])
    np.testing.assert_array_equal(back.get_fdata(), ref.get_fdata())  # values exact
    if not in_memory:  # the stored bytes and float64 scaling copied as they are
        assert (back.dataobj.slope, back.dataobj.inter) == (0.1, 2.6e-9)


def test_nifti_version_is_a_user_choice(tmp_path):
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    img = nlv.Image(arr, np.eye(4))
    assert isinstance(nib.load(nlv.save(img, str(tmp_path / "a.nii"))), nib.Nifti1Image)
    two = nib.load(nlv.save(img, str(tmp_path / "b.nii"), nifti_version=2))
    assert isinstance(two, nib.Nifti2Image)
    np.testing.assert_array_equal(two.get_fdata(), arr)
    src = _nifti2_source(str(tmp_path / "src.nii"))
    one = nib.load(nlv.save(nlv.load(src.get_filename()), str(tmp_path / "c.nii"), nifti_version=1))
    assert isinstance(one, nib.Nifti1Image)
    np.testing.assert_allclose(one.get_fdata(), src.get_fdata(), rtol=1e-6)
    with pytest.raises(ValueError, match="nifti_version"):
        nlv.save(img, str(tmp_path / "d.nii"), nifti_version=3)
    with pytest.raises(nlv.UnsupportedFormatError, match="32767"):
        nlv.save(nlv.Image(np.zeros((40000, 1, 1), np.uint8)), str(tmp_path / "e.nii"),
                 nifti_version=1)  # fmt: skip
    with pytest.raises(nlv.UnsupportedFormatError, match="MGH"):
        nlv.save(img, str(tmp_path / "f.mgz"), nifti_version=2)


def test_new_image_needs_nifti2_only_for_size_or_precision():
    assert nifti_kind(None, (2, 3, 4), Scaling()) == "nifti1"
    assert nifti_kind(None, (2, 3, 4), Scaling(0.5, -3.0)) == "nifti1"
    assert nifti_kind(None, (2, 3, 4), Scaling(0.1, 0.0)) == "nifti2"  # float64 slope
    assert nifti_kind(None, (40000, 2), Scaling()) == "nifti2"
