"""The lazy-array protocol every proxy implements (cf. nibabel's array-proxy API)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from ..core.layout import DiskLayout
from ..core.plan import ReadPlan
from ..core.values import ValueMap


@runtime_checkable
class LazyArray(Protocol):
    """An array that reads only what an index needs.

    ``dtype`` is the type of the values read (scaled, native byte order);
    ``stored_dtype`` the type on disk. ``layout`` is the stored array's place in
    a byte stream when it has one (then :meth:`plan` gives byte plans and
    :meth:`stored_chunks` the stored bytes); ``value_map`` maps stored values to
    values when this library does it (None when another library does, as nibabel).
    """

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def ndim(self) -> int: ...

    @property
    def dtype(self) -> np.dtype: ...

    @property
    def stored_dtype(self) -> np.dtype: ...

    @property
    def order(self) -> Literal["F", "C"]:
        """Storage order: "F" when the first axis varies fastest on disk."""
        ...

    @property
    def layout(self) -> DiskLayout | None: ...

    @property
    def value_map(self) -> ValueMap | None: ...

    @property
    def name(self) -> str:
        """The file read (or a description), for messages and task names."""
        ...

    @property
    def why_no_plan(self) -> str:
        """Why :meth:`plan` gives None (empty when reads are planned), for messages."""
        ...

    def read(self, index=..., raw: bool = False) -> np.ndarray:
        """A new native-order array of ``values[index]`` (``raw``: stored values)."""
        ...

    def plan(self, index=...) -> ReadPlan | None:
        """The byte plan of ``index`` without reading, or None when reads are not planned."""
        ...

    def check_fresh(self) -> None:
        """Raise :class:`~nilazyview.StaleFileError` if a file changed since loading."""
        ...

    def stored_chunks(self, chunk_bytes: int) -> Iterator[memoryview]:
        """The stored bytes in storage order, about ``chunk_bytes`` at a time (needs a layout)."""
        ...


class ArrayLike:
    """``ndim``, ``array[index]`` and ``numpy.asarray(array)`` for a lazy array, from
    its ``shape`` and ``read`` (a mixin of the implementations below)."""

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index) -> np.ndarray:
        return self.read(index)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        arr = self.read()
        return arr if dtype is None else arr.astype(dtype, copy=False)
