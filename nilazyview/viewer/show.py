"""Panels a :class:`~nilazyview.viewer.SliceViewer` fills after a draw: I/O, readout, ortho.

Functions of the viewer (they read its session and set its widgets' values).
"""

from __future__ import annotations

from . import panels
from .handoff import hand_off


class FromSession:
    """An attribute of the viewer that is the session's attribute ``name``."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, viewer, owner=None):
        return self if viewer is None else getattr(viewer._session, self.name)

    def __set__(self, viewer, value) -> None:
        setattr(viewer._session, self.name, value)


def update_io(v) -> None:
    """The I/O panel of the step just shown."""
    s, key = v._session, v.last_step["key"]
    plan, ndim = s.plan(key), len(v.img.shape)
    net = getattr(getattr(v.img.proxy, "source", None), "stats", None)  # remote sources
    v.io.value = panels.io_panel(
        s.dmap.plane,
        key,
        ndim,
        plan,
        v.last_step,
        s.cache,
        s.prefetcher.done,
        net if isinstance(net, dict) else None,
    )


def update_readout(v) -> None:
    """The crosshair readout: voxel, world, the base's value and every layer's."""
    s = v._session
    if s.crosshair is None or v.img is None:
        return
    vox = s.crosshair
    world = s.world(vox)
    value = s.value_at(vox, v.axis, v.index, v.volume)
    layers = v._layer_panel.readout(world, v.volume)
    v.readout.value = panels.readout(vox, world, value, layers)


def refresh_ortho(v) -> None:
    """Draw the three orthogonal planes through the crosshair, else the centre."""
    point = v._session.ortho_point(v.axis, v.index)
    for axis, p in enumerate(v._session.ortho_panels(v.volume, point)):
        v.ortho_images[axis].value = p.data
        v.ortho_images[axis].width = p.width
        v.ortho_images[axis].height = p.height
        v.ortho_labels[axis].value = panels.ortho_label(p.plane, p.index)


def handoff(v) -> str | None:
    """:meth:`SliceViewer.handoff`'s work."""
    if v.img is None:
        return None
    try:
        path, original = hand_off(v.img)
    except Exception as exc:  # shown in the widget
        v._show_error(exc, "Hand-off failed")
        return None
    v.handoff_path.value = path
    v.handoff_note.value = "original file" if original else "temporary copy"
    v._update_badge()
    return path
