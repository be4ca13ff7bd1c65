"""Plans made once per *pattern* of integers and full slices.

``img.slicecopy[:, :, k]``, ``[..., t]``, the viewer's slabs and most notebook
code index with integers, ``:`` and ``...`` only. For such an index the planner's choice (box shape,
strategy, runs) depends on which axes hold integers, never on their values:
an integer selects one element whatever it is. So the pattern is planned once
with :func:`~nilazyview.core.plan.plan_read`, and each read then only needs the file
offset of its first byte, computed by :func:`match_pattern`.

Pure: no file is touched. :mod:`nilazyview.array.bytes` executes pattern plans.
"""

from __future__ import annotations

from dataclasses import dataclass

from .layout import DiskLayout
from .plan import ReadHeuristic, ReadPlan, plan_read

_FULL = slice(None)


def match_pattern(index, layout: DiskLayout) -> tuple[tuple[bool, ...], int] | None:
    """``(pattern, first byte)`` of an index of ints, ``:`` and one ``...``, else None.

    ``pattern`` is True on the axes indexed by an integer; ``first byte`` is the
    file offset of the element at those integers and 0 on the other axes. None
    for any other index (and for an integer out of bounds: the general planner
    reports that), so the caller falls back to :func:`plan_read`.
    """
    shape = layout.shape
    ndim = len(shape)
    if index.__class__ is not tuple:
        index = (index,)
    strides = layout.strides
    first = layout.offset
    pattern = [False] * ndim  # axes not named (after the last item) are ':'
    ax = 0
    ellipsis = False
    for it in index:
        if it.__class__ is int:
            if ax >= ndim:
                return None
            size = shape[ax]
            if it < 0:
                it += size
                if it < 0:
                    return None
            elif it >= size:
                return None
            first += it * strides[ax]
            pattern[ax] = True
            ax += 1
        elif it.__class__ is slice and it == _FULL:
            if ax >= ndim:
                return None
            ax += 1
        elif it is Ellipsis and not ellipsis:
            ellipsis = True
            rest = ndim - (len(index) - 1)  # the axes no other item names
            if rest < 0:
                return None  # too many items: numpy's IndexError from the general path
            ax += rest
        else:
            return None
    return tuple(pattern), first


@dataclass(frozen=True)
class PatternPlan:
    """The plan shared by every index of one pattern.

    Attributes
    ----------
    plan : ReadPlan
        The plan with every integer 0 (strategy, runs, bytes, output shape).
    kind : str
        ``"run"``: one contiguous run that is the result as stored (read it
        straight into the output); ``"gather"``: a memory-map gather of the
        index itself; ``"general"``: anything else (many runs, a post-slice,
        or too large to read in one piece), left to the general path.
    span : int
        Bytes from the first to the last element read.
    """

    plan: ReadPlan
    kind: str
    span: int


def plan_pattern(
    layout: DiskLayout, pattern: tuple[bool, ...], heuristic: ReadHeuristic
) -> PatternPlan:
    """Plan ``pattern`` (True: an integer on that axis, False: ``:``)."""
    index = tuple(0 if is_int else _FULL for is_int in pattern)
    plan = plan_read(layout, index, heuristic)
    one_piece = plan.box_nbytes <= heuristic.chunk_bytes
    if not one_piece or plan.strategy == "empty":
        kind = "general"
    elif plan.strategy == "pread" and plan.n_runs == 1 and plan.post_is_trivial:
        kind = "run"  # the box is the result: its start is at the integers
    elif plan.strategy == "mmap":
        kind = "gather"  # the tight box: the index itself, gathered from the map
    else:
        kind = "general"
    span = sum(
        (n - 1) * stride
        for n, stride, is_int in zip(layout.shape, layout.strides, pattern, strict=True)
        if not is_int
    )
    return PatternPlan(plan, kind, span)
