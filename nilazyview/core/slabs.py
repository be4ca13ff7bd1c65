"""Slabs along the last axis: the one loop behind every chunked copy, save and compare."""

from __future__ import annotations

import math
from collections.abc import Iterator


def slabs(shape: tuple[int, ...], itemsize: int, chunk_bytes: int) -> Iterator[tuple | type]:
    """Indices that cover an array of ``shape`` in slabs of about ``chunk_bytes`` each.

    Slabs run along the last axis (the slowest on disk for NIfTI), so each is one
    contiguous stretch of a Fortran-order file. A 0-d array is one slab, ``...``.
    """
    if not shape:
        yield Ellipsis
        return
    per = max(1, math.prod(shape[:-1]) * itemsize)
    step = max(1, chunk_bytes // per)
    for i in range(0, shape[-1], step):
        yield (Ellipsis, slice(i, i + step))
