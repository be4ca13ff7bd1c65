"""Mouse gestures on the image, as ipyevents reports them: click, wheel zoom, drag pan, reset.

:class:`Gestures` turns one DOM event (a dict) into a change of the session's view
or crosshair, and says what to redraw. No widgets here: tests feed it dicts.

- click: the crosshair on the voxel under the pointer (not after a drag);
- wheel: zoom by :data:`WHEEL_FACTOR` per event about the point under the pointer;
- drag (button 1 held): the picture follows the pointer;
- double-click: back to zoom 1, centred.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import view_window as vw

WHEEL_FACTOR = 2**0.5
DRAG_SLOP_PX = 3  # moves under this many CSS pixels are still a click


@dataclass
class _Drag:
    x: float
    y: float
    width: float
    height: float
    centre3: list[float]
    view: vw.View
    moved: bool = False


def fractions(event: dict, shape: tuple[int, int]) -> tuple[float, float] | None:
    """``(down, across)`` fractions of the image under the pointer, or None.

    From the pointer's position in CSS pixels and the image's box when the event
    has them (the browser), else from ``dataY``/``dataX``, the frame pixel (rows,
    cols = ``shape``) under it.
    """
    h, w = event.get("boundingRectHeight"), event.get("boundingRectWidth")
    if h and w and "relativeX" in event:
        return float(event["relativeY"]) / h, float(event["relativeX"]) / w
    if "dataX" in event and "dataY" in event:
        return (float(event["dataY"]) + 0.5) / shape[0], (float(event["dataX"]) + 0.5) / shape[1]
    return None


class Gestures:
    """Pointer events -> view and crosshair changes of a session.

    Parameters
    ----------
    session : ViewerSession
        The session whose ``zoom``, ``centre3`` and view change.
    """

    def __init__(self, session):
        self.session = session
        self._drag: _Drag | None = None
        self._swallow_click = False

    def handle(self, event: dict, index: int) -> tuple[str, object] | None:
        """Apply ``event`` (an ipyevents dict) on slice ``index``.

        Returns ``("view", None)`` when the view changed, ``("crosshair", voxel)``
        for a click on the image, or None.
        """
        s, kind = self.session, event.get("type")
        if s.view is None or s.screen is None:
            return None
        if kind == "click":
            if self._swallow_click:
                self._swallow_click = False
                return None
            at = fractions(event, s.screen.shape)
            voxel = None if at is None else s.voxel_at(*at, index)
            return None if voxel is None else ("crosshair", voxel)
        if kind == "dblclick":
            s.reset_view()
            return ("view", None)
        if kind == "wheel":
            at = fractions(event, s.screen.shape)
            dy = float(event.get("deltaY", 0) or 0)
            if at is None or dy == 0:
                return None
            before = s.zoom
            s.zoom_at(WHEEL_FACTOR if dy < 0 else 1 / WHEEL_FACTOR, *at)
            return ("view", None) if s.zoom != before else None
        if kind == "mousedown" and event.get("button", 0) == 0:
            self._swallow_click = False
            w, h = event.get("boundingRectWidth"), event.get("boundingRectHeight")
            if w and h and "clientX" in event:
                self._drag = _Drag(event["clientX"], event["clientY"], w, h,
                                   list(s.centre3), s.view)  # fmt: skip
            return None
        if kind in ("mousemove", "mouseup") and self._drag is not None:
            return self._drag_to(event, end=kind == "mouseup" or not event.get("buttons", 1) & 1)
        return None

    def _drag_to(self, event: dict, end: bool) -> tuple[str, object] | None:
        d = self._drag
        dx, dy = event.get("clientX", d.x) - d.x, event.get("clientY", d.y) - d.y
        if abs(dx) + abs(dy) >= DRAG_SLOP_PX:
            d.moved = True
        if end:
            self._drag = None
            self._swallow_click = d.moved  # the click that ends a drag is not a click
        if not d.moved:
            return None
        self.session.pan_from(d.centre3, d.view, dy / d.height, dx / d.width)
        return ("view", None)
