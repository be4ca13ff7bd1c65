"""Malformed files read sensibly, with a MalformedFileWarning pointing at the caller."""

from __future__ import annotations

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
