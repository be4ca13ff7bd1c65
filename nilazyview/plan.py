"""The read planner: index + on-disk layout -> byte runs + in-memory post-slice.

Everything here is pure: no file is touched. :func:`plan_read` picks, among a
few candidate *boxes* (strided sub-arrays of the stored array), the one whose
runs of contiguous bytes cost least under a :class:`ReadHeuristic`; the
executor in :mod:`nilazyview.execute` then reads the box and applies ``post``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .indexing import AxisSelection, CanonicalIndex, canonical_index
from .layout import DiskLayout


@dataclass(frozen=True)
class ReadHeuristic:
    """Cost model for choosing how to read.

    Parameters
    ----------
    run_cost_bytes : int
        One more contiguous run costs as much as reading this many more bytes.
        Small for plain files (a ``pread``), large for gzip (a seek decompresses).
    mmap_min_runs : int or None
        With more runs than this, gather from a read-only memory map instead
        of issuing ``pread`` calls. None: never (sources that cannot map).
    chunk_bytes : int
        Boxes larger than this are read in pieces along their slowest axis, so
        conversion and scaling never hold more than one piece of raw data.
    """

    run_cost_bytes: int = 32 * 1024
    mmap_min_runs: int | None = 64
    chunk_bytes: int = 64 * 2**20


PLAIN_FILE = ReadHeuristic()
GZIP_STREAM = ReadHeuristic(run_cost_bytes=4 * 2**20, mmap_min_runs=None, chunk_bytes=64 * 2**20)


@dataclass(frozen=True)
class Box:
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


@dataclass(frozen=True)
class Runs:
    """Contiguous byte runs that, concatenated, are a box in storage order."""

    run_nbytes: int
    n_runs: int
    inner_axes: int  # storage axes covered inside one run

    @property
    def nbytes(self) -> int:
        return self.run_nbytes * self.n_runs


def box_runs(layout: DiskLayout, box: Box) -> Runs:
    """Count the contiguous runs that read ``box``."""
    run = layout.dtype.itemsize
    inner = 0
    for ax in layout.storage_axes:
        if box.count[ax] == 1 or box.step[ax] == 1:
            run *= box.count[ax]
            inner += 1
            if not (box.start[ax] == 0 and box.count[ax] == layout.shape[ax]):
                break
        else:
            break
    outer = layout.storage_axes[inner:]
    return Runs(run, math.prod(box.count[ax] for ax in outer), inner)


def run_offsets(layout: DiskLayout, box: Box) -> tuple[np.ndarray, int]:
    """File offsets of each run of ``box`` in storage order, and the run length."""
    runs = box_runs(layout, box)
    strides = layout.strides
    base = layout.offset + sum(s * st for s, st in zip(box.start, strides, strict=True))
    offsets = np.array([base], dtype=np.int64)
    for ax in layout.storage_axes[runs.inner_axes :]:
        steps = np.arange(box.count[ax], dtype=np.int64) * (box.step[ax] * strides[ax])
        # the faster axis varies fastest: new axis outermost
        offsets = (steps[:, None] + offsets[None, :]).ravel()
    return offsets, runs.run_nbytes


def _slice_of(start: int, count: int, step: int) -> slice:
    """The slice picking ``count`` elements from ``start`` by ``step``."""
    stop = start + step * count
    return slice(start, stop if stop >= 0 else None, step)


def _tight(sel: AxisSelection) -> tuple[int, int, int]:
    step = abs(sel.step) if sel.count > 1 else 1
    return sel.lo, sel.count, step


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
        ``"empty"`` (nothing to read), ``"pread"`` (contiguous runs) or
        ``"mmap"`` (gather many small runs from a read-only mapping).
    """

    layout: DiskLayout
    index: CanonicalIndex
    box: Box
    strategy: str
    heuristic: ReadHeuristic = field(repr=False)

    @property
    def runs(self) -> Runs:
        return box_runs(self.layout, self.box)

    @property
    def n_runs(self) -> int:
        return 0 if self.strategy == "empty" else self.runs.n_runs

    @property
    def nbytes(self) -> int:
        """Bytes read from the stored array."""
        return 0 if self.strategy == "empty" else self.runs.nbytes

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.index.out_shape

    @property
    def post(self) -> tuple:
        items = []
        for it in self.index.items:
            if it is None:
                items.append(None)
            else:
                items.append(_post_item(self.index.axes[it], self.box.start[it], self.box.step[it]))
        return tuple(items)

    @property
    def post_is_trivial(self) -> bool:
        """True when the box, reshaped, is already the result (no copy needed)."""
        for ax, sel in enumerate(self.index.axes):
            if sel.count != self.box.count[ax] or sel.reversed:
                return False
        return True

    def describe(self) -> str:
        """One line for humans: strategy, runs, bytes."""
        total = self.layout.nbytes
        frac = self.nbytes / total if total else 0.0
        return (
            f"{self.strategy}: {self.n_runs} run(s) of {self.runs.run_nbytes} B, "
            f"{self.nbytes} B read ({frac:.1%} of the data) -> {self.out_shape}"
        )

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


def _candidates(layout: DiskLayout, sels: tuple[AxisSelection, ...]) -> Iterator[Box]:
    tight = [_tight(s) for s in sels]
    order = layout.storage_axes
    for m in range(layout.ndim + 1):
        for widen_m in (True, False):
            parts = list(tight)
            for ax in order[:m]:
                parts[ax] = (0, layout.shape[ax], 1)
            if m < layout.ndim and widen_m:
                s = sels[order[m]]
                parts[order[m]] = (s.lo, s.hi - s.lo, 1)
            yield Box(*(tuple(p[i] for p in parts) for i in range(3)))


def plan_read(
    layout: DiskLayout,
    index,
    heuristic: ReadHeuristic = PLAIN_FILE,
) -> ReadPlan:
    """Plan the read of ``index`` (any numpy basic index) from ``layout``.

    Returns the cheapest :class:`ReadPlan` under ``heuristic``.
    """
    cidx = index if isinstance(index, CanonicalIndex) else canonical_index(index, layout.shape)
    sels = cidx.axes
    tight = Box(*(tuple(p[i] for p in map(_tight, sels)) for i in range(3)))
    if any(s.count == 0 for s in sels):
        return ReadPlan(layout, cidx, tight, "empty", heuristic)

    def cost(box: Box) -> tuple[int, int, int]:
        r = box_runs(layout, box)
        return (r.nbytes + r.n_runs * heuristic.run_cost_bytes, r.nbytes, r.n_runs)

    best = min(_candidates(layout, sels), key=cost)
    if (
        heuristic.mmap_min_runs is not None
        and box_runs(layout, best).n_runs > heuristic.mmap_min_runs
    ):
        return ReadPlan(layout, cidx, tight, "mmap", heuristic)
    return ReadPlan(layout, cidx, best, "pread", heuristic)
