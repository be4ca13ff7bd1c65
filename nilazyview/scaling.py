"""Linear read scaling (``scl_slope``, ``scl_inter``) and its output dtype."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
        """Write ``src * slope + inter`` into ``dst`` (computed in ``dst``'s type)."""
        if self.is_identity or dst.dtype.kind not in "fc":
            np.copyto(dst, src, casting="unsafe")
            return
        np.multiply(src, self.slope, out=dst, dtype=dst.dtype, casting="unsafe")
        if self.inter:
            np.add(dst, self.inter, out=dst, dtype=dst.dtype, casting="unsafe")
