"""Where an array lives in a byte stream: shape, dtype, offset and axis order."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class DiskLayout:
    """An n-dimensional array stored contiguously in a byte stream.

    Parameters
    ----------
    shape : tuple of int
        Array shape as the user indexes it.
    dtype : numpy.dtype
        On-disk element type, byte order included.
    offset : int
        Byte offset of the first element.
    order : {"F", "C"}
        "F" when the first axis varies fastest on disk (NIfTI, Analyze),
        "C" when the last one does (MINC).
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int = 0
    order: Literal["F", "C"] = "F"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        if self.order not in ("F", "C"):
            raise ValueError(f"order must be 'F' or 'C', not {self.order!r}")
        if any(n < 0 for n in self.shape) or self.offset < 0:
            raise ValueError("shape and offset must be non-negative")

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the whole stored array (offset not included)."""
        return self.size * self.dtype.itemsize

    @property
    def storage_axes(self) -> tuple[int, ...]:
        """Axes from fastest- to slowest-varying on disk."""
        axes = self.__dict__.get("_storage_axes")
        if axes is None:  # computed once: the planner asks on every plan
            axes = tuple(range(self.ndim))
            axes = self.__dict__["_storage_axes"] = axes if self.order == "F" else axes[::-1]
        return axes

    @property
    def strides(self) -> tuple[int, ...]:
        """Byte stride of each axis (in axis order, not storage order)."""
        strides = self.__dict__.get("_strides")
        if strides is None:  # computed once: every read of an integer index needs it
            step, out = self.dtype.itemsize, [0] * self.ndim
            for ax in self.storage_axes:
                out[ax] = step
                step *= self.shape[ax]
            strides = self.__dict__["_strides"] = tuple(out)
        return strides
