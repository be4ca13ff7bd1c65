"""Issue 3: ``as_file`` hands off the original file only when nothing changed (BIAP1).

nibabel is the oracle for what a handed-off file says.
"""

from __future__ import annotations

import gc
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv
from nilazyview import handoff

SHAPE = (6, 5, 4, 3)


def _affine():
    aff = np.diag([2.0, 3.0, 4.0, 1.0])
    aff[:3, 3] = [-10.0, 5.0, 7.0]
    return aff


def _array(shape=SHAPE, dtype=np.int16):
    return (np.arange(np.prod(shape)) % 1000).astype(dtype).reshape(shape)


pytestmark = pytest.mark.usefixtures("private_tmpdir")  # conftest


@pytest.fixture(params=[".nii", ".nii.gz", ".hdr"])
def src(request, tmp_path):
    path = str(tmp_path / f"src{request.param}")
    nib.save(
        nib.Nifti1Image(_array(), _affine())
        if request.param != ".hdr"
        else nib.Nifti1Pair(_array(), _affine()),
        path,
    )
    return path


@pytest.fixture
def nii(tmp_path):
    path = str(tmp_path / "img.nii")
    nib.save(nib.Nifti1Image(_array(), _affine()), path)
    return path


def _ident(path):
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


# --- when the original is handed off ------------------------------------------------


def test_unmodified_gives_original(src):
    img = nlv.load(src)
    path = nlv.as_file(img)
    assert path == src
    assert isinstance(path, nlv.HandoffPath)
    assert path.is_temporary is False
    assert not os.listdir(handoff.temp_folder())


def test_slicecopy_only_gives_original(src):
    img = nlv.load(src)
    plane = img.slicecopy[..., 1]
    np.testing.assert_array_equal(plane, _array()[..., 1])
    assert img.is_proxy and not img.dirty
    path = nlv.as_file(img)
    assert path == src and not path.is_temporary


def test_get_data_gives_temp_copy(src):
    img = nlv.load(src)
    img.get_data()
    assert img.dirty
    path = nlv.as_file(img)
    assert path.is_temporary and path != src
    assert os.path.dirname(path) == handoff.temp_folder()
    back = nib.load(path)
    np.testing.assert_array_equal(back.get_fdata(), _array())
    np.testing.assert_allclose(back.affine, _affine())


def test_dirty_override_gives_original(nii):
    img = nlv.load(nii)
    img.get_data()[0, 0, 0, 0] = 123  # the user says "trust me" anyway
    img.dirty = False
    path = nlv.as_file(img)
    assert path == nii and not path.is_temporary


def test_in_place_affine_change_gives_copy_with_new_affine(src):
    img = nlv.load(src)
    img.affine[0, 3] += 5
    assert img.is_proxy and not img.dirty  # only the snapshot can tell
    path = nlv.as_file(img)
    assert path.is_temporary
    expected = _affine()
    expected[0, 3] += 5
    np.testing.assert_allclose(nib.load(path).affine, expected)
    np.testing.assert_array_equal(nib.load(path).get_fdata(), _array())
    np.testing.assert_allclose(nib.load(src).affine, _affine())  # source untouched


def test_rotation_affine_change_survives(nii):
    img = nlv.load(nii)
    rot = np.array([[0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    img.affine = rot @ img.affine
    path = nlv.as_file(img)
    assert path.is_temporary
    np.testing.assert_allclose(nib.load(path).affine, rot @ _affine(), atol=1e-5)


def test_header_change_gives_copy_that_says_so(src):
    img = nlv.load(src)
    img.header["descrip"] = b"edited by the hand-off test"
    path = nlv.as_file(img)
    assert path.is_temporary
    hdr = nib.load(path).header
    assert hdr["descrip"].item() == b"edited by the hand-off test"
    assert nib.load(src).header["descrip"].item() != b"edited by the hand-off test"


def test_header_change_then_undo_gives_original(nii):
    img = nlv.load(nii)
    old = img.header["descrip"]
    img.header["descrip"] = b"temporary"
    assert nlv.as_file(img).is_temporary
    img.header["descrip"] = old
    assert nlv.as_file(img) == nii


def test_extension_appended_gives_copy(nii):
    img = nlv.load(nii)
    img.header.extensions.append(nlv.Extension(6, b"a comment"))
    path = nlv.as_file(img)
    assert path.is_temporary
    exts = nib.load(path).header.extensions
    assert [(e.get_code(), e.get_content()) for e in exts] == [(6, b"a comment")]


def test_extension_modified_gives_copy(tmp_path):
    path = str(tmp_path / "ext.nii")
    nimg = nib.Nifti1Image(_array(), _affine())
    nimg.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"original comment"))
    nib.save(nimg, path)
    img = nlv.load(path)
    assert nlv.as_file(img) == path
    assert [e.content for e in img.header.extensions] == [b"original comment"]
    img.header.extensions[0] = nlv.Extension(6, b"changed comment!")
    out = nlv.as_file(img)
    assert out.is_temporary
    exts = nib.load(out).header.extensions
    assert [e.get_content() for e in exts] == [b"changed comment!"]


def test_extension_removed_gives_copy(tmp_path):
    path = str(tmp_path / "ext.nii")
    nimg = nib.Nifti1Image(_array(), _affine())
    nimg.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"x" * 5000))
    nib.save(nimg, path)
    img = nlv.load(path)
    img.header.extensions.clear()
    out = nlv.as_file(img)
    assert out.is_temporary
    assert len(nib.load(out).header.extensions) == 0


def test_snapshot_holds_digests_not_big_extensions(tmp_path):
    path = str(tmp_path / "bigext.nii")
    nimg = nib.Nifti1Image(_array(), _affine())
    nimg.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"y" * 200_000))
    nib.save(nimg, path)
    img = nlv.load(path)
    snap = img.snapshot
    assert len(snap.header) <= 64 and len(snap.affine) <= 64 and len(snap.extensions) <= 64
    assert nlv.as_file(img) == path


def test_file_rewritten_on_disk_gives_copy(nii):
    img = nlv.load(nii)
    arr = img.get_data().copy()
    img.dirty = False
    # replace the file (new inode, other data) behind the image's back
    time.sleep(0.01)
    nib.save(nib.Nifti1Image(_array() + 1, _affine()), nii + ".new.nii")
    os.replace(nii + ".new.nii", nii)
    path = nlv.as_file(img)
    assert path.is_temporary
    np.testing.assert_array_equal(nib.load(path).get_fdata(), arr)


def test_file_touched_on_disk_gives_copy(nii):
    img = nlv.load(nii)
    img.get_data()
    img.dirty = False
    st = os.stat(nii)
    os.utime(nii, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    path = nlv.as_file(img)
    assert path.is_temporary
    np.testing.assert_array_equal(nib.load(path).get_fdata(), _array())


def test_proxy_of_removed_file_does_not_hand_off_missing_file(nii):
    img = nlv.load(nii)
    img.get_data()
    img.dirty = False
    os.unlink(nii)
    path = nlv.as_file(img)
    assert path.is_temporary and os.path.exists(path)


# --- verify --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_verify_unchanged_data_gives_original_and_keeps_dirty(tmp_path, suffix, monkeypatch):
    path = str(tmp_path / f"v{suffix}")
    nib.save(nib.Nifti1Image(_array(), _affine()), path)
    img = nlv.load(path)
    arr = img.get_data()
    monkeypatch.setattr(handoff, "_VERIFY_CHUNK", 64)  # force several chunks
    out = nlv.as_file(img, verify=True)
    assert out == path and not out.is_temporary
    assert not os.listdir(handoff.temp_folder())
    # the caller still holds the array: an edit after the check must not be lost
    assert img.dirty is True
    arr[0, 0, 0, 0] += 1
    for later in (nlv.as_file(img, verify=True), nlv.as_file(img)):
        assert later.is_temporary
        assert np.asanyarray(nib.load(later).dataobj)[0, 0, 0, 0] == arr[0, 0, 0, 0]


def test_verify_modified_data_gives_copy(nii, monkeypatch):
    img = nlv.load(nii)
    img.get_data()[-1, -1, -1, -1] = 999
    monkeypatch.setattr(handoff, "_VERIFY_CHUNK", 64)
    out = nlv.as_file(img, verify=True)
    assert out.is_temporary
    assert img.dirty
    assert nib.load(out).get_fdata()[-1, -1, -1, -1] == 999


def test_verify_nan_data_unchanged(tmp_path):
    arr = _array(dtype=np.float32)
    arr[1, 2, 3, 0] = np.nan
    path = str(tmp_path / "nan.nii")
    nib.save(nib.Nifti1Image(arr, _affine()), path)
    img = nlv.load(path)
    img.get_data()
    assert nlv.as_file(img, verify=True) == path


def test_verify_still_requires_metadata_unchanged(nii):
    img = nlv.load(nii)
    img.get_data()
    img.header["descrip"] = b"changed"
    out = nlv.as_file(img, verify=True)
    assert out.is_temporary
    assert nib.load(out).header["descrip"].item() == b"changed"


# --- formats of the temporary copy --------------------------------------------------


@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".hdr", ".hdr.gz"])
def test_temp_copy_formats(nii, ext):
    img = nlv.load(nii)
    img.get_data()[0, 0, 0, 0] = -7
    out = nlv.as_file(img, ext=ext)
    assert out.is_temporary and out.endswith(ext)
    back = nib.load(out)
    expected = _array()
    expected[0, 0, 0, 0] = -7
    np.testing.assert_array_equal(back.get_fdata(), expected)
    np.testing.assert_allclose(back.affine, _affine())
    if ext.startswith(".hdr"):
        assert os.path.exists(out.replace(".hdr", ".img"))
    if ext.endswith(".gz"):
        with open(out, "rb") as f:
            assert f.read(2) == b"\x1f\x8b"


@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".hdr", ".hdr.gz"])
def test_explicit_ext_hands_off_original_only_in_that_format(src, ext):
    img = nlv.load(src)
    out = nlv.as_file(img, ext=ext)
    name = os.path.basename(src)
    stored = name[name.index(".") :]
    if ext == stored:
        assert out == src and not out.is_temporary
    else:
        assert out.is_temporary and out.endswith(ext)
        np.testing.assert_array_equal(nib.load(out).get_fdata(), _array())


@pytest.mark.parametrize(("suffix", "default"), [(".nii", ".nii"), (".nii.gz", ".nii.gz")])
def test_default_ext_matches_source(tmp_path, suffix, default):
    path = str(tmp_path / f"d{suffix}")
    nib.save(nib.Nifti1Image(_array(), _affine()), path)
    img = nlv.load(path)
    img.get_data()
    assert nlv.as_file(img).endswith(default)


def test_default_ext_pair_source(tmp_path):
    path = str(tmp_path / "pair.img")
    nib.save(nib.Nifti1Pair(_array(), _affine()), path)
    img = nlv.load(path)
    img.get_data()
    out = nlv.as_file(img)
    assert out.endswith(".hdr")
    np.testing.assert_array_equal(nib.load(out).get_fdata(), _array())


def test_bad_ext_rejected(nii):
    img = nlv.load(nii)
    img.get_data()
    with pytest.raises(ValueError, match="ext"):
        nlv.as_file(img, ext=".mgz")


# --- reuse ---------------------------------------------------------------------------


def test_temp_copy_reused_while_unchanged(nii):
    img = nlv.load(nii)
    img.get_data()
    first = nlv.as_file(img)
    before = _ident(first)
    time.sleep(0.01)
    second = nlv.as_file(img)
    assert second == first and second.is_temporary
    assert _ident(second) == before  # not written again
    assert os.listdir(handoff.temp_folder()) == [os.path.basename(first)]


def test_temp_copy_reused_for_metadata_only_change(nii):
    img = nlv.load(nii)
    img.header["descrip"] = b"meta only"
    first = nlv.as_file(img)
    before = _ident(first)
    assert nlv.as_file(img) == first and _ident(first) == before


def test_change_after_reuse_writes_new_copy(nii):
    img = nlv.load(nii)
    data = img.get_data()
    first = nlv.as_file(img)
    data[1, 1, 1, 1] = 4321
    second = nlv.as_file(img)
    assert second != first and second.is_temporary
    assert nib.load(second).get_fdata()[1, 1, 1, 1] == 4321
    img.affine[1, 3] = 99
    third = nlv.as_file(img)
    assert third not in (first, second)
    assert nib.load(third).affine[1, 3] == 99
    assert nib.load(third).get_fdata()[1, 1, 1, 1] == 4321


# --- privacy -------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".nii", ".hdr"])
def test_temp_files_private(nii, ext):
    img = nlv.load(nii)
    img.get_data()
    out = nlv.as_file(img, ext=ext)
    folder = os.path.dirname(out)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    for name in os.listdir(folder):
        assert stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode) == 0o600, name


def test_temp_files_private_despite_umask(nii):
    img = nlv.load(nii)
    img.get_data()
    old = os.umask(0)
    try:
        out = nlv.as_file(img)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


# --- cleanup -------------------------------------------------------------------------


def test_removed_on_garbage_collection(nii):
    img = nlv.load(nii)
    img.get_data()
    out = str(nlv.as_file(img))
    assert os.path.exists(out)
    del img
    gc.collect()
    assert not os.path.exists(out)


def test_pair_removed_on_garbage_collection(nii):
    img = nlv.load(nii)
    img.get_data()
    out = str(nlv.as_file(img, ext=".hdr"))
    folder = os.path.dirname(out)
    assert len(os.listdir(folder)) == 2
    del img
    gc.collect()
    assert os.listdir(folder) == []


def test_removed_on_context_exit(nii):
    img = nlv.load(nii)
    img.get_data()
    with nlv.as_file(img) as out:
        assert out.is_temporary and os.path.exists(out)
        assert nib.load(out).shape == SHAPE
    assert not os.path.exists(out)
    again = nlv.as_file(img)  # the cache forgot the removed copy
    assert os.path.exists(again)


def test_context_on_original_keeps_file(nii):
    img = nlv.load(nii)
    with nlv.as_file(img) as out:
        assert out == nii
    assert os.path.exists(nii)


def test_release_method_and_function(nii):
    img = nlv.load(nii)
    img.get_data()
    out = nlv.as_file(img)
    out.release()
    assert not os.path.exists(out)
    out2 = nlv.as_file(img)
    assert os.path.exists(out2)
    nlv.release(img)
    assert not os.path.exists(out2)
    nlv.release(img)  # twice is fine
    nlv.as_file(nlv.load(nii)).release()  # original: no-op
    assert os.path.exists(nii)


def test_release_pair_removes_both(nii):
    img = nlv.load(nii)
    img.get_data()
    out = nlv.as_file(img, ext=".hdr.gz")
    folder = os.path.dirname(out)
    assert len(os.listdir(folder)) == 2
    out.release()
    assert os.listdir(folder) == []


def _run(script: str, env_dir) -> subprocess.CompletedProcess:
    env = dict(os.environ, NILAZYVIEW_TMPDIR=str(env_dir))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_no_temp_survives_interpreter_exit(nii, tmp_path):
    base = tmp_path / "exit-tmp"
    base.mkdir()
    script = f"""
        import os, numpy as np, nilazyview as nlv
        keep = []
        img = nlv.load({nii!r}); img.get_data()
        for ext in (".nii", ".nii.gz", ".hdr"):
            keep.append(nlv.as_file(img, ext=ext))
        other = nlv.load({nii!r}); other.header["descrip"] = b"x"
        keep.append(nlv.as_file(other))
        mem = nlv.Image(np.ones((3, 3, 3), np.float32))
        keep.append(nlv.as_file(mem))
        assert all(p.is_temporary for p in keep)
        print(os.path.dirname(keep[-1]))
        print(len(os.listdir(os.path.dirname(keep[-1]))))
        img_cycle = {{"img": img}}; img_cycle["self"] = img_cycle  # survives to exit
        """
    res = _run(script, base)
    assert res.returncode == 0, res.stderr
    folder, count = res.stdout.split()
    assert folder.startswith(str(base))
    assert int(count) >= 2
    assert not os.path.exists(folder)
    assert os.listdir(base) == []


def test_no_temp_survives_exit_after_exception(nii, tmp_path):
    base = tmp_path / "exc-tmp"
    base.mkdir()
    script = f"""
        import nilazyview as nlv
        img = nlv.load({nii!r}); img.get_data()
        path = nlv.as_file(img)
        raise SystemExit(3)
        """
    res = _run(script, base)
    assert res.returncode == 3, res.stderr
    assert os.listdir(base) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_exit_keeps_parent_copies(nii, tmp_path):
    base = tmp_path / "fork-tmp"
    base.mkdir()
    script = f"""
        import os, sys, nilazyview as nlv
        img = nlv.load({nii!r}); img.get_data()
        out = nlv.as_file(img)
        pid = os.fork()
        if pid == 0:  # child: a normal interpreter exit runs the inherited atexit hooks
            child = nlv.load({nii!r}); child.get_data()
            mine = nlv.as_file(child)
            assert os.path.dirname(mine) != os.path.dirname(out)
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        assert os.path.exists(out), "the child's exit removed the parent's copy"
        assert nlv.as_file(img) == out
        print("ok")
        """
    res = _run(script, base)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
    assert os.listdir(base) == []


# --- errors --------------------------------------------------------------------------


def test_temp_folder_under_regular_file(nii, tmp_path, monkeypatch):
    blocker = tmp_path / "a-regular-file"
    blocker.write_bytes(b"")
    bad = str(blocker / "sub")
    monkeypatch.setenv("NILAZYVIEW_TMPDIR", bad)
    monkeypatch.setattr(handoff, "_folder", None)
    img = nlv.load(nii)
    img.get_data()
    with pytest.raises(nlv.ImageFileError) as info:
        nlv.as_file(img)
    assert bad in str(info.value)
    assert nlv.as_file(nlv.load(nii)) == nii  # the original needs no folder


def test_temp_folder_missing_parent(nii, tmp_path, monkeypatch):
    bad = str(tmp_path / "missing" / "deeper")
    monkeypatch.setenv("NILAZYVIEW_TMPDIR", bad)
    monkeypatch.setattr(handoff, "_folder", None)
    img = nlv.load(nii)
    img.header["descrip"] = b"needs a copy"
    with pytest.raises(nlv.ImageFileError, match="missing"):
        nlv.as_file(img)


def test_temp_folder_removed_under_us_is_recreated(nii):
    img = nlv.load(nii)
    img.get_data()
    out = nlv.as_file(img)
    shutil.rmtree(os.path.dirname(out))
    again = nlv.as_file(img)
    assert os.path.exists(again)
    np.testing.assert_array_equal(nib.load(again).get_fdata(), _array())


def test_in_memory_image_writes_temp_copy():
    arr = np.random.default_rng(0).random((4, 3, 2)).astype(np.float32)
    aff = _affine()
    img = nlv.Image(arr, aff)
    out = nlv.as_file(img)
    assert out.is_temporary and out.endswith(".nii")
    back = nib.load(out)
    np.testing.assert_array_equal(back.get_fdata(dtype=np.float32), arr)
    np.testing.assert_allclose(back.affine, aff)
    assert nlv.as_file(img) == out


def test_image_without_file_or_data_is_a_clear_error():
    img = nlv.Image(np.zeros((2, 2, 2)))
    img._data = None
    with pytest.raises(nlv.ImageFileError, match="neither"):
        nlv.as_file(img)


# --- pickling (cluster hand-off) --------------------------------------------------------


def test_clean_proxy_pickles_small_and_reloads_lazily(src):
    import pickle

    img = nlv.load(src)
    blob = pickle.dumps(img)
    assert len(blob) < 512
    back = pickle.loads(blob)
    assert back.is_proxy and not back.dirty
    np.testing.assert_array_equal(back.slicecopy[..., 2], _array()[..., 2])
    assert nlv.as_file(back) == src
    np.testing.assert_allclose(back.affine, _affine())


def test_modified_header_proxy_pickles_small_and_keeps_change(nii):
    import pickle

    img = nlv.load(nii)
    img.header["descrip"] = b"kept through pickle"
    img.affine[2, 3] = -3
    blob = pickle.dumps(img)
    assert len(blob) < 4096
    back = pickle.loads(blob)
    assert back.is_proxy
    assert back.header["descrip"] == b"kept through pickle"
    assert back.affine[2, 3] == -3
    out = nlv.as_file(back)
    assert out.is_temporary
    assert nib.load(out).header["descrip"].item() == b"kept through pickle"
    assert nib.load(out).affine[2, 3] == -3


def test_big_extension_proxy_pickles_small(tmp_path):
    import pickle

    path = str(tmp_path / "bigext.nii")
    nimg = nib.Nifti1Image(_array(), _affine())
    nimg.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"z" * 100_000))
    nib.save(nimg, path)
    img = nlv.load(path)
    img.header["descrip"] = b"changed"
    blob = pickle.dumps(img)
    assert len(blob) < 4096
    back = pickle.loads(blob)
    assert [len(e.content) for e in back.header.extensions] == [100_000]
    assert nlv.as_file(back).is_temporary


def test_dirty_image_pickles_its_data(nii):
    import pickle

    img = nlv.load(nii)
    img.get_data()[2, 2, 2, 2] = 777
    back = pickle.loads(pickle.dumps(img))
    assert back.dirty and back.in_memory
    assert back.get_data()[2, 2, 2, 2] == 777
    out = nlv.as_file(back)
    assert out.is_temporary and nib.load(out).get_fdata()[2, 2, 2, 2] == 777


def test_in_memory_image_pickles_data():
    import pickle

    arr = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    back = pickle.loads(pickle.dumps(nlv.Image(arr, _affine())))
    np.testing.assert_array_equal(back.get_data(), arr)
    np.testing.assert_allclose(back.affine, _affine())


def test_unpickle_after_file_changed_is_stale(nii):
    import pickle

    blob = pickle.dumps(nlv.load(nii))
    time.sleep(0.01)
    nib.save(nib.Nifti1Image(_array() * 2, _affine()), nii)
    with pytest.raises(nlv.StaleFileError):
        pickle.loads(blob)


def test_unpickle_after_file_removed(nii):
    import pickle

    blob = pickle.dumps(nlv.load(nii))
    os.unlink(nii)
    with pytest.raises((nlv.StaleFileError, FileNotFoundError)):
        pickle.loads(blob)


def test_big_extension_change_survives_pickle(tmp_path):
    import pickle

    path = str(tmp_path / "bigext2.nii")
    nib.save(nib.Nifti1Image(_array(), _affine()), path)
    img = nlv.load(path)
    img.header.extensions.append(nlv.Extension(6, b"w" * 5000))  # large and new
    back = pickle.loads(pickle.dumps(img))
    assert [len(e.content) for e in back.header.extensions] == [5000]
    out = nlv.as_file(back)
    assert out.is_temporary
    assert [len(e.get_content()) for e in nib.load(out).header.extensions] == [5000]
