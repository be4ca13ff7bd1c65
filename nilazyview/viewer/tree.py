"""The viewer's widget tree: every control and the boxes laying them out (no behaviour).

:func:`build` makes the widgets, :func:`layout` arranges them, :func:`pointer_events`
listens for clicks, the wheel and drags on the image (with ipyevents, if installed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as W

from .panels import STYLE

EDGES = ("left", "right", "top", "bottom")
COLORMAPS = {"gray", "bone", "viridis", "magma", "inferno", "hot"}


def _classed(widget: W.Widget, cls: str) -> W.Widget:
    widget.add_class(cls)
    return widget


@dataclass
class Controls:
    """The viewer's widgets; :class:`~nilazyview.viewer.SliceViewer` has each as an attribute.

    CSS classes (``nlv-slider``, ``nlv-image``, ...) let browser tests find them.
    """

    title: W.HTML
    badge: W.HTML
    error: W.HTML
    plane: W.ToggleButtons
    slider: W.IntSlider
    volume_slider: W.IntSlider
    image: W.Image
    edges: dict[str, W.HTML]
    readout: W.HTML
    cmap: W.Dropdown
    vmin: W.FloatText
    vmax: W.FloatText
    auto: W.Button
    reset_view: W.Button
    handoff_button: W.Button
    handoff_path: W.Text
    handoff_note: W.HTML
    io: W.HTML
    ortho_images: list[W.Image]
    ortho_labels: list[W.HTML]


def build(fmt: str, cmap: str) -> Controls:
    """The widgets, empty until an image is shown.

    Parameters
    ----------
    fmt : str
        Format of the images (``"png"`` or ``"jpeg"``).
    cmap : str
        Colormap selected first (added to the choices if not among them).
    """
    c = Controls(
        title=W.HTML(STYLE),
        badge=_classed(W.HTML(""), "nlv-badge"),
        error=_classed(W.HTML("", layout=W.Layout(display="none")), "nlv-error"),
        plane=_classed(W.ToggleButtons(options=[("axial", 2)], value=2), "nlv-plane"),
        slider=_classed(
            W.IntSlider(0, 0, 0, description="slice", continuous_update=True), "nlv-slider"
        ),
        volume_slider=_classed(
            W.IntSlider(0, 0, 0, description="volume", layout=W.Layout(display="none")),
            "nlv-volume",
        ),
        image=_classed(W.Image(format=fmt), "nlv-image"),
        edges={k: _classed(W.HTML(""), "nlv-edge") for k in EDGES},
        readout=_classed(W.HTML("click the image to set the crosshair"), "nlv-readout"),
        cmap=W.Dropdown(
            options=sorted(COLORMAPS | {cmap}),
            value=cmap,
            description="colormap",
            layout=W.Layout(width="200px"),
        ),
        vmin=W.FloatText(description="min", layout=W.Layout(width="170px")),
        vmax=W.FloatText(description="max", layout=W.Layout(width="170px")),
        auto=W.Button(description="auto window", tooltip="robust percentiles of this slab"),
        reset_view=_classed(
            W.Button(description="reset view", icon="expand", tooltip="zoom 1, centred"),
            "nlv-reset",
        ),
        handoff_button=_classed(
            W.Button(description="hand off (as_file)", icon="share", tooltip="a file path"),
            "nlv-handoff",
        ),
        handoff_path=_classed(
            W.Text(placeholder="path appears here", layout=W.Layout(width="460px")),
            "nlv-handoff-path",
        ),
        handoff_note=W.HTML(""),
        io=_classed(W.HTML(""), "nlv-io"),
        ortho_images=[_classed(W.Image(format=fmt), "nlv-ortho") for _ in range(3)],
        ortho_labels=[W.HTML("") for _ in range(3)],
    )
    c.plane.style.button_width = "80px"
    c.slider.layout.width = "420px"
    for k in ("left", "right"):
        c.edges[k].layout = W.Layout(width="20px", align_self="center")
    return c


def layout(
    c: Controls, ortho: bool, below: Sequence[W.Widget] = (), extra: Sequence[W.Widget] = ()
) -> list[W.Widget]:
    """The viewer's rows, top to bottom; the orthogonal planes' row only with ``ortho``;
    ``below``: rows under the pictures (the time course); ``extra`` rows (layers,
    colorbars) after the readout."""
    e = c.edges
    picture = W.VBox(
        [e["top"], W.HBox([e["left"], c.image, e["right"]]), e["bottom"]],
        layout=W.Layout(align_items="center", width="fit-content"),
    )
    panels = zip(c.ortho_labels, c.ortho_images, strict=True)
    orthos = [W.HBox([W.VBox(list(p)) for p in panels])] if ortho else []
    return [
        W.HBox([c.title, c.badge]),
        c.error,
        c.plane,
        W.HBox([c.slider, c.volume_slider]),
        picture,
        *orthos,
        *below,
        c.readout,
        *extra,
        W.HBox([c.cmap, c.vmin, c.vmax, c.auto, c.reset_view]),
        W.HBox([c.handoff_button, c.handoff_path, c.handoff_note]),
        c.io,
    ]


def pointer_events(image: W.Image, readout: W.HTML) -> list[W.Widget]:
    """``ipyevents.Event`` s on ``image`` (none without ipyevents; ``readout`` then says so).

    Clicks, double-clicks and button presses come one by one; pointer moves and the
    wheel at most every 40 ms (a drag or a trackpad sends hundreds a second). The
    browser's own reaction (page scroll on the wheel, dragging the picture away) is off.
    """
    try:
        import ipyevents  # in the 'viewer' extra; clicks, zoom and pan are off without it
    except ImportError:
        readout.value = "install ipyevents for the crosshair readout, zoom and pan"
        return []
    buttons = ["click", "dblclick", "mousedown", "mouseup"]
    moves = ["mousemove", "wheel"]
    return [
        ipyevents.Event(source=image, watched_events=buttons, prevent_default_action=True),
        ipyevents.Event(
            source=image,
            watched_events=moves,
            prevent_default_action=True,
            throttle_or_debounce="throttle",
            wait=40,
        ),
    ]
