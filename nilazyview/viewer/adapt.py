"""What the viewer can show: nilazyview Images, paths, nibabel images, numpy arrays.

Everything becomes a :class:`nilazyview.Image` (nibabel images through
:func:`nilazyview.from_nibabel`).
"""

from __future__ import annotations

import math
import os

import numpy as np

from nilazyview import handoff
from nilazyview.adapters import as_image
from nilazyview.core.plan import ReadPlan
from nilazyview.image import Image


def _is_nibabel_image(obj) -> bool:
    return hasattr(obj, "dataobj") and hasattr(obj, "affine") and hasattr(obj, "get_fdata")


def to_image(obj):
    """The viewable image for ``obj`` (path, Image, nibabel image or numpy array).

    Raises
    ------
    TypeError
        For any other kind of object, or arrays with fewer than 2 dimensions.
    """
    if isinstance(obj, Image | str | os.PathLike | np.ndarray) or _is_nibabel_image(obj):
        img = as_image(obj)
    else:
        raise TypeError(
            f"cannot view an object of type {type(obj).__name__}: give a file path, "
            "a nilazyview Image, a nibabel image or a numpy array"
        )
    if len(img.shape) < 2:
        raise TypeError(f"cannot view an image of shape {img.shape}: it needs 2 or more axes")
    if math.prod(img.shape) == 0:
        raise TypeError(f"cannot view an empty image of shape {img.shape}")
    if np.dtype(img.dtype).kind not in "biufc":
        raise TypeError(f"cannot view an image of dtype {img.dtype}")
    return img


def check_files(img, always: bool = False) -> None:
    """Raise :class:`~nilazyview.StaleFileError` if a proxied image's files changed or went.

    In-memory images are checked too when ``always``.
    """
    if img.is_proxy or always:
        handoff.check_files(img)


def slab_index(shape: tuple[int, ...], axis: int, index: int, volume: int) -> tuple:
    """The basic index reading slice ``index`` of spatial ``axis`` in flat ``volume``."""
    idx: list = [slice(None)] * len(shape)
    if axis < len(shape):
        idx[axis] = index
    extra = shape[3:]
    if extra:  # past the last volume (a longer layer's), the last one
        volume = min(max(0, int(volume)), math.prod(extra) - 1)
        idx[3:] = (int(i) for i in np.unravel_index(volume, extra))
    return tuple(idx)


def spatial_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The first three axes, padded with 1s."""
    return (*tuple(shape[:3]), *(1,) * max(0, 3 - len(shape)))


def n_volumes(shape: tuple[int, ...]) -> int:
    """How many 3D volumes: the product of the axes after the third."""
    return math.prod(shape[3:])


def slab_plan(img, index: tuple) -> ReadPlan | None:
    """The byte plan of reading ``index`` from ``img``, or None when it has none.

    None for images made in memory and for files read through nibabel or h5py.
    """
    return img.read_plan(index)
