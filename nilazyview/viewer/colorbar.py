"""Colorbars: a small labelled RGB strip for the base image and each stat or image layer.

Drawn with Pillow's built-in font, cached by their settings (about 1 ms each), shown in
the widget and pasted into :func:`~nilazyview.viewer.export.save_png` exports. A stat
layer's bar greys out the hidden band ``|value| < threshold``.
"""

from __future__ import annotations

import functools
import io

import numpy as np

from .composite import cmap_table

BAR_W, BAR_H, PAD = 200, 10, 6
BG, GREY, INK = (255, 255, 255), (200, 200, 200), (30, 30, 30)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


@functools.lru_cache(maxsize=128)
def colorbar_rgb(
    cmap: str, vmin: float, vmax: float, title: str, threshold: float = 0.0, kind: str = "base"
) -> np.ndarray:
    """The colorbar of ``cmap`` from ``vmin`` to ``vmax`` as an RGB (uint8) array.

    ``kind`` ``"stat"`` greys out ``|value| < threshold``; ``"image"`` values below it.
    """
    from PIL import Image as PILImage  # Pillow, in the 'viewer' extra
    from PIL import ImageDraw  # Pillow, in the 'viewer' extra

    values = np.linspace(vmin, vmax, BAR_W)
    idx = np.clip((values - vmin) / (vmax - vmin) * 256, 0, 255).astype(int)
    strip = (cmap_table(cmap)[idx] * 255 + 0.5).astype(np.uint8)
    if kind == "stat" and threshold > 0:
        strip[np.abs(values) < threshold] = GREY
    elif kind == "image" and threshold > 0:
        strip[values < threshold] = GREY
    height = BAR_H + 2 * 12 + 2 * PAD
    im = PILImage.new("RGB", (BAR_W + 2 * PAD, height), BG)
    im.paste(PILImage.fromarray(np.repeat(strip[None], BAR_H, 0), "RGB"), (PAD, PAD + 12))
    draw = ImageDraw.Draw(im)
    draw.text((PAD, PAD - 2), title[:34], fill=INK)
    y = PAD + 12 + BAR_H + 1
    draw.text((PAD, y), _fmt(vmin), fill=INK)
    right = _fmt(vmax)
    draw.text((PAD + BAR_W - draw.textlength(right), y), right, fill=INK)
    if vmin < 0 < vmax:
        x = PAD + BAR_W * (-vmin) / (vmax - vmin)
        draw.text((x - draw.textlength("0") / 2, y), "0", fill=INK)
    return np.asarray(im)


def to_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB array."""
    from PIL import Image as PILImage  # Pillow, in the 'viewer' extra

    buf = io.BytesIO()
    PILImage.fromarray(rgb, "RGB").save(buf, "PNG")
    return buf.getvalue()


def bars(cmap: str, window: tuple[float, float] | None, layers) -> list[np.ndarray]:
    """The colorbars shown: the base's (when it has a window), then each visible stat
    or image layer's, bottom to top."""
    out = []
    if window is not None:
        out.append(colorbar_rgb(cmap, float(window[0]), float(window[1]), "base"))
    for layer in layers:
        if layer.visible and layer.kind != "labels":
            out.append(colorbar_rgb(layer.cmap, layer.vmin, layer.vmax, layer.name,
                                    layer.threshold, layer.kind))  # fmt: skip
    return out
