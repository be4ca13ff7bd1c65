"""Forked children read correctly (issue 16, item 5).

On main, after the parent made one cold read, every forked child's cold read
blocked forever (the read pool's threads do not exist in a child), and a
parent thread inside a gzip read at fork time left the source lock held in
every child. Each case runs the children under ``multiprocessing`` with the
fork start method and a timeout.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading

import nibabel as nib
import numpy as np
import pytest
from conftest import drop_page_cache

import nilazyview as nlv
from nilazyview.sources import coldread

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


_INHERITED: dict = {}  # set before the fork: children use the parent's very objects


def _child_read(args):
    index, path = args
    img = _INHERITED["img"]
    if path is not None:
        drop_page_cache(path)  # the child's read is cold too: it needs the pool
    return np.asarray(img.slicecopy[index])


def _run_children(img, indices, path=None, n=4) -> list:
    ctx = mp.get_context("fork")
    _INHERITED["img"] = img
    pool = ctx.Pool(n)
    try:
        res = pool.map_async(_child_read, [(ix, path) for ix in indices])
        return res.get(timeout=30)  # a deadlock fails here instead of hanging
    finally:
        pool.terminate()
        pool.join()
        _INHERITED.clear()


@pytest.fixture
def volume(tmp_path):
    data = np.arange(64 * 80 * 48, dtype=np.float32).reshape(64, 80, 48)
    path = str(tmp_path / "v.nii")
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path, data


def test_children_after_a_cold_read_in_the_parent(volume):
    path, data = volume
    img = nlv.load(path)
    drop_page_cache(path)
    before = coldread.stats["cold"]
    np.testing.assert_array_equal(img.slicecopy[:, 40, :], data[:, 40, :])
    if coldread.stats["cold"] == before:
        pytest.skip("this file system does not report cold pages (RWF_NOWAIT)")
    indices = [(slice(None), k, slice(None)) for k in (3, 17, 40, 79)]
    got = _run_children(img, indices, path)
    for ix, arr in zip(indices, got, strict=True):
        np.testing.assert_array_equal(arr, data[ix])


@pytest.mark.filterwarnings("ignore:nilazyview. cannot spill")
def test_children_when_a_parent_thread_holds_the_gzip_lock(tmp_path, monkeypatch):
    # reads stay on the decompressor (no whole-stream copy), so they take the lock
    monkeypatch.setenv("NILAZYVIEW_GZ_MEMORY_BYTES", "0")
    monkeypatch.setenv("NILAZYVIEW_TMPDIR", str(tmp_path / "missing"))
    data = np.arange(40 * 30 * 20, dtype=np.int16).reshape(40, 30, 20)
    path = str(tmp_path / "v.nii.gz")
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[..., 3], data[..., 3])
    lock = _find_lock(img)
    held, release = threading.Event(), threading.Event()

    def hold():
        with lock:
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        got = _run_children(img, [(..., k) for k in (1, 5, 19)])
    finally:
        release.set()
        t.join()
    for k, arr in zip((1, 5, 19), got, strict=True):
        np.testing.assert_array_equal(arr, data[..., k])


def _find_lock(img):
    """The byte source's lock behind an image (whatever wraps the proxy)."""
    seen = set()
    todo = [img]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if type(obj).__name__ == "GzipSource":
            return obj._lock
        for value in getattr(obj, "__dict__", {}).values():
            if hasattr(value, "__dict__"):
                todo.append(value)
    raise AssertionError("no GzipSource found")
