"""Reading a slab window at display resolution: strided read or block mean, and what it touched.

Two ways to show ``step`` x ``step`` voxels as one pixel (numbers: README, "The viewer"):

* ``"mean"``: read the whole window and average each block (no aliasing).
* ``"stride"``: ``img.slicecopy[a0:a1:s, b0:b1:s, k]``, one voxel per block (fewest bytes).

:func:`choose` takes the block mean unless the full read would touch many more file
pages than the strided one (:data:`STRIDE_TOUCH_BYTES`, from the read plans). For
a plane whose voxels are contiguous on disk the planner reads through the gaps of a
strided read anyway (a strided read of a 4096^2 axial slab of uint8 reads the same
16 MiB), so the mean is free in I/O; for a gathered plane (a sagittal slab of a
Fortran-order file: one run per voxel) the strided read touches ``step**2`` times
fewer bytes and runs, and is taken. The choice depends on the plane, the window and
the step, never on the slice index: neighbouring slices use the same method and grid.
"""

from __future__ import annotations

import math

import numpy as np

from nilazyview.core.plan import ReadPlan, run_offsets

STRIDE_TOUCH_BYTES = 32 * 2**20  # a full read touching more file pages than this ...
MAX_MEAN_BYTES = 256 * 2**20  # ... or reading more than this is read strided instead
PAGE = 4096


def window_index(base: tuple, axes: tuple[int, int], ranges, method: str) -> tuple:
    """The basic index of a window read: ``base`` (a slab index) with in-plane slices.

    ``ranges`` is ``((start, stop, step), (start, stop, step))`` for ``axes``;
    ``"mean"`` reads every voxel, ``"stride"`` one per step.
    """
    idx = list(base)
    for a, (start, stop, step) in zip(axes, ranges, strict=True):
        if a < len(idx):  # a 2D image has no third axis
            idx[a] = slice(start, stop, step if method == "stride" else 1)
    return tuple(idx)


def read_shape(ranges, method: str) -> tuple[int, int]:
    """The 2D shape a window read by ``method`` returns."""
    if method == "stride":
        return tuple(len(range(*r)) for r in ranges)
    return tuple(r[1] - r[0] for r in ranges)


def choose(full: ReadPlan | None, strided: ReadPlan | None, steps: tuple[int, int]) -> str:
    """``"mean"`` or ``"stride"`` for a window, from the plans of both reads.

    The strided read is taken when the full read would touch more than
    :data:`STRIDE_TOUCH_BYTES` of file pages and over 1.5 times the strided read's
    (a gathered plane: one run per voxel), or read more than :data:`MAX_MEAN_BYTES`.
    Without plans (in-memory data) the mean.
    """
    if tuple(steps) == (1, 1) or full is None or strided is None:
        return "mean"
    if full.nbytes > MAX_MEAN_BYTES:
        return "stride"
    pages, fewer = pages_estimate(full), pages_estimate(strided)
    return "stride" if pages * PAGE > STRIDE_TOUCH_BYTES and pages > 1.5 * fewer else "mean"


def pages_estimate(plan: ReadPlan, page: int = PAGE) -> int:
    """About the file pages ``plan`` touches, without listing its runs: the pages its
    span holds, or one per run of less than a page, whichever is fewer."""
    if plan.strategy == "empty" or plan.nbytes == 0:
        return 0
    layout, box = plan.layout, plan.box
    run = plan.runs.run_nbytes
    span = run + sum(
        (c - 1) * st * s for c, st, s in zip(box.count, box.step, layout.strides, strict=True)
    )
    return min(span // page + 2, plan.n_runs * -(-run // page))


def _accumulator(dtype: np.dtype, n: int) -> tuple[np.dtype, bool]:
    """A type that sums ``n`` values of ``dtype`` exactly (or float64), and whether the
    sums fit float32 exactly (< 2**24)."""
    if dtype.kind == "b":
        dtype = np.dtype(np.uint8)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        top = max(abs(int(info.min)), int(info.max)) * n
        for acc in (
            (np.int16, np.int32, np.int64)
            if dtype.kind == "i"
            else (np.uint16, np.uint32, np.uint64)
        ):
            if top <= np.iinfo(acc).max and np.dtype(acc).itemsize >= dtype.itemsize:
                return np.dtype(acc), top < 2**24
        return np.dtype(np.float64), False
    return np.dtype(np.float64), False


def _block_sums(a: np.ndarray, step: int, axis: int, acc: np.dtype) -> np.ndarray:
    """Sums of ``step``-long blocks along ``axis`` (the last block may be shorter).

    One strided add per offset in the block (whole-array operations: a few ms for
    16 M voxels, where a reduction over a short inner axis takes tens).
    """
    n = a.shape[axis]
    nblocks = -(-n // step)
    take = [slice(None)] * a.ndim
    shape = list(a.shape)
    shape[axis] = nblocks
    out = np.zeros(shape, acc)
    for k in range(min(step, n)):
        take[axis] = slice(k, None, step)
        part = a[tuple(take)]
        if part.shape[axis] == nblocks:
            out += part
        else:
            head = [slice(None)] * a.ndim
            head[axis] = slice(0, part.shape[axis])
            out[tuple(head)] += part
    return out


def block_sizes(n: int, step: int) -> np.ndarray:
    """Voxels in each ``step``-block of an axis of ``n`` (the last may be fewer)."""
    return np.minimum(step, n - np.arange(0, n, step))


def block_mean(arr: np.ndarray, steps: tuple[int, int]) -> np.ndarray:
    """Means of ``steps[0]`` x ``steps[1]`` blocks of a 2D array (last blocks may be partial).

    Integer and boolean data are summed exactly and divided once, so the result
    (float32) is the correctly rounded mean, whatever the order of summation;
    float64 data stays float64, complex data is averaged as magnitudes.
    """
    if tuple(steps) == (1, 1):
        return arr
    if arr.ndim == 2 and not arr.flags.c_contiguous and arr.T.flags.c_contiguous:
        return block_mean(arr.T, steps[::-1]).T  # a Fortran-order slab: add along its rows
    a = np.abs(arr) if np.iscomplexobj(arr) else arr
    acc, small = _accumulator(a.dtype, steps[0] * steps[1])
    out_dtype = np.float64 if a.dtype == np.float64 else np.float32
    sums = _block_sums(_block_sums(a, steps[0], 0, acc), steps[1], 1, acc)
    rows = block_sizes(a.shape[0], steps[0])[:, None]
    cols = block_sizes(a.shape[1], steps[1])[None, :]
    if small:  # exact sums in float32, one correctly rounded division
        return sums.astype(np.float32) / (rows * cols).astype(np.float32)
    return (sums / (rows * cols)).astype(out_dtype, copy=False)


def reduce(arr: np.ndarray, steps: tuple[int, int], method: str) -> np.ndarray:
    """The frame-resolution array of a window read by ``method`` (see :func:`window_index`)."""
    return block_mean(arr, steps) if method == "mean" else arr


def pages_touched(plan: ReadPlan | None, page: int = PAGE) -> int:
    """Distinct ``page``-byte file pages the runs of ``plan`` lie in (0 without a plan)."""
    if plan is None or plan.strategy == "empty" or plan.nbytes == 0:
        return 0
    offsets, length = run_offsets(plan.layout, plan.box)
    if offsets.size == 1:
        first = int(offsets[0]) // page
        return (int(offsets[0]) + length - 1) // page - first + 1
    if np.any(offsets[1:] < offsets[:-1]):  # storage order: sorted already
        offsets = np.sort(offsets)
    first = offsets // page
    last = (offsets + (length - 1)) // page
    shared = np.count_nonzero(first[1:] == last[:-1])
    return int(np.sum(last - first + 1) - shared)


EXACT_RUNS = 2**18  # pages of plans with more runs are counted on a part and scaled


def pages_counted(plan: ReadPlan | None, page: int = PAGE) -> tuple[int, bool]:
    """File pages ``plan`` touches and whether that is exact.

    Plans of more than :data:`EXACT_RUNS` runs (a gathered sagittal slab of a 4 GiB
    file: 1.8 M) are counted on their first slices along the slowest axis and
    scaled (listing every run costs ~50 ms a frame).
    """
    if plan is None or plan.n_runs <= EXACT_RUNS:
        return pages_touched(plan, page), True
    layout, box = plan.layout, plan.box
    ax = next(a for a in reversed(layout.storage_axes) if box.count[a] > 1)
    per = plan.n_runs // box.count[ax]
    k = max(1, EXACT_RUNS // max(1, per))
    if k >= box.count[ax]:
        return pages_touched(plan, page), True
    offsets, length = run_offsets(layout, box.with_axis(ax, box.start[ax], k))
    first = offsets // page
    last = (offsets + (length - 1)) // page
    part = int(np.sum(last - first + 1) - np.count_nonzero(first[1:] == last[:-1]))
    return round(part * box.count[ax] / k), False


def io_counts(plan: ReadPlan | None, itemsize: int, out_shape: tuple[int, ...]) -> dict:
    """What a window read wanted and touched: the I/O panel's and ``last_step``'s numbers.

    Returns ``wanted_bytes`` (the values the read returns), ``bytes`` (requested
    from the source by the plan, gaps read through included), ``pages`` and
    ``touched_bytes`` (4 KiB file pages the runs lie in; what a memory-mapped
    gather faults in; ``pages_exact`` False when counted on a part and scaled),
    ``runs`` and ``strategy``.
    """
    wanted = math.prod(out_shape) * itemsize
    if plan is None:
        return {"wanted_bytes": wanted, "bytes": 0, "pages": 0, "touched_bytes": 0,
                "runs": 0, "strategy": None, "pages_exact": True}  # fmt: skip
    pages, exact = pages_counted(plan)
    return {
        "pages_exact": exact,
        "wanted_bytes": wanted,
        "bytes": int(plan.nbytes),
        "pages": pages,
        "touched_bytes": pages * PAGE,
        "runs": int(plan.n_runs),
        "strategy": plan.strategy,
    }
