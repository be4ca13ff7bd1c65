"""Failed saves: a clear ``nlv.SaveError`` naming the user's file, the old file intact.

Each failure (read-only folder, missing folder, disk full while writing, a
failing fsync or rename) is checked against the filesystem: the old file's
bytes (written by nibabel, not by nilazyview) are unchanged, no partial file
remains in the folder, and the error is an ``nlv.SaveError``, an ``OSError``
and an ``nlv.ImageFileError`` whose message and ``filename`` name the target
and whose ``errno`` is the one the system call failed with. Failures are made
by permissions where the test runs without root's powers, otherwise by
patching the ``os`` calls the kernel would have failed (``os.open``,
``os.write``, ``os.fsync``, ``os.replace``).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import textwrap
import traceback

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv

PARTIAL = ".nlv-partial"  # documented suffix of temporary files (README, leftovers.py)
EXTS = [".nii", ".nii.gz", ".hdr", ".hdr.gz", ".mgz"]
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def files_of(folder, ext: str) -> list[str]:
    """The files an image saved as ``folder/out{ext}`` consists of."""
    if ext.startswith(".hdr"):
        gz = ext[len(".hdr") :]
        return [os.path.join(folder, "out.hdr" + gz), os.path.join(folder, "out.img" + gz)]
    return [os.path.join(folder, "out" + ext)]


def write_old(folder, ext: str) -> dict[str, bytes]:
    """An existing image at ``folder/out{ext}``, written by nibabel; returns its bytes."""
    data = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    target = os.path.join(folder, "out" + ext)
    if ext == ".mgz":
        nib.save(nib.MGHImage(data.astype(np.int32), AFFINE), target)
    elif ext.startswith(".hdr"):
        nib.save(nib.Nifti1Pair(data, AFFINE), target)
    else:
        nib.save(nib.Nifti1Image(data, AFFINE), target)
    old = {}
    for f in files_of(folder, ext):
        with open(f, "rb") as fh:
            old[f] = fh.read()
    return old


def new_image(shape=(64, 64, 40)) -> nlv.Image:
    """An in-memory image big enough (640 KB) that its data goes out in several writes."""
    rng = np.random.default_rng(1)
    return nlv.Image(rng.standard_normal(shape).astype(np.float32), AFFINE)


def assert_clean_failure(
    exc: BaseException, folder, ext: str, old: dict, err: int, says_strerror: bool = True
) -> None:
    """The error type, errno, message and filename; old bytes kept; no partial left."""
    names = files_of(folder, ext)
    assert type(exc) is nlv.SaveError
    assert isinstance(exc, OSError) and isinstance(exc, nlv.ImageFileError)
    assert exc.errno == err
    assert exc.strerror == os.strerror(err)
    assert exc.filename in names
    msg = str(exc)
    assert msg.startswith(f"cannot write {exc.filename}: ")
    assert os.strerror(err) in msg or not says_strerror
    shown = "".join(traceback.format_exception(exc))
    assert PARTIAL not in shown, shown  # no temp name, not even in a chained exception
    for f, data in old.items():
        with open(f, "rb") as fh:
            assert fh.read() == data, f"{f} changed"
    if os.path.isdir(folder):
        left = [n for n in os.listdir(folder) if n.endswith(PARTIAL)]
        assert left == []
        assert sorted(os.listdir(folder)) == sorted(os.path.basename(f) for f in old)


def _is_partial_fd(fd: int, prefix: str = ".") -> bool:
    try:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return False
    return name.startswith(prefix) and name.endswith(PARTIAL)


def _can_create_in(folder) -> bool:
    probe = os.path.join(folder, "probe")
    try:
        with open(probe, "w"):
            pass
    except PermissionError:
        return False
    os.unlink(probe)
    return True


# --- read-only and missing folders ---------------------------------------------------------


@contextlib.contextmanager
def readonly(folder: str, monkeypatch):
    """Make ``folder`` read-only (0555); where that binds nobody (root), refuse creations.

    The refusal patches ``os.open`` to fail as the kernel does for a user without
    write permission: EACCES for any file created in ``folder``.
    """
    os.chmod(folder, 0o555)
    try:
        if _can_create_in(folder):  # root with CAP_DAC_OVERRIDE ignores the mode
            real_open = os.open

            def refusing_open(path, flags, *args, **kwargs):
                where = os.path.dirname(os.path.abspath(os.fsdecode(path)))
                if flags & os.O_CREAT and where == folder:
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
                return real_open(path, flags, *args, **kwargs)

            monkeypatch.setattr(os, "open", refusing_open)
        yield
    finally:
        monkeypatch.undo()
        os.chmod(folder, 0o755)


@pytest.mark.parametrize("ext", EXTS)
def test_readonly_folder(tmp_path, ext, monkeypatch):
    folder = str(tmp_path / "ro")
    os.mkdir(folder)
    old = write_old(folder, ext)
    with readonly(folder, monkeypatch), pytest.raises(nlv.SaveError) as info:
        nlv.save(new_image(), os.path.join(folder, "out" + ext))
    assert_clean_failure(info.value, folder, ext, old, errno.EACCES)
    assert f"(folder {folder})" in str(info.value)


def test_readonly_folder_new_file(tmp_path, monkeypatch):
    folder = str(tmp_path / "ro")
    os.mkdir(folder)
    target = os.path.join(folder, "new.nii.gz")
    with readonly(folder, monkeypatch), pytest.raises(OSError) as info:  # old handlers work
        nlv.save(new_image(), target)
    assert isinstance(info.value, nlv.SaveError)
    assert info.value.filename == target and info.value.errno == errno.EACCES
    assert str(info.value).startswith(f"cannot write {target}: ")
    assert os.listdir(folder) == []


NOBODY = 65534
CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import nilazyview as nlv
    img = nlv.Image(np.ones((8, 8, 8), np.float32), np.eye(4))
    try:
        nlv.save(img, sys.argv[1])
    except Exception as exc:
        print(json.dumps({"type": type(exc).__name__, "oserror": isinstance(exc, OSError),
                          "image_error": isinstance(exc, nlv.ImageFileError),
                          "errno": getattr(exc, "errno", None),
                          "filename": getattr(exc, "filename", None), "message": str(exc)}))
    else:
        print(json.dumps({"type": None}))
    """
)


def _as_nobody() -> list[str] | None:
    """A command prefix running as uid/gid 65534, or None where that is not possible."""
    if os.geteuid() != 0:
        return None
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    return None


@pytest.mark.parametrize("ext", [".nii", ".hdr"])
def test_readonly_folder_for_real_as_another_user(ext):
    """Root runs the save as ``nobody`` in a folder it may not write: the kernel refuses."""
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("needs root and setpriv or runuser to switch to an unprivileged user")
    base = tempfile.mkdtemp(prefix="nlv-ro-test-")  # not under tmp_path: that one is 0700
    try:
        os.chmod(base, 0o755)
        folder = os.path.join(base, "ro")
        os.mkdir(folder)
        old = write_old(folder, ext)
        os.chmod(folder, 0o555)
        res = subprocess.run(
            [*prefix, sys.executable, "-c", CHILD, os.path.join(folder, "out" + ext)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=base,
        )
        if res.returncode != 0 and "import" in res.stderr.lower():
            pytest.skip(f"the unprivileged user cannot run this Python: {res.stderr[-300:]}")
        assert res.returncode == 0, res.stderr
        got = json.loads(res.stdout.strip().splitlines()[-1])
        assert got["type"] == "SaveError" and got["oserror"] and got["image_error"]
        assert got["errno"] == errno.EACCES
        assert got["filename"] in files_of(folder, ext)
        assert got["message"].startswith(f"cannot write {got['filename']}: ")
        assert os.strerror(errno.EACCES) in got["message"] and folder in got["message"]
        assert PARTIAL not in res.stdout + res.stderr
        for f, data in old.items():
            with open(f, "rb") as fh:
                assert fh.read() == data
        assert sorted(os.listdir(folder)) == sorted(os.path.basename(f) for f in old)
    finally:
        os.chmod(os.path.join(base, "ro"), 0o755)
        shutil.rmtree(base)


@pytest.mark.parametrize("ext", EXTS)
def test_missing_folder(tmp_path, ext):
    folder = tmp_path / "missing" / "deeper"
    with pytest.raises(nlv.SaveError) as info:
        nlv.save(new_image(), str(folder / ("out" + ext)))
    exc = info.value
    assert_clean_failure(exc, str(folder), ext, {}, errno.ENOENT, says_strerror=False)
    assert f"folder {folder} does not exist" in str(exc)
    assert not (tmp_path / "missing").exists()


def test_target_is_a_folder(tmp_path):
    target = tmp_path / "out.nii"
    target.mkdir()
    with pytest.raises(nlv.SaveError) as info:
        nlv.save(new_image(), str(target))
    assert info.value.errno == errno.EISDIR and info.value.filename == str(target)
    assert str(target) in str(info.value)
    assert os.listdir(tmp_path) == ["out.nii"] and os.listdir(target) == []


def test_a_file_where_the_folder_should_be(tmp_path):
    (tmp_path / "notafolder").write_bytes(b"x")
    target = tmp_path / "notafolder" / "out.nii"
    with pytest.raises(nlv.SaveError) as info:
        nlv.save(new_image(), str(target))
    assert info.value.errno == errno.ENOTDIR and info.value.filename == str(target)
    assert f"{tmp_path / 'notafolder'} is not a folder" in str(info.value)
    assert (tmp_path / "notafolder").read_bytes() == b"x"


# --- failures while writing, syncing, renaming ---------------------------------------------


def failing_write(monkeypatch, prefix: str, after: int, err: int = errno.ENOSPC) -> None:
    """``os.write`` to a temp file named ``prefix*`` fails with ``err`` after ``after`` bytes."""
    real_write = os.write
    written = {"n": 0}

    def write(fd, data):
        if not _is_partial_fd(fd, prefix):
            return real_write(fd, data)
        room = after - written["n"]
        if room <= 0:
            raise OSError(err, os.strerror(err))
        n = real_write(fd, memoryview(data)[:room])
        written["n"] += n
        return n

    monkeypatch.setattr(os, "write", write)


def _prefixes(ext: str) -> list[str]:
    """Temp-file name prefixes of each file a save to ``out{ext}`` writes."""
    return [f".{os.path.basename(f)}." for f in files_of("", ext)]


@pytest.mark.parametrize("after", [0, 16])  # bytes written before the disk is full
@pytest.mark.parametrize("ext,which", [(e, p) for e in EXTS for p in range(len(files_of("", e)))])
def test_disk_full_while_writing(tmp_path, monkeypatch, ext, which, after):
    old = write_old(tmp_path, ext)
    failing_write(monkeypatch, _prefixes(ext)[which], after)
    with pytest.raises(nlv.SaveError) as info:
        nlv.save(new_image(), str(tmp_path / ("out" + ext)))
    monkeypatch.undo()
    assert_clean_failure(info.value, tmp_path, ext, old, errno.ENOSPC)
    assert info.value.filename == files_of(tmp_path, ext)[which]
    assert "the existing file is unchanged" in str(info.value)


def test_disk_full_on_a_new_file(tmp_path, monkeypatch):
    failing_write(monkeypatch, ".", 4096)
    target = str(tmp_path / "new.nii")
    with pytest.raises(nlv.SaveError) as info:
        nlv.save(new_image(), target)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and info.value.filename == target
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("ext,which", [(e, p) for e in EXTS for p in range(len(files_of("", e)))])
def test_fsync_fails(tmp_path, monkeypatch, ext, which):
    """The data reaches the disk only at fsync: an error there must not replace anything."""
    old = write_old(tmp_path, ext)
    real_fsync = os.fsync
    prefix = _prefixes(ext)[which]

    def fsync(fd):
        if _is_partial_fd(fd, prefix):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(nlv.SaveError) as info:
        nlv.save(new_image(), str(tmp_path / ("out" + ext)))
    monkeypatch.undo()
    assert_clean_failure(info.value, tmp_path, ext, old, errno.EIO)


@pytest.mark.parametrize("ext,which", [(e, p) for e in EXTS for p in range(len(files_of("", e)))])
def test_rename_fails(tmp_path, monkeypatch, ext, which):
    """The ``which``-th rename fails; for a pair, the file renamed before it is put back."""
    old = write_old(tmp_path, ext)
    real_replace = os.replace
    calls = {"n": 0}

    def replace(src, dst, **kwargs):
        if os.path.basename(os.fsdecode(src)).endswith(PARTIAL):
            calls["n"] += 1
            if calls["n"] == which + 1:
                raise OSError(errno.EIO, os.strerror(errno.EIO), src, None, dst)
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(nlv.SaveError) as info:
        nlv.save(new_image(), str(tmp_path / ("out" + ext)))
    monkeypatch.undo()
    assert_clean_failure(info.value, tmp_path, ext, old, errno.EIO)


@pytest.mark.parametrize("ext", [".hdr", ".hdr.gz"])
def test_pair_rename_fails_on_a_new_pair(tmp_path, monkeypatch, ext):
    """No old pair: a failing second rename leaves no half pair behind."""
    real_replace = os.replace
    calls = {"n": 0}

    def replace(src, dst, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(nlv.SaveError):
        nlv.save(new_image(), str(tmp_path / ("out" + ext)))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_a_save_after_a_failure_works(tmp_path, monkeypatch):
    old = write_old(tmp_path, ".hdr")
    failing_write(monkeypatch, ".out.hdr.", 0)
    with pytest.raises(nlv.SaveError):
        nlv.save(new_image(), str(tmp_path / "out.hdr"))
    monkeypatch.undo()
    data = np.full((3, 4, 5), 7, np.int16)
    nlv.save(nlv.Image(data, AFFINE), str(tmp_path / "out.hdr"))
    np.testing.assert_array_equal(np.asanyarray(nib.load(str(tmp_path / "out.hdr")).dataobj), data)
    assert all(open(f, "rb").read() != b for f, b in old.items())


def test_read_errors_of_the_source_are_not_save_errors(tmp_path, monkeypatch):
    """An error reading the image being saved keeps its own type; still no partial file."""
    src = str(tmp_path / "src.nii")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), AFFINE), src)
    img = nlv.load(src)

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO), src)

    monkeypatch.setattr(type(img.proxy.source), "read_into", broken)
    with pytest.raises(OSError) as info:
        nlv.save(img, str(tmp_path / "out.nii"))
    assert not isinstance(info.value, nlv.SaveError) and info.value.filename == src
    assert sorted(os.listdir(tmp_path)) == ["src.nii"]


def test_save_error_pickles():
    exc = nlv.SaveError(
        "cannot write /x/out.nii: disk full", errno.ENOSPC, "disk full", "/x/out.nii"
    )
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is nlv.SaveError and str(back) == str(exc)
    assert (back.errno, back.strerror, back.filename) == (errno.ENOSPC, "disk full", "/x/out.nii")


def test_as_file_reports_a_failed_copy(tmp_path, monkeypatch):
    from nilazyview import handoff

    monkeypatch.setenv("NILAZYVIEW_TMPDIR", str(tmp_path))
    monkeypatch.setattr(handoff, "_folder", None)
    img = new_image()
    path = nlv.as_file(img)  # works
    assert path.is_temporary and np.array_equal(nib.load(str(path)).get_fdata(), img.get_data())
    img.get_data()[0, 0, 0] = 42.0
    failing_write(monkeypatch, ".", 0)
    with pytest.raises(nlv.SaveError) as info:
        nlv.as_file(img)
    monkeypatch.undo()
    assert os.strerror(errno.ENOSPC) in str(info.value) and PARTIAL not in str(info.value)
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert "NILAZYVIEW_TMPDIR" in str(info.value)
    folder = os.path.dirname(str(path))
    assert [n for n in os.listdir(folder) if n.endswith(PARTIAL)] == []


# --- unknown extensions --------------------------------------------------------------------

WRITABLE = [".nii", ".nii.gz", ".hdr", ".img", ".hdr.gz", ".img.gz", ".mgh", ".mgh.gz", ".mgz"]


@pytest.mark.parametrize("bad", ["out.xyz", "out", "out.nii.bz2", "out.mnc"])
def test_unknown_extension_lists_every_writable_one(tmp_path, bad):
    with pytest.raises(nlv.UnsupportedFormatError) as info:
        nlv.save(new_image((4, 4, 4)), str(tmp_path / bad))
    msg = str(info.value)
    assert str(tmp_path / bad) in msg
    listed = {w.strip(" ,()") for w in msg.replace("/", " ").split() if w.startswith(".")}
    assert listed == set(WRITABLE), msg
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("ext", WRITABLE)
def test_every_listed_extension_saves(tmp_path, ext):
    data = np.arange(4 * 4 * 4, dtype=np.int16).reshape(4, 4, 4)
    written = nlv.save(nlv.Image(data, AFFINE), str(tmp_path / ("out" + ext)))
    if ext == ".mgh.gz":  # nibabel knows gzipped MGH only as .mgz
        with gzip.open(written, "rb") as f:
            ref = nib.MGHImage.from_bytes(f.read())
    else:
        ref = nib.load(written)
    np.testing.assert_array_equal(np.asanyarray(ref.dataobj), data)
