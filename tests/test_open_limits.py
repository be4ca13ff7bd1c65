"""The smaller open limits of issue 16 (item 9), each fixed or measured.

* ``save`` to a path that is a symbolic link writes through to its target
  (atomically, in the target's folder); the link stays.
* A persisted gzip index whose source file was deleted is pruned by the next
  index save (it holds raw voxel windows of that file).
* ``nilazyview view`` removes its temporary notebook folder when JupyterLab exits.
"""

from __future__ import annotations

import os
import subprocess
import types

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv
from nilazyview import cli
from nilazyview.sources import gzindex


def test_save_to_a_symlink_writes_through_to_its_target(tmp_path):
    target_dir = tmp_path / "data"
    target_dir.mkdir()
    target = target_dir / "real.nii"
    nib.save(nib.Nifti1Image(np.zeros((3, 4, 5), np.float32), np.eye(4)), str(target))
    link = tmp_path / "link.nii"
    link.symlink_to(target)
    data = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    nlv.save(nlv.from_array(data) if hasattr(nlv, "from_array") else _image(data), str(link))
    assert link.is_symlink() and os.readlink(link) == str(target)
    np.testing.assert_array_equal(np.asarray(nib.load(str(target)).dataobj), data)
    assert sorted(os.listdir(target_dir)) == ["real.nii"]  # no partial left anywhere
    assert sorted(os.listdir(tmp_path)) == ["data", "link.nii"]


def _image(data):
    return nlv.Image(data, np.eye(4))


def _write_gz(path, seed):
    data = np.random.default_rng(seed).standard_normal((64, 64, 96), dtype=np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))


@pytest.mark.filterwarnings("ignore:nilazyview. cannot spill")
def test_index_of_a_deleted_source_is_pruned(tmp_path, monkeypatch):
    pytest.importorskip("rapidgzip")
    monkeypatch.setenv("NILAZYVIEW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NILAZYVIEW_GZINDEX_SPACING", str(64 * 1024))
    monkeypatch.setenv("NILAZYVIEW_GZ_MEMORY_BYTES", "0")
    monkeypatch.setenv("NILAZYVIEW_TMPDIR", str(tmp_path / "missing"))
    gzindex.reset_state()
    folder = tmp_path / "cache" / "gzindex"
    paths = [tmp_path / f"v{i}.nii.gz" for i in range(2)]
    for i, p in enumerate(paths):
        _write_gz(p, i)
    names = [gzindex.IndexKey.of(p).filename for p in paths]

    def read_and_close(p):
        img = nlv.load(p)
        for k in (90, 30, 95):
            img.slicecopy[:, :, k]
        img.proxy.source.close()  # saves the index

    read_and_close(paths[0])
    assert names[0] in os.listdir(folder)
    os.unlink(paths[0])
    read_and_close(paths[1])
    kept = os.listdir(folder)
    assert names[1] in kept and names[0] not in kept
    gzindex.reset_state()


def test_view_removes_its_temporary_notebook_folder(tmp_path, monkeypatch):
    path = str(tmp_path / "img.nii")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), path)
    seen = {}

    def fake_call(cmd):
        seen["nb"] = cmd[3]
        assert os.path.isfile(cmd[3])
        return 0

    monkeypatch.setattr(subprocess, "call", fake_call)
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: types.SimpleNamespace())
    args = types.SimpleNamespace(file=path, dir=None, print_only=False, no_browser=True, port=None)
    assert cli.cmd_view(args) == 0
    assert not os.path.exists(os.path.dirname(seen["nb"]))
