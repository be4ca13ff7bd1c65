"""The three orthogonal panels of ``ortho=True``: drawing them, and clicks on them.

:func:`draw` shows the planes through the crosshair (else the centre) and remembers
each panel's display map and view; :func:`on_click` turns a click on panel ``axis``
into the voxel under the pointer on that plane (the same maths as the main image,
``view_window.from_frame``) and moves the crosshair there: the main image shows the
slice through it, the other panels follow, and linked viewers too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import panels
from . import view_window as vw
from .gestures import fractions
from .links import move_crosshair

if TYPE_CHECKING:
    from .widget import SliceViewer


def draw(viewer: SliceViewer) -> None:
    """Draw the three orthogonal planes through the crosshair, else the centre."""
    s = viewer._session
    point = s.ortho_point(viewer.axis, viewer.index)
    shown = viewer.__dict__.setdefault("_ortho_shown", {})
    for axis, p in enumerate(s.ortho_panels(viewer.volume, point)):
        viewer.ortho_images[axis].value = p.data
        viewer.ortho_images[axis].width = p.width
        viewer.ortho_images[axis].height = p.height
        viewer.ortho_labels[axis].value = panels.ortho_label(p.plane, p.index)
        shown[axis] = (p.dmap, p.view, point)


def panel_voxel(viewer: SliceViewer, axis: int, event: dict) -> tuple[int, int, int] | None:
    """The voxel under a pointer event on orthogonal panel ``axis``, or None (off it, or
    the panel not drawn)."""
    got = viewer.__dict__.get("_ortho_shown", {}).get(axis)
    if got is None or got[0] is None or got[1] is None:
        return None
    dmap, view, point = got
    screen_shape = dmap.apply(np.broadcast_to(np.uint8(0), view.shape)).shape
    at = fractions(event, screen_shape)
    if at is None or not (0 <= at[0] < 1 and 0 <= at[1] < 1):
        return None
    return vw.from_frame(dmap, view, at[0], at[1], point[axis])


def on_click(viewer: SliceViewer, axis: int, event: dict) -> None:
    """A click on orthogonal panel ``axis`` (an ipyevents dict): the crosshair goes there."""
    if event.get("type") != "click" or viewer.img is None or viewer._closed:
        return
    voxel = panel_voxel(viewer, axis, event)
    if voxel is not None:
        move_crosshair(viewer, voxel)


def attach(viewer: SliceViewer) -> list:
    """Listen for clicks on the three panels (none without ipyevents); returns the listeners."""
    try:
        import ipyevents  # in the 'viewer' extra; the panels are not clickable without it
    except ImportError:
        return []
    out = []
    for axis, image in enumerate(viewer.ortho_images):
        ev = ipyevents.Event(source=image, watched_events=["click"], prevent_default_action=True)
        ev.on_dom_event(lambda event, axis=axis: on_click(viewer, axis, event))
        out.append(ev)
    return out
