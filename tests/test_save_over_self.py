"""Saving an image over its own file: the image then refers to the new file.

Oracle: nibabel reading the file that was written.
"""

from __future__ import annotations

import os
import pickle

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv


def _write(path, suffix):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    if suffix in (".mgh", ".mgz"):
        nib.save(nib.MGHImage(data, affine), path)
    elif suffix in (".hdr", ".hdr.gz"):
        nib.save(nib.Nifti1Pair(data, affine), path)
    else:
        nib.save(nib.Nifti1Image(data, affine), path)
    return data


SUFFIXES = [".nii", ".nii.gz", ".hdr", ".mgh"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_edited_array_saved_over_its_file_is_what_the_image_reads_after(tmp_path, suffix):
    path = str(tmp_path / f"a{suffix}")
    _write(path, suffix)
    img = nlv.load(path)
    arr = img.get_data()
    arr[1, 2, 3] = -7.5
    nlv.save(img, img.filename)
    assert img.dirty  # the array is still the caller's to change
    on_disk = np.asanyarray(nib.load(path).dataobj)
    assert on_disk[1, 2, 3] == -7.5
    img.uncache(force=True)
    # reads now come from the new file, not from the replaced version's open handle
    np.testing.assert_array_equal(img.slicecopy[...], on_disk)
    np.testing.assert_array_equal(img.affine, nib.load(path).affine)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_after_saving_over_itself_and_clearing_dirty_as_file_is_the_original(tmp_path, suffix):
    path = str(tmp_path / f"a{suffix}")
    _write(path, suffix)
    img = nlv.load(path)
    img.get_data()[0, 0, 0] = 42
    nlv.save(img, path)
    img.dirty = False  # "trust me": the file holds the array now
    out = nlv.as_file(img)
    assert not out.is_temporary and os.path.samefile(out, path)
    np.testing.assert_array_equal(np.asanyarray(nib.load(out).dataobj), img.get_data())


def test_pickle_after_saving_over_itself_reopens_the_new_file(tmp_path):
    path = str(tmp_path / "a.nii")
    _write(path, ".nii")
    img = nlv.load(path)
    img.header["descrip"] = b"edited"
    nlv.save(img, path)
    back = pickle.loads(pickle.dumps(img))  # no StaleFileError: it is the file now
    assert back.is_proxy
    np.testing.assert_array_equal(back.slicecopy[...], np.asanyarray(nib.load(path).dataobj))
    assert nib.load(path).header["descrip"].item() == b"edited"
    out = nlv.as_file(img)
    assert not out.is_temporary  # header edit saved: nothing differs from the file


def test_saving_elsewhere_keeps_the_image_on_its_file(tmp_path):
    path = str(tmp_path / "a.nii")
    other = str(tmp_path / "b.nii")
    _write(path, ".nii")
    img = nlv.load(path)
    img.get_data()[0, 0, 0] = 42
    nlv.save(img, other)
    assert img.filename == path
    img.uncache(force=True)
    assert img.slicecopy[0, 0, 0] == 0  # the original file is unchanged


def test_uncache_of_a_dirty_image_says_how_to_keep_changes(tmp_path):
    path = str(tmp_path / "a.nii")
    _write(path, ".nii")
    img = nlv.load(path)
    img.get_data()
    with pytest.raises(nlv.DirtyImageError, match=r"nlv\.save\(img, img\.filename\)"):
        img.uncache()
