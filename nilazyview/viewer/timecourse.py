"""The time course under the image: one voxel's series of a 4D image, plotted, clickable.

:func:`series_at` reads ``img.slicecopy[i, j, k, :]``: for an uncompressed NIfTI
that is one voxel's run through the volumes, ``n`` runs of one item each, whatever
the volume size (a 1 GiB 128 x 128 x 80 x 400 int16 file: 400 runs of 2 B, 800 B
read, 0.2-0.3 ms with a warm page cache). :class:`SeriesCache` keeps the last series
read per voxel, so stepping slices or volumes reads nothing.

The plot is drawn with numpy (a polyline on an RGB canvas at the device pixel
ratio, encoded as PNG by Pillow) rather than matplotlib: a 512 x 96 plot of 400
volumes takes 1.4-1.5 ms against 48-70 ms for a matplotlib Agg figure of that size
(medians of two runs, ``benchmarks/bench_timecourse.py``), which matters because it is redrawn
on every crosshair and volume change. The numbers (volume, value, range) are in an
HTML caption under it. A click on the plot sets ``v.volume`` to the volume nearest
the pointer.
"""

from __future__ import annotations

import html
import io
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

from . import orientation
from .adapt import n_volumes, spatial_shape

if TYPE_CHECKING:
    import ipywidgets as W

    from .widget import SliceViewer

PLOT_HEIGHT = 96  # CSS pixels
PAD = 6  # CSS pixels of margin on each side of the plot area
LINE_RGB = (31, 90, 160)
MARK_RGB = (220, 50, 50)
GRID_RGB = (225, 225, 225)
MAX_SERIES = 64  # series kept by a SeriesCache


def series_index(shape: tuple[int, ...], voxel: tuple[int, ...]) -> tuple:
    """The basic index of one voxel's series: ``(i, j, k, ...)`` over the volumes."""
    shape3 = spatial_shape(shape)
    ijk = tuple(int(v) for v in voxel[:3])
    for v, n in zip(ijk, shape3, strict=True):
        if not 0 <= v < n:
            raise IndexError(f"voxel {ijk} is outside an image of shape {tuple(shape)}")
    return (*ijk[: len(shape)], Ellipsis)


def series_at(img, voxel: tuple[int, ...]) -> np.ndarray:
    """``img.slicecopy[i, j, k, :]`` as a 1-D array (axes after the fourth flattened)."""
    return np.asarray(img.slicecopy[series_index(img.shape, voxel)]).reshape(-1)


class SeriesCache:
    """The series read lately, per (image, voxel); in-memory images are always re-read."""

    def __init__(self, max_items: int = MAX_SERIES):
        self.max_items = int(max_items)
        self._items: OrderedDict = OrderedDict()
        self.reads = 0

    def get(self, img, voxel: tuple[int, ...]) -> np.ndarray:
        """The series of ``voxel`` in ``img`` (read once while ``img`` is a proxy)."""
        key = (id(img), tuple(int(v) for v in voxel[:3]))
        got = self._items.get(key)
        if got is not None and got[0] is img and img.is_proxy:
            self._items.move_to_end(key)
            return got[1]
        series = series_at(img, voxel)
        self.reads += 1
        if img.is_proxy:
            self._items[key] = (img, series)  # img kept: its id is not reused meanwhile
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return series

    def clear(self) -> None:
        """Forget every series."""
        self._items.clear()


def source(viewer) -> tuple | None:
    """``(image, voxel, name)`` whose series ``viewer.timecourse`` is, or None.

    The base image's at the crosshair when it has several volumes, else the topmost
    visible layer's with several volumes at the crosshair's world point (None when
    that point is outside the layer), else None. Without a crosshair: None.
    """
    img, cross = viewer.img, viewer.crosshair
    if img is None or cross is None:
        return None
    if n_volumes(img.shape) > 1:
        return img, tuple(cross), "image"
    world = orientation.world_coords(img.affine, cross)
    for layer in reversed(list(getattr(viewer, "layers", None) or [])):
        if layer.visible and n_volumes(layer.img.shape) > 1:
            voxel = layer.voxel_at_world(world)
            if voxel is None:
                return None
            return layer.img, tuple(voxel), getattr(layer, "name", None) or "layer"
    return None


def _line(canvas: np.ndarray, xs: np.ndarray, ys: np.ndarray, rgb) -> None:
    """A polyline through pixel points ``xs``, ``ys`` drawn in place (one pixel wide)."""
    if xs.size == 1:
        canvas[int(np.rint(ys[0])), int(np.rint(xs[0]))] = rgb
        return
    steps = np.maximum(np.ceil(np.maximum(np.abs(np.diff(xs)), np.abs(np.diff(ys)))), 1)
    seg = np.repeat(np.arange(xs.size - 1), steps.astype(np.int64))
    first = np.concatenate([[0], np.cumsum(steps)[:-1]]).astype(np.int64)
    t = (np.arange(seg.size) - first[seg]) / steps[seg]
    px = np.rint(xs[seg] + t * (xs[seg + 1] - xs[seg])).astype(np.int64)
    py = np.rint(ys[seg] + t * (ys[seg + 1] - ys[seg])).astype(np.int64)
    canvas[py, px] = rgb
    canvas[int(np.rint(ys[-1])), int(np.rint(xs[-1]))] = rgb


def geometry(width: float, ratio: float = 1.0) -> tuple[int, int]:
    """``(pixels, pad)`` across a plot ``width`` CSS px wide at device ``ratio``."""
    return max(8, round(width * ratio)), max(2, round(PAD * ratio))


def x_of(t: np.ndarray | int, n: int, pixels: int, pad: int) -> np.ndarray:
    """Pixel column (centre) of volume ``t`` of ``n`` on a plot ``pixels`` wide."""
    span = pixels - 1 - 2 * pad
    return pad + np.asarray(t, np.float64) * (span / max(n - 1, 1))


def volume_at(fx: float, n: int, width: float, ratio: float = 1.0) -> int:
    """The volume nearest the fraction ``fx`` (0 to 1) across a plot ``width`` CSS px wide."""
    pixels, pad = geometry(width, ratio)
    span = pixels - 1 - 2 * pad
    t = (float(fx) * pixels - 0.5 - pad) / max(span, 1) * max(n - 1, 0)
    return int(min(max(round(t), 0), max(n - 1, 0)))


def draw(series: np.ndarray, current: int, width: int, height: int, ratio: float = 1.0) -> bytes:
    """PNG bytes of ``series`` plotted on ``width`` x ``height`` CSS px, volume ``current``
    marked (a vertical line and a dot); non-finite values are left out."""
    from PIL import Image as PILImage  # Pillow, in the 'viewer' extra

    w, pad = geometry(width, ratio)
    h = max(8, round(height * ratio))
    canvas = np.full((h, w, 3), 255, np.uint8)
    canvas[[pad, h - 1 - pad], pad : w - pad] = GRID_RGB
    canvas[pad : h - pad, [pad, w - 1 - pad]] = GRID_RGB
    values = np.asarray(series, np.float64).reshape(-1)
    n = values.size
    finite = np.isfinite(values)
    if n and finite.any():
        lo, hi = float(values[finite].min()), float(values[finite].max())
        scale = (h - 1 - 2 * pad) / (hi - lo) if hi > lo else 0.0
        ys = np.where(finite, h - 1 - pad - (values - lo) * scale, np.nan)
        if scale == 0.0:
            ys = np.where(finite, h / 2, np.nan)
        xs = x_of(np.arange(n), n, w, pad)
        t = int(min(max(current, 0), n - 1))
        canvas[pad : h - pad, int(np.rint(xs[t]))] = MARK_RGB
        # draw each run of finite values as one polyline
        edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            _line(canvas, xs[a:b], ys[a:b], LINE_RGB)
        if finite[t]:
            r, c, d = int(np.rint(ys[t])), int(np.rint(xs[t])), max(1, round(2 * ratio))
            canvas[max(0, r - d) : r + d + 1, max(0, c - d) : c + d + 1] = MARK_RGB
    buf = io.BytesIO()
    PILImage.fromarray(canvas, "RGB").save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def caption(series: np.ndarray, current: int, voxel: tuple[int, ...], name: str) -> str:
    """The line beside the plot: whose series, the volume marked and its value, the range."""
    values = np.asarray(series, np.float64)
    finite = values[np.isfinite(values)]
    t = int(min(max(current, 0), values.size - 1))
    rng = f"{finite.min():.6g} to {finite.max():.6g}" if finite.size else "no finite values"
    return (
        f"<small>time course of {name} at voxel ({', '.join(map(str, voxel))}): volume "
        f"<b>{t}</b> of {values.size}, value <b>{values[t]:.6g}</b>; range {rng}</small>"
    )


class Panel:
    """The time-course row of a viewer: the plot (``nlv-timecourse``) and its caption.

    Shown only when :func:`source` has a series; :meth:`update` redraws it when the
    series or the volume marked changed.
    """

    def __init__(self, viewer: SliceViewer):
        import ipywidgets as W  # the optional 'viewer' extra

        self._viewer = viewer
        self.cache = SeriesCache()
        self.image: W.Image = W.Image(format="png")
        self.image.add_class("nlv-timecourse")
        self.caption: W.HTML = W.HTML("")
        self.box = W.VBox([self.image, self.caption], layout=W.Layout(display="none"))
        self._drawn: tuple | None = None
        self._n = 0
        self._events = _click_events(self.image)
        for events in self._events:
            events.on_dom_event(self.on_click)

    def series(self) -> np.ndarray | None:
        """The series ``viewer.timecourse`` is (read through the cache), or None."""
        got = source(self._viewer)
        return None if got is None else self.cache.get(got[0], got[1])

    def update(self) -> None:
        """Show, hide or redraw the plot for the crosshair and volume now."""
        v = self._viewer
        got = source(v)
        if got is None:
            self._drawn = None
            self.box.layout.display = "none"
            return
        img, voxel, name = got
        try:
            series = self.cache.get(img, voxel)
        except Exception as exc:  # e.g. the file went: said under the image, not raised
            self._drawn = None
            self.image.layout.display = "none"
            self.caption.value = html.escape(f"no time course: {type(exc).__name__}: {exc}")
            self.box.layout.display = None
            return
        self.image.layout.display = None
        width = int(float(v.image.width or 0)) or 512
        ratio = v._session.pixel_ratio
        key = (id(img), voxel, v.volume, width, ratio, id(series))
        if key != self._drawn:
            self.image.value = draw(series, v.volume, width, PLOT_HEIGHT, ratio)
            self.image.width, self.image.height = str(width), str(PLOT_HEIGHT)
            self.caption.value = caption(series, v.volume, voxel, name)
            self._drawn, self._n = key, series.size
        self.box.layout.display = None

    def on_click(self, event: dict) -> None:
        """A click on the plot (an ipyevents dict): ``viewer.volume`` = the volume under it."""
        if event.get("type") != "click" or self._drawn is None or self._n == 0:
            return
        width, ratio = float(self.image.width), self._viewer._session.pixel_ratio
        w = event.get("boundingRectWidth")
        if w and "relativeX" in event:
            fx = float(event["relativeX"]) / float(w)
        elif "dataX" in event:  # a pixel of the plot as drawn
            fx = (float(event["dataX"]) + 0.5) / geometry(width, ratio)[0]
        else:
            return
        self._viewer.volume = volume_at(fx, self._n, width, ratio)


def _click_events(image: W.Image) -> list:
    try:
        import ipyevents  # in the 'viewer' extra; without it the plot is not clickable
    except ImportError:
        return []
    return [ipyevents.Event(source=image, watched_events=["click"], prevent_default_action=True)]
