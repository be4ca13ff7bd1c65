"""nibabel interoperability: wrap any nibabel image, and hand images back to nibabel.

nibabel is imported only when these functions run; nilazyview does not need it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .array.nibabel import NibabelProxy, NilazyviewDataobj
from .image import Image
from .io.load import load
from .io.wrap import from_nibabel

if TYPE_CHECKING:
    import nibabel


def to_nibabel(img: Image) -> nibabel.Nifti1Image:
    """A nibabel NIfTI image of ``img``: proxy-backed while ``img`` is a proxy.

    The nibabel image reads through ``img``'s proxy (``dataobj`` slicing reads
    only the slab) and keeps the stored type, scaling, NIfTI header fields and
    file name. In-memory images hand over their array (not a copy). Same as
    :meth:`Image.to_nibabel`.
    """
    if not isinstance(img, Image):
        raise TypeError(f"expected a nilazyview Image, not {type(img).__name__}")
    return img.to_nibabel()


def as_image(obj: Any) -> Image:
    """An :class:`Image` from a path, an Image, a nibabel image or an array."""
    if isinstance(obj, Image):
        return obj
    if isinstance(obj, str | os.PathLike):
        return load(obj)
    if hasattr(obj, "dataobj") and hasattr(obj, "affine"):
        return from_nibabel(obj)
    if obj is None or isinstance(obj, bytes | dict):
        raise TypeError(f"cannot make an image of {type(obj).__name__}")
    arr = np.asanyarray(obj)
    if arr.dtype.kind in "OSUM" or (arr.dtype.kind == "V" and arr.dtype.names is None):
        raise TypeError(f"cannot make an image of {type(obj).__name__} ({arr.dtype} values)")
    return Image(arr)


__all__ = ["NibabelProxy", "NilazyviewDataobj", "as_image", "from_nibabel", "to_nibabel"]
