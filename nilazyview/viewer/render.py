"""Turn a 2D slab into encoded image bytes: window, matplotlib colormap, PNG/JPEG.

Values are mapped to 255 colour levels (palette indices 0-254) through the
colormap's lookup table; index 255 is kept for overlay marks (the crosshair).
With a palette PNG this is exact: the image holds 256 colours at most.
"""

from __future__ import annotations

import functools
import io

import numpy as np

N_LEVELS = 255
MARK = 255
MARK_RGB = (255, 64, 64)


def robust_window(
    slab: np.ndarray, lo: float = 1.0, hi: float = 99.5, max_samples: int = 1 << 16
) -> tuple[float, float]:
    """A display range from percentiles of the finite values of ``slab``.

    At most ``max_samples`` values (an even stride through the slab) are used,
    so the cost does not grow with the slab. Returns ``(vmin, vmax)`` with
    ``vmax > vmin`` (widened when the slab is constant or empty).
    """
    flat = np.asarray(slab).reshape(-1)
    if flat.size > max_samples:
        flat = flat[:: flat.size // max_samples]
    if np.issubdtype(flat.dtype, np.complexfloating):
        flat = np.abs(flat)
    if flat.dtype.kind == "f":
        flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.0, 1.0
    vmin, vmax = (float(v) for v in np.percentile(flat, [lo, hi]))
    if not vmax > vmin:
        vmin, vmax = float(flat.min()), float(flat.max())
    if not vmax > vmin:
        vmax = vmin + 1.0
    return vmin, vmax


@functools.lru_cache(maxsize=64)
def palette(cmap: str) -> bytes:
    """The 256-entry RGB palette for matplotlib colormap ``cmap`` (entry 255 is the mark)."""
    import matplotlib  # the optional 'viewer' extra

    cm = matplotlib.colormaps[cmap]
    rgb = cm(np.linspace(0.0, 1.0, N_LEVELS), bytes=True)[:, :3]
    table = np.zeros((256, 3), np.uint8)
    table[:N_LEVELS] = rgb
    table[MARK] = MARK_RGB
    return table.tobytes()


def to_levels(slab: np.ndarray, vmin: float, vmax: float, norm=None) -> np.ndarray:
    """Palette indices (uint8, 0-254) of ``slab`` under a linear window or a matplotlib norm.

    Parameters
    ----------
    norm : matplotlib.colors.Normalize, optional
        Used instead of the linear ``vmin``-``vmax`` map (e.g. ``LogNorm``).
        Non-finite values map to level 0.
    """
    a = np.asarray(slab)
    if np.issubdtype(a.dtype, np.complexfloating):
        a = np.abs(a)
    if norm is not None:
        scaled = np.ma.filled(norm(a), 0.0).astype(np.float32, copy=False) * (N_LEVELS - 1)
    else:
        scale = (N_LEVELS - 1) / (vmax - vmin)
        scaled = a.astype(np.float32)
        scaled -= np.float32(vmin)
        scaled *= np.float32(scale)
    scaled = np.nan_to_num(scaled, copy=False, nan=0.0, posinf=N_LEVELS - 1, neginf=0.0)
    np.clip(scaled, 0, N_LEVELS - 1, out=scaled)
    scaled += np.float32(0.5)
    return scaled.astype(np.uint8)


def draw_cross(levels: np.ndarray, row: int | None, col: int | None) -> None:
    """Mark a crosshair (dashed lines through ``row`` and ``col``) in place."""
    nr, nc = levels.shape
    if row is not None and 0 <= row < nr:
        levels[row, ::2] = MARK
    if col is not None and 0 <= col < nc:
        levels[::2, col] = MARK


FORMATS = ("png", "jpeg", "webp")


def encode(
    levels: np.ndarray,
    cmap: str = "gray",
    fmt: str = "png",
    compress_level: int = 1,
    rgb: bool = False,
    quality: int = 90,
    lossless: bool = False,
) -> bytes:
    """Encode palette ``levels`` (2D uint8) as PNG (palette or RGB), JPEG or WebP bytes.

    PNG is exact; JPEG and WebP (``quality``; WebP also ``lossless``) are smaller
    for large smooth frames (numbers: README, "The viewer").
    """
    from PIL import Image as PILImage  # Pillow, in the 'viewer' extra

    levels = np.ascontiguousarray(levels)
    pal = palette(cmap)
    if fmt in ("jpeg", "webp") or rgb:
        table = np.frombuffer(pal, np.uint8).reshape(256, 3)
        im = PILImage.fromarray(table[levels], "RGB")
    else:
        im = PILImage.frombuffer("P", (levels.shape[1], levels.shape[0]), levels, "raw", "P", 0, 1)
        im.putpalette(pal)
    buf = io.BytesIO()
    if fmt == "png":
        im.save(buf, "PNG", compress_level=compress_level)
    elif fmt == "jpeg":
        im.save(buf, "JPEG", quality=quality)
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=quality, lossless=lossless, method=0)
    else:
        raise ValueError(f"unknown image format {fmt!r}; use 'png', 'jpeg' or 'webp'")
    return buf.getvalue()


def render(
    slab: np.ndarray,
    vmin: float,
    vmax: float,
    cmap: str = "gray",
    norm=None,
    cross: tuple[int | None, int | None] = (None, None),
    fmt: str = "png",
    compress_level: int = 1,
) -> bytes:
    """Encoded image bytes of a 2D ``slab`` already in screen order (rows, columns)."""
    levels = to_levels(slab, vmin, vmax, norm)
    draw_cross(levels, *cross)
    return encode(levels, cmap, fmt=fmt, compress_level=compress_level)
