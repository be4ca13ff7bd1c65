"""``SliceViewer``: the ipywidgets slice viewer that reads only the slab it shows.

The widget wires its controls (``tree.py``) to a :class:`~.session.ViewerSession`,
which reads, caches and draws, and shows the panels' HTML (``panels.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from . import export, links, ortho, panels, show, timecourse, tree
from .cache import DEFAULT_MAX_BYTES
from .gestures import Gestures
from .layer_controls import LayerPanel
from .polling import start_polling
from .session import ViewerSession
from .show import FromSession as _FromSession

if TYPE_CHECKING:
    import numpy as np

    from .layers import Layer
    from .session import Viewable


class SliceViewer(widgets.VBox):
    """Slice viewer for a proxied or in-memory image; displays itself in Jupyter.

    Parameters
    ----------
    obj : str, path-like, nilazyview.Image, nibabel image or numpy.ndarray
        What to show. Paths are opened with :func:`nilazyview.load` (a proxy).
    axis : int, optional
        Voxel axis to slice (0, 1, 2); default: the axial plane's.
    index : int, optional
        Slice shown first; default the middle one.
    volume : int
        Flat index over the axes after the third (4D and up).
    cmap : str
        A matplotlib colormap name.
    window : (float, float), optional
        Display range; default robust percentiles (1, 99.5) of the first slab shown.
    cache_bytes : int
        Byte budget of the slab cache ``v.cache`` (default 256 MiB).
    render_cache_bytes : int
        Byte budget of ``v.rendered``, the encoded images of cached slabs.
    prefetch : int
        Slabs read and rendered ahead in the slider's direction on a background
        thread (0: none).
    display_size : int or (int, int)
        Longest side of the displayed image in screen (CSS) pixels, or a
        ``(width, height)`` box it fits in. Frames are made at this resolution
        (times ``pixel_ratio``), never at the slab's.
    pixel_ratio : float
        Device pixels per CSS pixel to make frames for (2 for a sharp HiDPI image).
    fmt, compress_level : str, int
        Image encoding (``"png"`` palette images by default; ``"jpeg"`` possible).
    poll_interval : float
        Seconds between badge checks while the kernel is idle (0: only on interaction).
    ortho : bool
        Also show the three orthogonal planes through the crosshair (or the centre)
        side by side, each read as its own slab (``v.ortho_images``).
    layers : list, optional
        Layers to add (:meth:`add_layer`): each a source, or a dict of its keyword
        arguments with the source under ``"src"``.

    Notes
    -----
    Frames are made at display resolution from the window in view only: the mouse
    wheel zooms about the pointer, a drag pans, a double-click (or ``v.reset()``)
    shows the whole slab; ``v.zoom`` and ``v.center`` do the same from code.
    Errors (a file that is not an image, a file removed while viewed) are shown in
    the widget (``v.error``), never raised from interactions.
    """

    img = _FromSession("img")
    cache = _FromSession("cache")
    rendered = _FromSession("rendered")
    prefetch = _FromSession("prefetch")
    fmt = _FromSession("fmt")
    compress_level = _FromSession("compress_level")
    _prefetcher = _FromSession("prefetcher")
    _screen = _FromSession("screen")

    def __init__(
        self,
        obj: Viewable | None = None,
        *,
        axis: int | None = None,
        index: int | None = None,
        volume: int = 0,
        cmap: str = "gray",
        window: tuple[float, float] | None = None,
        cache_bytes: int = DEFAULT_MAX_BYTES,
        render_cache_bytes: int = 32 * 2**20,
        prefetch: int = 3,
        display_size: int | tuple[int, int] = 512,
        pixel_ratio: float = 1.0,
        fmt: str = "png",
        compress_level: int = 1,
        poll_interval: float = 0.5,
        ortho: bool = False,
        layers: list | None = None,
    ):
        self._poll_task = None  # close() (also from __del__) works even if the rest fails
        self._closed = False
        self._session = ViewerSession(
            cache_bytes=cache_bytes,
            render_cache_bytes=render_cache_bytes,
            prefetch=prefetch,
            display_size=display_size,
            pixel_ratio=pixel_ratio,
            fmt=fmt,
            compress_level=compress_level,
            window=window,
            cmap=cmap,
        )
        self.last_step: dict = {}
        self.ortho = bool(ortho)
        self._quiet = 0
        controls = tree.build(self.fmt, cmap)
        for field in dataclasses.fields(controls):  # v.slider, v.image, ...
            setattr(self, field.name, getattr(controls, field.name))
        self._timecourse = timecourse.Panel(self)  # the plot under the image (4D)
        self._wire()
        self._layer_panel = LayerPanel(self)
        extra = [self._layer_panel.box, self._layer_panel.bars]
        super().__init__(children=tree.layout(controls, self.ortho, [self._timecourse.box], extra))
        self.add_class("nlv-viewer")
        try:
            self._session.open(obj)
        except Exception as exc:  # any failure to open is shown, not raised
            self._show_error(exc, f"Cannot view {panels.describe(obj)}")
            return
        self._layer_panel.add_all(layers or [])
        self._setup(axis, index, volume)
        self._poll_task = start_polling(self, poll_interval)

    # --- construction ------------------------------------------------------------
    def _wire(self) -> None:
        self.plane.observe(self._on_plane, "value")
        self.slider.observe(self._on_index, "value")
        self.volume_slider.observe(self._on_volume, "value")
        self.cmap.observe(self._on_display, "value")
        self.vmin.observe(self._on_window_text, "value")
        self.vmax.observe(self._on_window_text, "value")
        self.auto.on_click(lambda _b: self.auto_window())
        self.handoff_button.on_click(lambda _b: self.handoff())
        self.reset_view.on_click(lambda _b: self.reset())
        self._gestures = Gestures(self._session)
        self._events = tree.pointer_events(self.image, self.readout)
        for events in self._events:
            events.on_dom_event(self._on_pointer)
        self._ortho_events = ortho.attach(self)  # clicks on the orthogonal panels

    def _setup(self, axis: int | None, index: int | None, volume: int) -> None:
        s, img = self._session, self.img
        planes = s.planes()
        if axis is None:
            axis = planes[0][1]
        self.title.value = panels.title(
            getattr(img, "filename", None), img.shape, img.dtype, img.affine
        )
        nvol = s.n_volumes
        with self._hold():
            self.plane.options = planes
            self.volume_slider.max = max(0, nvol - 1)
            self.volume_slider.value = min(max(0, int(volume)), nvol - 1)
            self.volume_slider.layout.display = None if nvol > 1 else "none"
            self.plane.value = axis
            self._set_axis(axis, index)
        self._update_badge()
        self._refresh()

    @contextlib.contextmanager
    def _hold(self):
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    # --- public surface ----------------------------------------------------------
    @property
    def axis(self) -> int:
        """Voxel axis sliced (0, 1 or 2)."""
        return int(self.plane.value)

    @axis.setter
    def axis(self, value: int) -> None:
        value = int(value)
        if value not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, not {value}")
        self.plane.value = value

    @property
    def index(self) -> int:
        """Slice shown; setting it shows that slice before returning."""
        return int(self.slider.value)

    @index.setter
    def index(self, value: int) -> None:
        self.slider.value = int(value)

    @property
    def volume(self) -> int:
        """Flat volume index over the axes after the third."""
        return int(self.volume_slider.value)

    @volume.setter
    def volume(self, value: int) -> None:
        self.volume_slider.value = int(value)

    @property
    def window(self) -> tuple[float, float] | None:
        """Display range ``(vmin, vmax)``; None picks one from the next slab shown."""
        return self._session.window

    @window.setter
    def window(self, value: tuple[float, float] | None) -> None:
        self._session.window = None if value is None else (float(value[0]), float(value[1]))
        self._refresh()

    @property
    def crosshair(self) -> tuple[int, int, int] | None:
        """Voxel (i, j, k) of the crosshair, or None."""
        return self._session.crosshair

    @crosshair.setter
    def crosshair(self, voxel: tuple[int, int, int] | None) -> None:
        self._session.crosshair = None if voxel is None else tuple(int(v) for v in voxel[:3])
        self._update_readout()
        self._refresh()

    @property
    def timecourse(self) -> np.ndarray | None:
        """The series at the crosshair (``slicecopy[i, j, k, :]``) of a 4D base, else of the
        topmost visible 4D layer at that world point; None without one."""
        return self._timecourse.series()

    @property
    def zoom(self) -> float:
        """1: the whole slab fits; 2, 4, ...: that much closer (up to ~16 display px a voxel)."""
        return self._session.zoom

    @zoom.setter
    def zoom(self, value: float) -> None:
        self._session.set_zoom(value)
        self._refresh()

    @property
    def center(self) -> tuple[float, float]:
        """In-plane voxel coordinates of the view centre, in the order of the volume's axes."""
        return self._session.centre()

    @center.setter
    def center(self, value) -> None:
        self._session.set_centre(value)
        self._refresh()

    @property
    def display_size(self) -> int | tuple[int, int]:
        """Longest side of the image in CSS pixels, or a ``(width, height)`` box."""
        return self._session.display_size

    @display_size.setter
    def display_size(self, value: int | tuple[int, int]) -> None:
        self._session.display_size = value
        if self.img is not None:
            self._session.view = None
            self.image.width, self.image.height = self._session.image_size()
            self._refresh()

    def reset(self) -> None:
        """Zoom 1, centred (the "reset view" button; a double-click on the image)."""
        self._session.reset_view()
        self._refresh()

    @property
    def state(self) -> str:
        """``"proxy"``, ``"in memory"`` or ``"dirty"`` (``""`` with no image)."""
        return "" if self.img is None else self.img.state

    def auto_window(self) -> tuple[float, float] | None:
        """Set the window to robust percentiles of the slab shown now."""
        if self._session.auto_window() is None:
            return None
        self._refresh()
        return self.window

    def handoff(self) -> str | None:
        """A file path holding the image (``nilazyview.as_file``), shown in ``handoff_path``.

        Returns None (and shows the error) when no file can be made.
        """
        return show.handoff(self)

    # --- layers --------------------------------------------------------------------
    def add_layer(
        self,
        src: Any,
        kind: str = "stat",
        *,
        name: str | None = None,
        cmap: str | None = None,
        threshold: float | None = None,
        opacity: float | None = None,
        lut: Any = None,
        vmin: float | None = None,
        vmax: float | None = None,
        positive_only: bool = False,
        visible: bool = True,
    ) -> Layer:
        """Draw ``src`` over the image, resampled through both affines (never loaded whole).

        ``src``: a path/URL (opened as a proxy), an Image, a nibabel image or
        ``(array, affine)``; ``kind``: ``"stat"`` (diverging ``"RdBu_r"``, range -/+ robust
        max ``|value|``, ``|value| < threshold`` hidden, opacity 0.8), ``"labels"``
        (``lut``: dict value -> (name, RGBA), a FreeSurfer ColorLUT path, or the built-in
        FreeSurfer table; opacity 0.5) or ``"image"`` (``"hot"``, robust range, 0.5).
        Returns the :class:`~nilazyview.viewer.layers.Layer`, whose settings are live.
        """
        options = {k: v for k, v in locals().items() if k not in ("self", "src", "kind")}
        return self._layer_panel.add(src, kind, options)

    def remove_layer(self, layer: Layer) -> None:
        """Take ``layer`` off the viewer."""
        self._layer_panel.remove(layer)

    @property
    def layers(self) -> list[Layer]:
        """The layers, bottom to top (a copy: use :meth:`add_layer`, :meth:`remove_layer`)."""
        return list(self._session.layers)

    def save_png(self, path) -> str:
        """Write what is shown (image, layers, crosshair, ortho panels, colorbars) as PNG."""
        return export.save_png(self, path)

    def refresh(self) -> None:
        """Re-read and redraw the slice shown (after changing a dirty array in place)."""
        self._session.clear_caches()
        self._timecourse.cache.clear()
        self._refresh()

    def poll(self) -> str:
        """Update the badge from the image state now; redraw if the state changed,
        or if the in-memory array's values in the slab shown changed (edits in place)."""
        before = self._session.last_state
        state = self._update_badge()
        if before is not None and state != before:
            self._refresh()
        elif self._session.shown_changed():
            self.refresh()
        return state

    def close(self) -> None:
        """Stop background work and close the widgets."""
        self._closed = True
        if self._poll_task is not None:
            self._poll_task.cancel()
        session = self.__dict__.get("_session")  # absent if the constructor failed early
        if session is not None:
            session.close()
        super().close()

    # --- events ------------------------------------------------------------------
    def _set_axis(self, axis: int, index: int | None = None) -> None:
        show.set_axis(self, axis, index)

    def _on_plane(self, change) -> None:
        if self.img is None or self._quiet:
            return
        self._prefetcher.cancel()
        self._set_axis(int(change["new"]))
        self._refresh()

    def _on_index(self, change) -> None:
        if self.img is None or self._quiet:
            return
        new, old = int(change["new"]), int(change["old"])
        if new != old:
            self._session.direction = 1 if new > old else -1
        self._refresh()

    def _on_volume(self, change) -> None:
        if self.img is None or self._quiet:
            return
        self._prefetcher.cancel()
        self._refresh()

    def _on_display(self, _change) -> None:
        self._session.cmap = self.cmap.value
        self._refresh()

    def _on_window_text(self, _change) -> None:
        if self._quiet:
            return
        if self.vmax.value > self.vmin.value:
            self._session.window = (float(self.vmin.value), float(self.vmax.value))
            self._refresh()

    def _on_click(self, event: dict) -> None:
        self._on_pointer({"type": "click", **event})

    def _on_pointer(self, event: dict) -> None:
        if self.img is None or self._screen is None:
            return
        what = self._gestures.handle(event, self.index)
        if what is None:
            return
        if what[0] == "crosshair":
            self.crosshair = what[1]
        else:
            self._refresh()

    def _settings(self) -> tuple:
        """Everything besides the slab that decides the encoded image."""
        return self._session.settings()

    # --- drawing -----------------------------------------------------------------
    def _refresh(self) -> None:
        if self.img is None or self._quiet or self._closed:
            return
        s = self._session
        self._update_badge()
        key = (self.volume, self.axis, self.index)
        try:
            frame = s.frame(key, on_window=self._show_window)
            self.image.value = frame.data
        except Exception as exc:  # shown in the widget, the kernel lives on
            self._show_error(exc, f"Cannot show slice {key[2]} of axis {key[1]}")
            return
        s.mark_shown(frame)
        self._clear_error()
        self.last_step = frame.step()
        show.update_io(self)
        self._update_readout()
        if self.ortho:
            ortho.draw(self)
        self._layer_panel.update_bars()
        self._timecourse.update()
        s.prefetch_after(frame)
        links.notify(self)  # linked viewers follow

    def _show_window(self, window: tuple[float, float]) -> None:
        with self._hold():
            self.vmin.value, self.vmax.value = window

    def _update_badge(self) -> str:
        if self.img is None:
            return ""
        state = self._session.update_state()
        self.badge.value = panels.badge(state)
        return state

    def _update_readout(self) -> None:
        show.update_readout(self)

    def _show_error(self, exc: BaseException, what: str) -> None:
        show.error(self, exc, what)

    def _clear_error(self) -> None:
        show.error(self, None, "")

    def __repr__(self) -> str:
        return f"<SliceViewer {self.img!r} axis={self.axis} index={self.index} ({self.state})>"


def view(obj: Viewable, **kwargs: Any) -> SliceViewer:
    """Open a :class:`SliceViewer` on a path, nilazyview Image, nibabel image or array.

    Needs the ``viewer`` extra: ipywidgets, matplotlib, and ipyevents (without it
    the click-to-crosshair readout is off).

    Parameters
    ----------
    obj : str, path-like, Image, nibabel image or numpy.ndarray
        What to show; a path is opened with :func:`nilazyview.load` (a proxy).
    **kwargs
        Options of :class:`SliceViewer` (``axis``, ``index``, ``ortho``, ``cache_bytes``, ...).

    Returns
    -------
    SliceViewer
        The widget; as the last expression of a notebook cell it displays itself.
        Errors opening ``obj`` are shown in it, not raised.
    """
    return SliceViewer(obj, **kwargs)
