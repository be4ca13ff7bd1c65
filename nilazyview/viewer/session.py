"""The viewer's work without widgets: the image, its slabs, both caches, prefetching, rendering.

A :class:`ViewerSession` answers "the frame for this key": the encoded image of the
part of a slab in view (zoom and centre), at display resolution, with how it was
obtained. The widget (``widget.py``) only shows what it gets. Zoom and pan maths
are in ``view_window.py``, the window reads and their reduction in ``reduce.py``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from . import composite, orientation, reduce, render
from . import view_window as vw
from .adapt import check_files, n_volumes, slab_index, slab_plan, spatial_shape, to_image
from .cache import DEFAULT_MAX_BYTES, SlabCache
from .fetch import Fetched, Prefetcher, fetch
from .frames import Frame, OrthoPanel, fit
from .navigate import Navigation

if TYPE_CHECKING:
    from nibabel.spatialimages import SpatialImage

    from nilazyview.core.plan import ReadPlan
    from nilazyview.image import Image

    Viewable = str | os.PathLike[str] | Image | np.ndarray | SpatialImage

Key = tuple[int, int, int]  # (volume, axis, index)
ReadKey = tuple  # (volume, axis, index, read ranges, method): a slab-cache key
PLANE_ORDER = {"axial": 0, "coronal": 1, "sagittal": 2}


class ViewerSession(Navigation):
    """An image being viewed: window reads, slab and image caches, prefetching, zoom and pan.

    Parameters
    ----------
    cache_bytes, render_cache_bytes : int
        Byte budgets of :attr:`cache` (slab windows) and :attr:`rendered` (encoded images).
    prefetch : int
        Slabs read and rendered ahead in the slider's direction (0: none).
    display_size : int or (int, int)
        Longest side of the displayed image in screen (CSS) pixels, or a
        ``(width, height)`` box it fits in.
    pixel_ratio : float
        Device pixels per CSS pixel frames are made for (2 for a HiDPI screen).
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
        Windows read (at frame resolution), and encoded images of them (proxied images only).
    prefetcher : Prefetcher
        Reads and renders :meth:`neighbours` on a background thread.
    crosshair : (int, int, int) or None
        Voxel of the crosshair.
    direction : int
        +1 or -1: where the slider last moved (prefetching goes that way).
    pan : dict
        ``{axis: +1, -1 or 0}``: where the view was last panned (prefetching goes that way).
    zoom : float
        1: the whole slab fits; larger shows less, up to :meth:`max_zoom`.
    centre3 : list of float
        Voxel coordinates of the view centre (the sliced axis' entry is unused).
    dmap : orientation.DisplayMap
        Layout of the axis sliced now (set by :meth:`set_axis`).
    screen : numpy.ndarray or None
        The frame shown, as screen rows x columns (set by :meth:`mark_shown`).
    view : view_window.View or None
        The view of the frame shown.
    last_state : str or None
        The image state seen last by :meth:`update_state`.
    """

    def __init__(
        self,
        *,
        cache_bytes: int = DEFAULT_MAX_BYTES,
        render_cache_bytes: int = 32 * 2**20,
        prefetch: int = 3,
        display_size: int | tuple[int, int] = 512,
        pixel_ratio: float = 1.0,
        fmt: str = "png",
        compress_level: int = 1,
        window: tuple[float, float] | None = None,
        cmap: str = "gray",
    ):
        self.cache = SlabCache(cache_bytes)
        self.rendered = SlabCache(render_cache_bytes)
        self.prefetch = int(prefetch)
        self.display_size = display_size
        self.pixel_ratio = float(pixel_ratio)
        if not (math.isfinite(self.pixel_ratio) and self.pixel_ratio > 0):
            raise ValueError(f"pixel_ratio must be a positive number, not {pixel_ratio!r}")
        if fmt not in render.FORMATS:
            raise ValueError(f"fmt must be one of {render.FORMATS}, not {fmt!r}")
        self.fmt = fmt
        self.compress_level = int(compress_level)
        self.window = None if window is None else (float(window[0]), float(window[1]))
        self.cmap = cmap
        self.img = None
        self.crosshair: tuple[int, int, int] | None = None
        self.direction = 1
        self.pan: dict[int, int] = {}
        self.zoom = 1.0
        self.centre3: list[float] = [0.0, 0.0, 0.0]
        self.dmap: orientation.DisplayMap | None = None
        self.shape3: tuple[int, int, int] | None = None
        self.screen: np.ndarray | None = None
        self.view: vw.View | None = None
        self.last_state: str | None = None
        self._shown: tuple | None = None
        self._methods: dict = {}
        self._recent: list[vw.View] = []  # views read (or prefetched) lately, newest first
        self.layers: list = []  # viewer Layers, bottom to top
        self.prefetcher = Prefetcher(self._prefetch_one, self._prefetched)

    @property
    def display_size(self) -> int | tuple[int, int]:
        """Longest side in CSS pixels, or a ``(width, height)`` box."""
        return self._display_size

    @display_size.setter
    def display_size(self, size: int | tuple[int, int]) -> None:
        if isinstance(size, tuple | list):
            size = (int(size[0]), int(size[1]))
            if min(size) < 1:
                raise ValueError(f"display_size must be positive, not {size}")
        else:
            size = int(size)
            if size < 1:
                raise ValueError(f"display_size must be positive, not {size}")
        self._display_size = size

    # --- the image -----------------------------------------------------------------
    def open(self, obj: Viewable) -> None:
        """View ``obj`` (see :func:`~nilazyview.viewer.adapt.to_image`, which may raise)."""
        self.img = to_image(obj)
        self.shape3 = spatial_shape(self.img.shape)
        self.centre3 = [(n - 1) / 2 for n in self.shape3]

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
        self.pan = {}
        self.view = None
        self._recent = []
        n = self.shape3[axis]
        if index is None:
            index = self.crosshair[axis] if self.crosshair else n // 2
        return min(max(0, int(index)), n - 1)

    def image_size(self) -> tuple[str, str]:
        """Screen ``(width, height)`` of the main image for the axis sliced now."""
        return fit(*self._extent(self.dmap), self.display_size)

    def _extent(self, dmap: orientation.DisplayMap) -> tuple[float, float]:
        """(height, width) of a plane's picture in column-voxel units."""
        return self.shape3[dmap.row_axis] * dmap.aspect, self.shape3[dmap.col_axis]

    def _pixels(self, dmap: orientation.DisplayMap, size) -> dict[int, float]:
        """Frame pixels available along each in-plane voxel axis of ``dmap``."""
        w, h = vw.fit_box(*self._extent(dmap), size)
        return {dmap.row_axis: h * self.pixel_ratio, dmap.col_axis: w * self.pixel_ratio}

    def update_state(self) -> str:
        """The image state now; on a change to ``"dirty"`` the caches are dropped."""
        state = self.img.state
        if state != self.last_state:
            if state == "dirty":
                self.clear_caches()
            self.last_state = state
        return state

    def plan(self, key: Key) -> ReadPlan | None:
        """The byte plan of reading the window of slab ``key`` in view now, or None."""
        rkey = self.read_key(key, self.current_view())
        return slab_plan(self.img, self._window_index(rkey))

    def current_view(self, centre3=None) -> vw.View:
        """The :class:`~nilazyview.viewer.view_window.View` of the main plane now."""
        px = self._pixels(self.dmap, self.display_size)
        centre3 = self.centre3 if centre3 is None else centre3
        return vw.make_view(self.shape3, self.dmap.axis, centre3, self.zoom, px, self._recent)

    def _remember(self, view: vw.View) -> None:
        self._recent = [view, *(v for v in self._recent if v != view)][:8]

    # --- reading and drawing -------------------------------------------------------
    def read_key(self, key: Key, view: vw.View) -> ReadKey:
        """The slab-cache key of reading ``view`` of slab ``key``: ranges and method."""
        volume, axis, _ = key
        ranges = view.read_ranges()
        mkey = (volume, axis, ranges)
        method = self._methods.get(mkey)
        if method is None:
            method = self._choose(key, view.axes, ranges, view.steps)
            if len(self._methods) > 256:
                self._methods.clear()
            self._methods[mkey] = method
        return (*key, ranges, method)

    def _choose(self, key: Key, axes, ranges, steps) -> str:
        volume, axis, index = key
        base = slab_index(self.img.shape, axis, index, volume)
        full = slab_plan(self.img, reduce.window_index(base, axes, ranges, "mean"))
        strided = slab_plan(self.img, reduce.window_index(base, axes, ranges, "stride"))
        if self.img.is_proxy and full is None:
            return "stride"  # no byte plan (nibabel, h5py): read the fewest voxels
        return reduce.choose(full, strided, steps)

    def _window_index(self, rkey: ReadKey) -> tuple:
        volume, axis, index, ranges, method = rkey
        base = slab_index(self.img.shape, axis, index, volume)
        axes = tuple(a for a in range(3) if a != axis)
        return reduce.window_index(base, axes, ranges, method)

    def _read(self, rkey: ReadKey) -> np.ndarray:
        """The window ``rkey`` as read and reduced: a 2D array in voxel-axis order."""
        arr = np.asarray(self.img.slicecopy[self._window_index(rkey)])
        arr = arr.reshape(reduce.read_shape(rkey[3], rkey[4]))
        return reduce.reduce(arr, tuple(r[2] for r in rkey[3]), rkey[4])

    def _io(self, rkey: ReadKey) -> dict:
        idx = self._window_index(rkey)
        plan = slab_plan(self.img, idx) if self.img.is_proxy else None
        shape = reduce.read_shape(rkey[3], rkey[4])
        stored = getattr(self.img.proxy, "stored_dtype", self.img.dtype)  # bytes in the file
        return reduce.io_counts(plan, np.dtype(stored).itemsize, shape)

    def settings(self, view: vw.View | None = None) -> tuple:
        """Everything besides the slab that decides the encoded image (the view included)."""
        view = view or self.current_view()
        cross = (None, None)
        if self.crosshair is not None:
            cross = vw.to_frame(self.dmap, view, self.crosshair)
        return (self.dmap, self.window, self.cmap, cross, self.fmt, self.compress_level,
                (view.read_ranges(), view.crop_bounds()), self.layer_state())  # fmt: skip

    def layer_state(self) -> tuple:
        """``(layer, version)`` of the visible layers, bottom to top: a cache-key part."""
        return tuple((layer, layer.version) for layer in self.layers if layer.visible)

    def _draw(self, screen: np.ndarray, settings: tuple, key: Key) -> bytes:
        """Encode ``screen``: a palette image, or with visible layers an RGB composite."""
        dmap, window, cmap, cross, fmt, level, grid, layers = settings
        if not layers:
            return render.render(screen, *window, cmap=cmap, cross=cross, fmt=fmt,
                                 compress_level=level)  # fmt: skip
        volume, axis, index = key
        method = self._methods.get((volume, axis, grid[0]), "mean")  # the base's reduction
        plane = (volume, axis, index, grid, self.shape3, method)
        shown = [(layer, dmap.apply(layer.frame_values(*plane))) for layer, _ in layers]
        rgb = composite.composite(screen, window, cmap, shown, cross)
        return composite.encode_rgb(rgb, fmt, level)

    def frame(self, key: Key, on_window: Callable[[tuple[float, float]], None]) -> Frame:
        """The encoded image of the view of slab ``key`` with the current settings.

        Checks the files first (raising :class:`~nilazyview.StaleFileError` if they
        changed). A proxied image's window and image come from the caches when there
        (else are read, drawn and cached); an in-memory image's are always made anew.
        With no window yet, one is taken from this frame. ``on_window(window)`` is
        called with the window used, before drawing.
        """
        check_files(self.img)
        cached = self.img.is_proxy
        view = self.current_view()
        self._remember(view)
        rkey = self.read_key(key, view)
        if cached and self.prefetch:
            self.prefetcher.wait_for((key, self.settings(view)))
        got: Fetched = fetch(rkey, self._read, self.cache if cached else None)
        io = self._io(rkey) if not got.hit and cached else None
        t0 = time.perf_counter()
        screen = self.dmap.apply(got.slab[view.crop()])
        if self.window is None:
            self.window = render.robust_window(screen)
        on_window(self.window)
        settings = self.settings(view)
        rkey_img = (key, settings)
        data = self.rendered.get(rkey_img) if cached else None
        drawn = data is not None
        if data is None:
            data = self._draw(screen, settings, key)
            if cached:
                self.rendered.put(rkey_img, data)
        render_ms = (time.perf_counter() - t0) * 1e3
        return Frame(key, data, screen, got.slab, settings, got.hit, drawn, got.ms, render_ms,
                     cached, view, rkey, io)  # fmt: skip

    def mark_shown(self, frame: Frame) -> None:
        """Remember ``frame`` as the one on screen (for the readout, clicks and :meth:`poll`)."""
        self.screen = frame.screen
        self.view = frame.view
        # an in-memory slab is a copy made for this draw: kept to see edits in place
        self._shown = None if frame.cached else (frame.read_key, frame.slab)

    def shown_changed(self) -> bool:
        """True when an in-memory image's slab shown no longer holds what was drawn."""
        shown = self._shown
        if shown is None or self.img is None or self.img.is_proxy:
            return False
        rkey, slab = shown
        try:
            now = self._read(rkey)
        except Exception:  # e.g. the array was replaced by one of another shape
            return True
        nan = now.dtype.kind in "fc"
        return now.shape != slab.shape or not np.array_equal(now, slab, equal_nan=nan)

    def auto_window(self) -> tuple[float, float] | None:
        """Set the window to robust percentiles of the frame shown (None if none is)."""
        if self.screen is None:
            return None
        self.window = render.robust_window(self.screen)
        return self.window

    # --- prefetching ---------------------------------------------------------------
    def neighbours(self, key: Key, settings: tuple) -> list[tuple]:
        """Work to prefetch around ``key``: slices ahead in :attr:`direction` and one back
        (read and rendered, image-cache keys), then the window ahead in the pan direction
        (read only, ``(read key, None)``)."""
        volume, axis, index = key
        n, d = self.shape3[axis], self.direction
        ahead = [index + d * k for k in range(1, self.prefetch + 1)]
        wanted = [*ahead, index - d] if self.prefetch else []
        out: list[tuple] = [((volume, axis, i), settings) for i in wanted if 0 <= i < n]
        if self.prefetch and any(self.pan.values()) and self.view is not None:
            centre = list(self.centre3)
            for a, sign in self.pan.items():
                centre[a] += sign * self.view.window(a).visible_voxels() / 2
            ahead_view = self.current_view(centre)
            rkey = self.read_key(key, ahead_view)
            if rkey[3] != self.view.read_ranges():
                self._remember(ahead_view)
                self._remember(self.view)  # the view shown stays the first choice
                out.append((rkey, None))
        return out

    def prefetch_after(self, frame: Frame) -> None:
        """Ask the prefetcher for the neighbours of ``frame`` (proxied images only)."""
        if frame.cached and self.prefetch:
            self.prefetcher.want(self.neighbours(frame.key, frame.settings))

    def _prefetched(self, item: tuple) -> bool:
        return self.cache.peek(item[0]) if item[1] is None else self.rendered.peek(item)

    def _prefetch_one(self, item: tuple) -> None:
        """Background: read (unless cached) and render one neighbouring slab's window."""
        key, settings = item
        if settings is None:  # a window ahead of panning: read only
            if not self.cache.peek(key):
                self.cache.put(key, self._read(key))
            return
        ranges, bounds = settings[6]
        crop = tuple(slice(*b) for b in bounds)
        rkey = (*key, ranges, self._methods.get((key[0], key[1], ranges)))
        if rkey[4] is None:
            return  # a view given up since (its method was never chosen)
        slab = self.cache.get_quiet(rkey)
        if slab is None:
            slab = self._read(rkey)
            self.cache.put(rkey, slab)
        self.rendered.put(item, self._draw(settings[0].apply(slab[crop]), settings, key))

    def clear_caches(self) -> None:
        """Forget wanted prefetches and drop both caches (and the layers' sampled values)."""
        self.prefetcher.cancel()
        self.cache.clear()
        self.rendered.clear()
        for layer in self.layers:
            layer.cache.clear()

    def close(self) -> None:
        """Stop the prefetch thread and drop both caches."""
        self.prefetcher.close()
        self.clear_caches()

    # --- crosshair and orthogonal planes ---------------------------------------------
    def voxel_at(self, fy: float, fx: float, index: int) -> tuple[int, ...] | None:
        """Voxel at fractions ``fy`` (down), ``fx`` (across) of the frame shown; None off it."""
        if self.view is None or not (0 <= fy < 1 and 0 <= fx < 1):
            return None
        return vw.from_frame(self.dmap, self.view, fy, fx, index)

    def world(self, voxel: tuple[int, ...]) -> np.ndarray:
        """World (mm) coordinates of ``voxel``."""
        return orientation.world_coords(self.img.affine, voxel)

    def value_at(
        self, voxel: tuple[int, ...], axis: int, index: int, volume: int = 0
    ) -> np.generic | None:
        """The value at ``voxel`` if it is on the slab shown (``axis``, ``index``).

        From the frame when it shows every voxel, else read (one voxel) from the image.
        """
        if self.screen is None or voxel[axis] != index:
            return None
        if self.view is not None and self.view.steps == (1, 1) and self.dmap.axis == axis:
            r, c = vw.to_frame(self.dmap, self.view, voxel)
            if r is not None and c is not None:
                return self.screen[r, c]
        idx = list(slab_index(self.img.shape, axis, index, volume))
        for a in range(min(3, len(self.img.shape))):
            idx[a] = int(voxel[a])
        return np.asarray(self.img.slicecopy[tuple(idx)])[()]

    def ortho_point(self, axis: int, index: int) -> tuple[int, int, int]:
        """The point the orthogonal planes go through: the crosshair, else the centre
        (with slice ``index`` of the main plane's ``axis``)."""
        if self.crosshair is not None:
            return self.crosshair
        centre = [n // 2 for n in self.shape3]
        centre[axis] = index
        return tuple(centre)

    def ortho_panels(self, volume: int, point: tuple[int, int, int]) -> Iterator[OrthoPanel]:
        """The three orthogonal planes through ``point``, zoomed about it (cached windows)."""
        small = max(64, self._longest() // 2)
        cached = self.img.is_proxy
        names = orientation.plane_names(self.img.affine)
        for axis in range(3):
            key = (volume, axis, point[axis])
            dmap = orientation.display_map(self.img.affine, axis)
            px = self._pixels(dmap, small)
            view = vw.make_view(self.shape3, axis, point, self.zoom, px)
            rkey = self.read_key(key, view)
            got = fetch(rkey, self._read, self.cache if cached else None)
            cross = vw.to_frame(dmap, view, point)
            screen = dmap.apply(got.slab[view.crop()])
            grid = (view.read_ranges(), view.crop_bounds())
            settings = (dmap, self.window, self.cmap, cross, self.fmt, self.compress_level,
                        grid, self.layer_state())  # fmt: skip
            data = self._draw(screen, settings, key)
            width, height = fit(*self._extent(dmap), small)
            yield OrthoPanel(data, width, height, names[axis], point[axis], dmap, view)

    def _longest(self) -> int:
        size = self.display_size
        return max(size) if isinstance(size, tuple) else size
