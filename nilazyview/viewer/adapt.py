"""What the viewer can show: nilazyview Images, paths, nibabel images, numpy arrays.

Everything becomes an object with the :class:`nilazyview.Image` surface the
viewer uses: ``shape``, ``dtype``, ``affine``, ``is_proxy``, ``dirty``,
``filename``, ``slicecopy[...]`` and ``slicecopy.plan[...]``.
"""

from __future__ import annotations

import math
import os

import numpy as np

import nilazyview
from nilazyview.errors import StaleFileError
from nilazyview.sources import FileIdentity


class _NibSliceCopy:
    def __init__(self, owner: NibabelImage):
        self._owner = owner

    def __getitem__(self, index) -> np.ndarray:
        nimg = self._owner.nib
        cached = getattr(nimg, "_fdata_cache", None)
        if cached is not None:
            return np.array(cached[index], copy=True)
        return np.array(nimg.dataobj[index], copy=True)

    @property
    def plan(self):
        raise TypeError("nibabel images have no read plan")


class NibabelImage:
    """Adapter: a nibabel image seen through the nilazyview Image surface.

    Slices read ``img.dataobj[...]`` (partial reads for proxies) or the
    cached ``get_fdata`` array once the image holds one.
    """

    def __init__(self, nimg):
        self.nib = nimg
        aff = nimg.affine
        self.affine = np.eye(4) if aff is None else np.asarray(aff, dtype=np.float64)
        self.header = nimg.header
        self.filename = nimg.get_filename()
        self.proxy = None
        self.dirty = False
        self._identity = None
        if self.filename and os.path.exists(self.filename):
            self._identity = FileIdentity.of(self.filename)
        self.slicecopy = _NibSliceCopy(self)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.nib.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.nib.get_data_dtype()

    @property
    def is_proxy(self) -> bool:
        import nibabel

        return nibabel.is_proxy(self.nib.dataobj) and not self.nib.in_memory

    def get_data(self) -> np.ndarray:
        return self.nib.get_fdata()

    def check_files(self) -> None:
        if self._identity is None:
            return
        try:
            now = FileIdentity.of(self.filename)
        except FileNotFoundError:
            raise StaleFileError(f"{self.filename}: file was removed after loading") from None
        changed = self._identity.differences(now)
        if changed:
            raise StaleFileError(
                f"{self.filename}: file changed on disk after loading ({', '.join(changed)})"
            )


def _is_nibabel_image(obj) -> bool:
    return hasattr(obj, "dataobj") and hasattr(obj, "affine") and hasattr(obj, "get_fdata")


def to_image(obj):
    """The viewable image for ``obj`` (path, Image, nibabel image or numpy array).

    Raises
    ------
    TypeError
        For any other kind of object, or arrays with fewer than 2 dimensions.
    """
    if isinstance(obj, nilazyview.Image):
        img = obj
    elif isinstance(obj, str | os.PathLike):
        img = nilazyview.load(obj)
    elif _is_nibabel_image(obj):
        img = NibabelImage(obj)
    elif isinstance(obj, np.ndarray):
        img = nilazyview.Image(obj)
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


def state_of(img) -> str:
    """``"proxy"``, ``"in memory"`` or ``"dirty"`` (an in-memory image without a file is
    ``"in memory"``: it has nothing to differ from)."""
    if img.is_proxy:
        return "proxy"
    if img.dirty and getattr(img, "filename", None):
        return "dirty"
    return "in memory"


def check_files(img, always: bool = False) -> None:
    """Raise :class:`~nilazyview.StaleFileError` if a proxied image's files changed or went.

    In-memory images are checked too when ``always``.
    """
    if not (img.is_proxy or always):
        return
    if isinstance(img, NibabelImage):
        img.check_files()
        return
    snap = getattr(img, "snapshot", None)
    if snap is None:
        return
    for role, ident in snap.identity.items():
        path = img.files.get(role)
        if ident is None or path is None:
            continue
        try:
            now = FileIdentity.of(path)
        except FileNotFoundError:
            raise StaleFileError(f"{path}: file was removed after loading") from None
        changed = ident.differences(now)
        if changed:
            raise StaleFileError(
                f"{path}: file changed on disk after loading ({', '.join(changed)} differ); "
                "load it again"
            )


def slab_index(shape: tuple[int, ...], axis: int, index: int, volume: int) -> tuple:
    """The basic index reading slice ``index`` of spatial ``axis`` in flat ``volume``."""
    idx: list = [slice(None)] * len(shape)
    if axis < len(shape):
        idx[axis] = index
    extra = shape[3:]
    if extra:
        idx[3:] = (int(i) for i in np.unravel_index(volume, extra))
    return tuple(idx)


def spatial_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The first three axes, padded with 1s."""
    return (*tuple(shape[:3]), *(1,) * max(0, 3 - len(shape)))


def n_volumes(shape: tuple[int, ...]) -> int:
    """How many 3D volumes: the product of the axes after the third."""
    return math.prod(shape[3:])
