"""Pure maths of zoom and pan: which voxels a frame shows, at which step, and what is read.

A view of a slab is the two in-plane voxel axes (in increasing order), each an
:class:`AxisWindow`: the frame shows whole *blocks* of ``step`` voxels, block ``k``
holding voxels ``[k * step, (k + 1) * step)`` (the last may be partial). Blocks are
counted from voxel 0 of the volume, so neighbouring slices and every pan share one
reduction grid: nothing shimmers when stepping. The frame's pixels are its blocks.

Coordinates: a voxel's centre is at its integer index (as in the affine); the view
centre is a float in those coordinates. At zoom ``z`` an axis of ``n`` voxels shows
``n / z`` of them on ``px`` display pixels, with ``step = max(1, floor(n / z / px))``
voxels per frame pixel, so a frame has between ``px`` and ``2 px`` pixels along an
axis when reduced and every voxel is at least one display pixel when not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

MARGIN = 0.25  # read this fraction of the visible extent more on each side (for panning)
MAX_PX_PER_VOXEL = 16  # the largest zoom shows a voxel on this many display pixels
_EPS = 1e-6


def fit_box(height: float, width: float, size: int | tuple[int, int]) -> tuple[int, int]:
    """Display ``(width, height)`` in pixels of a picture of ``height`` x ``width`` units.

    ``size`` is the longest side, or a ``(width, height)`` box the picture fits in.
    """
    if isinstance(size, tuple | list):
        scale = min(size[0] / width, size[1] / height)
    else:
        scale = size / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class AxisWindow:
    """What a frame shows of one in-plane voxel axis, and what is read for it.

    Attributes
    ----------
    n : int
        Voxels along the axis.
    step : int
        Voxels per frame pixel (the reduction factor).
    lo, hi : int
        Blocks shown: frame pixels are blocks ``lo .. hi - 1`` (in voxel order).
    read_lo, read_hi : int
        Blocks read (``read_lo <= lo < hi <= read_hi``): the shown ones plus a margin.
    """

    n: int
    step: int
    lo: int
    hi: int
    read_lo: int
    read_hi: int

    @property
    def npix(self) -> int:
        """Frame pixels along the axis."""
        return self.hi - self.lo

    @property
    def start(self) -> int:
        """First voxel shown."""
        return self.lo * self.step

    @property
    def stop(self) -> int:
        """One past the last voxel shown."""
        return min(self.hi * self.step, self.n)

    def read_range(self) -> tuple[int, int, int]:
        """``(start, stop, step)`` in voxels of the read (a basic slice's arguments)."""
        return self.read_lo * self.step, min(self.read_hi * self.step, self.n), self.step

    def crop(self) -> slice:
        """The shown blocks within the read blocks."""
        return slice(self.lo - self.read_lo, self.hi - self.read_lo)

    def voxel_at(self, frac: float) -> int:
        """The voxel at fraction ``frac`` (0 to 1, in voxel order) across the frame."""
        x = min(max(frac, 0.0), 1.0) * self.npix
        p = min(self.npix - 1, math.floor(x))
        block = self.lo + p
        width = min(self.step, self.n - block * self.step)
        return block * self.step + min(width - 1, math.floor((x - p) * width))

    def coord_at(self, frac: float) -> float:
        """The continuous voxel coordinate at fraction ``frac`` across the frame."""
        return self.start - 0.5 + frac * (self.stop - self.start)

    def pixel_of(self, voxel: int) -> int | None:
        """Frame pixel (in voxel order) holding ``voxel``; None when not shown."""
        block = int(voxel) // self.step
        return block - self.lo if self.lo <= block < self.hi else None

    def visible_voxels(self) -> float:
        """Voxels shown along the axis."""
        return float(self.stop - self.start)


def max_zoom(n: int, px: float) -> float:
    """The largest zoom of an axis of ``n`` voxels on ``px`` display pixels."""
    return max(1.0, MAX_PX_PER_VOXEL * n / max(px, 1.0))


def clamp_centre(n: int, zoom: float, centre: float) -> float:
    """``centre`` moved so that the view of ``n / zoom`` voxels stays inside the axis."""
    half = n / zoom / 2
    lo, hi = half - 0.5, n - 0.5 - half
    return (n - 1) / 2 if lo >= hi else min(max(centre, lo), hi)


def axis_window(
    n: int,
    centre: float,
    zoom: float,
    px: float,
    previous: AxisWindow | None = None,
    margin: float = MARGIN,
) -> AxisWindow:
    """The :class:`AxisWindow` of ``n`` voxels seen at ``zoom`` about ``centre`` on ``px`` pixels.

    The read range of ``previous`` is kept when it has the same step and holds the
    blocks now shown (a small pan reads nothing); otherwise it is the shown blocks
    plus ``margin`` of them on each side.
    """
    zoom = max(1.0, float(zoom))
    visible = n / zoom
    step = max(1, int(visible / max(px, 1.0) + _EPS))
    centre = clamp_centre(n, zoom, centre)
    nblocks = -(-n // step)
    first = centre - visible / 2 + 0.5  # voxel-edge coordinates of the shown range
    last = centre + visible / 2 + 0.5
    lo = max(0, math.floor(first / step + _EPS))
    hi = min(nblocks, max(lo + 1, math.ceil(last / step - _EPS)))
    if previous is not None and previous.step == step and previous.n == n:
        if previous.read_lo <= lo and hi <= previous.read_hi:
            return AxisWindow(n, step, lo, hi, previous.read_lo, previous.read_hi)
    extra = math.ceil(margin * (hi - lo))
    return AxisWindow(n, step, lo, hi, max(0, lo - extra), min(nblocks, hi + extra))


@dataclass(frozen=True)
class View:
    """A slab's view: the two in-plane voxel axes ``axes`` (increasing) and their windows.

    Attributes
    ----------
    axes : (int, int)
        The in-plane voxel axes, in increasing order.
    windows : (AxisWindow, AxisWindow)
        Their windows, in the same order.
    zoom : float
        The zoom asked for (1: the whole slab fits).
    """

    axes: tuple[int, int]
    windows: tuple[AxisWindow, AxisWindow]
    zoom: float

    def window(self, voxel_axis: int) -> AxisWindow:
        """The window of in-plane ``voxel_axis``."""
        return self.windows[self.axes.index(voxel_axis)]

    @property
    def steps(self) -> tuple[int, int]:
        """Voxels per frame pixel along the two axes."""
        return self.windows[0].step, self.windows[1].step

    @property
    def shape(self) -> tuple[int, int]:
        """Frame pixels along the two axes (voxel order, before the screen's transpose)."""
        return self.windows[0].npix, self.windows[1].npix

    def read_ranges(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """The read's ``(start, stop, step)`` along the two axes: the slab cache's key part."""
        return self.windows[0].read_range(), self.windows[1].read_range()

    def crop(self) -> tuple[slice, slice]:
        """The frame's blocks within the (reduced) read."""
        return self.windows[0].crop(), self.windows[1].crop()

    def crop_bounds(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """:meth:`crop` as ``(start, stop)`` pairs (hashable: a cache-key part)."""
        return tuple((c.start, c.stop) for c in self.crop())

    def shown(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Voxels shown ``(start, stop)`` along the two axes."""
        return tuple((w.start, w.stop) for w in self.windows)

    def pixel_of(self, voxel) -> tuple[int | None, int | None]:
        """Frame pixels (voxel order) of a voxel's in-plane position (None: not shown)."""
        return tuple(w.pixel_of(voxel[a]) for a, w in zip(self.axes, self.windows, strict=True))


def make_view(
    shape3: tuple[int, int, int],
    axis: int,
    centre3,
    zoom: float,
    px: dict[int, float],
    recent: Sequence[View] = (),
) -> View:
    """The :class:`View` of the slab across voxel ``axis`` about ``centre3`` at ``zoom``.

    ``px`` gives the display pixels of each in-plane voxel axis. The read box of
    the first of ``recent`` (views read before, newest first) with the same steps
    that holds the blocks now shown is kept: a pan within the margin, or onto a
    window prefetched ahead of the pan, reads nothing.
    """
    axes = tuple(a for a in range(3) if a != axis)
    wins = tuple(axis_window(shape3[a], centre3[a], zoom, px[a]) for a in axes)
    for old in recent:
        if old.axes == axes and all(_holds(o, w) for o, w in zip(old.windows, wins, strict=True)):
            wins = tuple(
                replace(w, read_lo=o.read_lo, read_hi=o.read_hi)
                for o, w in zip(old.windows, wins, strict=True)
            )
            break
    return View(axes, wins, float(zoom))


def _holds(old: AxisWindow, new: AxisWindow) -> bool:
    return old.n == new.n and old.step == new.step and old.read_lo <= new.lo < new.hi <= old.read_hi


def zoom_about(centre: float, anchor: float, zoom: float, new_zoom: float) -> float:
    """The centre that keeps coordinate ``anchor`` at its place on screen when zooming."""
    return anchor + (centre - anchor) * zoom / new_zoom


def _screen_axes(dmap) -> tuple[tuple[int, bool], tuple[int, bool]]:
    return (dmap.row_axis, dmap.flip_rows), (dmap.col_axis, dmap.flip_cols)


def to_frame(dmap, view: View, voxel) -> tuple[int | None, int | None]:
    """Frame pixel ``(row, col)`` of a voxel's in-plane position (None: that line is off)."""
    out = []
    for axis, flip in _screen_axes(dmap):
        win = view.window(axis)
        p = win.pixel_of(voxel[axis])
        out.append(None if p is None else (win.npix - 1 - p if flip else p))
    return out[0], out[1]


def _voxel_fraction(frac: float, flip: bool) -> float:
    return 1.0 - frac if flip else frac


def from_frame(dmap, view: View, fy: float, fx: float, index: int) -> tuple[int, int, int]:
    """The voxel at fractions ``fy`` (down) and ``fx`` (across) of the frame on screen."""
    vox = [0, 0, 0]
    vox[dmap.axis] = int(index)
    for (axis, flip), frac in zip(_screen_axes(dmap), (fy, fx), strict=True):
        vox[axis] = view.window(axis).voxel_at(_voxel_fraction(frac, flip))
    return tuple(vox)


def coords_at(dmap, view: View, fy: float, fx: float) -> dict[int, float]:
    """Continuous voxel coordinates ``{axis: x}`` at frame fractions ``fy``, ``fx``."""
    out = {}
    for (axis, flip), frac in zip(_screen_axes(dmap), (fy, fx), strict=True):
        out[axis] = view.window(axis).coord_at(_voxel_fraction(frac, flip))
    return out


def pan_delta(dmap, view: View, dy: float, dx: float) -> dict[int, float]:
    """Voxel shift ``{axis: d}`` of the centre for a drag of ``dy``, ``dx`` (display fractions).

    The picture follows the pointer: dragging right shows what was left of the view.
    """
    out = {}
    for (axis, flip), d in zip(_screen_axes(dmap), (dy, dx), strict=True):
        extent = view.window(axis).visible_voxels()
        out[axis] = (d if flip else -d) * extent
    return out
