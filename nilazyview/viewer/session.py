"""The viewer's work without widgets: the image, its slabs, both caches, prefetching, rendering.

A :class:`ViewerSession` answers "the frame for this key": the encoded image of a
slab with how it was obtained. The widget (``widget.py``) only shows what it gets.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import orientation, render
from .adapt import check_files, n_volumes, slab_index, slab_plan, spatial_shape, to_image
from .cache import DEFAULT_MAX_BYTES, SlabCache
from .fetch import Fetched, Prefetcher, fetch

if TYPE_CHECKING:
    from nibabel.spatialimages import SpatialImage

    from nilazyview.core.plan import ReadPlan
    from nilazyview.image import Image

    Viewable = str | os.PathLike[str] | Image | np.ndarray | SpatialImage

Key = tuple[int, int, int]  # (volume, axis, index)
PLANE_ORDER = {"axial": 0, "coronal": 1, "sagittal": 2}


def fit(height: float, width: float, size: int) -> tuple[str, str]:
    """Screen ``(width, height)`` in pixels (as strings) of a picture scaled to ``size``.

    The longer of ``height`` and ``width`` (in displayed pixels) becomes ``size``.
    """
    zoom = size / max(height, width)
    return str(max(1, round(width * zoom))), str(max(1, round(height * zoom)))


@dataclass(frozen=True)
class Frame:
    """The encoded image of one slab, with how it was obtained.

    Attributes
    ----------
    key : (volume, axis, index)
        The slab.
    data : bytes
        The encoded image.
    screen : numpy.ndarray
        The slab as screen rows x columns.
    slab : numpy.ndarray
        The slab as read (or taken from the cache).
    settings : tuple
        What besides the slab decided ``data`` (see :meth:`ViewerSession.settings`).
    hit, render_hit : bool
        Slab, and encoded image, came from their caches.
    fetch_ms, render_ms : float
        Time to get the slab, and to orient, window and encode it.
    cached : bool
        The caches were used (a proxied image); in-memory images bypass them.
    """

    key: Key
    data: bytes
    screen: np.ndarray
    slab: np.ndarray
    settings: tuple
    hit: bool
    render_hit: bool
    fetch_ms: float
    render_ms: float
    cached: bool

    def step(self) -> dict:
        """The facts of this step, as the viewer's ``last_step``."""
        return {
            "key": self.key,
            "hit": self.hit,
            "render_hit": self.render_hit,
            "fetch_ms": self.fetch_ms,
            "render_ms": self.render_ms,
            "cached": self.cached,
            "bytes": len(self.data),
        }


@dataclass(frozen=True)
class OrthoPanel:
    """One of the three orthogonal planes: encoded image, display size, plane and slice."""

    data: bytes
    width: str
    height: str
    plane: str
    index: int


class ViewerSession:
    """An image being viewed: slab reads, slab and image caches, prefetching, display settings.

    Parameters
    ----------
    cache_bytes, render_cache_bytes : int
        Byte budgets of :attr:`cache` (slabs) and :attr:`rendered` (encoded images).
    prefetch : int
        Slabs read and rendered ahead in the slider's direction (0: none).
    display_size : int
        Longest side of the displayed image in screen pixels.
    fmt, compress_level : str, int
        Image encoding.
    window : (float, float), optional
        Display range; None picks one from the next slab shown.
    cmap : str
        A matplotlib colormap name.

    Attributes
    ----------
    img : nilazyview.Image or None
        Set by :meth:`open`.
    cache, rendered : SlabCache
        Slabs read, and encoded images of them (proxied images only).
    prefetcher : Prefetcher
        Reads and renders :meth:`neighbours` on a background thread.
    crosshair : (int, int, int) or None
        Voxel of the crosshair.
    direction : int
        +1 or -1: where the slider last moved (prefetching goes that way).
    dmap : orientation.DisplayMap
        Layout of the axis sliced now (set by :meth:`set_axis`).
    screen : numpy.ndarray or None
        The slab shown, as screen rows x columns (set by :meth:`mark_shown`).
    last_state : str or None
        The image state seen last by :meth:`update_state`.
    """

    def __init__(
        self,
        *,
        cache_bytes: int = DEFAULT_MAX_BYTES,
        render_cache_bytes: int = 32 * 2**20,
        prefetch: int = 3,
        display_size: int = 512,
        fmt: str = "png",
        compress_level: int = 1,
        window: tuple[float, float] | None = None,
        cmap: str = "gray",
    ):
        self.cache = SlabCache(cache_bytes)
        self.rendered = SlabCache(render_cache_bytes)
        self.prefetch = int(prefetch)
        self.display_size = int(display_size)
        self.fmt = fmt
        self.compress_level = int(compress_level)
        self.window = None if window is None else (float(window[0]), float(window[1]))
        self.cmap = cmap
        self.img = None
        self.crosshair: tuple[int, int, int] | None = None
        self.direction = 1
        self.dmap: orientation.DisplayMap | None = None
        self.shape3: tuple[int, int, int] | None = None
        self.screen: np.ndarray | None = None
        self.last_state: str | None = None
        self._shown: tuple | None = None
        self.prefetcher = Prefetcher(self._prefetch_one, self.rendered.peek)

    # --- the image -----------------------------------------------------------------
    def open(self, obj: Viewable) -> None:
        """View ``obj`` (see :func:`~nilazyview.viewer.adapt.to_image`, which may raise)."""
        self.img = to_image(obj)
        self.shape3 = spatial_shape(self.img.shape)

    def planes(self) -> list[tuple[str, int]]:
        """``(plane name, voxel axis)`` for the three axes: axial, coronal, sagittal."""
        names = orientation.plane_names(self.img.affine)
        axes = sorted(range(3), key=lambda a: PLANE_ORDER[names[a]])
        return [(names[a], a) for a in axes]

    @property
    def n_volumes(self) -> int:
        """How many 3D volumes the image has."""
        return n_volumes(self.img.shape)

    def set_axis(self, axis: int, index: int | None = None) -> int:
        """Slice voxel ``axis`` from now on; returns the first slice to show.

        That is ``index`` (clamped), else the crosshair's slice, else the middle one.
        """
        self.dmap = orientation.display_map(self.img.affine, axis)
        self.direction = 1
        n = self.shape3[axis]
        if index is None:
            index = self.crosshair[axis] if self.crosshair else n // 2
        return min(max(0, int(index)), n - 1)

    def image_size(self) -> tuple[str, str]:
        """Screen ``(width, height)`` of the main image for the axis sliced now."""
        rows, cols = self.shape3[self.dmap.row_axis], self.shape3[self.dmap.col_axis]
        return fit(rows * self.dmap.aspect, cols, self.display_size)

    def update_state(self) -> str:
        """The image state now; on a change to ``"dirty"`` the caches are dropped."""
        state = self.img.state
        if state != self.last_state:
            if state == "dirty":
                self.clear_caches()
            self.last_state = state
        return state

    def plan(self, key: Key) -> ReadPlan | None:
        """The byte plan of reading slab ``key``, or None."""
        volume, axis, index = key
        return slab_plan(self.img, slab_index(self.img.shape, axis, index, volume))

    # --- reading and drawing -------------------------------------------------------
    def _read(self, key: Key) -> np.ndarray:
        volume, axis, index = key
        arr = self.img.slicecopy[slab_index(self.img.shape, axis, index, volume)]
        keep = [n for a, n in enumerate(self.shape3) if a != axis]
        return np.asarray(arr).reshape(keep)

    def settings(self) -> tuple:
        """Everything besides the slab that decides the encoded image."""
        cross = (None, None)
        if self.crosshair is not None:
            cross = self.dmap.to_screen(self.crosshair, self.shape3)
        return (self.dmap, self.window, self.cmap, cross, self.fmt, self.compress_level)

    @staticmethod
    def _draw(screen: np.ndarray, settings: tuple) -> bytes:
        _, window, cmap, cross, fmt, level = settings
        return render.render(screen, *window, cmap=cmap, cross=cross, fmt=fmt, compress_level=level)

    def frame(self, key: Key, on_window: Callable[[tuple[float, float]], None]) -> Frame:
        """The encoded image of slab ``key`` with the current settings.

        Checks the files first (raising :class:`~nilazyview.StaleFileError` if they
        changed). A proxied image's slab and image come from the caches when there
        (else are read, drawn and cached); an in-memory image's are always made anew.
        With no window yet, one is taken from this slab. ``on_window(window)`` is
        called with the window used, before drawing.
        """
        check_files(self.img)
        cached = self.img.is_proxy
        if cached and self.prefetch:
            self.prefetcher.wait_for((key, self.settings()))
        got: Fetched = fetch(key, self._read, self.cache if cached else None)
        t0 = time.perf_counter()
        screen = self.dmap.apply(got.slab)
        if self.window is None:
            self.window = render.robust_window(screen)
        on_window(self.window)
        settings = self.settings()
        rkey = (key, settings)
        data = self.rendered.get(rkey) if cached else None
        drawn = data is not None
        if data is None:
            data = self._draw(screen, settings)
            if cached:
                self.rendered.put(rkey, data)
        render_ms = (time.perf_counter() - t0) * 1e3
        return Frame(
            key, data, screen, got.slab, settings, got.hit, drawn, got.ms, render_ms, cached
        )

    def mark_shown(self, frame: Frame) -> None:
        """Remember ``frame`` as the one on screen (for the readout, clicks and :meth:`poll`)."""
        self.screen = frame.screen
        # an in-memory slab is a copy made for this draw: kept to see edits in place
        self._shown = None if frame.cached else (frame.key, frame.slab)

    def shown_changed(self) -> bool:
        """True when an in-memory image's slab shown no longer holds what was drawn."""
        shown = self._shown
        if shown is None or self.img is None or self.img.is_proxy:
            return False
        key, slab = shown
        try:
            now = self._read(key)
        except Exception:  # e.g. the array was replaced by one of another shape
            return True
        nan = now.dtype.kind in "fc"
        return now.shape != slab.shape or not np.array_equal(now, slab, equal_nan=nan)

    def auto_window(self) -> tuple[float, float] | None:
        """Set the window to robust percentiles of the slab shown (None if none is)."""
        if self.screen is None:
            return None
        self.window = render.robust_window(self.screen)
        return self.window

    # --- prefetching ---------------------------------------------------------------
    def neighbours(self, key: Key, settings: tuple) -> list[tuple[Key, tuple]]:
        """Image-cache keys to prefetch around ``key``: ahead in :attr:`direction`, one back."""
        volume, axis, index = key
        n, d = self.shape3[axis], self.direction
        ahead = [index + d * k for k in range(1, self.prefetch + 1)]
        wanted = [*ahead, index - d] if self.prefetch else []
        return [((volume, axis, i), settings) for i in wanted if 0 <= i < n]

    def prefetch_after(self, frame: Frame) -> None:
        """Ask the prefetcher for the neighbours of ``frame`` (proxied images only)."""
        if frame.cached and self.prefetch:
            self.prefetcher.want(self.neighbours(frame.key, frame.settings))

    def _prefetch_one(self, rkey: tuple[Key, tuple]) -> None:
        """Background: read (unless cached) and render one neighbouring slab."""
        key, settings = rkey
        slab = self.cache.get_quiet(key)
        if slab is None:
            slab = self._read(key)
            self.cache.put(key, slab)
        self.rendered.put(rkey, self._draw(settings[0].apply(slab), settings))

    def clear_caches(self) -> None:
        """Forget wanted prefetches and drop both caches."""
        self.prefetcher.cancel()
        self.cache.clear()
        self.rendered.clear()

    def close(self) -> None:
        """Stop the prefetch thread and drop both caches."""
        self.prefetcher.close()
        self.clear_caches()

    # --- crosshair and orthogonal planes ---------------------------------------------
    def voxel_at(self, row: int, col: int, index: int) -> tuple[int, ...] | None:
        """Voxel under screen pixel (``row``, ``col``) of slice ``index``; None off the image."""
        nr, nc = self.screen.shape
        if not (0 <= row < nr and 0 <= col < nc):
            return None
        return self.dmap.to_voxel(row, col, index, self.shape3)

    def world(self, voxel: tuple[int, ...]) -> np.ndarray:
        """World (mm) coordinates of ``voxel``."""
        return orientation.world_coords(self.img.affine, voxel)

    def value_at(self, voxel: tuple[int, ...], axis: int, index: int) -> np.generic | None:
        """The value shown at ``voxel`` if it is on the slab shown (``axis``, ``index``)."""
        if self.screen is None or voxel[axis] != index:
            return None
        r, c = self.dmap.to_screen(voxel, self.shape3)
        return self.screen[r, c]

    def ortho_point(self, axis: int, index: int) -> tuple[int, int, int]:
        """The point the orthogonal planes go through: the crosshair, else the centre
        (with slice ``index`` of the main plane's ``axis``)."""
        if self.crosshair is not None:
            return self.crosshair
        centre = [n // 2 for n in self.shape3]
        centre[axis] = index
        return tuple(centre)

    def ortho_panels(self, volume: int, point: tuple[int, int, int]) -> Iterator[OrthoPanel]:
        """The three orthogonal planes through ``point``, one at a time (cached slabs)."""
        small = max(64, self.display_size // 2)
        cached = self.img.is_proxy
        names = orientation.plane_names(self.img.affine)
        for axis in range(3):
            key = (volume, axis, point[axis])
            got = fetch(key, self._read, self.cache if cached else None)
            dmap = orientation.display_map(self.img.affine, axis)
            cross = dmap.to_screen(point, self.shape3)
            screen = dmap.apply(got.slab)
            data = render.render(
                screen,
                *self.window,
                cmap=self.cmap,
                cross=cross,
                fmt=self.fmt,
                compress_level=self.compress_level,
            )
            rows, cols = screen.shape
            width, height = fit(rows * dmap.aspect, cols, small)
            yield OrthoPanel(data, width, height, names[axis], point[axis])
