"""Orientation from an affine: voxel sizes, nearest world axes, axis codes ("RAS", "LPI")."""

from __future__ import annotations

import itertools

import numpy as np

#: Axis code of the positive and negative direction of world x, y, z.
POS_CODES = "RAS"
NEG_CODES = "LPI"


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Length in mm of a step along each of the first three voxel axes (0 read as 1)."""
    sizes = np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))
    return np.where(sizes > 0, sizes, 1.0)


def world_axes(affine: np.ndarray) -> tuple[tuple[int, int], ...]:
    """For voxel axes 0, 1, 2: the closest world axis (0=x, 1=y, 2=z) and its sign (+1/-1).

    The three world axes are all different (the best permutation for oblique
    affines); a non-finite affine is read as the identity.
    """
    rzs = np.asarray(affine, float)[:3, :3] / voxel_sizes(affine)
    if not np.all(np.isfinite(rzs)):
        rzs = np.eye(3)
    best = max(
        itertools.permutations(range(3)),
        key=lambda p: sum(abs(rzs[p[v], v]) for v in range(3)),
    )
    return tuple((w, 1 if rzs[w, v] >= 0 else -1) for v, w in enumerate(best))


def axcodes(affine: np.ndarray) -> str:
    """Orientation codes of the voxel axes, e.g. ``"RAS"`` or ``"LPI"`` (a best guess)."""
    return "".join((POS_CODES if s > 0 else NEG_CODES)[w] for w, s in world_axes(affine))


def axcodes_or_unknown(affine: np.ndarray) -> str:
    """:func:`axcodes`, or ``"???"`` when the affine is not finite or a voxel size is 0."""
    rzs = np.asarray(affine, float)[:3, :3]
    sizes = np.sqrt((rzs**2).sum(axis=0))
    if not np.all(np.isfinite(rzs)) or not np.all(sizes > 0):
        return "???"
    return axcodes(affine)
