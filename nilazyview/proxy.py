"""ArrayProxy: an array on disk that reads only what an index needs."""

from __future__ import annotations

import numpy as np

from .execute import execute
from .layout import DiskLayout
from .plan import ReadPlan, plan_read
from .scaling import Scaling
from .sources import ByteSource


class ArrayProxy:
    """Lazy array: a :class:`DiskLayout` in a :class:`ByteSource`, with read scaling.

    Pickles as its layout, scaling and the source's opener arguments.
    """

    def __init__(self, layout: DiskLayout, source: ByteSource, scaling: Scaling | None = None):
        self.layout = layout
        self.source = source
        self.scaling = scaling or Scaling()

    @property
    def shape(self) -> tuple[int, ...]:
        return self.layout.shape

    @property
    def ndim(self) -> int:
        return self.layout.ndim

    @property
    def dtype(self) -> np.dtype:
        """Type of the scaled values returned."""
        return self.scaling.out_dtype(self.layout.dtype)

    def plan(self, index=...) -> ReadPlan:
        return plan_read(self.layout, index, self.source.heuristic)

    def read(self, index=..., raw: bool = False) -> np.ndarray:
        """A new array of ``stored[index]``, scaled unless ``raw``."""
        self.source.check_fresh()
        return execute(self.plan(index), self.source, self.scaling, raw=raw)

    __getitem__ = read

    def __array__(self, dtype=None, copy=None):
        arr = self.read()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __reduce__(self):
        return (ArrayProxy, (self.layout, self.source, self.scaling))

    def __repr__(self) -> str:
        return f"ArrayProxy({self.source!r}, shape={self.shape}, dtype={self.dtype})"
