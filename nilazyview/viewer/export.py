"""``save_png``: what the viewer shows, as one PNG (main image, ortho panels, colorbars)."""

from __future__ import annotations

import io
import os

import numpy as np

from . import colorbar


def _picture(data: bytes, width: str, height: str, ratio: float):
    from PIL import Image as PILImage  # Pillow, in the 'viewer' extra

    im = PILImage.open(io.BytesIO(data)).convert("RGB")
    size = (max(1, round(float(width) * ratio)), max(1, round(float(height) * ratio)))
    return im if im.size == size else im.resize(size, PILImage.NEAREST)


def save_png(viewer, path: str | os.PathLike) -> str:
    """Write the frame shown, at its on-screen size (times the pixel ratio), with the
    orthogonal panels (in ortho mode) and the colorbars below; returns the path."""
    from PIL import Image as PILImage  # Pillow, in the 'viewer' extra

    if viewer.img is None or not viewer.image.value or viewer._closed:
        raise ValueError("nothing is shown: the viewer is closed or has no image")
    if os.path.splitext(os.fspath(path))[1].lower() not in (".png", ""):
        raise ValueError(f"save_png writes PNG: {os.fspath(path)!r} names another format")
    s = viewer._session
    ratio = s.pixel_ratio
    rows = [[_picture(viewer.image.value, viewer.image.width, viewer.image.height, ratio)]]
    if viewer.ortho:
        rows.append([_picture(w.value, w.width, w.height, ratio)
                     for w in viewer.ortho_images if w.value])  # fmt: skip
    bars = [PILImage.fromarray(b, "RGB") for b in colorbar.bars(s.cmap, s.window, s.layers)]
    if bars:
        rows.append(bars)
    gap = 4
    widths = [sum(im.width for im in r) + gap * (len(r) - 1) for r in rows if r]
    heights = [max(im.height for im in r) for r in rows if r]
    canvas = PILImage.new("RGB", (max(widths), sum(heights) + gap * (len(heights) - 1)), "white")
    y = 0
    for r, h in zip([r for r in rows if r], heights, strict=True):
        x = 0
        for im in r:
            canvas.paste(im, (x, y))
            x += im.width + gap
        y += h + gap
    path = os.fspath(path)
    canvas.save(path, "PNG")
    return path


def shown_rgb(viewer) -> np.ndarray:
    """The main image shown, decoded to an RGB array (for tests and users)."""
    from PIL import Image as PILImage  # Pillow, in the 'viewer' extra

    return np.asarray(PILImage.open(io.BytesIO(viewer.image.value)).convert("RGB"))
