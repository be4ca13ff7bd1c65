"""``SliceViewer``: the ipywidgets slice viewer that reads only the slab it shows."""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import time
import weakref
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np

from . import orientation, render
from .adapt import check_files, n_volumes, slab_index, slab_plan, spatial_shape, to_image
from .cache import DEFAULT_MAX_BYTES, SlabCache
from .fetch import Fetched, Prefetcher, fetch
from .handoff import hand_off

if TYPE_CHECKING:
    from nibabel.spatialimages import SpatialImage

    from nilazyview import Image

    Viewable = str | os.PathLike[str] | Image | np.ndarray | SpatialImage

_STYLE = (
    "<style>.nlv-image{image-rendering:pixelated;}"
    ".nlv-edge{font:bold 12px sans-serif;color:#555;text-align:center;}"
    ".nlv-badge span{padding:1px 8px;border-radius:8px;color:#fff;font:12px sans-serif;}"
    "</style>"
)
_BADGE_COLOURS = {"proxy": "#2a7ab0", "in memory": "#3c8c3c", "dirty": "#c0632b"}
_PLANE_ORDER = {"axial": 0, "coronal": 1, "sagittal": 2}


def _classed(widget: widgets.Widget, cls: str) -> widgets.Widget:
    widget.add_class(cls)
    return widget


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


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
    display_size : int
        Longest side of the displayed image in screen pixels.
    fmt, compress_level : str, int
        Image encoding (``"png"`` palette images by default; ``"jpeg"`` possible).
    poll_interval : float
        Seconds between badge checks while the kernel is idle (0: only on interaction).
    ortho : bool
        Also show the three orthogonal planes through the crosshair (or the centre)
        side by side, each read as its own slab (``v.ortho_images``).

    Notes
    -----
    Errors (a file that is not an image, a file removed while viewed) are shown in
    the widget (``v.error``), never raised from interactions.
    """

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
        display_size: int = 512,
        fmt: str = "png",
        compress_level: int = 1,
        poll_interval: float = 0.5,
        ortho: bool = False,
    ):
        self.cache = SlabCache(cache_bytes)
        self.rendered = SlabCache(render_cache_bytes)
        self.prefetch = int(prefetch)
        self.display_size = int(display_size)
        self.fmt = fmt
        self.compress_level = int(compress_level)
        self.img = None
        self.last_step: dict = {}
        self._window = None if window is None else (float(window[0]), float(window[1]))
        self._cmap = cmap
        self._quiet = 0
        self._state: str | None = None
        self._crosshair: tuple[int, int, int] | None = None
        self._screen: np.ndarray | None = None
        self._shown: tuple | None = None
        self._poll_task = None
        self._closed = False
        self.ortho = bool(ortho)
        self._prefetcher = Prefetcher(self._prefetch_one, self.rendered.peek)
        self._build()
        super().__init__(children=self._layout_children())
        self.add_class("nlv-viewer")
        try:
            self.img = to_image(obj)
        except Exception as exc:  # any failure to open is shown, not raised
            self._show_error(exc, f"Cannot view {self._describe_obj(obj)}")
            return
        self._setup(axis, index, volume)
        self._start_polling(poll_interval)

    # --- construction ------------------------------------------------------------
    def _build(self) -> None:
        W = widgets
        self.title = W.HTML(_STYLE)
        self.badge = _classed(W.HTML(""), "nlv-badge")
        self.error = _classed(W.HTML("", layout=W.Layout(display="none")), "nlv-error")
        self.plane = _classed(W.ToggleButtons(options=[("axial", 2)], value=2), "nlv-plane")
        self.plane.style.button_width = "80px"
        self.slider = _classed(
            W.IntSlider(0, 0, 0, description="slice", continuous_update=True), "nlv-slider"
        )
        self.slider.layout.width = "420px"
        self.volume_slider = _classed(
            W.IntSlider(0, 0, 0, description="volume", layout=W.Layout(display="none")),
            "nlv-volume",
        )
        self.image = _classed(W.Image(format=self.fmt), "nlv-image")
        self.edges = {
            k: _classed(W.HTML(""), "nlv-edge") for k in ("left", "right", "top", "bottom")
        }
        for k in ("left", "right"):
            self.edges[k].layout = W.Layout(width="20px", align_self="center")
        self.readout = _classed(W.HTML("click the image to set the crosshair"), "nlv-readout")
        self.cmap = W.Dropdown(
            options=sorted({"gray", "bone", "viridis", "magma", "inferno", "hot", self._cmap}),
            value=self._cmap,
            description="colormap",
            layout=W.Layout(width="200px"),
        )
        self.vmin = W.FloatText(description="min", layout=W.Layout(width="170px"))
        self.vmax = W.FloatText(description="max", layout=W.Layout(width="170px"))
        self.auto = W.Button(description="auto window", tooltip="robust percentiles of this slab")
        self.handoff_button = _classed(
            W.Button(description="hand off (as_file)", icon="share", tooltip="a file path"),
            "nlv-handoff",
        )
        self.handoff_path = _classed(
            W.Text(placeholder="path appears here", layout=W.Layout(width="460px")),
            "nlv-handoff-path",
        )
        self.handoff_note = W.HTML("")
        self.io = _classed(W.HTML(""), "nlv-io")
        self.ortho_images = [_classed(W.Image(format=self.fmt), "nlv-ortho") for _ in range(3)]
        self.ortho_labels = [W.HTML("") for _ in range(3)]
        # events
        self.plane.observe(self._on_plane, "value")
        self.slider.observe(self._on_index, "value")
        self.volume_slider.observe(self._on_volume, "value")
        self.cmap.observe(self._on_display, "value")
        self.vmin.observe(self._on_window_text, "value")
        self.vmax.observe(self._on_window_text, "value")
        self.auto.on_click(lambda _b: self.auto_window())
        self.handoff_button.on_click(lambda _b: self.handoff())
        self._clicks = None
        try:
            import ipyevents
        except ImportError:
            self.readout.value = "install ipyevents for the click-to-crosshair readout"
        else:
            self._clicks = ipyevents.Event(source=self.image, watched_events=["click"])
            self._clicks.on_dom_event(self._on_click)

    def _layout_children(self) -> list:
        W = widgets
        e = self.edges
        picture = W.VBox(
            [e["top"], W.HBox([e["left"], self.image, e["right"]]), e["bottom"]],
            layout=W.Layout(align_items="center", width="fit-content"),
        )
        panels = zip(self.ortho_labels, self.ortho_images, strict=True)
        ortho = [W.HBox([W.VBox(list(p)) for p in panels])] if self.ortho else []
        return [
            W.HBox([self.title, self.badge]),
            self.error,
            self.plane,
            W.HBox([self.slider, self.volume_slider]),
            picture,
            *ortho,
            self.readout,
            W.HBox([self.cmap, self.vmin, self.vmax, self.auto]),
            W.HBox([self.handoff_button, self.handoff_path, self.handoff_note]),
            self.io,
        ]

    @staticmethod
    def _describe_obj(obj) -> str:
        if isinstance(obj, str | os.PathLike):
            return repr(os.fspath(obj))
        return f"an object of type {type(obj).__name__}"

    def _setup(self, axis: int | None, index: int | None, volume: int) -> None:
        img = self.img
        self._shape3 = spatial_shape(img.shape)
        names = orientation.plane_names(img.affine)
        axes = sorted(range(3), key=lambda a: _PLANE_ORDER[names[a]])
        if axis is None:
            axis = axes[0]
        name = os.path.basename(img.filename) if getattr(img, "filename", None) else "array"
        sizes = ", ".join(f"{s:g}" for s in orientation.voxel_sizes(img.affine))
        self.title.value = _STYLE + (
            f"<b>{html.escape(name)}</b> &nbsp; {'x'.join(map(str, img.shape))} "
            f"{np.dtype(img.dtype).name} &nbsp; {orientation.axcodes(img.affine)} "
            f"&nbsp; voxels {sizes} mm &nbsp;"
        )
        nvol = n_volumes(img.shape)
        with self._hold():
            self.plane.options = [(names[a], a) for a in axes]
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
        return self._window

    @window.setter
    def window(self, value: tuple[float, float] | None) -> None:
        self._window = None if value is None else (float(value[0]), float(value[1]))
        self._refresh()

    @property
    def crosshair(self) -> tuple[int, int, int] | None:
        """Voxel (i, j, k) of the crosshair, or None."""
        return self._crosshair

    @crosshair.setter
    def crosshair(self, voxel: tuple[int, int, int] | None) -> None:
        self._crosshair = None if voxel is None else tuple(int(v) for v in voxel[:3])
        self._update_readout()
        self._refresh()

    @property
    def state(self) -> str:
        """``"proxy"``, ``"in memory"`` or ``"dirty"`` (``""`` with no image)."""
        return "" if self.img is None else self.img.state

    def auto_window(self) -> tuple[float, float] | None:
        """Set the window to robust percentiles of the slab shown now."""
        if self._screen is None:
            return None
        self._window = render.robust_window(self._screen)
        self._refresh()
        return self._window

    def handoff(self) -> str | None:
        """A file path holding the image (``nilazyview.as_file``), shown in ``handoff_path``.

        Returns None (and shows the error) when no file can be made.
        """
        if self.img is None:
            return None
        try:
            path, original = hand_off(self.img)
        except Exception as exc:  # shown in the widget
            self._show_error(exc, "Hand-off failed")
            return None
        self.handoff_path.value = path
        self.handoff_note.value = "original file" if original else "temporary copy"
        self._update_badge()
        return path

    def refresh(self) -> None:
        """Re-read and redraw the slice shown (after changing a dirty array in place)."""
        self._clear_caches()
        self._refresh()

    def poll(self) -> str:
        """Update the badge from the image state now; redraw if the state changed,
        or if the in-memory array's values in the slab shown changed (edits in place)."""
        before = self._state
        state = self._update_badge()
        if before is not None and state != before:
            self._refresh()
        elif self._shown_changed():
            self._clear_caches()
            self._refresh()
        return state

    def _shown_changed(self) -> bool:
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

    def close(self) -> None:
        """Stop background work and close the widgets."""
        self._closed = True
        self._prefetcher.close()
        if self._poll_task is not None:
            self._poll_task.cancel()
        self._clear_caches()
        super().close()

    # --- events ------------------------------------------------------------------
    def _set_axis(self, axis: int, index: int | None = None) -> None:
        self._dmap = orientation.display_map(self.img.affine, axis)
        n = self._shape3[axis]
        if index is None:
            index = self._crosshair[axis] if self._crosshair else n // 2
        self._last_index = min(max(0, int(index)), n - 1)
        with self._hold():
            if self.slider.value > n - 1:
                self.slider.value = n - 1
            self.slider.max = n - 1
            self.slider.value = self._last_index
        labels = self._dmap.labels
        for k, w in self.edges.items():
            w.value = labels[k]
        rows, cols = self._shape3[self._dmap.row_axis], self._shape3[self._dmap.col_axis]
        height, width = rows * self._dmap.aspect, cols
        zoom = self.display_size / max(height, width)
        self.image.width = str(max(1, round(width * zoom)))
        self.image.height = str(max(1, round(height * zoom)))
        self._direction = 1

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
            self._direction = 1 if new > old else -1
        self._refresh()

    def _on_volume(self, change) -> None:
        if self.img is None or self._quiet:
            return
        self._prefetcher.cancel()
        self._refresh()

    def _on_display(self, _change) -> None:
        self._cmap = self.cmap.value
        self._refresh()

    def _on_window_text(self, _change) -> None:
        if self._quiet:
            return
        if self.vmax.value > self.vmin.value:
            self._window = (float(self.vmin.value), float(self.vmax.value))
            self._refresh()

    def _on_click(self, event: dict) -> None:
        if self.img is None or self._screen is None or "dataX" not in event:
            return
        row, col = int(event["dataY"]), int(event["dataX"])
        nr, nc = self._screen.shape
        if not (0 <= row < nr and 0 <= col < nc):
            return
        self.crosshair = self._dmap.to_voxel(row, col, self.index, self._shape3)

    # --- reading and drawing -----------------------------------------------------
    def _read(self, key) -> np.ndarray:
        volume, axis, index = key
        arr = self.img.slicecopy[slab_index(self.img.shape, axis, index, volume)]
        keep = [n for a, n in enumerate(self._shape3) if a != axis]
        return np.asarray(arr).reshape(keep)

    def _neighbours(self, index: int, settings: tuple) -> list:
        n, d = self._shape3[self.axis], self._direction
        ahead = [index + d * k for k in range(1, self.prefetch + 1)]
        wanted = [*ahead, index - d] if self.prefetch else []
        return [((self.volume, self.axis, i), settings) for i in wanted if 0 <= i < n]

    def _settings(self) -> tuple:
        """Everything besides the slab that decides the encoded image."""
        cross = (None, None)
        if self._crosshair is not None:
            cross = self._dmap.to_screen(self._crosshair, self._shape3)
        return (self._dmap, self._window, self._cmap, cross, self.fmt, self.compress_level)

    @staticmethod
    def _draw(screen: np.ndarray, settings: tuple) -> bytes:
        _, window, cmap, cross, fmt, level = settings
        return render.render(screen, *window, cmap=cmap, cross=cross, fmt=fmt, compress_level=level)

    def _prefetch_one(self, rkey) -> None:
        """Background: read (unless cached) and render one neighbouring slab."""
        key, settings = rkey
        slab = self.cache.get_quiet(key)
        if slab is None:
            slab = self._read(key)
            self.cache.put(key, slab)
        self.rendered.put(rkey, self._draw(settings[0].apply(slab), settings))

    def _clear_caches(self) -> None:
        self._prefetcher.cancel()
        self.cache.clear()
        self.rendered.clear()

    def _refresh(self) -> None:
        if self.img is None or self._quiet or self._closed:
            return
        self._update_badge()
        key = (self.volume, self.axis, self.index)
        try:
            check_files(self.img)
            use_cache = self.img.is_proxy
            if use_cache and self.prefetch:
                self._prefetcher.wait_for((key, self._settings()))
            got: Fetched = fetch(key, self._read, self.cache if use_cache else None)
            t0 = time.perf_counter()
            screen = self._dmap.apply(got.slab)
            if self._window is None:
                self._window = render.robust_window(screen)
            self._show_window()
            settings = self._settings()
            rkey = (key, settings)
            data = self.rendered.get(rkey) if use_cache else None
            drawn = data is not None
            if data is None:
                data = self._draw(screen, settings)
                if use_cache:
                    self.rendered.put(rkey, data)
            render_ms = (time.perf_counter() - t0) * 1e3
            self.image.value = data
        except Exception as exc:  # shown in the widget, the kernel lives on
            self._show_error(exc, f"Cannot show slice {key[2]} of axis {key[1]}")
            return
        self._screen = screen
        # an in-memory slab is a copy made for this draw: kept to see edits in place
        self._shown = None if use_cache else (key, got.slab)
        self._clear_error()
        self.last_step = {
            "key": key,
            "hit": got.hit,
            "render_hit": drawn,
            "fetch_ms": got.ms,
            "render_ms": render_ms,
            "cached": use_cache,
            "bytes": len(data),
        }
        self._update_io()
        self._update_readout()
        if self.ortho:
            self._refresh_ortho()
        if use_cache and self.prefetch:
            self._prefetcher.want(self._neighbours(key[2], settings))

    def _ortho_voxel(self) -> tuple[int, int, int]:
        """The point the orthogonal planes go through: the crosshair, else the centre
        (with the main plane's current slice)."""
        if self._crosshair is not None:
            return self._crosshair
        centre = [n // 2 for n in self._shape3]
        centre[self.axis] = self.index
        return tuple(centre)

    def _refresh_ortho(self) -> None:
        """Draw the three orthogonal planes through :meth:`_ortho_voxel` (cached slabs)."""
        point = self._ortho_voxel()
        small = max(64, self.display_size // 2)
        use_cache = self.img.is_proxy
        names = orientation.plane_names(self.img.affine)
        for axis in range(3):
            key = (self.volume, axis, point[axis])
            got = fetch(key, self._read, self.cache if use_cache else None)
            dmap = orientation.display_map(self.img.affine, axis)
            cross = dmap.to_screen(point, self._shape3)
            screen = dmap.apply(got.slab)
            self.ortho_images[axis].value = render.render(
                screen,
                *self._window,
                cmap=self._cmap,
                cross=cross,
                fmt=self.fmt,
                compress_level=self.compress_level,
            )
            rows, cols = screen.shape
            zoom = small / max(rows * dmap.aspect, cols)
            self.ortho_images[axis].width = str(max(1, round(cols * zoom)))
            self.ortho_images[axis].height = str(max(1, round(rows * dmap.aspect * zoom)))
            self.ortho_labels[axis].value = f"<small>{names[axis]} {point[axis]}</small>"

    def _show_window(self) -> None:
        with self._hold():
            self.vmin.value, self.vmax.value = self._window

    # --- panels ------------------------------------------------------------------
    def _update_badge(self) -> str:
        if self.img is None:
            return ""
        state = self.img.state
        if state != self._state:
            if state == "dirty":
                self._clear_caches()
            self._state = state
        colour = _BADGE_COLOURS[state]
        self.badge.value = f'<span style="background:{colour}">{state}</span>'
        return state

    def _update_io(self) -> None:
        s = self.last_step
        volume, axis, index = s["key"]
        rows = [f"<b>slab</b> {self._dmap.plane} (axis {axis}) index {index}"]
        if len(self.img.shape) > 3:
            rows[0] += f", volume {volume}"
        plan = slab_plan(self.img, slab_index(self.img.shape, axis, index, volume))
        if plan is not None:
            rows.append(
                f"<b>read plan</b> {plan.strategy}, {plan.n_runs} run(s), "
                f"{plan.nbytes:,} B ({html.escape(plan.describe())})"
            )
        if not s["cached"]:
            rows.append("<b>this step</b> in-memory array: no disk read, no cache")
        elif s["hit"]:
            rows.append("<b>this step</b> cache hit: 0 B read from disk")
        else:
            nbytes = f"{plan.nbytes:,} B" if plan is not None else "the slab"
            rows.append(f"<b>this step</b> cache miss: read {nbytes} from disk")
        again = " (image cached)" if s.get("render_hit") else ""
        rows.append(
            f"<b>time</b> fetch {s['fetch_ms']:.1f} ms, render {s['render_ms']:.1f} ms{again}"
        )
        c = self.cache
        rows.append(
            f"<b>cache</b> {len(c)} slabs, {_mib(c.nbytes)} of {_mib(c.max_bytes)}, "
            f"{c.hits} hits, {c.misses} misses; prefetched {self._prefetcher.done}"
        )
        self.io.value = "<div style='font:12px monospace'>" + "<br>".join(rows) + "</div>"

    def _update_readout(self) -> None:
        if self._crosshair is None or self.img is None:
            return
        vox = self._crosshair
        mm = orientation.world_coords(self.img.affine, vox)
        value = ""
        if self._screen is not None and vox[self.axis] == self.index:
            r, c = self._dmap.to_screen(vox, self._shape3)
            value = f" &nbsp; value <b>{self._screen[r, c]:.6g}</b>"
        self.readout.value = (
            f"voxel <b>({', '.join(map(str, vox))})</b> &nbsp; world "
            f"<b>({', '.join(f'{x:.1f}' for x in mm)}) mm</b>{value}"
        )

    def _show_error(self, exc: BaseException, what: str) -> None:
        msg = f"{what}: {type(exc).__name__}: {exc}"
        self.error.value = (
            '<div style="color:#a00;background:#fee;padding:4px 8px;border-left:4px solid #a00">'
            f"{html.escape(msg)}</div>"
        )
        self.error.layout.display = None

    def _clear_error(self) -> None:
        if self.error.value:
            self.error.value = ""
            self.error.layout.display = "none"

    # --- live badge --------------------------------------------------------------
    def _start_polling(self, interval: float) -> None:
        if interval <= 0:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop (plain scripts): the badge updates on interaction
        ref = weakref.ref(self)

        async def poll() -> None:
            while True:
                await asyncio.sleep(interval)
                viewer = ref()
                if viewer is None or viewer._closed:
                    return
                with contextlib.suppress(Exception):
                    viewer.poll()
                del viewer

        self._poll_task = loop.create_task(poll())

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
