"""Cold-cache reads (nilazyview.coldread): probes, hints, thread-pool reads.

The pool and the hinted paths must give exactly what serial reads give; numpy
indexing of the array written is the oracle. No timing is asserted.
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from conftest import drop_page_cache

import nilazyview as nlv
from nilazyview.core.plan import run_offsets
from nilazyview.errors import TruncatedDataError
from nilazyview.sources import coldread

SHAPE = (24, 20, 16, 30)


@pytest.fixture
def vol(tmp_path):
    data = np.random.default_rng(0).integers(-1000, 1000, SHAPE).astype(np.int16)
    path = tmp_path / "f4d.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path, data


def test_pool_reads_equal_serial(vol):
    path, _ = vol
    size = os.path.getsize(path)
    rng = np.random.default_rng(1)
    length = 37
    offsets = np.sort(rng.choice(size - length, 500, replace=False)).astype(np.int64)
    fd = os.open(path, os.O_RDONLY)
    try:
        serial = bytearray(length * len(offsets))
        for i, off in enumerate(offsets.tolist()):
            serial[i * length : (i + 1) * length] = os.pread(fd, length, off)
        pooled = bytearray(len(serial))
        coldread.read_runs(fd, offsets, length, memoryview(pooled), lambda *a: AssertionError())
    finally:
        os.close(fd)
    assert pooled == serial


def test_pool_short_read_raises(vol):
    path, _ = vol
    img = nlv.load(path)
    src = img.proxy.source
    size = os.path.getsize(path)
    offsets = np.arange(0, 40, dtype=np.int64) * 100 + (size - 3000)
    out = bytearray(200 * len(offsets))
    with pytest.raises(TruncatedDataError, match="truncated"):
        coldread.read_runs(src.handle(), offsets, 200, memoryview(out), src._short)


INDEXES = [
    (5, 7, 3, slice(None)),  # voxel time series: mmap plan of 30 runs
    (slice(None), 4, slice(None), 10),  # middle axis
    (slice(None), slice(None, None, 2), 3, slice(2, 29, 3)),
    (7, slice(None), slice(None), slice(None)),  # first axis: many tiny runs
    (Ellipsis, 12),
]


@pytest.mark.parametrize("idx", INDEXES)
def test_forced_cold_path_matches_numpy(vol, monkeypatch, idx):
    path, data = vol
    seen = []

    def cold(fd, offsets):
        seen.append(len(offsets))
        return True

    monkeypatch.setattr(coldread, "is_cold", cold)
    img = nlv.load(path)
    got = img.slicecopy[idx]
    np.testing.assert_array_equal(got, data[idx])
    plan = img.slicecopy.plan[idx]
    if plan.n_runs >= coldread.MIN_RUNS:
        assert seen


def test_cold_mmap_plan_with_many_runs_keeps_the_gather(vol, monkeypatch):
    path, data = vol
    monkeypatch.setattr(coldread, "is_cold", lambda fd, offsets: True)
    monkeypatch.setattr(coldread, "MAX_PREAD_RUNS", 4)
    img = nlv.load(path)
    idx = (slice(None), 3, slice(None), slice(None))
    plan = img.slicecopy.plan[idx]
    assert plan.strategy == "mmap"
    assert img.proxy.source.prepare(plan)[0] is plan
    np.testing.assert_array_equal(img.slicecopy[idx], data[idx])


def test_cold_mmap_plan_becomes_pread(vol, monkeypatch):
    path, _ = vol
    monkeypatch.setattr(coldread, "is_cold", lambda fd, offsets: True)
    img = nlv.load(path)
    plan = img.slicecopy.plan[5, 7, 3, :]
    assert plan.strategy == "mmap"
    new_plan, src = img.proxy.source.prepare(plan)
    assert new_plan.strategy == "pread"
    assert new_plan.box == plan.box
    assert src is img.proxy.source


def test_warm_plans_are_untouched(vol, monkeypatch):
    path, data = vol
    monkeypatch.setattr(coldread, "is_cold", lambda fd, offsets: False)
    monkeypatch.setattr(coldread, "read_runs", lambda *a: pytest.fail("pool used on a warm plan"))
    img = nlv.load(path)
    for idx in INDEXES:
        plan = img.slicecopy.plan[idx]
        assert img.proxy.source.prepare(plan)[0] is plan
        np.testing.assert_array_equal(img.slicecopy[idx], data[idx])


def test_probe_offsets_are_first_and_last_bytes(vol):
    path, _ = vol
    img = nlv.load(path)
    for idx in INDEXES:
        plan = img.slicecopy.plan[idx]
        offsets, length = run_offsets(plan.layout, plan.box)
        first, last = coldread.probe_offsets(plan.layout, plan.box)
        assert first == offsets[0]
        itemsize = plan.layout.dtype.itemsize
        assert last == offsets[-1] + length - itemsize


def test_real_probe_sees_dropped_cache(vol):
    if not coldread._supported:
        pytest.skip("RWF_NOWAIT is not available here")
    path, data = vol
    drop_page_cache(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        if not coldread.is_cold(fd, [os.path.getsize(path) - 1]):
            pytest.skip("the page cache could not be dropped for this file")
        img = nlv.load(path)
        np.testing.assert_array_equal(img.slicecopy[5, 7, 3, :], data[5, 7, 3, :])
        np.testing.assert_array_equal(img.slicecopy[:, 4, :, 10], data[:, 4, :, 10])
        assert not coldread.is_cold(fd, [352 + 2 * (5 + 7 * 24 + 3 * 24 * 20)])
    finally:
        os.close(fd)


def test_advise_merges_close_runs(monkeypatch):
    calls = []
    monkeypatch.setattr(coldread, "_ADVISE", lambda fd, off, n, how: calls.append((off, n)))
    offsets = np.array([0, 100, 5000, 10**6, 10**6 + 10], dtype=np.int64)
    coldread.advise(3, offsets, 10)
    page = coldread._PAGE
    assert calls == [(0, 5010), (10**6 // page * page, 10**6 + 20 - 10**6 // page * page)]
