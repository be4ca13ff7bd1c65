"""The read planner: index + on-disk layout -> byte runs + in-memory post-slice.

Everything here is pure: no file is touched. :func:`plan_read` picks, among a
few candidate *boxes* (strided sub-arrays of the stored array), the one whose
runs of contiguous bytes cost least under a :class:`ReadHeuristic`; the
executor in :mod:`nilazyview.array.execute` then reads the box and applies ``post``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .indexing import AxisSelection, CanonicalIndex, canonical_index
from .layout import DiskLayout


class _computed_once:
    """Like ``functools.cached_property`` without its lock (3.11's costs microseconds).

    Plans are immutable, so two threads racing to compute a value get equal ones.
    """

    def __init__(self, fn):
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


@dataclass(frozen=True)
class ReadHeuristic:
    """Cost model for choosing how to read.

    Parameters
    ----------
    run_cost_bytes : int
        One more contiguous run costs as much as reading this many more bytes.
        Small for plain files (a ``pread`` call, ~1 us against ~25 B/ns of
        copying from the page cache), large for gzip (a seek decompresses).
    mmap_min_runs : int or None
        When the tight box has more runs than this, also consider gathering it
        from a read-only memory map, and do so when that costs less than the
        best ``pread`` plan. None: never (sources that cannot map).
    mmap_run_cost_bytes : int
        In a memory-map gather, one more run costs as much as this many bytes
        (a cache and TLB miss, no system call).
    chunk_bytes : int
        Boxes larger than this are read in pieces along their slowest axis, so
        conversion and scaling never hold more than one piece of raw data
        (peak memory of a scaled full read: the result plus one piece).
    latency_s, bandwidth, concurrency : float, float, int
        A network source's round trip (s), bytes per second and requests in
        flight (0, 0, 1 for local sources); :func:`network_heuristic` derives
        ``run_cost_bytes`` from them. Plans on a network report requests.

    The defaults were measured on a 512^3 float32 file (benchmarks/bench_slices.py).
    """

    run_cost_bytes: int = 32 * 1024
    mmap_min_runs: int | None = 8
    mmap_run_cost_bytes: int = 256
    chunk_bytes: int = 16 * 2**20
    latency_s: float = 0.0
    bandwidth: float = 0.0
    concurrency: int = 1

    @property
    def networked(self) -> bool:
        """True for a source whose requests cost a round trip."""
        return self.latency_s > 0 or self.bandwidth > 0


def network_heuristic(latency_s: float, bandwidth: float, concurrency: int = 16) -> ReadHeuristic:
    """The cost model of a network source: one more request costs a share of a round trip.

    With ``concurrency`` requests in flight, one more run costs about
    ``latency_s * bandwidth / concurrency`` bytes of transfer; runs closer than
    that are read through (one range request), the rest go out concurrently.
    """
    run_cost = max(4096, int(latency_s * bandwidth / max(1, concurrency)))
    return ReadHeuristic(
        run_cost_bytes=run_cost,
        mmap_min_runs=None,
        chunk_bytes=16 * 2**20,
        latency_s=latency_s,
        bandwidth=bandwidth,
        concurrency=concurrency,
    )


PLAIN_FILE = ReadHeuristic()
GZIP_STREAM = ReadHeuristic(run_cost_bytes=4 * 2**20, mmap_min_runs=None, chunk_bytes=16 * 2**20)


class Box(NamedTuple):
    """A strided sub-array of the stored array: per axis ``start``, ``count``, ``step``."""

    start: tuple[int, ...]
    count: tuple[int, ...]
    step: tuple[int, ...]

    def nbytes(self, layout: DiskLayout) -> int:
        return math.prod(self.count) * layout.dtype.itemsize

    def with_axis(self, ax: int, start: int, count: int) -> Box:
        starts, counts = list(self.start), list(self.count)
        starts[ax], counts[ax] = start, count
        return Box(tuple(starts), tuple(counts), self.step)


class Runs(NamedTuple):
    """Contiguous byte runs that, concatenated, are a box in storage order."""

    run_nbytes: int
    n_runs: int
    inner_axes: int  # storage axes covered inside one run

    @property
    def nbytes(self) -> int:
        return self.run_nbytes * self.n_runs


def _count_runs(
    shape: tuple[int, ...],
    axes: tuple[int, ...],
    start: tuple[int, ...] | list[int],
    count: tuple[int, ...] | list[int],
    step: tuple[int, ...] | list[int],
) -> tuple[int, int, int]:
    """(elements per run, number of runs, storage axes inside a run) of a box."""
    run = 1
    inner = 0
    for ax in axes:
        c = count[ax]
        if c == 1 or step[ax] == 1:
            run *= c
            inner += 1
            if not (start[ax] == 0 and c == shape[ax]):
                break
        else:
            break
    n = 1
    for ax in axes[inner:]:
        n *= count[ax]
    return run, n, inner


def box_runs(layout: DiskLayout, box: Box) -> Runs:
    """Count the contiguous runs that read ``box``."""
    run, n, inner = _count_runs(layout.shape, layout.storage_axes, box.start, box.count, box.step)
    return Runs(run * layout.dtype.itemsize, n, inner)


def box_offset(layout: DiskLayout, box: Box) -> int:
    """File offset of the first byte of ``box``."""
    off, stride, shape, start = layout.offset, layout.dtype.itemsize, layout.shape, box.start
    for ax in layout.storage_axes:
        off += start[ax] * stride
        stride *= shape[ax]
    return off


def run_offsets(layout: DiskLayout, box: Box) -> tuple[np.ndarray, int]:
    """File offsets of each run of ``box`` in storage order, and the run length."""
    runs = box_runs(layout, box)
    strides = layout.strides
    base = layout.offset + sum(s * st for s, st in zip(box.start, strides, strict=True))
    offsets = np.array([base], dtype=np.int64)
    if runs.n_runs == 1:
        return offsets, runs.run_nbytes
    for ax in layout.storage_axes[runs.inner_axes :]:
        steps = np.arange(box.count[ax], dtype=np.int64) * (box.step[ax] * strides[ax])
        # the faster axis varies fastest: new axis outermost
        offsets = (steps[:, None] + offsets[None, :]).ravel()
    return offsets, runs.run_nbytes


def _slice_of(start: int, count: int, step: int) -> slice:
    """The slice picking ``count`` elements from ``start`` by ``step``."""
    stop = start + step * count
    return slice(start, stop if stop >= 0 else None, step)


def _post_item(sel: AxisSelection, start: int, step: int) -> int | slice:
    first = (sel.start - start) // step
    if not sel.keep:
        return first
    return _slice_of(first, sel.count, sel.step // step if sel.count > 1 else 1)


@dataclass(frozen=True)
class Chunk:
    """One piece of a plan: a sub-box, its post-slice and where it goes in the output."""

    box: Box
    post: tuple
    out_index: tuple


@dataclass(frozen=True)
class ReadPlan:
    """How to read one index: which box of bytes, how, and the in-memory post-slice.

    Attributes
    ----------
    box : Box
        The strided sub-array read from disk.
    post : tuple
        Basic index applied to the box array to give the result.
    strategy : str
        ``"empty"`` (nothing to read), ``"pread"`` (contiguous runs, the box
        possibly widened to read through small gaps) or ``"mmap"`` (gather many
        small runs from a read-only memory map).

    Notes
    -----
    ``repr()`` is the dataclass's; ``str()`` and IPython display show
    :meth:`describe`.
    """

    layout: DiskLayout
    index: CanonicalIndex
    box: Box
    strategy: str
    heuristic: ReadHeuristic = field(repr=False)

    @_computed_once
    def runs(self) -> Runs:
        return box_runs(self.layout, self.box)

    @property
    def n_runs(self) -> int:
        """Contiguous byte runs read (0 for ``"empty"``)."""
        return 0 if self.strategy == "empty" else self.runs.n_runs

    @property
    def nbytes(self) -> int:
        """Bytes read from the stored array."""
        return 0 if self.strategy == "empty" else self.runs.nbytes

    @_computed_once
    def out_shape(self) -> tuple[int, ...]:
        return self.index.out_shape

    @_computed_once
    def box_offset(self) -> int:
        """File offset of the first byte of the box."""
        return box_offset(self.layout, self.box)

    @_computed_once
    def box_nbytes(self) -> int:
        """Bytes of the box (the raw data held at once when read in one piece)."""
        return self.box.nbytes(self.layout)

    @_computed_once
    def post(self) -> tuple:
        items = []
        for it in self.index.items:
            if it is None:
                items.append(None)
            else:
                items.append(_post_item(self.index.axes[it], self.box.start[it], self.box.step[it]))
        return tuple(items)

    @_computed_once
    def stored_index(self) -> tuple:
        """The index as a basic numpy index of the whole stored array (no box)."""
        items: list = []
        axes = self.index.axes
        for it in self.index.items:
            if it is None:
                items.append(None)
            else:
                sel = axes[it]
                items.append(_slice_of(sel.start, sel.count, sel.step) if sel.keep else sel.start)
        return tuple(items)

    @_computed_once
    def post_is_trivial(self) -> bool:
        """True when the box, reshaped, is already the result (no copy needed)."""
        for ax, sel in enumerate(self.index.axes):
            if sel.count != self.box.count[ax] or sel.reversed:
                return False
        return True

    @property
    def requests(self) -> int:
        """Range requests a network source sends for this plan (at most; cached bytes need none)."""
        if self.strategy == "empty":
            return 0
        part = 4 * 2**20  # a long run goes out as concurrent parts of this size
        return self.runs.n_runs * max(1, -(-self.runs.run_nbytes // part))

    def describe(self) -> str:
        """One line for humans: strategy, runs, bytes (and requests, on a network)."""
        total = self.layout.nbytes
        frac = self.nbytes / total if total else 0.0
        net = ""
        if self.heuristic.networked:
            net = f", <= {self.requests} request(s), {self.nbytes} B transferred"
        return (
            f"{self.strategy}: {self.n_runs} run(s) of {self.runs.run_nbytes} B, "
            f"{self.nbytes} B read ({frac:.1%} of the data){net} -> {self.out_shape}"
        )

    def __str__(self) -> str:
        return self.describe()

    def _repr_pretty_(self, p, cycle: bool) -> None:
        """IPython display (a notebook cell's value): the :meth:`describe` line."""
        p.text(self.describe())

    def chunks(self, max_bytes: int | None = None) -> Iterator[Chunk]:
        """Split the plan along the slowest box axis into pieces of ``max_bytes`` or less."""
        max_bytes = self.heuristic.chunk_bytes if max_bytes is None else max_bytes
        box, post = self.box, self.post
        out_full = tuple(
            slice(None) for it in self.index.items if it is None or self.index.axes[it].keep
        )
        big = [ax for ax in self.layout.storage_axes if box.count[ax] > 1]
        total = box.nbytes(self.layout)
        if self.strategy == "empty" or not big or total <= max_bytes:
            yield Chunk(box, post, out_full)
            return
        ax = big[-1]
        per_elem = total // box.count[ax]
        k = max(1, max_bytes // per_elem)
        sel = self.index.axes[ax]
        # box positions picked on this axis, in output order
        item = post[self.index.items.index(ax)]
        if isinstance(item, int):
            picked = np.array([item])
        else:
            picked = np.arange(box.count[ax])[item]
        out_pos = self._out_position(ax)
        for u in range(0, box.count[ax], k):
            v = min(u + k, box.count[ax])
            hit = np.nonzero((picked >= u) & (picked < v))[0]
            if not hit.size:
                continue
            j0, n = int(hit[0]), int(hit.size)
            sub = box.with_axis(ax, box.start[ax] + u * box.step[ax], v - u)
            sub_post = list(post)
            pos = self.index.items.index(ax)
            if sel.keep:
                step = item.step
                sub_post[pos] = _slice_of(int(picked[j0]) - u, n, step)
                out = list(out_full)
                out[out_pos] = slice(j0, j0 + n)
                out_index = tuple(out)
            else:
                sub_post[pos] = int(picked[j0]) - u
                out_index = out_full
            yield Chunk(sub, tuple(sub_post), out_index)

    def _out_position(self, ax: int) -> int:
        pos = 0
        for it in self.index.items:
            if it == ax:
                return pos
            if it is None or self.index.axes[it].keep:
                pos += 1
        return -1


def plan_read(
    layout: DiskLayout,
    index,
    heuristic: ReadHeuristic = PLAIN_FILE,
) -> ReadPlan:
    """Plan the read of ``index`` (any numpy basic index) from ``layout``.

    Returns the cheapest :class:`ReadPlan` under ``heuristic``: the ``pread``
    candidate box of least cost (bytes + runs * ``run_cost_bytes``), or an
    ``mmap`` gather of the tight box when that costs less.
    """
    cidx = index if isinstance(index, CanonicalIndex) else canonical_index(index, layout.shape)
    # the tight box, per axis: lowest position, count, |step| (1 for one element)
    lo: list[int] = []
    count: list[int] = []
    step: list[int] = []
    for s in cidx.axes:
        c, st = s.count, s.step
        if c > 1:
            if st < 0:
                lo.append(s.start + st * (c - 1))
                st = -st
            else:
                lo.append(s.start)
            step.append(st)
        else:
            lo.append(s.start)
            step.append(1)
        count.append(c)
    tight = Box(tuple(lo), tuple(count), tuple(step))
    if 0 in count:
        return ReadPlan(layout, cidx, tight, "empty", heuristic)
    best, best_cost, best_runs, tight_runs = _cheapest_box(
        layout, lo, count, step, heuristic.run_cost_bytes
    )
    mmap_min = heuristic.mmap_min_runs
    if mmap_min is not None and tight_runs.n_runs > mmap_min:
        gather = (tight_runs.run_nbytes + heuristic.mmap_run_cost_bytes) * tight_runs.n_runs
        if gather < best_cost:
            plan = ReadPlan(layout, cidx, tight, "mmap", heuristic)
            plan.__dict__["runs"] = tight_runs  # known already: prefill the cached property
            return plan
    plan = ReadPlan(layout, cidx, tight if best is None else best, "pread", heuristic)
    plan.__dict__["runs"] = best_runs
    return plan


def _cheapest_box(
    layout: DiskLayout, lo: list[int], count: list[int], step: list[int], run_cost: int
) -> tuple[Box | None, int, Runs, Runs]:
    """The candidate box of least ``pread`` cost (None: the tight box).

    Candidates, for m = 0..ndim: storage axes before m read whole, axis m read
    either from its lowest to its highest selected position (widened) or as
    selected, later axes as selected. Cost is (bytes + runs * ``run_cost``,
    bytes, runs), compared in that order, the first candidate winning ties;
    it is computed from prefix and suffix products rather than by building a
    box per candidate (this runs on every slice).
    Also returns the best cost, the best box's runs and the tight box's runs.
    """
    shape = layout.shape
    d = len(shape)
    axes = layout.storage_axes
    item = layout.dtype.itemsize
    # suf[j]: product of tight counts on storage axes j.., runs outside a run ending at j
    suf = [1] * (d + 1)
    for j in range(d - 1, -1, -1):
        suf[j] = suf[j + 1] * count[axes[j]]
    # walk[j]: (elements, first outer axis) of a run of the tight box starting at axis j
    walk: list[tuple[int, int]] = [(1, d)] * (d + 1)
    for j in range(d - 1, -1, -1):
        a = axes[j]
        c = count[a]
        if c == 1 or step[a] == 1:
            if lo[a] == 0 and c == shape[a]:
                r, k = walk[j + 1]
                walk[j] = (c * r, k)
            else:
                walk[j] = (c, j + 1)
        else:
            walk[j] = (1, j)
    r0, k0 = walk[0]
    tight_runs = Runs(r0 * item, suf[k0], k0)
    if tight_runs.n_runs == 1:
        # one run of the fewest bytes: no candidate beats it (every box holds the tight one)
        return None, tight_runs.run_nbytes + run_cost, tight_runs, tight_runs
    best_key = None
    best_pick = (0, False, r0, k0)
    full = 1  # elements in the full prefix axes 0..m-1
    for m in range(d + 1):
        if m == d:
            options: tuple[tuple[int, int, bool], ...] = ((full, d, False),)
        else:
            a = axes[m]
            span = step[a] * (count[a] - 1) + 1
            # widened: axis m read from lo to hi with step 1
            if lo[a] == 0 and span == shape[a]:
                r, k = walk[m + 1]
                wide = (full * span * r, k, True)
            else:
                wide = (full * span, m + 1, True)
            # tight: axis m and later as selected (a run goes on while axes are full)
            r, k = walk[m]
            options = (wide, (full * r, k, False))
        for run_elems, k, widen in options:
            n = suf[k]
            nbytes = run_elems * n * item
            key = (nbytes + n * run_cost, nbytes, n)
            if best_key is None or key < best_key:
                best_key, best_pick = key, (m, widen, run_elems, k)
        if m < d:
            full *= shape[axes[m]]
    assert best_key is not None
    m, widen, run_elems, k = best_pick
    best_runs = Runs(run_elems * item, suf[k], k)
    if m == 0 and not widen:
        return None, best_key[0], best_runs, tight_runs
    start, cnt, stp = list(lo), list(count), list(step)
    for ax in axes[:m]:
        start[ax], cnt[ax], stp[ax] = 0, shape[ax], 1
    if widen:
        a = axes[m]
        cnt[a], stp[a] = step[a] * (count[a] - 1) + 1, 1
    return Box(tuple(start), tuple(cnt), tuple(stp)), best_key[0], best_runs, tight_runs
