"""The viewer's layers: adding and removing them, their widgets, colorbars and readout.

Each layer has a row of controls (CSS class ``nlv-layer``): visibility, opacity, for
stat and image layers threshold and colormap, for stat layers positive-only. A widget
moved sets the layer's property; a property set from code moves its widget; either
redraws the viewer.
"""

from __future__ import annotations

import contextlib
import html
import math
from typing import Any

import ipywidgets as W
import numpy as np

from . import colorbar
from .layers import Layer, source_image

LAYER_CMAPS = {"RdBu_r", "coolwarm", "bwr", "seismic", "hot", "autumn", "viridis", "plasma",
               "cool", "winter", "Reds", "Blues", "gray"}  # fmt: skip


def _classed(widget: W.Widget, cls: str) -> W.Widget:
    widget.add_class(cls)
    return widget


class LayerPanel:
    """The layers of one viewer: their rows of controls (``box``) and colorbars (``bars``)."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.box = _classed(W.VBox([]), "nlv-layers")
        self.bars = _classed(W.HBox([]), "nlv-colorbars")
        self.rows: dict[int, tuple[W.HBox, dict[str, W.Widget]]] = {}
        self._syncing = 0

    @property
    def session(self):
        return self.viewer._session

    # --- adding and removing ----------------------------------------------------------
    def add(self, src: Any, kind: str, options: dict) -> Layer:
        """Make a layer of ``src`` over the base, add its controls and redraw."""
        v = self.viewer
        if v.img is None or v._closed:
            raise ValueError("the viewer is closed or shows no image to put a layer over")
        layer = Layer(source_image(src, v.img), kind, v.img, **options)
        layer.on_change = self.changed
        self.session.layers.append(layer)
        row, controls = self._row(layer)
        self.rows[id(layer)] = (row, controls)
        self.box.children = (*self.box.children, row)
        self.sync_volumes()
        self.redraw()
        return layer

    def add_all(self, items: list) -> None:
        """Add ``nlv.view(..., layers=items)``: sources, or dicts of :meth:`add` options
        with the source under ``"src"``; a bad one raises (the viewer is then closed)."""
        v = self.viewer
        try:
            with v._hold():
                for item in items:
                    item = dict(item) if isinstance(item, dict) else {"src": item}
                    v.add_layer(item.pop("src"), **item)
        except BaseException:
            v.close()
            raise

    def remove(self, layer: Layer) -> None:
        """Take ``layer`` off the viewer (ValueError if it is not on it)."""
        layers = self.session.layers
        if not any(x is layer for x in layers):
            raise ValueError(f"{layer!r} is not a layer of this viewer")
        layers[:] = [x for x in layers if x is not layer]
        layer.on_change = None
        layer.cache.clear()  # the image cache's keys may hold the layer a while
        row, _ = self.rows.pop(id(layer))
        self.box.children = tuple(c for c in self.box.children if c is not row)
        row.close()
        self.sync_volumes()
        self.redraw()

    # --- the controls -----------------------------------------------------------------
    def _row(self, layer: Layer) -> tuple[W.HBox, dict[str, W.Widget]]:
        c: dict[str, W.Widget] = {"name": W.HTML(_title(layer), layout=W.Layout(width="170px"))}
        c["visible"] = W.Checkbox(layer.visible, description="show", indent=False)
        c["visible"].layout.width = "60px"
        c["opacity"] = W.FloatSlider(layer.opacity, min=0.0, max=1.0, step=0.05)
        c["opacity"].description = "opacity"
        if layer.kind != "labels":
            top = max(abs(layer.vmin), abs(layer.vmax), layer.threshold)
            c["threshold"] = W.FloatSlider(layer.threshold, min=0.0, max=top, step=_step(top))
            c["threshold"].description, c["threshold"].readout_format = "threshold", ".3g"
            options = sorted(LAYER_CMAPS | {layer.cmap})
            c["cmap"] = W.Dropdown(options=options, value=layer.cmap, description="colormap")
            c["cmap"].layout.width = "200px"
        if layer.kind == "stat":
            c["positive_only"] = W.Checkbox(layer.positive_only, description="> 0 only")
            c["positive_only"].indent = False
        for prop, widget in c.items():
            widget.add_class(f"nlv-layer-{prop}")
        for prop, widget in c.items():
            if prop != "name":
                widget.observe(self._from_widget(layer, prop), "value")
        row = _classed(W.HBox(list(c.values())), "nlv-layer")
        return row, c

    def _from_widget(self, layer: Layer, prop: str):
        def on_change(change) -> None:
            if self._syncing:
                return
            try:
                if getattr(layer, prop) != change["new"]:
                    setattr(layer, prop, change["new"])
            except Exception as exc:  # a bad value typed is shown, not raised
                self.viewer._show_error(exc, f"Cannot set {prop} of layer {layer.name!r}")

        return on_change

    @contextlib.contextmanager
    def _quiet(self):
        self._syncing += 1
        try:
            yield
        finally:
            self._syncing -= 1

    def changed(self, layer: Layer) -> None:
        """A layer's property changed (from code or a widget): widgets follow, redraw."""
        got = self.rows.get(id(layer))
        if got is not None:
            _, c = got
            with self._quiet():
                c["name"].value = _title(layer)
                c["visible"].value = layer.visible
                c["opacity"].value = layer.opacity
                if "threshold" in c:
                    t = c["threshold"]
                    top = max(abs(layer.vmin), abs(layer.vmax), layer.threshold)
                    if t.max != top:
                        t.max, t.step = top, _step(top)
                    t.value = layer.threshold
                    if layer.cmap not in c["cmap"].options:
                        c["cmap"].options = sorted({*c["cmap"].options, layer.cmap})
                    c["cmap"].value = layer.cmap
                if "positive_only" in c:
                    c["positive_only"].value = layer.positive_only
        self.redraw()

    def redraw(self) -> None:
        """Redraw the viewer, its colorbars and its readout."""
        self.viewer._refresh()
        self.viewer._update_readout()

    def sync_volumes(self) -> None:
        """The volume slider spans the base's volumes and every layer's (a 4D layer over a
        3D base steps through its own); each image shows its last volume past its end."""
        v = self.viewer
        n = max([v._session.n_volumes, *(x.n_volumes for x in self.session.layers)])
        if v.volume_slider.max != n - 1:
            with v._hold():
                v.volume_slider.max = n - 1
                v.volume_slider.layout.display = None if n > 1 else "none"

    # --- colorbars and readout ----------------------------------------------------------
    def update_bars(self) -> None:
        """Show the colorbars of the base and of each visible stat or image layer."""
        s = self.session
        pngs = [colorbar.to_png(b) for b in colorbar.bars(s.cmap, s.window, s.layers)]
        images = list(self.bars.children)
        while len(images) < len(pngs):
            images.append(_classed(W.Image(format="png"), "nlv-colorbar"))
        for im, png in zip(images, pngs, strict=False):
            if im.value != png:
                im.value = png
        if len(images) != len(self.bars.children) or len(images) > len(pngs):
            self.bars.children = tuple(images[: len(pngs)])

    def readout(self, world: np.ndarray, volume: int) -> list[tuple[str, float, str | None]]:
        """``(name, value, label name)`` of every layer at the world point, bottom to top."""
        out = []
        for layer in self.session.layers:
            try:
                value = layer.value_at_world(world, volume)
            except Exception:  # a layer whose file went: shown as no value
                value = math.nan
            out.append((layer.name, value, layer.label_name(value)))
        return out


def _step(top: float) -> float:
    return top / 100 if top > 0 else 0.01


def _title(layer: Layer) -> str:
    return f"<b>{html.escape(layer.name)}</b> <small>{layer.kind}</small>"
