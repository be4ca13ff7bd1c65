"""Malformed files read sensibly, with a MalformedFileWarning pointing at the caller."""

from __future__ import annotations

import contextlib
import os
import warnings

import nibabel as nib
import numpy as np
import pytest
from conftest import make_data, write_image
from nibabel.nifti2 import Nifti2Header

import nilazyview as nlv


@pytest.mark.parametrize(("header", "field_at"), [(nib.Nifti1Header, 108), (Nifti2Header, 168)])
def test_single_file_with_vox_offset_zero_reads_after_the_header(tmp_path, header, field_at):
    data = make_data(np.dtype("int16"), (5, 4, 3), seed=1)
    path = str(tmp_path / "zero.nii")
    write_image(path, header, data, single=True)
    want = np.asanyarray(nib.load(path).dataobj)  # the well-formed file, read by nibabel
    with open(path, "r+b") as f:  # then vox_offset = 0, as some writers leave it
        f.seek(field_at)
        f.write(b"\x00" * (4 if header is nib.Nifti1Header else 8))
    assert nib.load(path).header.get_data_offset() == 0
    with pytest.warns(nlv.MalformedFileWarning, match="vox_offset") as caught:
        img = nlv.load(path)
    assert caught[0].filename == __file__  # the user's line, not nilazyview's
    assert issubclass(nlv.MalformedFileWarning, nlv.NilazyviewWarning)
    np.testing.assert_array_equal(img.get_data(), want)


def test_well_formed_file_gives_no_warning(tmp_path):
    path = str(tmp_path / "ok.nii")
    write_image(path, nib.Nifti1Header, np.zeros((2, 2, 2), np.uint8), single=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nlv.load(path)
    assert os.path.getsize(path) == 352 + 8


def _write_method1(path, header, pixdim):
    hdr = header()
    hdr.set_data_shape((5, 6, 7))
    hdr.set_data_dtype(np.uint8)
    hdr["pixdim"][1:4] = pixdim
    hdr["qform_code"] = hdr["sform_code"] = 0
    single = path.endswith(".nii")
    with open(path, "wb") as f:  # header fields as given (nibabel's writer would fix them)
        hdr.write_to(f)
        if single:
            f.write(b"\x00" * (int(hdr.single_vox_offset) - f.tell()))
        data = f if single else open(path[:-4] + ".img", "wb")
        with contextlib.nullcontext() if single else data:
            data.write(np.arange(210, dtype=np.uint8).tobytes())


@pytest.mark.parametrize("pixdim", [(-2, 3, 4), (2, -3, -4), (-1.5, -2.5, 3.5), (2, 3, 4)])
@pytest.mark.parametrize(
    ("header", "name"),
    [(nib.Nifti1Header, "m.nii"), (nib.Nifti1Pair.header_class, "m.hdr"), (Nifti2Header, "m.nii")],
)
def test_method1_affine_with_negative_pixdim_is_nibabels(tmp_path, header, name, pixdim):
    """qform_code = sform_code = 0: nibabel's affine (|pixdim|, x flipped, centred)."""
    path = str(tmp_path / name)
    _write_method1(path, header, pixdim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel logs that it fixes the signs
        ref = nib.load(path)
    img = nlv.load(path)
    np.testing.assert_array_equal(img.affine, ref.affine)
    np.testing.assert_array_equal(img.slicecopy[...], np.asanyarray(ref.dataobj))
