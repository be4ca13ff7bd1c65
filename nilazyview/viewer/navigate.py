"""Zoom and pan of a :class:`~nilazyview.viewer.session.ViewerSession` (a mixin; no I/O).

The view is ``zoom`` and ``centre3`` (voxel coordinates of the view centre); the
maths of what that shows is :mod:`~nilazyview.viewer.view_window`.
"""

from __future__ import annotations

import math

from . import view_window as vw


class Navigation:
    """Zoom, centre and pan state; needs ``dmap``, ``shape3``, ``display_size``,
    ``pixel_ratio``, ``zoom``, ``centre3``, ``pan``, ``view``, ``_pixels`` and
    ``current_view`` from the session."""

    def max_zoom(self) -> float:
        """The largest zoom: a voxel on about 16 display pixels along the closer axis."""
        px = self._pixels(self.dmap, self.display_size)
        return min(vw.max_zoom(self.shape3[a], p / self.pixel_ratio) for a, p in px.items())

    def set_zoom(self, zoom: float) -> float:
        """Zoom to ``zoom`` (clamped to 1 .. :meth:`max_zoom`) about the view centre."""
        zoom = float(zoom)
        if not zoom > 0:
            raise ValueError(f"zoom must be positive, not {zoom}")
        half_octaves = round(2 * math.log2(zoom))
        if abs(zoom - 2 ** (half_octaves / 2)) < 1e-6 * zoom:  # wheel steps of 2**0.5 land on 4.0
            zoom = 2 ** (half_octaves / 2)
        self.zoom = min(max(1.0, zoom), self.max_zoom())
        self._clamp_centre()
        return self.zoom

    def centre(self) -> tuple[float, float]:
        """The view centre's in-plane voxel coordinates (in the order of the axes)."""
        self._clamp_centre()
        return tuple(self.centre3[a] for a in range(3) if a != self.dmap.axis)

    def set_centre(self, centre) -> None:
        """Centre the view on in-plane voxel coordinates ``centre`` (2 values, or a voxel)."""
        vals = [float(c) for c in centre]
        axes = [a for a in range(3) if a != self.dmap.axis]
        if len(vals) == 3:
            vals = [vals[a] for a in axes]
        if len(vals) != 2:
            raise ValueError(f"centre needs the 2 in-plane coordinates, not {centre!r}")
        before = self.centre()
        for a, v in zip(axes, vals, strict=True):
            self.centre3[a] = v
        self._clamp_centre()
        self._note_pan(before)

    def reset_view(self) -> None:
        """Zoom 1, centred."""
        self.zoom = 1.0
        self.centre3 = [(n - 1) / 2 for n in self.shape3]
        self.pan = {}

    def zoom_at(self, factor: float, fy: float, fx: float) -> None:
        """Zoom by ``factor`` keeping the point at frame fractions ``fy``, ``fx`` in place."""
        view = self.view or self.current_view()
        anchor = vw.coords_at(self.dmap, view, fy, fx)
        old = self.zoom
        self.set_zoom(old * factor)
        for a, x in anchor.items():
            self.centre3[a] = vw.zoom_about(self.centre3[a], x, old, self.zoom)
        self._clamp_centre()

    def pan_by(self, dy: float, dx: float, view: vw.View | None = None) -> None:
        """Move the picture by ``dy``, ``dx`` (fractions of the displayed image; it follows)."""
        view = view or self.view or self.current_view()
        before = self.centre()
        for a, d in vw.pan_delta(self.dmap, view, dy, dx).items():
            self.centre3[a] += d
        self._clamp_centre()
        self._note_pan(before)

    def pan_from(self, centre3, view: vw.View, dy: float, dx: float) -> None:
        """Centre where a drag from ``centre3`` (seen as ``view``) by ``dy``, ``dx`` leads."""
        before = self.centre()
        for a, d in vw.pan_delta(self.dmap, view, dy, dx).items():
            self.centre3[a] = centre3[a] + d
        self._clamp_centre()
        self._note_pan(before)

    def _note_pan(self, before: tuple[float, float]) -> None:
        axes = [a for a in range(3) if a != self.dmap.axis]
        for a, b in zip(axes, before, strict=True):
            d = self.centre3[a] - b
            self.pan[a] = 0 if abs(d) < 1e-9 else (1 if d > 0 else -1)

    def _clamp_centre(self) -> None:
        for a in range(3):
            if a != self.dmap.axis:
                n = self.shape3[a]
                self.centre3[a] = vw.clamp_centre(n, self.zoom, self.centre3[a])
