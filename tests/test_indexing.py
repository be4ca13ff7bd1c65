"""Property tests: every numpy basic index reads exactly what numpy gives.

Oracle: numpy's own basic indexing of the full array (``full[index]``),
including the result's shape and dtype, and the ``IndexError`` numpy raises.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nilazyview.array.bytes import ArrayProxy
from nilazyview.array.execute import execute
from nilazyview.core.indexing import canonical_index
from nilazyview.core.layout import DiskLayout
from nilazyview.core.plan import ReadHeuristic, plan_read
from nilazyview.sources import FileSource, GzipSource, MemorySource

HEURISTICS = {
    "default": ReadHeuristic(mmap_min_runs=None),
    "tiny-chunks": ReadHeuristic(run_cost_bytes=0, mmap_min_runs=None, chunk_bytes=8),
    "no-run-cost": ReadHeuristic(run_cost_bytes=0, mmap_min_runs=None),
    "huge-run-cost": ReadHeuristic(run_cost_bytes=2**40, mmap_min_runs=None, chunk_bytes=24),
}
FILE_HEURISTICS = {
    **HEURISTICS,
    # a pread run costs more than any file: gathering from a map always wins
    "mmap-always": ReadHeuristic(run_cost_bytes=2**40, mmap_min_runs=0),
    "mmap-tiny-chunks": ReadHeuristic(run_cost_bytes=2**40, mmap_min_runs=0, chunk_bytes=16),
    "mmap-default": ReadHeuristic(),
}

DTYPES = ["u1", "<i2", ">i2", "<f4", ">f8", ">c8", "<u8"]


@st.composite
def shapes(draw, max_dims=4):
    return tuple(draw(st.lists(st.integers(0, 6), min_size=1, max_size=max_dims)))


@st.composite
def basic_index(draw, shape):
    """A basic index, sometimes invalid (out-of-range ints, too many items, two ...)."""
    ndim = len(shape)
    n_items = draw(st.integers(0, ndim + 2))
    items = []
    used = 0
    for _ in range(n_items):
        size = shape[used] if used < ndim else 3
        kind = draw(st.sampled_from(["int", "slice", "slice", "none", "ellipsis"]))
        if kind == "int":
            items.append(draw(st.integers(-size - 2, size + 1)))
            used += 1
        elif kind == "slice":
            bound = st.one_of(st.none(), st.integers(-size - 4, size + 4))
            step = st.one_of(st.none(), st.integers(-4, 4).filter(bool))
            items.append(slice(draw(bound), draw(bound), draw(step)))
            used += 1
        elif kind == "none":
            items.append(None)
        else:
            items.append(Ellipsis)
    if draw(st.booleans()) and len(items) == 1:
        return items[0]  # a bare item, not a tuple
    return tuple(items)


def _full(shape, dtype, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    vals = rng.integers(-(2**31), 2**31, n)
    if dt.kind == "c":
        vals = vals + 1j * rng.integers(-1000, 1000, n)
    if dt.kind == "u":
        vals = np.abs(vals)
    return vals.astype(dt).reshape(shape)


def _numpy_or_error(full, index):
    try:
        return full[index], None
    except IndexError as exc:
        return None, exc


def _check(got_fn, full, index):
    want, err = _numpy_or_error(full, index)
    if err is not None:
        with pytest.raises(IndexError):
            got_fn(index)
        return
    got = got_fn(index)
    assert type(got) is np.ndarray
    assert got.shape == want.shape
    assert got.dtype == want.dtype.newbyteorder("=")
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, want)


def _memory_proxy(full, order, heuristic, offset=7):
    layout = DiskLayout(full.shape, full.dtype, offset, order)
    data = b"\xab" * offset + full.tobytes(order=order) + b"\xcd" * 5
    return ArrayProxy(layout, MemorySource(data, heuristic))


@st.composite
def case(draw):
    shape = draw(shapes())
    index = draw(basic_index(shape))
    return shape, index


@settings(max_examples=400, deadline=None)
@given(
    case(),
    st.sampled_from(["F", "C"]),
    st.sampled_from(sorted(HEURISTICS)),
    st.sampled_from(DTYPES),
)
def test_memory_source_matches_numpy(sc, order, hname, dtype):
    shape, index = sc
    full = _full(shape, dtype)
    proxy = _memory_proxy(full, order, HEURISTICS[hname])
    _check(proxy.read, full, index)


@settings(max_examples=150, deadline=None)
@given(case(), st.sampled_from(["F", "C"]))
def test_canonical_index_shape_and_errors(sc, order):
    """The canonical index has numpy's output shape and fails where numpy fails."""
    shape, index = sc
    full = np.zeros(shape, np.uint8)
    want, err = _numpy_or_error(full, index)
    if err is not None:
        with pytest.raises(IndexError):
            canonical_index(index, shape)
        return
    assert canonical_index(index, shape).out_shape == want.shape
    plan = plan_read(DiskLayout(shape, np.uint8, 0, order), index)
    assert plan.out_shape == want.shape


@pytest.fixture(scope="module")
def stored_files(tmp_path_factory):
    """One F- and one C-ordered array on disk, plain and gzipped, with an offset."""
    root = tmp_path_factory.mktemp("stored")
    shape = (5, 6, 4, 3)
    full = _full(shape, ">i4", seed=3)
    offset = 352
    out = {}
    for order in "FC":
        payload = b"\x11" * offset + full.tobytes(order=order)
        plain = root / f"a{order}.bin"
        plain.write_bytes(payload)
        gz = root / f"a{order}.bin.gz"
        gz.write_bytes(gzip.compress(payload))
        layout = DiskLayout(shape, full.dtype, offset, order)
        out[order] = (layout, str(plain), str(gz))
    return full, out


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    idx=basic_index((5, 6, 4, 3)),
    order=st.sampled_from(["F", "C"]),
    hname=st.sampled_from(sorted(FILE_HEURISTICS)),
)
def test_file_source_pread_and_mmap(stored_files, idx, order, hname):
    full, files = stored_files
    layout, plain, _ = files[order]
    src = FileSource(plain)
    src.heuristic = FILE_HEURISTICS[hname]
    try:
        proxy = ArrayProxy(layout, src)
        _check(proxy.read, full, idx)
    finally:
        src.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    idx=basic_index((5, 6, 4, 3)),
    order=st.sampled_from(["F", "C"]),
    hname=st.sampled_from(sorted(HEURISTICS)),
)
def test_gzip_source(stored_files, idx, order, hname):
    full, files = stored_files
    layout, _, gz = files[order]
    src = GzipSource(gz)
    src.heuristic = HEURISTICS[hname]
    try:
        _check(ArrayProxy(layout, src).read, full, idx)
    finally:
        src.close()


def test_mmap_strategy_is_really_used(stored_files):
    """With mmap allowed and many runs, the plan says mmap and reads correctly."""
    full, files = stored_files
    layout, plain, _ = files["F"]
    src = FileSource(plain)
    src.heuristic = FILE_HEURISTICS["mmap-always"]
    index = (slice(None, None, 2), 1, slice(None, None, -1))
    plan = plan_read(layout, index, src.heuristic)
    assert plan.strategy == "mmap"
    got = execute(plan, src)
    np.testing.assert_array_equal(got, full[index])
    assert got.flags.owndata or got.base is not None  # an array, not a view of the map
    assert not np.shares_memory(got, np.frombuffer(src.mapping(), np.uint8))
    src.close()


@pytest.mark.parametrize(
    "index",
    [
        (0, 0, 0, 0, 0),
        (Ellipsis, Ellipsis),
        (5,),
        (-6,),
        (slice(None), 6),
        (Ellipsis, -5),
        (np.array([0, 1]),),
        ([0, 1],),
        (True,),
        (1.0,),
    ],
    ids=repr,
)
def test_invalid_indices_raise_index_error(index):
    """Like numpy, out-of-range / too many / non-basic indices raise IndexError."""
    full = np.zeros((5, 6, 4), np.int16)
    proxy = _memory_proxy(full, "F", HEURISTICS["default"])
    with pytest.raises(IndexError):
        proxy.read(index)


def test_numpy_integer_and_index_objects():
    """np.int64, np.uint8 and objects with __index__ work as ints do in numpy."""

    class Idx:
        def __index__(self):
            return 2

    full = _full((5, 6, 4), "<f4")
    proxy = _memory_proxy(full, "F", HEURISTICS["default"])
    for index in [(np.int64(-1),), (np.uint8(3), Idx()), (slice(np.int32(1), Idx()),)]:
        np.testing.assert_array_equal(proxy.read(index), full[index])
