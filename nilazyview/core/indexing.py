"""Reduce a numpy basic index to one canonical selection per axis."""

from __future__ import annotations

import operator
from typing import NamedTuple

import numpy as np


class AxisSelection(NamedTuple):
    """The elements chosen on one axis: ``start + step * k`` for ``k < count``.

    ``keep`` is False for an integer index, whose axis is dropped from the result.
    """

    start: int
    step: int
    count: int
    keep: bool = True

    @property
    def lo(self) -> int:
        """Smallest selected position (``start`` when ``count`` is 0)."""
        return (
            self.start + self.step * (self.count - 1)
            if self.step < 0 and self.count
            else self.start
        )

    @property
    def hi(self) -> int:
        """One past the largest selected position."""
        if not self.count:
            return self.lo
        return (self.start if self.step < 0 else self.start + self.step * (self.count - 1)) + 1

    @property
    def reversed(self) -> bool:
        return self.step < 0 and self.count > 1


class CanonicalIndex(NamedTuple):
    """An index over ``shape``: one :class:`AxisSelection` per axis, plus new axes.

    ``items`` lists, in output order, an axis number for each indexed axis and
    ``None`` for each inserted new axis.
    """

    shape: tuple[int, ...]
    axes: tuple[AxisSelection, ...]
    items: tuple[int | None, ...]

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(
            1 if it is None else self.axes[it].count
            for it in self.items
            if it is None or self.axes[it].keep
        )


def _as_int(obj) -> int | None:
    if isinstance(obj, bool | np.bool_):
        return None
    try:
        return operator.index(obj)
    except TypeError:
        return None


def _expand(index: tuple, ndim: int) -> list:
    """``index`` with its Ellipsis (or the missing trailing axes) as full slices."""
    n_ellipsis = sum(1 for it in index if it is Ellipsis)
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    n_real = sum(1 for it in index if it is not None and it is not Ellipsis)
    if n_real > ndim:
        raise IndexError(
            f"too many indices for array: array is {ndim}-dimensional, but {n_real} were indexed"
        )
    expanded: list = []
    for it in index:
        if it is Ellipsis:
            expanded.extend([slice(None)] * (ndim - n_real))
        else:
            expanded.append(it)
    if not n_ellipsis:
        expanded.extend([slice(None)] * (ndim - n_real))
    return expanded


def canonical_index(index, shape: tuple[int, ...]) -> CanonicalIndex:
    """Canonicalise a basic numpy index for an array of ``shape``.

    Raises ``IndexError`` exactly where numpy basic indexing would, and for
    anything that is not basic indexing (arrays, lists, booleans).
    """
    if not isinstance(index, tuple):
        index = (index,)
    ndim = len(shape)
    if len(index) == ndim and not any(it is None or it is Ellipsis for it in index):
        expanded = index  # the common case: one item per axis
    else:
        expanded = _expand(index, ndim)

    axes: list[AxisSelection] = []
    items: list[int | None] = []
    for it in expanded:
        if it is None:
            items.append(None)
            continue
        ax = len(axes)
        size = shape[ax]
        if isinstance(it, slice):
            if it.start is None and it.stop is None and it.step is None:
                axes.append(AxisSelection(0, 1, size))
                items.append(ax)
                continue
            try:
                start, stop, step = it.indices(size)
            except TypeError:
                raise IndexError(
                    "slice indices must be integers or None or have an __index__ method"
                ) from None
            axes.append(AxisSelection(start, step, len(range(start, stop, step))))
        else:
            i = it if type(it) is int else _as_int(it)
            if i is None:
                raise IndexError(
                    "slicecopy supports basic indexing only (integers, slices, Ellipsis, None); "
                    f"got {type(it).__name__}"
                )
            if not -size <= i < size:
                raise IndexError(f"index {i} is out of bounds for axis {ax} with size {size}")
            axes.append(AxisSelection(i % size, 1, 1, keep=False))
        items.append(ax)
    return CanonicalIndex(tuple(shape), tuple(axes), tuple(items))


def simple_box(cidx: CanonicalIndex) -> tuple[tuple, tuple]:
    """(box, post) with ``stored[box][post] == stored[index]`` for the index of ``cidx``.

    ``box`` holds only integers and slices with non-negative bounds and a positive
    step (what any reader handles); ``post`` reverses negative steps and inserts
    new axes on the (small) box-shaped result.
    """
    box: list = []
    kept: dict[int, slice] = {}
    for ax, sel in enumerate(cidx.axes):
        if not sel.keep:
            box.append(sel.start)
            continue
        step = abs(sel.step) if sel.count > 1 else 1
        box.append(slice(sel.lo, sel.hi, step) if sel.count else slice(0, 0))
        kept[ax] = slice(None, None, -1) if sel.reversed else slice(None)
    post = tuple(None if it is None else kept[it] for it in cidx.items if it is None or it in kept)
    return tuple(box), post
