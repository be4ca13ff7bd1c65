"""What a session hands the widget: a :class:`Frame` (the main image) and :class:`OrthoPanel` s."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import reduce
from . import view_window as vw

Key = tuple[int, int, int]  # (volume, axis, index)
ReadKey = tuple  # (volume, axis, index, read ranges, method): a slab-cache key


def fit(height: float, width: float, size: int | tuple[int, int]) -> tuple[str, str]:
    """Screen ``(width, height)`` in pixels (as strings) of a picture scaled to ``size``.

    The longer of ``height`` and ``width`` (in displayed pixels) becomes ``size``, or
    the picture fits a ``(width, height)`` box.
    """
    w, h = vw.fit_box(height, width, size)
    return str(w), str(h)


@dataclass(frozen=True)
class Frame:
    """The encoded image of the part of one slab in view, with how it was obtained.

    Attributes
    ----------
    key : (volume, axis, index)
        The slab.
    data : bytes
        The encoded image.
    screen : numpy.ndarray
        The frame as screen rows x columns (reduced to display resolution).
    slab : numpy.ndarray
        The window as read and reduced (or taken from the cache).
    settings : tuple
        What besides the slab decided ``data`` (see :meth:`ViewerSession.settings`).
    hit, render_hit : bool
        Slab window, and encoded image, came from their caches.
    fetch_ms, render_ms : float
        Time to get the window, and to orient, window and encode it.
    cached : bool
        The caches were used (a proxied image); in-memory images bypass them.
    view : view_window.View
        The voxels shown and the read's ranges and steps.
    read_key : tuple
        The slab-cache key ``(volume, axis, index, ranges, method)``.
    io : dict
        What the read wanted and touched (:func:`~nilazyview.viewer.reduce.io_counts`;
        zeros on a cache hit).
    """

    key: Key
    data: bytes
    screen: np.ndarray
    slab: np.ndarray
    settings: tuple
    hit: bool
    render_hit: bool
    fetch_ms: float
    render_ms: float
    cached: bool
    view: vw.View | None = None
    read_key: ReadKey | None = None
    io: dict | None = None

    def step(self) -> dict:
        """The facts of this step, as the viewer's ``last_step``.

        ``bytes`` is what was read from the source for this frame (0 on a cache hit
        and for in-memory images); ``frame_bytes`` the encoded image's size.
        """
        io = self.io or reduce.io_counts(None, 0, (0,))
        view = self.view
        return {
            "key": self.key,
            "hit": self.hit,
            "render_hit": self.render_hit,
            "fetch_ms": self.fetch_ms,
            "render_ms": self.render_ms,
            "cached": self.cached,
            "bytes": io["bytes"],
            "wanted_bytes": io["wanted_bytes"],
            "touched_bytes": io["touched_bytes"],
            "pages": io["pages"],
            "pages_exact": io["pages_exact"],
            "runs": io["runs"],
            "strategy": io["strategy"],
            "method": None if self.read_key is None else self.read_key[4],
            "frame_bytes": len(self.data),
            "frame_px": tuple(self.screen.shape),
            "zoom": None if view is None else view.zoom,
            "steps": None if view is None else view.steps,
            "shown": None if view is None else view.shown(),
        }


@dataclass(frozen=True)
class OrthoPanel:
    """One of the three orthogonal planes: encoded image, display size, plane and slice,
    and (for clicks on it) its display map and view."""

    data: bytes
    width: str
    height: str
    plane: str
    index: int
    dmap: object = None
    view: vw.View | None = None
