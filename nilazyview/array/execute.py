"""Execute a :class:`~nilazyview.core.plan.ReadPlan` against a byte source."""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import numpy as np

from ..core.layout import DiskLayout
from ..core.pattern import PatternPlan
from ..core.plan import (
    Box,
    Chunk,
    ReadHeuristic,
    ReadPlan,
    box_offset,
    box_runs,
    plan_read,
    run_offsets,
)
from ..core.values import Scaling
from ..sources import ByteSource

_UNSCALED = Scaling()


def _box_slices(box: Box) -> tuple[slice, ...]:
    return tuple(
        slice(s, s + c * st, st) for s, c, st in zip(box.start, box.count, box.step, strict=True)
    )


def _read_box_into(
    layout: DiskLayout,
    box: Box,
    source: ByteSource,
    flat: np.ndarray,
    n_runs: int | None = None,
    offset: int | None = None,
) -> None:
    buf = memoryview(flat.view(np.uint8))
    if n_runs is None:
        n_runs = box_runs(layout, box).n_runs
    if n_runs == 1:  # the common single run: no offset table, no per-run loop
        source.read_into(box_offset(layout, box) if offset is None else offset, buf)
        return
    offsets, length = run_offsets(layout, box)
    source.read_runs(offsets, length, buf)


def _mapped(layout: DiskLayout, source: ByteSource) -> np.ndarray:
    """The whole stored array as a read-only view of the source's memory map."""
    return np.ndarray(
        layout.shape,
        layout.dtype,
        buffer=source.mapping(),
        offset=layout.offset,
        order=layout.order,
    )


@functools.lru_cache(maxsize=16)
def _no_map(heuristic: ReadHeuristic) -> ReadHeuristic:
    return replace(heuristic, mmap_min_runs=None)


def _pread_plan(layout: DiskLayout, index, heuristic: ReadHeuristic) -> ReadPlan:
    """The best plan for ``index`` without a memory map (a gather got no lease)."""
    return plan_read(layout, index, _no_map(heuristic))


def gather_into(layout: DiskLayout, source: ByteSource, index, scaling: Scaling, out) -> bool:
    """Gather ``index`` from the map into ``out`` under the source's lease; False: no lease."""
    if not source.begin_gather():
        return False
    try:
        scaling.apply(_mapped(layout, source)[index], out)
    finally:
        source.end_gather()
    return True


def read_box(layout: DiskLayout, box: Box, source: ByteSource, strategy: str) -> np.ndarray:
    """The raw stored values of ``box`` (on-disk dtype), as a new box-shaped array.

    ``"mmap"`` gathers under the source's lease, else reads with ``pread``.
    """
    if strategy == "mmap":
        out = np.empty(box.count, layout.dtype, order=layout.order)
        if gather_into(layout, source, _box_slices(box), _UNSCALED, out):
            return out
        plan = _pread_plan(layout, _box_slices(box), source.heuristic)
        return execute(plan, source, raw=True)
    flat = np.empty(int(np.prod(box.count)), layout.dtype)
    _read_box_into(layout, box, source, flat)
    return flat.reshape(box.count, order=layout.order)


def _direct_target(out: np.ndarray, chunk: Chunk, order: str) -> np.ndarray | None:
    """A flat view of the output region for ``chunk``, or None if it is not contiguous."""
    region = out[(*chunk.out_index, Ellipsis)]
    flags = region.flags
    if not (flags.f_contiguous if order == "F" else flags.c_contiguous):
        return None
    return region.reshape(-1, order=order)


def execute(
    plan: ReadPlan,
    source: ByteSource,
    scaling: Scaling | None = None,
    raw: bool = False,
) -> np.ndarray:
    """Read ``plan`` from ``source``: a new native-order array of ``plan.out_shape``.

    Values are scaled by ``scaling`` unless ``raw`` is True (stored values, native order).
    """
    layout = plan.layout
    scaling = _UNSCALED if scaling is None or raw else scaling
    out_dtype = scaling.out_dtype(layout.dtype)
    out = np.empty(plan.out_shape, out_dtype, order=layout.order)
    if plan.strategy == "empty" or out.size == 0:
        return out
    direct = (
        plan.strategy == "pread"
        and out_dtype == layout.dtype
        and scaling.is_identity
        and plan.post_is_trivial
    )
    if plan.box_nbytes <= plan.heuristic.chunk_bytes:
        # one piece (most slices): skip the chunking machinery
        if direct:
            flat = out.reshape(-1, order=layout.order)
            _read_box_into(layout, plan.box, source, flat, plan.runs.n_runs, plan.box_offset)
        elif plan.strategy == "mmap":  # one gather from the map, straight into out
            if not gather_into(layout, source, plan.stored_index, scaling, out):
                return execute(_pread_plan(layout, plan.index, plan.heuristic), source, scaling)
        else:
            scaling.apply(read_box(layout, plan.box, source, plan.strategy)[plan.post], out)
        return out
    scratch = None  # one raw buffer for every chunk: peak memory is out + one chunk
    for chunk in plan.chunks():
        if direct:
            target = _direct_target(out, chunk, layout.order)
            if target is not None:
                _read_box_into(layout, chunk.box, source, target)
                continue
        if plan.strategy == "pread":
            size = math.prod(chunk.box.count)
            if scratch is None or scratch.size < size:
                scratch = None
                scratch = np.empty(size, layout.dtype)
            flat = scratch[:size]
            _read_box_into(layout, chunk.box, source, flat)
            values = flat.reshape(chunk.box.count, order=layout.order)[chunk.post]
        elif plan.strategy == "mmap" and source.begin_gather():
            try:
                view = _mapped(layout, source)[_box_slices(chunk.box)][chunk.post]
                scaling.apply(view, out[(*chunk.out_index, Ellipsis)])
            finally:
                source.end_gather()
            continue
        else:
            values = read_box(layout, chunk.box, source, plan.strategy)[chunk.post]
        scaling.apply(values, out[(*chunk.out_index, Ellipsis)])
        del values
    return out


def execute_pattern(
    pattern: PatternPlan,
    index: tuple,
    first: int,
    source: ByteSource,
    scaling: Scaling,
    out_dtype: np.dtype,
) -> np.ndarray | None:
    """Read ``index``, matched by ``pattern`` at byte ``first``, as :func:`execute` would.

    ``scaling`` is the one to apply (the identity for stored values) and
    ``out_dtype`` its output type. None when ``pattern.kind`` is ``"general"``.
    """
    plan, kind = pattern.plan, pattern.kind
    layout = plan.layout
    order = layout.order
    if kind == "run":
        out = np.empty(plan.out_shape, out_dtype, order=order)
        direct = out_dtype == layout.dtype and scaling.is_identity
        stored = out if direct else np.empty(plan.out_shape, layout.dtype, order=order)
        source.read_into(first, memoryview(stored.reshape(-1, order=order).view(np.uint8)))
        if not direct:
            scaling.apply(stored, out)
        return out
    if kind == "gather":
        if not source.gather_is_warm(plan.n_runs, first, first + pattern.span):
            cold = source.cold_plan(plan_read(layout, index, plan.heuristic))
            return execute(cold, source, scaling)
        out = np.empty(plan.out_shape, out_dtype, order=order)
        if not gather_into(layout, source, index, scaling, out):
            return execute(_pread_plan(layout, index, plan.heuristic), source, scaling)
        return out
    return None
