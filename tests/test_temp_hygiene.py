"""Temp hygiene: private temp files and folders, none left after a normal exit.

Killed processes' leftovers are cleaned by the next run: see test_crash_safety.py
for the kill tests and the cleanup rules; here a process that ends with
``os._exit`` (no atexit hooks, as after a kill) is cleaned up after.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import nilazyview as nlv
from nilazyview import handoff
from nilazyview.fs import atomic, leftovers


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".hdr", ".hdr.gz"])
def test_handoff_copies_are_private(private_tmpdir, ext):
    img = nlv.Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    out = nlv.as_file(img, ext=ext)
    folder = os.path.dirname(out)
    assert os.path.dirname(folder) == str(private_tmpdir)
    assert _mode(folder) == 0o700
    names = os.listdir(folder)
    assert names and all(_mode(os.path.join(folder, n)) == 0o600 for n in names), names
    nlv.release(img)
    assert os.listdir(folder) == []


def test_partial_file_is_private_while_written(tmp_path):
    seen = {}
    target = tmp_path / "out.bin"
    with atomic.atomic_write(str(target), mode=0o644) as f:
        f.write(b"x" * 100)
        (name,) = [n for n in os.listdir(tmp_path) if n.endswith(".nlv-partial")]
        seen["mode"] = _mode(tmp_path / name)
        seen["owner"] = leftovers.owner_of(name)
    assert seen["mode"] == 0o600
    assert seen["owner"] == (leftovers.HOST_TAG, os.getpid())
    assert _mode(target) == 0o644
    assert os.listdir(tmp_path) == ["out.bin"]


def test_failed_save_leaves_no_partial(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.atomic_write(str(target)) as f:
        f.write(b"new")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_new_file_mode_follows_umask_without_touching_it(tmp_path, monkeypatch):
    """The umask is read from /proc, not set and reset (racy for other threads' files)."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("no /proc")
    old = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", lambda *_: pytest.fail("os.umask called"))
        path = nlv.save(nlv.Image(np.zeros((2, 2, 2), np.uint8)), str(tmp_path / "a.nii"))
        assert _mode(path) == 0o640
    finally:
        monkeypatch.undo()
        os.umask(old)


def test_save_keeps_the_replaced_files_mode(tmp_path):
    path = str(tmp_path / "a.nii")
    nlv.save(nlv.Image(np.zeros((2, 2, 2), np.uint8)), path)
    os.chmod(path, 0o600)
    nlv.save(nlv.Image(np.ones((2, 2, 2), np.uint8)), path)
    assert _mode(path) == 0o600


SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import nilazyview as nlv
    src, how = sys.argv[1], sys.argv[2]
    img = nlv.load(src)
    img.header["descrip"] = b"changed"
    paths = [nlv.as_file(img, ext=e) for e in (".nii", ".nii.gz", ".hdr")]
    mem = nlv.Image(np.zeros((3, 3, 3), np.float32))
    paths.append(nlv.as_file(mem))
    assert all(os.path.exists(p) for p in paths)
    nlv.save(img, os.path.join(os.path.dirname(src), "copy.nii"))
    print(os.path.dirname(paths[0]), flush=True)
    if how == "exit":
        sys.exit(3)
    if how == "raise":
        raise SystemExit("uncaught")
    if how == "kill":
        os._exit(9)  # no atexit hooks: what a SIGKILL leaves
    """
)


@pytest.mark.parametrize("how", ["return", "exit", "raise"])
def test_no_temp_survives_normal_exit(tmp_path, how):
    base = tmp_path / "tmpdir"
    base.mkdir()
    src = str(tmp_path / "src.nii")
    nlv.save(nlv.Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5)), src)
    env = dict(os.environ, NILAZYVIEW_TMPDIR=str(base))
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, src, how], env=env, capture_output=True, text=True
    )
    assert res.returncode in (0, 1, 3), res.stderr
    folder = res.stdout.strip()
    assert folder.startswith(str(base))
    assert os.listdir(base) == []
    assert sorted(os.listdir(tmp_path)) == ["copy.nii", "src.nii", "tmpdir"]


def test_killed_process_folder_is_cleaned_by_next_run(tmp_path, monkeypatch):
    base = tmp_path / "tmpdir"
    base.mkdir()
    src = str(tmp_path / "src.nii")
    nlv.save(nlv.Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5)), src)
    env = dict(os.environ, NILAZYVIEW_TMPDIR=str(base))
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, src, "kill"], env=env, capture_output=True, text=True
    )
    assert res.returncode == 9, res.stderr
    left = os.listdir(base)
    assert len(left) == 1 and leftovers.owner_of(left[0])[1] == int(left[0].split("-")[2])
    # the next run (this process) cleans it when it makes its own folder
    monkeypatch.setenv("NILAZYVIEW_TMPDIR", str(base))
    monkeypatch.setattr(handoff, "_folder", None)
    monkeypatch.setattr(leftovers, "MIN_AGE_S", 0.0)
    img = nlv.Image(np.zeros((2, 2, 2), np.uint8))
    out = nlv.as_file(img)
    assert os.listdir(base) == [os.path.basename(os.path.dirname(out))]
    nlv.release(img)


def test_concurrent_folder_creation_makes_one_folder(private_tmpdir):
    """Threads racing for the first as_file share one private folder."""
    folders = set()

    def work():
        folders.add(handoff.temp_folder())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(folders) == 1
    assert os.listdir(private_tmpdir) == [os.path.basename(folders.pop())]
