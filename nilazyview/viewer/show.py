"""What a :class:`~nilazyview.viewer.SliceViewer` shows besides the frame: I/O panel,
readout, ortho panels, error box, the plane's slider and edges.

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


def set_axis(v, axis: int, index: int | None = None) -> None:
    """Slice ``axis`` from now on: slider range and value, edge labels, image size."""
    s = v._session
    first = s.set_axis(axis, index)
    n = s.shape3[axis]
    with v._hold():
        if v.slider.value > n - 1:
            v.slider.value = n - 1
        v.slider.max = n - 1
        v.slider.value = first
    for k, w in v.edges.items():
        w.value = s.dmap.labels[k]
    v.image.width, v.image.height = s.image_size()


def error(v, exc: BaseException | None, what: str) -> None:
    """Show the error box for ``exc`` (what failed: ``what``), or hide it (``exc`` None)."""
    if exc is not None:
        v.error.value = panels.error_box(exc, what)
        v.error.layout.display = None
    elif v.error.value:
        v.error.value = ""
        v.error.layout.display = "none"
