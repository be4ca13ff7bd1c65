"""Issue 3: SPM Analyze pairs whose affine lives in a ``.mat`` sidecar.

nibabel's ``Spm2AnalyzeImage`` / ``Spm99AnalyzeImage`` are the oracles.
"""

from __future__ import annotations

import os
import pickle
import shutil
import time
import warnings

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv
from nilazyview.formats import registry

scipy_io = pytest.importorskip("scipy.io")

SHAPE = (5, 6, 4)


def _rotated():
    theta = np.deg2rad(20)
    rot = np.array(
        [
            [np.cos(theta), -np.sin(theta), 0, 0],
            [np.sin(theta), np.cos(theta), 0, 0],
            [0, 0, 1, 0],
            [0, 0, 0, 1.0],
        ]
    )
    aff = rot @ np.diag([-2.0, 2.5, 3.0, 1.0])
    aff[:3, 3] = [30.0, -20.0, 12.5]
    return aff


def _array():
    return np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)


pytestmark = pytest.mark.usefixtures("private_tmpdir")  # conftest


@pytest.fixture
def spm(tmp_path):
    """An SPM2 Analyze pair with a rotated affine (only the .mat can hold it)."""
    path = str(tmp_path / "spm.img")
    nib.save(nib.Spm2AnalyzeImage(_array(), _rotated()), path)
    hdr = path[:-4] + ".hdr"
    assert os.path.exists(path[:-4] + ".mat")
    return hdr


def _copy_pair(hdr, dest_stem):
    for ext in (".hdr", ".img"):
        shutil.copy(hdr[:-4] + ext, dest_stem + ext)
    return dest_stem + ".hdr"


def _header_only_affine(hdr_path):
    """nibabel's affine from the Analyze header alone (the .mat ignored)."""
    with open(hdr_path, "rb") as f:
        return nib.spm2analyze.Spm2AnalyzeHeader.from_fileobj(f).get_best_affine()


# --- loading -------------------------------------------------------------------------


@pytest.mark.parametrize("member", [".hdr", ".img"])
def test_mat_affine_matches_nibabel(spm, member):
    path = spm[:-4] + member
    img = nlv.load(path)
    oracle = nib.Spm2AnalyzeImage.load(path)
    np.testing.assert_allclose(img.affine, oracle.affine, atol=1e-10)
    np.testing.assert_allclose(img.affine, _rotated(), atol=1e-10)
    np.testing.assert_array_equal(img.get_data(), oracle.get_fdata())
    assert "mat" in img.files and "mat" in img.snapshot.identity


def test_spm99_M_only(tmp_path, spm):
    hdr = _copy_pair(spm, str(tmp_path / "m99"))
    M = np.diag([2.0, 2.0, 3.0, 1.0])
    M[:3, 3] = [-5.0, 6.0, -7.0]
    scipy_io.savemat(str(tmp_path / "m99.mat"), {"M": M}, format="4")
    img = nlv.load(hdr)
    oracle = nib.Spm99AnalyzeImage.load(hdr)
    np.testing.assert_allclose(img.affine, oracle.affine)


def test_mat_with_several_affines_uses_first(tmp_path, spm):
    hdr = _copy_pair(spm, str(tmp_path / "multi"))
    mats = np.stack([_rotated(), np.eye(4)], axis=2)
    scipy_io.savemat(str(tmp_path / "multi.mat"), {"mat": mats})
    img = nlv.load(hdr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle = nib.Spm2AnalyzeImage.load(hdr)
    np.testing.assert_allclose(img.affine, oracle.affine)


def test_mat_lacking_mat_and_M_falls_back_with_warning(tmp_path, spm):
    hdr = _copy_pair(spm, str(tmp_path / "nomat"))
    scipy_io.savemat(str(tmp_path / "nomat.mat"), {"other": np.eye(4)}, format="4")
    with pytest.warns(UserWarning, match=r"nomat\.mat"):
        img = nlv.load(hdr)
    np.testing.assert_allclose(img.affine, _header_only_affine(hdr))
    assert not np.allclose(img.affine, _rotated())


@pytest.mark.parametrize("bad", [np.eye(3), np.ones((4, 3)), np.full((4, 4), np.nan)])
def test_mat_not_finite_4x4_falls_back_with_warning(tmp_path, spm, bad):
    hdr = _copy_pair(spm, str(tmp_path / "bad"))
    scipy_io.savemat(str(tmp_path / "bad.mat"), {"mat": bad}, format="4")
    with pytest.warns(UserWarning, match="4x4"):
        img = nlv.load(hdr)
    np.testing.assert_allclose(img.affine, _header_only_affine(hdr))


def test_unreadable_mat_falls_back_with_warning(tmp_path, spm):
    hdr = _copy_pair(spm, str(tmp_path / "unread"))
    os.mkdir(str(tmp_path / "unread.mat"))  # exists but cannot be read (even as root)
    with pytest.warns(UserWarning, match=r"unread\.mat"):
        img = nlv.load(hdr)
    np.testing.assert_allclose(img.affine, _header_only_affine(hdr))


@pytest.mark.parametrize("garbage", [b"not a mat file at all " * 20, b"\xff" * 1000, b""])
def test_corrupt_mat_raises(tmp_path, spm, garbage):
    hdr = _copy_pair(spm, str(tmp_path / "corrupt"))
    with open(str(tmp_path / "corrupt.mat"), "wb") as f:
        f.write(garbage)
    with pytest.raises(nlv.ImageFileError, match=r"corrupt\.mat"):
        nlv.load(hdr)


def test_truncated_mat_raises(tmp_path, spm):
    hdr = _copy_pair(spm, str(tmp_path / "trunc"))
    with open(spm[:-4] + ".mat", "rb") as f:
        raw = f.read()
    with open(str(tmp_path / "trunc.mat"), "wb") as f:
        f.write(raw[: len(raw) // 2])
    with pytest.raises(nlv.ImageFileError, match=r"trunc\.mat"):
        nlv.load(hdr)


def test_no_mat_uses_header_affine(tmp_path, spm):
    hdr = _copy_pair(spm, str(tmp_path / "plain"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = nlv.load(hdr)
    np.testing.assert_allclose(img.affine, nib.Spm2AnalyzeImage.load(hdr).affine)
    assert "mat" not in img.files


# --- hand-off ------------------------------------------------------------------------


def test_unmodified_spm_hands_off_its_own_files(spm):
    img = nlv.load(spm)
    out = nlv.as_file(img)
    assert out == spm and not out.is_temporary
    img.slicecopy[..., 0]
    assert nlv.as_file(img) == spm


def test_modified_affine_saved_to_pair_writes_mat(tmp_path, spm):
    img = nlv.load(spm)
    img.affine[:3, 3] += [5.0, -4.0, 1.5]
    new = img.affine.copy()
    out = nlv.save(img, str(tmp_path / "saved.hdr"))
    assert os.path.exists(str(tmp_path / "saved.mat"))
    np.testing.assert_allclose(nib.Spm2AnalyzeImage.load(out).affine, new, atol=1e-6)
    np.testing.assert_allclose(nib.load(out).affine, new, atol=1e-5)
    np.testing.assert_allclose(nlv.load(out).affine, new, atol=1e-10)
    np.testing.assert_array_equal(nib.load(out).get_fdata(), _array())
    # the .mat holds SPM's 1-based mat and the flipped M, as nibabel writes them
    mats = scipy_io.loadmat(str(tmp_path / "saved.mat"))
    to_111 = np.eye(4)
    to_111[:3, 3] = 1
    np.testing.assert_allclose(mats["mat"] @ to_111, new, atol=1e-10)
    np.testing.assert_allclose(np.diag([-1, 1, 1, 1]) @ mats["M"], mats["mat"])


def test_modified_affine_resaved_in_place(spm):
    img = nlv.load(spm)
    img.affine[0, 3] -= 10
    new = img.affine.copy()
    nlv.save(img, spm)
    np.testing.assert_allclose(nib.Spm2AnalyzeImage.load(spm).affine, new, atol=1e-6)


def test_modified_affine_as_file_gives_pair_with_mat(spm):
    img = nlv.load(spm)
    img.affine[1, 3] += 7
    out = nlv.as_file(img)
    assert out.is_temporary and out.endswith(".hdr")
    assert os.path.exists(out[:-4] + ".mat")
    np.testing.assert_allclose(nib.Spm2AnalyzeImage.load(out).affine, img.affine, atol=1e-6)
    np.testing.assert_allclose(nib.load(out).affine, img.affine, atol=1e-5)
    folder = os.path.dirname(out)
    out.release()
    assert os.listdir(folder) == []  # .hdr, .img and .mat all gone


def test_modified_affine_as_nifti(spm):
    img = nlv.load(spm)
    img.affine[2, 3] = 40
    out = nlv.as_file(img, ext=".nii.gz")
    np.testing.assert_allclose(nib.load(out).affine, img.affine, atol=1e-5)


def test_header_change_on_spm_gives_copy(spm):
    img = nlv.load(spm)
    img.header["descrip"] = b"spm edited"
    out = nlv.as_file(img)
    assert out.is_temporary
    assert nib.Spm2AnalyzeImage.load(out).header["descrip"].item() == b"spm edited"
    np.testing.assert_allclose(nib.Spm2AnalyzeImage.load(out).affine, _rotated(), atol=1e-6)


def test_mat_replaced_on_disk_resaves(spm):
    img = nlv.load(spm)
    time.sleep(0.01)
    other = np.diag([4.0, 4.0, 4.0, 1.0])
    nib.save(nib.Spm2AnalyzeImage(_array(), other), spm[:-4] + ".new.img")
    os.replace(spm[:-4] + ".new.mat", spm[:-4] + ".mat")
    out = nlv.as_file(img)
    assert out.is_temporary
    # the copy carries the image's (loaded) affine, not the one now on disk
    np.testing.assert_allclose(nib.Spm2AnalyzeImage.load(out).affine, _rotated(), atol=1e-6)


def test_mat_removed_on_disk_resaves(spm):
    img = nlv.load(spm)
    os.unlink(spm[:-4] + ".mat")
    out = nlv.as_file(img)
    assert out.is_temporary
    np.testing.assert_allclose(nib.Spm2AnalyzeImage.load(out).affine, _rotated(), atol=1e-6)


def test_mat_appearing_on_disk_resaves(tmp_path, spm):
    hdr = _copy_pair(spm, str(tmp_path / "late"))
    img = nlv.load(hdr)
    assert nlv.as_file(img) == hdr
    shutil.copy(spm[:-4] + ".mat", str(tmp_path / "late.mat"))  # SPM now sees another affine
    out = nlv.as_file(img)
    assert out.is_temporary
    np.testing.assert_allclose(nib.load(out).affine, img.affine, atol=1e-5)


def test_clean_spm_proxy_pickles_small(spm):
    img = nlv.load(spm)
    blob = pickle.dumps(img)
    assert len(blob) < 512
    back = pickle.loads(blob)
    np.testing.assert_allclose(back.affine, _rotated(), atol=1e-10)
    assert nlv.as_file(back) == spm


def test_spm_unpickle_after_mat_changed_is_stale(spm):
    blob = pickle.dumps(nlv.load(spm))
    time.sleep(0.01)
    scipy_io.savemat(spm[:-4] + ".mat", {"mat": np.eye(4)}, format="4")
    with pytest.raises(nlv.StaleFileError):
        pickle.loads(blob)


def test_failed_mat_write_leaves_the_whole_pair_as_it_was(spm, monkeypatch):
    """The .mat joins the pair's commit: if it cannot be written, no file is replaced."""
    folder = os.path.dirname(spm)

    def files() -> dict:
        paths = (os.path.join(folder, n) for n in os.listdir(folder))
        return {p: open(p, "rb").read() for p in paths if os.path.isfile(p)}

    before = files()
    img = nlv.load(spm)
    img.affine[0, 3] -= 10
    img.get_data()[0, 0, 0] = 99

    def broken_savemat(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scipy_io, "savemat", broken_savemat)
    with pytest.raises(OSError):
        nlv.save(img, spm)
    assert files() == before  # same names (no partial left), same bytes


@pytest.mark.parametrize("ext", [".img.gz", ".hdr.gz"])
def test_gzipped_pair_reads_and_writes_mat_gz(tmp_path, ext):
    """nibabel writes ``x.mat.gz`` beside ``x.hdr.gz``/``x.img.gz``; both ways here."""
    src = str(tmp_path / ("src" + ext))
    nib.save(nib.Spm2AnalyzeImage(_array(), _rotated()), src)
    assert os.path.exists(tmp_path / "src.mat.gz") and not os.path.exists(tmp_path / "src.mat")
    img = nlv.load(src)
    np.testing.assert_allclose(img.affine, nib.load(src).affine, atol=1e-12)
    assert img.files["mat"].endswith("src.mat.gz")
    out = nlv.save(img, str(tmp_path / "out.hdr.gz"))
    assert os.path.exists(tmp_path / "out.mat.gz") and not os.path.exists(tmp_path / "out.mat")
    back = nib.load(out)  # nibabel finds the .mat.gz we wrote
    np.testing.assert_allclose(back.affine, _rotated(), atol=1e-12)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), _array())
    np.testing.assert_allclose(nlv.load(out).affine, _rotated(), atol=1e-12)
    written = registry.for_writing(out).written_files(out)  # what the hand-off removes
    assert str(tmp_path / "out.mat.gz") in written
