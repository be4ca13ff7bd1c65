"""Layers over the base: RGB composites of a frame (the palette fast path has no layers).

The base's palette levels become RGB through its colormap; each visible layer's
values (NaN: transparent) become colours and an alpha (its opacity where shown) and
are blended over it, bottom to top; the crosshair is drawn last. Stat maps hide
``|value| < threshold``, zeros and, with ``positive_only``, values <= 0; image layers
hide ``value < threshold`` and zeros; label maps draw every non-zero label with its
lookup-table colour (its alpha times the opacity).
"""

from __future__ import annotations

import functools
import io

import numpy as np

from . import render
from .lut import colours


@functools.lru_cache(maxsize=64)
def cmap_table(cmap: str) -> np.ndarray:
    """(256, 3) float32 RGB in [0, 1] of matplotlib colormap ``cmap``."""
    import matplotlib  # the optional 'viewer' extra

    table = matplotlib.colormaps[cmap].resampled(256)(np.arange(256))[:, :3]
    return table.astype(np.float32)


def layer_pixels(layer, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixels a layer draws: flat indices, their RGB (float32, 0-255) and alpha (0-1)."""
    v = np.asarray(values, np.float32).reshape(-1)
    if layer.kind == "labels":
        rgba = colours(layer._lut, v)
        sel = np.flatnonzero(rgba[:, 3])
        alpha = rgba[sel, 3].astype(np.float32) * np.float32(layer.opacity / 255.0)
        return sel, rgba[sel, :3].astype(np.float32), alpha
    with np.errstate(invalid="ignore"):
        shown = np.isfinite(v) & (v != 0)
        if layer.kind == "stat":
            shown &= np.abs(v) >= layer.threshold
            if layer.positive_only:
                shown &= v > 0
        else:
            shown &= v >= layer.threshold
    sel = np.flatnonzero(shown)
    # matplotlib's convention: entry floor(256 t) of the 256-entry table, t in [0, 1]
    t = (v[sel] - np.float32(layer.vmin)) * np.float32(256.0 / (layer.vmax - layer.vmin))
    idx = np.clip(t, 0, 255).astype(np.uint8)
    rgb = cmap_table(layer.cmap)[idx] * np.float32(255.0)
    return sel, rgb, np.full(sel.size, layer.opacity, np.float32)


def blend(rgb: np.ndarray, sel: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    """Pixels ``sel`` of ``rgb`` (uint8, flat pixels x 3) become ``colour`` over them
    with ``alpha``, in place."""
    px = rgb[sel].astype(np.float32)
    px += (colour - px) * alpha[:, None]
    px += np.float32(0.5)
    rgb[sel] = px.astype(np.uint8)


def draw_cross_rgb(rgb: np.ndarray, row: int | None, col: int | None) -> None:
    """Dashed crosshair lines in the mark colour through ``row`` and ``col``, in place."""
    mark = np.array(render.MARK_RGB, rgb.dtype)
    nr, nc = rgb.shape[:2]
    if row is not None and 0 <= row < nr:
        rgb[row, ::2] = mark
    if col is not None and 0 <= col < nc:
        rgb[::2, col] = mark


def composite(
    base: np.ndarray,
    window: tuple[float, float],
    cmap: str,
    layers: list[tuple[object, np.ndarray]],
    cross: tuple[int | None, int | None] = (None, None),
) -> np.ndarray:
    """The RGB (uint8) picture of ``base`` (screen order) with ``layers`` over it.

    ``layers`` are ``(layer, values)`` pairs, bottom to top, values in screen order.
    Only the pixels a layer draws are blended (a thresholded map costs what it shows).
    """
    levels = render.to_levels(base, *window)
    table = np.frombuffer(render.palette(cmap), np.uint8).reshape(256, 3)
    out = table[levels]
    flat = out.reshape(-1, 3)
    for layer, values in layers:
        blend(flat, *layer_pixels(layer, values))
    draw_cross_rgb(out, *cross)
    return out


def encode_rgb(rgb: np.ndarray, fmt: str = "png", compress_level: int = 1) -> bytes:
    """PNG, JPEG or WebP bytes of an RGB (uint8) picture."""
    from PIL import Image as PILImage  # Pillow, in the 'viewer' extra

    im = PILImage.fromarray(np.ascontiguousarray(rgb), "RGB")
    buf = io.BytesIO()
    if fmt == "png":
        im.save(buf, "PNG", compress_level=compress_level)
    elif fmt == "jpeg":
        im.save(buf, "JPEG", quality=90)
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=90, method=0)
    else:
        raise ValueError(f"unknown image format {fmt!r}; use 'png', 'jpeg' or 'webp'")
    return buf.getvalue()
