"""Value maps: stored values -> the values a reader sees.

One protocol, :class:`ValueMap`, two maps: :class:`Scaling` (NIfTI/Analyze
``scl_slope``/``scl_inter``, one slope for the whole array, applied chunk by
chunk by the executor) and :class:`MincScaling` (MINC's clip to ``valid_range``
and map onto ``image-min``..``image-max``, which may vary per slice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .indexing import AxisSelection, CanonicalIndex, canonical_index


@runtime_checkable
class ValueMap(Protocol):
    """How stored values become values: the output type and the mapping itself."""

    @property
    def is_identity(self) -> bool:
        """True when values are the stored values (in native byte order)."""
        ...

    @property
    def linear(self) -> Scaling | None:
        """The map as one slope and intercept, or None when it is not linear."""
        ...

    def out_dtype(self, stored: np.dtype) -> np.dtype:
        """Type of the values of ``stored`` data."""
        ...

    def map(self, raw: np.ndarray, index, shape: tuple[int, ...]) -> np.ndarray:
        """Values of ``raw``, which is ``stored[index]`` of an array of ``shape``."""
        ...

    def describe(self) -> str:
        """One line for people (``nilazyview info``)."""
        ...


def _f32_exact(x: float) -> bool:
    return bool(np.isfinite(np.float32(x))) and float(np.float32(x)) == x


@dataclass(frozen=True)
class Scaling:
    """``value = stored * slope + inter``; identity when slope is 1 and inter 0."""

    slope: float = 1.0
    inter: float = 0.0

    @classmethod
    def from_header(cls, slope: float, inter: float) -> Scaling:
        """NIfTI rule: a slope of 0 or NaN (or inf) means unscaled."""
        slope, inter = float(slope), float(inter)
        if slope == 0 or not math.isfinite(slope):
            return cls()
        if not math.isfinite(inter):
            inter = 0.0
        return cls(slope, inter)

    @property
    def is_identity(self) -> bool:
        return self.slope == 1.0 and self.inter == 0.0

    @property
    def linear(self) -> Scaling:
        return self

    def describe(self) -> str:
        return "none" if self.is_identity else f"value = stored * {self.slope!r} + {self.inter!r}"

    def map(self, raw: np.ndarray, index=..., shape: tuple[int, ...] = ()) -> np.ndarray:
        out = np.empty(raw.shape, self.out_dtype(raw.dtype))
        self.apply(raw, out)
        return out

    def out_dtype(self, stored: np.dtype) -> np.dtype:
        """Smallest float type that holds scaled values of ``stored`` accurately.

        float32 for 8/16-bit integers when slope and inter are exact in float32
        and the scaled range fits, and for float32 data with such a slope of
        magnitude at most 1; float64 otherwise. Unscaled
        data keeps its type, in native byte order.
        """
        stored = np.dtype(stored)
        native = stored.newbyteorder("=") if stored.fields is None else stored
        if self.is_identity or stored.kind not in "iufc":
            return native
        exact32 = _f32_exact(self.slope) and _f32_exact(self.inter)
        if stored.kind == "c":
            return np.dtype(np.complex64 if stored.itemsize == 8 and exact32 else np.complex128)
        if stored.kind == "f":
            # |slope| > 1 could push finite stored values past float32's range
            small = abs(self.slope) <= 1.0
            return np.dtype(
                np.float32 if stored.itemsize <= 4 and exact32 and small else np.float64
            )
        if stored.itemsize <= 2 and exact32:
            info = np.iinfo(stored)
            peak = max(abs(info.min), abs(info.max)) * abs(self.slope) + abs(self.inter)
            if peak < float(np.finfo(np.float32).max):
                return np.dtype(np.float32)
        return np.dtype(np.float64)

    def apply(self, src: np.ndarray, dst: np.ndarray) -> None:
        """Write ``src * slope + inter`` into ``dst``, rounded once to ``dst``'s type.

        Computed in float64 (complex128), as nibabel does, a block of at most
        :data:`BLOCK_ITEMS` elements at a time, so float32 values equal
        ``np.float32`` of nibabel's float64 values and memory stays bounded.
        """
        if self.is_identity or dst.dtype.kind not in "fc":
            np.copyto(dst, src, casting="unsafe")
            return
        wide = np.dtype(np.complex128 if dst.dtype.kind == "c" else np.float64)
        if dst.dtype == wide:  # one rounding per operation, as nibabel
            _scale(src, dst, self.slope, self.inter)
            return
        scratch = np.empty(min(src.size, BLOCK_ITEMS), wide)
        for s, d in _blocks(src, dst, BLOCK_ITEMS):
            # the product in float64 (in dst's memory order: no strided loops), then
            # the sum, computed in float64 and rounded once as it is stored in dst
            order = "F" if d.flags.f_contiguous and not d.flags.c_contiguous else "C"
            tmp = scratch[: s.size].reshape(s.shape, order=order)
            np.multiply(s, self.slope, out=tmp, dtype=wide, casting="unsafe")
            if self.inter:
                np.add(tmp, self.inter, out=d, dtype=wide, casting="unsafe")
            else:  # no sum (as nibabel: a -0.0 product stays -0.0)
                np.copyto(d, tmp, casting="unsafe")


#: Elements scaled per float64 block (2 MiB of scratch).
BLOCK_ITEMS = 2**18


def _scale(src: np.ndarray, dst: np.ndarray, slope: float, inter: float) -> None:
    np.multiply(src, slope, out=dst, dtype=dst.dtype, casting="unsafe")
    if inter:
        np.add(dst, inter, out=dst, dtype=dst.dtype, casting="unsafe")


def _blocks(src: np.ndarray, dst: np.ndarray, items: int):
    """Pairs of matching sub-arrays of ``src`` and ``dst``, each of at most ``items``."""
    if src.size <= items:
        yield src, dst
        return
    # split the slowest axis of dst's memory order that has more than one element
    axes = range(src.ndim - 1, -1, -1) if dst.flags.f_contiguous else range(src.ndim)
    axis = next(ax for ax in axes if src.shape[ax] > 1)
    n = src.shape[axis]
    per = max(1, items // (src.size // n))
    for lo in range(0, n, per):
        sub = (slice(None),) * axis + (slice(lo, lo + per),)
        yield from _blocks(src[sub], dst[sub], items)


@dataclass(frozen=True)
class MincScaling:
    """nibabel's MINC value mapping: clip to ``valid`` then map onto ``imin``..``imax``.

    ``imin``/``imax`` have the shape of the first ``len(imin.shape)`` image dimensions
    (per-slice scaling), or are 0-d.
    """

    floating: bool
    valid: tuple[float, float]
    imin: np.ndarray
    imax: np.ndarray

    @property
    def is_identity(self) -> bool:
        return self.floating

    @property
    def linear(self) -> None:
        return None

    def describe(self) -> str:
        if self.floating:
            return "none (float data)"
        where = "whole image" if self.imin.ndim == 0 else f"per slice over {self.imin.shape}"
        return f"valid_range {list(self.valid)} -> image-min/image-max ({where})"

    def out_dtype(self, stored: np.dtype) -> np.dtype:
        return np.dtype(stored).newbyteorder("=") if self.floating else np.dtype(np.float64)

    def map(self, raw: np.ndarray, index, shape: tuple[int, ...]) -> np.ndarray:
        if self.floating:
            return raw.astype(raw.dtype.newbyteorder("="), copy=False)
        dmin, dmax = np.float64(self.valid[0]), np.float64(self.valid[1])
        out = np.clip(raw, dmin, dmax)
        imin, imax = self.imin, self.imax
        if imin.ndim:
            sub = _scale_index(canonical_index(index, shape), imin.ndim)
            imin, imax = imin[sub], imax[sub]
        slope = (imax - imin) / (dmax - dmin)
        inter = imin - dmin * slope
        out *= slope
        out += inter
        return out


def _as_slice(sel: AxisSelection) -> slice:
    stop = sel.start + sel.step * sel.count
    return slice(sel.start, stop if stop >= 0 else None, sel.step)


def _scale_index(cidx: CanonicalIndex, nscales: int) -> tuple:
    """Index into the scale arrays giving values that broadcast against ``stored[index]``."""
    parts: list = []
    for it in cidx.items:
        if it is None:
            parts.append(None)
        elif it < nscales:
            sel = cidx.axes[it]
            parts.append(_as_slice(sel) if sel.keep else sel.start)
        elif cidx.axes[it].keep:
            parts.append(None)
    return tuple(parts)
