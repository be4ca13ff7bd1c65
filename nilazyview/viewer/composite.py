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


def layer_rgba(layer, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb, alpha)`` float32 arrays (``values.shape + (3,)``, ``values.shape``) of a layer."""
    v = np.asarray(values, np.float32)
    if layer.kind == "labels":
        rgba = colours(layer._lut, v).astype(np.float32) / 255.0
        return rgba[..., :3], rgba[..., 3] * np.float32(layer.opacity)
    with np.errstate(invalid="ignore"):
        shown = np.isfinite(v) & (v != 0)
        if layer.kind == "stat":
            shown &= np.abs(v) >= layer.threshold
            if layer.positive_only:
                shown &= v > 0
        else:
            shown &= v >= layer.threshold
    # matplotlib's convention: entry floor(256 t) of the 256-entry table, t in [0, 1]
    t = (np.nan_to_num(v) - np.float32(layer.vmin)) * np.float32(256.0 / (layer.vmax - layer.vmin))
    idx = np.clip(t, 0, 255).astype(np.uint8)
    return cmap_table(layer.cmap)[idx], shown.astype(np.float32) * np.float32(layer.opacity)


def blend(rgb: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    """``rgb = rgb * (1 - alpha) + colour * alpha`` in place (float32 arrays)."""
    a = alpha[..., None]
    rgb *= 1.0 - a
    rgb += colour * a


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
    """
    levels = render.to_levels(base, *window)
    table = np.frombuffer(render.palette(cmap), np.uint8).reshape(256, 3)
    rgb = table[levels].astype(np.float32)
    for layer, values in layers:
        colour, alpha = layer_rgba(layer, values)
        blend(rgb, colour * np.float32(255.0), alpha)
    out = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
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
