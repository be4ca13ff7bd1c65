"""Viewer layers: a stat map, label map or image drawn over the base, on its own grid.

A :class:`Layer` never loads whole. For each frame the base's sampling grid (its
voxels, or the display-resolution grid of a zoomed-out view: one point per frame
pixel, at the centre of the base voxels that pixel shows) is mapped through both
affines into the layer's voxels (:mod:`nilazyview.core.resample`), only the layer's
bounding box of that plane is read through ``layer.img.slicecopy``, and the values
are interpolated: trilinear for ``stat`` and ``image``, nearest for ``labels``; NaN
outside the layer's field of view (drawn transparent). Sampled values are cached per
(volume, plane, grid), so moving the threshold or opacity redraws without a read.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from nilazyview.core import resample
from nilazyview.image import Image

from .adapt import n_volumes, spatial_shape, to_image
from .cache import SlabCache
from .lut import as_lut

KINDS = ("stat", "labels", "image")
DEFAULT_OPACITY = {"stat": 0.8, "labels": 0.5, "image": 0.5}
DEFAULT_CMAP = {"stat": "RdBu_r", "labels": None, "image": "hot"}
RANGE_POINTS = 1 << 16  # values read (three strided planes) to pick a layer's default range
_ids = itertools.count()


def source_image(src: Any, base: Image | None = None) -> Image:
    """The nilazyview Image of a layer source: a path/URL, an Image, a nibabel image,
    or ``(array, affine)``; 3D or 4D. A bare array is on ``base``'s grid: it needs
    the base's spatial shape (else say where it is with ``(array, affine)``)."""
    if isinstance(src, tuple) and len(src) == 2:
        src = Image(np.asarray(src[0]), src[1])
    elif isinstance(src, np.ndarray) and src.ndim >= 3 and base is not None:
        if tuple(src.shape[:3]) != tuple(base.shape[:3]):
            raise ValueError(
                f"a layer array of shape {src.shape} has no affine and is not on the base's "
                f"grid {tuple(base.shape[:3])}: pass (array, affine)"
            )
        src = Image(src, base.affine)
    img = to_image(src)
    if not 3 <= len(img.shape) <= 4:
        raise TypeError(f"a layer needs a 3D or 4D image, not one of shape {img.shape}")
    return img


def block_centres(
    read_range: tuple[int, int, int], crop: tuple[int, int], n: int, method: str = "mean"
) -> np.ndarray:
    """Voxel coordinates of the frame pixels of one axis: where each pixel's value is from.

    The centre of the pixel's block of base voxels (``method="mean"``), or its first
    voxel (``"stride"``: the voxel a strided read shows). ``read_range`` is ``(start,
    stop, step)`` of the read, ``crop`` the shown blocks within it, ``n`` the voxels
    along the axis (see ``view_window``).
    """
    start, _, step = read_range
    first = start + np.arange(crop[0], crop[1]) * step
    if method == "stride":
        return first.astype(np.float64)
    last = np.minimum(first + step, n) - 1
    return (first + last) / 2.0


def _check_cmap(name: str) -> str:
    import matplotlib  # the optional 'viewer' extra

    if not isinstance(name, str) or name not in matplotlib.colormaps:
        raise ValueError(f"unknown colormap {name!r}: use a matplotlib colormap name")
    return name


def _unit(value, what: str) -> float:
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{what} must be between 0 and 1, not {value!r}")
    return v


class Layer:
    """A stat map, label map or image over the viewer's base image, on any grid.

    Made by :meth:`SliceViewer.add_layer`; its settings are live: setting one redraws
    the viewer, and the layer's widgets follow.

    Attributes
    ----------
    kind : str
        ``"stat"``, ``"labels"`` or ``"image"`` (read-only).
    img : nilazyview.Image
        The layer's image (read-only); a proxy stays a proxy.
    last_read : dict
        The last read from the layer image: ``box`` (``(start, stop)`` per axis),
        ``voxels`` and ``bytes`` (voxels times the stored item size; 0 on a cache hit).
    """

    def __init__(
        self,
        img: Image,
        kind: str,
        base: Image,
        *,
        name: str | None = None,
        cmap: str | None = None,
        threshold: float | None = None,
        opacity: float | None = None,
        lut=None,
        vmin: float | None = None,
        vmax: float | None = None,
        positive_only: bool = False,
        visible: bool = True,
        on_change: Callable[[Layer], None] | None = None,
        cache_bytes: int = 64 * 2**20,
    ):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        self._kind, self._img = kind, img
        self.uid = next(_ids)
        self.shape3 = spatial_shape(img.shape)
        self.base_shape3 = spatial_shape(base.shape)
        affine = np.asarray(img.affine, np.float64)
        if not (np.isfinite(affine).all() and abs(np.linalg.det(affine[:3, :3])) > 1e-12):
            raise ValueError(f"the layer's affine is singular or not finite:\n{affine}")
        self.vox2vox = resample.compose(base.affine, affine)
        self.world2vox = np.linalg.inv(affine)
        self.order = 0 if kind == "labels" else 1
        self.cache = SlabCache(cache_bytes)
        self.version = 0
        self.last_read: dict = {"box": None, "voxels": 0, "bytes": 0}
        self.on_change = None
        self._name = str(name) if name is not None else _default_name(img, kind)
        self._visible = bool(visible)
        self._opacity = _unit(DEFAULT_OPACITY[kind] if opacity is None else opacity, "opacity")
        self._threshold = 0.0
        self.threshold = 0.0 if threshold is None else threshold
        cmap = DEFAULT_CMAP[kind] if cmap is None else cmap
        self._cmap = None if cmap is None else _check_cmap(cmap)
        self._positive_only = bool(positive_only)
        self._lut = as_lut(lut) if kind == "labels" or lut is not None else {}
        self._vmin = self._vmax = None
        if kind != "labels":
            lo, hi = self._default_range()
            self.set_range(lo if vmin is None else vmin, hi if vmax is None else vmax)
        self.on_change = on_change

    # --- read-only -------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"stat"``, ``"labels"`` or ``"image"``."""
        return self._kind

    @property
    def img(self) -> Image:
        """The layer's image."""
        return self._img

    @property
    def n_volumes(self) -> int:
        """How many 3D volumes the layer has."""
        return n_volumes(self._img.shape)

    # --- live settings ---------------------------------------------------------------
    def _changed(self) -> None:
        self.version += 1
        if self.on_change is not None:
            self.on_change(self)

    @property
    def name(self) -> str:
        """Shown in the readout, the controls and the colorbar."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)
        self._changed()

    @property
    def visible(self) -> bool:
        """Drawn or not."""
        return self._visible

    @visible.setter
    def visible(self, value: bool) -> None:
        self._visible = bool(value)
        self._changed()

    @property
    def opacity(self) -> float:
        """0 (invisible) to 1 (opaque)."""
        return self._opacity

    @opacity.setter
    def opacity(self, value: float) -> None:
        self._opacity = _unit(value, "opacity")
        self._changed()

    @property
    def threshold(self) -> float:
        """Values with ``|value| < threshold`` are hidden (stat); ``value < threshold`` (image)."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        v = float(value)
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"threshold must be a finite number >= 0, not {value!r}")
        self._threshold = v
        self._changed()

    @property
    def cmap(self) -> str | None:
        """A matplotlib colormap name (None for labels, drawn with :attr:`lut`)."""
        return self._cmap

    @cmap.setter
    def cmap(self, value: str) -> None:
        self._cmap = _check_cmap(value)
        self._changed()

    @property
    def vmin(self) -> float | None:
        """Value at the colormap's low end."""
        return self._vmin

    @vmin.setter
    def vmin(self, value: float) -> None:
        self.set_range(value, self._vmax)

    @property
    def vmax(self) -> float | None:
        """Value at the colormap's high end."""
        return self._vmax

    @vmax.setter
    def vmax(self, value: float) -> None:
        self.set_range(self._vmin, value)

    def set_range(self, vmin: float, vmax: float) -> None:
        """Set :attr:`vmin` and :attr:`vmax` at once (``vmax > vmin``, both finite)."""
        lo, hi = float(vmin), float(vmax)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"need finite vmin < vmax, not ({vmin!r}, {vmax!r})")
        self._vmin, self._vmax = lo, hi
        self._changed()

    @property
    def positive_only(self) -> bool:
        """Stat maps: draw only values above zero."""
        return self._positive_only

    @positive_only.setter
    def positive_only(self, value: bool) -> None:
        self._positive_only = bool(value)
        self._changed()

    @property
    def lut(self) -> dict:
        """Labels: ``value -> (name, (R, G, B, A))``; set a dict or a ColorLUT path."""
        return dict(self._lut)

    @lut.setter
    def lut(self, value) -> None:
        self._lut = as_lut(value)
        self._changed()

    # --- sampling --------------------------------------------------------------------
    def _volume_index(self, volume: int) -> tuple:
        extra = self._img.shape[3:]
        if not extra:
            return ()
        v = min(max(0, int(volume)), self.n_volumes - 1)
        return tuple(int(i) for i in np.unravel_index(v, extra))

    def _read(self, box, volume: int, steps=(1, 1, 1)) -> np.ndarray:
        """Layer voxels ``box`` (in units of ``steps`` voxels per axis: a strided read)."""
        idx = tuple(slice(a * k, (b - 1) * k + 1, k) for (a, b), k in zip(box, steps, strict=True))
        arr = np.asarray(self._img.slicecopy[idx + self._volume_index(volume)])
        arr = arr.reshape(tuple(b - a for a, b in box))
        stored = getattr(self._img.proxy, "stored_dtype", self._img.dtype)
        self.last_read = {"box": box, "voxels": arr.size,
                          "bytes": arr.size * np.dtype(stored).itemsize}  # fmt: skip
        if np.iscomplexobj(arr):
            arr = np.abs(arr)
        return arr

    def sample(
        self, coords: np.ndarray, volume: int = 0, steps=(1, 1, 1), roles: tuple | None = None
    ) -> np.ndarray:
        """Values at layer voxel coordinates ``coords`` (3, ...), NaN outside.

        ``steps`` (per layer axis) > 1 reads every ``k``-th layer voxel only (a frame
        whose points are that far apart along that axis) and interpolates on that
        coarser grid; within ``k - 1`` voxels of the layer's far edge the last voxel
        read holds. ``roles``: ``coords`` are a plane of ``map_plane`` with these
        :func:`~nilazyview.core.resample.separable_roles` (interpolated axis by axis).
        """
        mask = resample.inside(coords, self.shape3, self.order)
        steps = tuple(int(k) for k in steps)
        coarse = tuple(-(-n // k) for n, k in zip(self.shape3, steps, strict=True))
        if steps != (1, 1, 1):
            shape = (3,) + (1,) * (coords.ndim - 1)
            coords = coords / np.reshape(steps, shape)
            coords = np.minimum(coords, np.reshape([n - 1 for n in coarse], shape))
        box = resample.bounding_box(coords, coarse, self.order, mask)
        if box is None:
            self.last_read = {"box": None, "voxels": 0, "bytes": 0}
            return np.full(coords.shape[1:], np.nan)
        arr = self._read(box, volume, steps)
        start = [b[0] for b in box]
        if roles is not None:
            return resample.interpolate_separable(arr, start, coords, self.order, mask, roles)
        return resample.interpolate(arr, start, coords, self.order, mask)

    def sample_plane(
        self, axis: int, index: float, first, second, volume: int = 0, coarse: bool = False
    ) -> np.ndarray:
        """Values on a grid of base voxel coordinates ``first`` x ``second`` (the two
        in-plane axes in increasing order) of the base slice ``index`` across ``axis``.

        ``coarse``: along a layer axis on which neighbouring points are ``s`` >= 2
        voxels apart, read every ``s``-th voxel only (float32 values; for the frames of
        a zoomed-out view).
        """
        coords = resample.map_plane(self.vox2vox, axis, index, first, second)
        roles = resample.separable_roles(self.vox2vox, axis)
        if not coarse:
            return self.sample(coords, volume, roles=roles)
        return self.sample(coords, volume, _spacing(coords), roles=roles).astype(np.float32)

    def sample_slab(self, axis: int, index: int, volume: int = 0) -> np.ndarray:
        """The layer's values at every base voxel centre of slice ``index`` across ``axis``.

        Returns a float64 array of the base slab's in-plane shape (voxel order):
        trilinear for stat/image, nearest for labels, NaN outside the layer's field
        of view (rule: :mod:`nilazyview.core.resample`).
        """
        axis, index = int(axis), int(index)
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, not {axis}")
        if not 0 <= index < self.base_shape3[axis]:
            raise IndexError(f"slice {index} is outside 0..{self.base_shape3[axis] - 1}")
        a, b = (x for x in range(3) if x != axis)
        first, second = np.arange(self.base_shape3[a]), np.arange(self.base_shape3[b])
        return self.sample_plane(axis, index, first, second, volume)

    def frame_values(
        self, volume: int, axis: int, index: int, grid: tuple, n3, method: str = "mean"
    ) -> np.ndarray:
        """Cached values on a frame's grid: ``grid`` is ``(read ranges, crop bounds)`` of
        its view (in voxel order, one value per frame pixel), ``n3`` the base shape and
        ``method`` the base's reduction (see :func:`block_centres`)."""
        volume = min(max(0, int(volume)), self.n_volumes - 1)
        key = (volume, axis, index, grid, method)
        got = self.cache.get(key)
        if got is not None:
            return got
        a, b = (x for x in range(3) if x != axis)
        ranges, bounds = grid
        first = block_centres(ranges[0], bounds[0], n3[a], method)
        second = block_centres(ranges[1], bounds[1], n3[b], method)
        values = self.sample_plane(axis, index, first, second, volume, coarse=True)
        self.cache.put(key, values)
        return values

    # --- points ----------------------------------------------------------------------
    def _coords_of(self, xyz) -> np.ndarray:
        p = np.asarray(xyz, np.float64).reshape(3)
        return (self.world2vox[:3, :3] @ p + self.world2vox[:3, 3]).reshape(3, 1)

    def voxel_at_world(self, xyz) -> tuple[int, int, int] | None:
        """The layer's voxel nearest the world point ``xyz`` (mm), None when off its grid."""
        c = self._coords_of(xyz)[:, 0]
        vox = tuple(math.floor(x + 0.5) for x in c)
        return vox if all(0 <= v < n for v, n in zip(vox, self.shape3, strict=True)) else None

    def value_at_world(self, xyz, volume: int = 0) -> float:
        """The layer's value at the world point ``xyz`` (mm), interpolated as drawn; NaN off it."""
        return float(self.sample(self._coords_of(xyz), volume)[0])

    def label_name(self, value) -> str | None:
        """The name of label ``value`` in :attr:`lut`, or None (also for NaN)."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(v):
            return None
        entry = self._lut.get(math.floor(v + 0.5))
        return None if entry is None else entry[0]

    # --- defaults --------------------------------------------------------------------
    def _default_range(self) -> tuple[float, float]:
        """Stat: -/+ the 99.5th percentile of |value|; image: percentiles 1 and 99.5
        (of three strided planes across the last spatial axis, volume 0)."""
        nx, ny, nz = self.shape3
        stride = max(1, math.ceil(math.sqrt(nx * ny * 3 / RANGE_POINTS)))
        planes = sorted({nz // 4, nz // 2, (3 * nz) // 4})
        parts = []
        for k in planes:
            idx = (slice(None, None, stride), slice(None, None, stride), k, *self._volume_index(0))
            parts.append(np.asarray(self._img.slicecopy[idx], np.float64).ravel())
        v = np.concatenate(parts)
        v = v[np.isfinite(v) & (v != 0)]
        if v.size == 0:
            return (-1.0, 1.0) if self._kind == "stat" else (0.0, 1.0)
        if self._kind == "stat":
            m = float(np.percentile(np.abs(v), 99.5))
            return (-m, m) if m > 0 else (-1.0, 1.0)
        lo, hi = (float(x) for x in np.percentile(v, [1, 99.5]))
        return (lo, hi) if hi > lo else (lo, lo + 1.0)

    def __repr__(self) -> str:
        return f"<Layer {self._name!r} {self._kind} {self._img!r}>"


def _spacing(coords: np.ndarray) -> tuple[int, int, int]:
    """Per layer axis, the whole voxels neighbouring points of a plane's grid move along
    it (the larger of the two grid directions'; at least 1)."""
    moves = np.zeros(3)
    if coords.shape[1] > 1:
        moves = np.maximum(moves, np.abs(coords[:, 1, 0] - coords[:, 0, 0]))
    if coords.shape[2] > 1:
        moves = np.maximum(moves, np.abs(coords[:, 0, 1] - coords[:, 0, 0]))
    return tuple(max(1, math.floor(m + 1e-6)) for m in moves)


def _default_name(img: Image, kind: str) -> str:
    filename = getattr(img, "filename", None)
    return os.path.basename(filename) if filename else kind
