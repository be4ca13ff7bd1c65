"""``img.slicecopy[...]``: always a new array; reads only the bytes it needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .core.indexing import canonical_index
from .core.plan import ReadPlan

if TYPE_CHECKING:
    from .image import Image


class _PlanView:
    def __init__(self, image: Image):
        self._image = image

    def __getitem__(self, index) -> ReadPlan:
        proxy = self._image.proxy
        if proxy is None:
            raise TypeError("this image has no file to plan reads from")
        plan = proxy.plan(index)
        if plan is None:
            raise TypeError(f"{proxy.name}: {proxy.why_no_plan}")
        return plan


class _RawView:
    def __init__(self, image: Image):
        self._image = image

    def __getitem__(self, index) -> np.ndarray:
        proxy = self._image.proxy
        if proxy is None:
            raise TypeError("this image was made in memory: it has no stored values")
        return proxy.read(index, raw=True)


class SliceCopy:
    """Index with numpy basic indexing; the result never shares memory with the image.

    On a proxied image only the needed bytes are read and the image stays a
    proxy; on an in-memory image the result is a copy of the array's slice.

    ``slicecopy.plan[index]`` returns the :class:`~nilazyview.core.plan.ReadPlan`
    (strategy, runs, bytes) without reading; ``slicecopy.raw[index]`` returns
    stored values without scaling.
    """

    def __init__(self, image: Image):
        self._image = image

    def __getitem__(self, index) -> np.ndarray:
        data = self._image.cached_data
        if data is None:
            return self._image.proxy.read(index)
        canonical_index(index, data.shape)  # the same indexing (and errors) as from the file
        out = np.array(data[index], copy=True)
        if not out.dtype.isnative:
            out = out.astype(out.dtype.newbyteorder("="))
        return out

    @property
    def plan(self) -> _PlanView:
        return _PlanView(self._image)

    @property
    def raw(self) -> _RawView:
        return _RawView(self._image)
