"""Shared or hostile folders (issue 16, item 7).

* A gzip index cache folder owned by another user (mode 0777) is refused with
  one warning, and its files are never opened: on main, that user's symlink
  from an index name to ``/dev/zero`` made the victim's load die of
  ``MemoryError``. Run in a child (2 GiB address-space cap, timeout), as this
  user with a folder of uid 65534 and, where ``setpriv`` can switch users, as
  uid 65534 with a folder of root's.
* An index name that is a FIFO (in our own folder) never blocks.
* ``NILAZYVIEW_TMPDIR`` that is a symlink is not used (one warning).
* ``nilazyview view --dir`` replaces a planted symlink or another user's
  notebook by its own file, and refuses a folder others may write.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv
from nilazyview import cli

try:
    from nilazyview.fs import private
except ImportError:  # a version before these checks (to see the tests fail there)
    private = None
from nilazyview.fs.settings import temp_root
from nilazyview.sources import gzindex

REPO = os.path.dirname(os.path.dirname(os.path.abspath(nlv.__file__)))
NOBODY = 65534
SPACING = 64 * 1024

CHILD = textwrap.dedent(
    """
    import json, resource, sys, warnings
    resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
    import numpy as np
    import nilazyview as nlv
    path, want = sys.argv[1], sys.argv[2]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            img = nlv.load(path)
            got = [float(np.asarray(img.slicecopy[:, :, k]).sum()) for k in (30, 10, 35)]
            img.proxy.source.close()
            img = nlv.load(path)
            got += [float(np.asarray(img.slicecopy[:, :, k]).sum()) for k in (30, 10, 35)]
            outcome = "read"
        except BaseException as exc:
            outcome = type(exc).__name__ + ": " + str(exc)[:200]
            got = []
    ours = [str(w.message) for w in caught if "gzip indexes" in str(w.message)]
    print(json.dumps({"outcome": outcome, "sums": got, "warnings": ours}))
    """
)


def _volume(folder) -> tuple[str, list[float]]:
    data = np.random.default_rng(3).standard_normal((64, 64, 40), dtype=np.float32)
    path = os.path.join(folder, "v.nii.gz")
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    os.chmod(folder, 0o755)
    os.chmod(path, 0o644)
    sums = [float(data[:, :, k].sum()) for k in (30, 10, 35)]
    return path, sums * 2


def _run(prefix, path, cache, timeout=60) -> dict:
    env = dict(
        os.environ,
        PYTHONPATH=REPO,
        NILAZYVIEW_CACHE_DIR=cache,
        NILAZYVIEW_GZINDEX_SPACING=str(SPACING),
        NILAZYVIEW_GZ_MEMORY_BYTES="0",  # reads stay on the index
        HOME="/nonexistent",
    )
    res = subprocess.run(
        [*prefix, sys.executable, "-c", CHILD, path, ""],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd="/",
    )
    if res.returncode != 0 and "import" in res.stderr.lower() and prefix:
        pytest.skip(f"the other user cannot run this Python: {res.stderr[-300:]}")
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def _plant(cache_root: str, path: str, target: str, owner: int) -> None:
    folder = os.path.join(cache_root, "gzindex")
    os.makedirs(folder, exist_ok=True)
    name = gzindex.IndexKey.of(path).filename
    os.symlink(target, os.path.join(folder, name))
    for p in (cache_root, folder):
        os.chown(p, owner, owner)
        os.chmod(p, 0o777)


def _shared_base(tmp_path) -> str:
    base = str(tmp_path / "shared")
    os.mkdir(base)
    os.chmod(tmp_path, 0o755)
    os.chmod(base, 0o755)
    return base


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_another_users_cache_folder_is_refused_with_one_warning(tmp_path):
    base = _shared_base(tmp_path)
    path, sums = _volume(base)
    cache = os.path.join(base, "cache")
    _plant(cache, path, "/dev/zero", NOBODY)
    got = _run([], path, cache)
    assert got["outcome"] == "read", got
    np.testing.assert_allclose(got["sums"], sums, rtol=1e-4)
    assert len(got["warnings"]) == 1 and "belongs to uid 65534" in got["warnings"][0], got
    assert os.path.islink(os.path.join(cache, "gzindex", gzindex.IndexKey.of(path).filename))


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)
def test_root_owned_cache_folder_is_refused_for_another_user():
    import tempfile

    base = tempfile.mkdtemp(prefix="nlv-hostile-")  # not under tmp_path: that one is 0700
    try:
        os.chmod(base, 0o755)
        path, sums = _volume(base)
        cache = os.path.join(base, "cache")
        _plant(cache, path, "/dev/zero", 0)
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        got = _run(prefix, path, cache)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert got["outcome"] == "read", got
    np.testing.assert_allclose(got["sums"], sums, rtol=1e-4)
    assert len(got["warnings"]) == 1 and "belongs to uid 0" in got["warnings"][0], got


def test_fifo_in_place_of_an_index_never_blocks(tmp_path):
    base = _shared_base(tmp_path)
    path, sums = _volume(base)
    cache = os.path.join(base, "cache")
    folder = os.path.join(cache, "gzindex")
    os.makedirs(folder, mode=0o700)
    os.chmod(cache, 0o700)
    os.mkfifo(os.path.join(folder, gzindex.IndexKey.of(path).filename))
    got = _run([], path, cache, timeout=60)
    assert got["outcome"] == "read", got
    np.testing.assert_allclose(got["sums"], sums, rtol=1e-4)
    assert got["warnings"] == [], got


def test_tmpdir_that_is_a_symlink_is_not_used(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    monkeypatch.setenv("NILAZYVIEW_TMPDIR", str(link))
    if private is not None:
        private.reset_warnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert temp_root() != str(link)
        assert temp_root() != str(link)
    ours = [w for w in caught if issubclass(w.category, nlv.NilazyviewWarning)]
    assert len(ours) == 1 and "symbolic link" in str(ours[0].message)
    monkeypatch.setenv("NILAZYVIEW_TMPDIR", str(real))
    assert temp_root() == str(real)


@pytest.fixture
def image(tmp_path):
    path = str(tmp_path / "img.nii")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), path)
    return path


def test_view_dir_replaces_a_planted_symlink(tmp_path, image):
    folder = tmp_path / "nb"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (folder / "view-img.ipynb").symlink_to(victim)
    out = cli.write_notebook(image, str(folder))
    assert victim.read_text() == "precious"
    assert not os.path.islink(out) and json.load(open(out))["cells"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant another user's file")
def test_view_dir_replaces_another_users_notebook(tmp_path, image):
    folder = tmp_path / "nb"
    folder.mkdir()
    planted = folder / "view-img.ipynb"
    planted.write_text('{"cells": [{"source": "import os; os.system(...)"}]}')
    os.chown(planted, NOBODY, NOBODY)
    os.chmod(planted, 0o666)
    ino = os.stat(planted).st_ino
    out = cli.write_notebook(image, str(folder))
    st = os.stat(out)
    assert st.st_ino != ino and st.st_uid == os.geteuid()
    assert "os.system" not in open(out).read()


def test_view_dir_refuses_a_folder_others_may_write(tmp_path, image):
    folder = tmp_path / "open"
    folder.mkdir()
    os.chmod(folder, 0o777)
    with pytest.raises(cli.UserError, match="others may write"):
        cli.write_notebook(image, str(folder))
    os.chmod(folder, 0o1777)  # sticky, as /tmp: others cannot replace our file
    assert os.path.isfile(cli.write_notebook(image, str(folder)))


def test_fifo_as_the_image_path_is_refused(tmp_path):
    """A FIFO named like an image: refused at once, never waited on (child, timeout)."""
    fifo = str(tmp_path / "img.nii")
    os.mkfifo(fifo)
    code = textwrap.dedent(
        """
        import sys, nilazyview as nlv
        try:
            nlv.load(sys.argv[1])
        except nlv.ImageFileError as e:
            print("refused", e)
        """
    )
    env = dict(os.environ, PYTHONPATH=REPO)
    res = subprocess.run(
        [sys.executable, "-c", code, fifo], capture_output=True, text=True, env=env, timeout=60
    )
    assert res.returncode == 0, res.stderr[-1000:]
    assert "refused" in res.stdout and "not a regular file" in res.stdout
