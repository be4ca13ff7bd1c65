"""Linked viewers: ``nlv.link(v1, v2, ...)`` keeps their crosshairs on one world point.

Each viewer calls :func:`notify` after it redraws. When its crosshair (or, for a
link with ``zoom=True`` / ``plane=True``, its zoom or anatomical plane) changed,
a *wave* spreads the change through every link it is in, and on through links of
the viewers reached, each viewer visited once: there is no feedback loop, even for
links forming a cycle. A viewer reached gets the crosshair on its voxel nearest the
first viewer's world point, ``rint(inv(A2) @ A1 @ v)`` clipped to its grid, and
shows the slice through it. Closed viewers drop out of their links. A move in one
of two linked viewers redraws both in 6-8 ms kernel-side (a 128 x 128 x 80 x 400
series and a 256 x 256 x 160 volume; ``benchmarks/bench_timecourse.py``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np

from .adapt import spatial_shape


def nearest_voxel(img, world) -> tuple[int, int, int]:
    """The voxel of ``img`` nearest the world point ``world`` (mm), clipped to its grid."""
    ijk = np.linalg.solve(np.asarray(img.affine, np.float64), [*map(float, world[:3]), 1.0])
    ijk = np.rint(ijk[:3])
    top = np.array(spatial_shape(img.shape)) - 1
    return tuple(int(x) for x in np.clip(ijk, 0, top))


def world_of(img, voxel) -> np.ndarray:
    """World (mm) position of ``voxel`` of ``img``."""
    return (np.asarray(img.affine, np.float64) @ [*map(float, voxel[:3]), 1.0])[:3]


def move_crosshair(viewer, voxel) -> None:
    """Put ``viewer``'s crosshair on ``voxel`` and show the slice through it (one redraw)."""
    voxel = tuple(int(v) for v in voxel[:3])
    if viewer.index != voxel[viewer.axis]:
        with viewer._hold():
            viewer.index = voxel[viewer.axis]
    viewer.crosshair = voxel


def _plane_name(viewer) -> str | None:
    for name, axis in viewer._session.planes():
        if axis == viewer.axis:
            return name
    return None


def _state(viewer) -> dict:
    return {"crosshair": viewer.crosshair, "zoom": viewer.zoom, "plane": _plane_name(viewer)}


def _live(viewer) -> bool:
    return viewer is not None and not viewer._closed and viewer.img is not None


@dataclass
class Link:
    """Viewers whose crosshairs follow one another (see :func:`link`).

    Attributes
    ----------
    zoom, plane : bool
        Whether zoom, and the anatomical plane shown, follow too.
    """

    zoom: bool = False
    plane: bool = False
    _refs: list = field(default_factory=list)
    active: bool = True

    @property
    def viewers(self) -> list:
        """The linked viewers still open."""
        alive = [v for v in (r() for r in self._refs) if _live(v)]
        self._refs = [weakref.ref(v) for v in alive]
        return alive

    def unlink(self) -> None:
        """Stop following: the viewers move on their own from now on."""
        self.active = False
        for v in self.viewers:
            links = v.__dict__.get("_links", [])
            if self in links:
                links.remove(self)
        self._refs = []

    def __repr__(self) -> str:
        return f"<Link of {len(self.viewers)} viewers zoom={self.zoom} plane={self.plane}>"


_wave: dict | None = None  # the change being spread: {"seen": set of ids, ...}


def link(*viewers, zoom: bool = False, plane: bool = False) -> Link:
    """Keep the crosshairs of ``viewers`` on the same world point (nearest voxel each).

    Parameters
    ----------
    *viewers : SliceViewer
        Two or more viewers, of any images (other grids, voxel sizes, orientations).
    zoom : bool
        Zooming one zooms the others by the same factor.
    plane : bool
        Choosing a plane (axial, coronal, sagittal) in one shows it in the others.

    Returns
    -------
    Link
        ``.unlink()`` stops it. If the first viewer has a crosshair, the others move to it now.
    """
    for v in viewers:  # a SliceViewer (not imported: the widget imports this module)
        if not (hasattr(v, "_session") and callable(getattr(v, "_hold", None))):
            raise TypeError(f"nlv.link() takes viewers (nlv.view(...)), not {type(v).__name__}")
    if len({id(v) for v in viewers}) < 2:
        raise ValueError("nlv.link() needs two or more different viewers")
    lk = Link(zoom=bool(zoom), plane=bool(plane), _refs=[weakref.ref(v) for v in viewers])
    for v in viewers:
        v.__dict__.setdefault("_links", []).append(lk)
        v.__dict__["_link_state"] = _state(v) if _live(v) else {}
    first = viewers[0]
    if _live(first) and first.crosshair is not None:
        _spread(first, {"crosshair": world_of(first.img, first.crosshair)})
    return lk


def notify(viewer) -> None:
    """Called by a viewer after it redrew: spread what changed to the viewers linked to it."""
    links = [lk for lk in viewer.__dict__.get("_links", ()) if lk.active]
    if not links or _wave is not None or not _live(viewer):
        return  # nothing linked, or a viewer reached by the wave being spread
    before, now = viewer.__dict__.get("_link_state", {}), _state(viewer)
    changes = {k: now[k] for k in now if before.get(k) != now[k] and now[k] is not None}
    viewer.__dict__["_link_state"] = now
    if "crosshair" in changes:
        changes["crosshair"] = world_of(viewer.img, changes["crosshair"])
    if changes:
        _spread(viewer, changes)


def _apply(other, lk: Link, changes: dict) -> None:
    if lk.plane and "plane" in changes:
        axis = dict(other._session.planes()).get(changes["plane"])
        if axis is not None and axis != other.axis:
            other.axis = axis
    if lk.zoom and "zoom" in changes:
        other.zoom = changes["zoom"]
    if "crosshair" in changes:
        move_crosshair(other, nearest_voxel(other.img, changes["crosshair"]))


def _spread(first, changes: dict) -> None:
    """Apply ``changes`` to every viewer reachable from ``first`` through active links."""
    global _wave
    _wave = {"seen": {id(first)}}
    reached = [first]
    try:
        queue = [first]
        while queue:
            src = queue.pop(0)
            for lk in [lk for lk in src.__dict__.get("_links", ()) if lk.active]:
                for other in lk.viewers:
                    if id(other) in _wave["seen"]:
                        continue
                    _wave["seen"].add(id(other))
                    try:
                        _apply(other, lk, changes)
                    except Exception as exc:  # shown in that viewer; the others carry on
                        other._show_error(exc, "Cannot follow the linked viewer")
                        continue
                    reached.append(other)
                    queue.append(other)
    finally:
        _wave = None
        for v in reached:
            if _live(v):
                v.__dict__["_link_state"] = _state(v)
