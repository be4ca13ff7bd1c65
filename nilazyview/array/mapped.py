"""A lazy array of stored values plus a value map (MINC's per-slice scaling, say)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np

from ..core.layout import DiskLayout
from ..core.plan import ReadPlan
from ..core.values import ValueMap
from .protocol import ArrayLike, LazyArray


class MappedArray(ArrayLike):
    """Values of ``raw`` (a :class:`LazyArray` read as stored values) through ``value_map``.

    Used where the map cannot run chunk by chunk inside the executor (it depends
    on the index, as MINC's per-slice ``image-min``/``image-max``).
    """

    def __init__(self, raw: LazyArray, value_map: ValueMap):
        self.raw = raw
        self.scaling = value_map

    @property
    def shape(self) -> tuple[int, ...]:
        return self.raw.shape

    @property
    def stored_dtype(self) -> np.dtype:
        return self.raw.stored_dtype

    @property
    def dtype(self) -> np.dtype:
        return self.scaling.out_dtype(self.stored_dtype)

    @property
    def order(self) -> Literal["F", "C"]:
        return self.raw.order

    @property
    def layout(self) -> DiskLayout | None:
        return self.raw.layout

    @property
    def value_map(self) -> ValueMap:
        return self.scaling

    @property
    def name(self) -> str:
        return self.raw.name

    @property
    def why_no_plan(self) -> str:
        return self.raw.why_no_plan

    def plan(self, index=...) -> ReadPlan | None:
        return self.raw.plan(index)

    def check_fresh(self) -> None:
        self.raw.check_fresh()

    def stored_chunks(self, chunk_bytes: int) -> Iterator[memoryview]:
        return self.raw.stored_chunks(chunk_bytes)

    def read(self, index=..., raw: bool = False) -> np.ndarray:
        values = self.raw.read(index, raw=True)
        return values if raw else self.scaling.map(values, index, self.shape)

    def __repr__(self) -> str:
        return f"MappedArray({self.name!r}, shape={self.shape}, dtype={self.dtype})"
