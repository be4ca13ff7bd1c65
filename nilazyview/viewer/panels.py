"""The viewer's text panels as HTML strings: title, badge, I/O panel, readout, error box.

Pure functions: they get what they show and read nothing (no widgets, no image data).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import orientation

if TYPE_CHECKING:
    from nilazyview.core.plan import ReadPlan

    from .cache import SlabCache

STYLE = (
    "<style>.nlv-image{image-rendering:pixelated;}"
    ".nlv-edge{font:bold 12px sans-serif;color:#555;text-align:center;}"
    ".nlv-badge span{padding:1px 8px;border-radius:8px;color:#fff;font:12px sans-serif;}"
    "</style>"
)
BADGE_COLOURS = {"proxy": "#2a7ab0", "in memory": "#3c8c3c", "dirty": "#c0632b"}


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def describe(obj: object) -> str:
    """How an object that cannot be viewed is named in the error: its path, else its type."""
    if isinstance(obj, str | os.PathLike):
        return repr(os.fspath(obj))
    return f"an object of type {type(obj).__name__}"


def title(filename: str | None, shape: Sequence[int], dtype: np.dtype, affine: np.ndarray) -> str:
    """The title line (after the viewer's style sheet): file name, shape, dtype, orientation.

    Parameters
    ----------
    filename : str or None
        The image's file; None (or empty) shows ``"array"``.
    shape, dtype, affine
        The image's.
    """
    name = os.path.basename(filename) if filename else "array"
    sizes = ", ".join(f"{s:g}" for s in orientation.voxel_sizes(affine))
    return STYLE + (
        f"<b>{html.escape(name)}</b> &nbsp; {'x'.join(map(str, shape))} "
        f"{np.dtype(dtype).name} &nbsp; {orientation.axcodes(affine)} "
        f"&nbsp; voxels {sizes} mm &nbsp;"
    )


def badge(state: str) -> str:
    """The coloured state badge: ``"proxy"``, ``"in memory"`` or ``"dirty"``."""
    return f'<span style="background:{BADGE_COLOURS[state]}">{state}</span>'


def io_panel(
    plane: str,
    key: tuple[int, int, int],
    ndim: int,
    plan: ReadPlan | None,
    step: dict,
    cache: SlabCache,
    prefetched: int,
    network: dict | None = None,
) -> str:
    """The I/O panel: the slab and view shown, the window's read plan, this step's bytes
    wanted, read and touched, cache use and times.

    Parameters
    ----------
    plane : str
        Anatomical plane shown.
    key : (volume, axis, index)
        The slab shown.
    ndim : int
        The image's number of axes (the volume is named for 4D and up).
    plan : ReadPlan or None
        The slab's byte plan, if it has one.
    step : dict
        The viewer's ``last_step``.
    cache : SlabCache
        The slab cache (size and counters are shown).
    prefetched : int
        Slabs prefetched so far.
    network : dict, optional
        A remote source's counters (``requests``, ``bytes``, ``seconds``), shown when given.
    """
    volume, axis, index = key
    rows = [f"<b>slab</b> {plane} (axis {axis}) index {index}"]
    if ndim > 3:
        rows[0] += f", volume {volume}"
    if plan is not None:
        rows.append(
            f"<b>read plan</b> {plan.strategy}, {plan.n_runs} run(s), "
            f"{plan.nbytes:,} B ({html.escape(plan.describe())})"
        )
    shown = step.get("shown")
    if shown is not None:
        axes = [a for a in range(3) if a != axis]
        spans = ", ".join(f"{a}: {lo}-{hi - 1}" for a, (lo, hi) in zip(axes, shown, strict=True))
        rows.append(
            f"<b>view</b> zoom {step['zoom']:.3g}, voxels {spans}, "
            f"step {'x'.join(map(str, step['steps']))} ({step['method']}), "
            f"frame {step['frame_px'][1]}x{step['frame_px'][0]} px, {step['frame_bytes']:,} B"
        )
    if not step["cached"]:
        rows.append("<b>this step</b> in-memory array: no disk read, no cache")
    elif step["hit"]:
        rows.append("<b>this step</b> cache hit: 0 B read from disk")
    elif step.get("strategy") is not None:
        rows.append(
            f"<b>this step</b> cache miss: wanted {step['wanted_bytes']:,} B, "
            f"read {step['bytes']:,} B from the source ({step['strategy']}, "
            f"{step['runs']:,} run(s)), touched {'' if step['pages_exact'] else '~'}"
            f"{step['pages']:,} pages "
            f"({step['touched_bytes']:,} B)"
        )
    else:
        nbytes = f"{plan.nbytes:,} B" if plan is not None else "the slab"
        rows.append(f"<b>this step</b> cache miss: read {nbytes} from disk")
    again = " (image cached)" if step.get("render_hit") else ""
    rows.append(
        f"<b>time</b> fetch {step['fetch_ms']:.1f} ms, render {step['render_ms']:.1f} ms{again}"
    )
    c = cache
    rows.append(
        f"<b>cache</b> {len(c)} slabs, {_mib(c.nbytes)} of {_mib(c.max_bytes)}, "
        f"{c.hits} hits, {c.misses} misses; prefetched {prefetched}"
    )
    if network is not None:
        rows.append(
            f"<b>network</b> {network['requests']:,} requests, {network['bytes']:,} B "
            f"transferred, {network['seconds'] * 1000:.0f} ms in all"
        )
    return "<div style='font:12px monospace'>" + "<br>".join(rows) + "</div>"


def readout(
    voxel: Sequence[int],
    world: Sequence[float],
    value: object | None,
    layers: Sequence[tuple[str, float, str | None]] = (),
) -> str:
    """The crosshair readout: voxel, world position in mm, the value if on the slab shown,
    then each layer's ``name: value`` (and label name; "-" outside its field of view)."""
    shown = "" if value is None else f" &nbsp; value <b>{value:.6g}</b>"
    parts = []
    for name, v, label in layers:
        text = "-" if not np.isfinite(v) else f"{v:.6g}"
        if label:
            text += f" {html.escape(label)}"
        parts.append(f"{html.escape(name)}: <b>{text}</b>")
    extra = "".join(f" &nbsp; {p}" for p in parts)
    return (
        f"voxel <b>({', '.join(map(str, voxel))})</b> &nbsp; world "
        f"<b>({', '.join(f'{x:.1f}' for x in world)}) mm</b>{shown}{extra}"
    )


def error_box(exc: BaseException, what: str) -> str:
    """The red error box: ``what`` (what failed), the exception's type and message."""
    msg = f"{what}: {type(exc).__name__}: {exc}"
    return (
        '<div style="color:#a00;background:#fee;padding:4px 8px;border-left:4px solid #a00">'
        f"{html.escape(msg)}</div>"
    )


def ortho_label(plane: str, index: int) -> str:
    """The caption of one orthogonal plane: its name and slice index."""
    return f"<small>{plane} {index}</small>"
