"""Reads of ints-and-``:`` indices, planned once per pattern (nilazyview.pattern).

Oracles: numpy indexing of the array written (values, shape, dtype, IndexError),
numpy's ``ravel_multi_index`` for where an element lives in the file, and the
general planner for the strategy an index gets.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_indexing import DTYPES, FILE_HEURISTICS, _check, _full, _memory_proxy

from nilazyview.array.bytes import ArrayProxy
from nilazyview.core.layout import DiskLayout
from nilazyview.core.pattern import match_pattern, plan_pattern
from nilazyview.core.plan import PLAIN_FILE, ReadHeuristic, plan_read
from nilazyview.core.values import Scaling
from nilazyview.sources import FileSource, GzipSource, coldread


@st.composite
def pattern_case(draw, max_dims=5):
    """A shape and an index of ints (some negative, some out of range) and ``:``,
    sometimes written short: ``...`` for a run of ``:``, trailing ``:`` left out,
    a bare integer."""
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=max_dims)))
    items = [draw(st.one_of(st.just(slice(None)), st.integers(-n - 1, n))) for n in shape]
    form = draw(st.sampled_from(["full", "ellipsis", "short", "bare"]))
    if form == "ellipsis":
        lo = draw(st.integers(0, len(items)))
        hi = draw(st.integers(lo, len(items)))
        if all(it == slice(None) for it in items[lo:hi] if isinstance(it, slice)) and all(
            isinstance(it, slice) for it in items[lo:hi]
        ):
            items[lo:hi] = [Ellipsis]
    elif form == "short":
        while items and isinstance(items[-1], slice):
            items.pop()
    elif form == "bare" and isinstance(items[0], int):
        return shape, items[0]
    return shape, tuple(items)


def _named(index, shape) -> list:
    """The index written out: one int or ':' per axis (numpy's rules for ... and short)."""
    index = index if isinstance(index, tuple) else (index,)
    if Ellipsis in index:
        at = index.index(Ellipsis)
        fill = [slice(None)] * (len(shape) - len(index) + 1)
        index = (*index[:at], *fill, *index[at + 1 :])
    return [*index, *[slice(None)] * (len(shape) - len(index))]


@settings(max_examples=300, deadline=None)
@given(pattern_case(), st.sampled_from("FC"), st.sampled_from(DTYPES), st.integers(0, 9))
def test_first_byte_is_where_numpy_puts_the_element(case, order, dtype, offset):
    shape, index = case
    layout = DiskLayout(shape, np.dtype(dtype), offset, order)
    found = match_pattern(index, layout)
    named = _named(index, shape)
    assert len(named) == len(shape)
    if any(isinstance(i, int) and not -n <= i < n for i, n in zip(named, shape, strict=True)):
        assert found is None  # out of bounds: the general planner raises numpy's IndexError
        return
    assert np.zeros(shape)[index].shape == np.zeros(shape)[tuple(named)].shape
    assert found is not None
    pattern, first = found
    assert pattern == tuple(isinstance(i, int) for i in named)
    at = [i % n if isinstance(i, int) else 0 for i, n in zip(named, shape, strict=True)]
    flat = np.ravel_multi_index(at, shape, order=order)
    assert first == offset + flat * layout.dtype.itemsize


@pytest.mark.parametrize(
    "index",
    [
        (np.int64(1), slice(None), slice(None)),  # numpy integers: the general path
        (True, slice(None), slice(None)),
        (slice(0, None), slice(None), 1),
        (slice(None, None, 1), slice(None), 1),
        (None, 1, slice(None), slice(None)),
        (1, 1, 1, 1),  # too many
        (1, Ellipsis, 1, 1, 1),
        (Ellipsis, 1, Ellipsis),
        [1, 2, 3],
        (np.array([1]), slice(None), slice(None)),
    ],
    ids=repr,
)
def test_other_indices_take_the_general_path(index):
    assert match_pattern(index, DiskLayout((4, 5, 6), np.dtype("<f4"), 0, "F")) is None


@settings(max_examples=300, deadline=None)
@given(
    pattern_case(),
    st.sampled_from("FC"),
    st.sampled_from(sorted(FILE_HEURISTICS)),
    st.sampled_from(DTYPES),
    st.booleans(),
)
def test_memory_source_pattern_reads_match_numpy(case, order, hname, dtype, raw):
    shape, index = case
    full = _full(shape, dtype)
    proxy = _memory_proxy(full, order, FILE_HEURISTICS[hname])
    _check(lambda i: proxy.read(i, raw=raw), full, index)


@settings(max_examples=200, deadline=None)
@given(pattern_case(), st.sampled_from("FC"), st.sampled_from(["<i2", ">i2", "u1", "<f4"]))
def test_scaled_pattern_reads_equal_the_general_path(case, order, dtype):
    """Same values and dtype as the planner's own path, which tests against nibabel."""
    shape, index = case
    full = _full(shape, dtype)
    stored = _memory_proxy(full, order, PLAIN_FILE)
    scaling = Scaling(0.5, -3.0)
    proxy = ArrayProxy(stored.layout, stored.source, scaling)
    general = ArrayProxy(stored.layout, _NoPatterns(stored.source), scaling)
    want, err = _numpy_or_none(full, index)
    if err:
        with pytest.raises(IndexError):
            proxy.read(index)
        return
    got = proxy.read(index)
    ref = general.read(index)
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_allclose(got, want.astype(np.float64) * 0.5 - 3.0, rtol=1e-6)


class _NoPatterns:
    """A source wrapper that declines pattern reads: the general path only."""

    reads_patterns = False

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _numpy_or_none(full, index):
    try:
        return full[index], None
    except IndexError as exc:
        return None, exc


@settings(max_examples=300, deadline=None)
@given(
    pattern_case(max_dims=4),
    st.sampled_from("FC"),
    st.sampled_from(sorted(FILE_HEURISTICS)),
)
def test_the_pattern_plan_is_the_plan_of_every_index(case, order, hname):
    """What the pattern was planned at (ints 0) is what any of its indices gets."""
    shape, index = case
    layout = DiskLayout(shape, np.dtype("<i2"), 5, order)
    found = match_pattern(index, layout)
    if found is None:
        return
    heuristic = FILE_HEURISTICS[hname]
    shared = plan_pattern(layout, found[0], heuristic).plan
    own = plan_read(layout, index, heuristic)
    assert (shared.strategy, shared.n_runs, shared.nbytes) == (
        own.strategy,
        own.n_runs,
        own.nbytes,
    )
    assert shared.out_shape == own.out_shape
    assert shared.post_is_trivial == own.post_is_trivial


@settings(max_examples=200, deadline=None)
@given(
    pattern_case(max_dims=4),
    st.sampled_from("FC"),
    st.sampled_from(sorted(FILE_HEURISTICS)),
)
def test_kind_follows_from_the_plan(case, order, hname):
    shape, index = case
    layout = DiskLayout(shape, np.dtype("<f4"), 0, order)
    heuristic = FILE_HEURISTICS[hname]
    pattern = tuple(isinstance(i, int) for i in _named(index, shape))
    pp = plan_pattern(layout, pattern, heuristic)
    plan = pp.plan
    one_piece = plan.box_nbytes <= heuristic.chunk_bytes
    if one_piece and plan.strategy == "mmap":
        assert pp.kind == "gather"
    elif one_piece and plan.strategy == "pread" and plan.n_runs == 1 and plan.post_is_trivial:
        assert pp.kind == "run"
    else:
        assert pp.kind == "general"


def test_a_plane_stored_contiguously_is_one_run():
    """The last axis in F order (NIfTI) and the first in C order (MINC)."""
    nifti = DiskLayout((64, 64, 64), np.dtype("<f4"), 352, "F")
    minc = DiskLayout((64, 64, 64), np.dtype(">i2"), 0, "C")
    assert plan_pattern(nifti, (False, False, True), PLAIN_FILE).kind == "run"
    assert plan_pattern(minc, (True, False, False), PLAIN_FILE).kind == "run"
    # too big for one piece: the general path reads it in chunks
    assert plan_pattern(nifti, (False, False, True), ReadHeuristic(chunk_bytes=1024)).kind == (
        "general"
    )


@pytest.fixture
def stored(tmp_path):
    full = _full((6, 7, 40, 3), "<i2", seed=5)
    path = tmp_path / "a.bin"
    path.write_bytes(b"\0" * 11 + full.tobytes(order="F"))
    return full, DiskLayout(full.shape, full.dtype, 11, "F"), path


def test_cold_gather_becomes_hinted_pread(stored, monkeypatch):
    full, layout, path = stored
    probes, colds = [], []
    monkeypatch.setattr(coldread, "is_cold", lambda fd, offs: probes.append(offs) or True)
    src = FileSource(path)
    real = src.cold_plan
    src.cold_plan = lambda plan: colds.append(plan) or real(plan)
    proxy = ArrayProxy(layout, src)
    try:
        idx = (2, 3, slice(None), 1)  # 40 runs of 2 B: an mmap gather when warm
        assert proxy.plan(idx).strategy == "mmap"
        np.testing.assert_array_equal(proxy.read(idx), full[idx])
        # probed once before choosing (the hinted reads probe their own runs again)
        first = 11 + 2 * np.ravel_multi_index((2, 3, 0, 1), full.shape, order="F")
        last = 11 + 2 * np.ravel_multi_index((2, 3, 39, 1), full.shape, order="F")
        assert tuple(probes[0]) == (first, last)
        assert [p.strategy for p in colds] == ["mmap"]
    finally:
        src.close()


def test_warm_gather_reads_from_the_map(stored, monkeypatch):
    full, layout, path = stored
    monkeypatch.setattr(coldread, "is_cold", lambda fd, offs: False)
    src = FileSource(path)
    src.cold_plan = lambda plan: pytest.fail("a warm gather was re-planned")
    proxy = ArrayProxy(layout, src)
    try:
        for idx in [(2, 3, slice(None), 1), (-1, slice(None), slice(None), -3)]:
            np.testing.assert_array_equal(proxy.read(idx), full[idx])
    finally:
        src.close()


def test_gzip_sources_keep_the_general_path(stored, tmp_path):
    import gzip

    full, layout, path = stored
    gz = tmp_path / "a.bin.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    src = GzipSource(gz)
    assert not src.reads_patterns  # it may switch to whole-stream reads in prepare()
    proxy = ArrayProxy(layout, src)
    try:
        np.testing.assert_array_equal(proxy.read((slice(None), 1, 2, 0)), full[:, 1, 2, 0])
        assert proxy._patterns == {}
    finally:
        src.close()


def test_a_new_heuristic_replans_the_pattern(stored):
    full, layout, path = stored
    src = FileSource(path)
    proxy = ArrayProxy(layout, src)
    idx = (slice(None), 2, slice(None), 0)
    try:
        proxy.read(idx)
        src.heuristic = ReadHeuristic(mmap_min_runs=None)
        np.testing.assert_array_equal(proxy.read(idx), full[idx])
        (pattern,) = proxy._patterns.values()
        assert pattern.plan.heuristic is src.heuristic
        assert pattern.plan.strategy == "pread"
    finally:
        src.close()


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=pattern_case(max_dims=4))
def test_file_pattern_reads_match_numpy(tmp_path_factory, case):
    shape, index = case
    full = _full(shape, ">f8", seed=len(shape))
    path = tmp_path_factory.mktemp("p") / "a.bin"
    path.write_bytes(b"\1" * 3 + full.tobytes(order="C"))
    src = FileSource(path)
    try:
        _check(ArrayProxy(DiskLayout(shape, full.dtype, 3, "C"), src).read, full, index)
    finally:
        src.close()
