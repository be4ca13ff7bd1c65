"""Pure geometry of resampling one grid onto another through their affines (numpy only).

A viewer layer may sit on another voxel grid than the image under it (another voxel
size, orientation, field of view). For the plane shown, :func:`map_plane` maps the
base's in-plane voxel coordinates through ``inv(layer_affine) @ base_affine`` into
the layer's voxel coordinates; :func:`bounding_box` is the smallest box of layer
voxels the interpolation needs (the only part read); :func:`interpolate` samples a
box array there, trilinear (``order=1``) or nearest (``order=0``).

Field of view (one rule for every caller, and the tests' oracle): a point is
*inside* a layer of ``n`` voxels along an axis when its coordinate ``x`` satisfies

- ``order=1``: ``-EPS <= x <= n - 1 + EPS`` (``x`` is then clipped into ``[0, n - 1]``);
- ``order=0``: ``-0.5 <= x < n - 0.5`` (its voxel ``floor(x + 0.5)`` is on the grid),

along all three axes; points outside come back NaN. Voxel centres are at integer
coordinates, as in the affine.

Cost of a 512 x 512 plane of a 2 mm 256 x 256 x 20 layer (trilinear, float64, medians
of 36 slices on the shared, loaded 2-core machine, same run): 4 ms when the layer's
axes follow the base's (:func:`interpolate_separable`: any voxel sizes, flips, axis
order), 20 ms oblique (:func:`interpolate`: eight gathers a point).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EPS = 1e-6


def compose(base_affine: np.ndarray, layer_affine: np.ndarray) -> np.ndarray:
    """The 4x4 map from base voxel coordinates to layer voxel coordinates."""
    return np.linalg.inv(np.asarray(layer_affine, np.float64)) @ np.asarray(base_affine, np.float64)


def map_plane(
    vox2vox: np.ndarray, axis: int, index: float, first: np.ndarray, second: np.ndarray
) -> np.ndarray:
    """Layer voxel coordinates (3, len(first), len(second)) of a plane of base voxels.

    Parameters
    ----------
    vox2vox : (4, 4) array
        From :func:`compose`.
    axis, index : int, float
        The base voxel axis sliced and the slice's coordinate along it.
    first, second : 1-D arrays
        Base voxel coordinates along the two other axes, in increasing axis order.
    """
    a, b = (x for x in range(3) if x != axis)
    m = np.asarray(vox2vox, np.float64)
    origin = m[:3, axis] * float(index) + m[:3, 3]
    first = np.asarray(first, np.float64)
    second = np.asarray(second, np.float64)
    out = m[:3, a, None, None] * first[None, :, None] + m[:3, b, None, None] * second[None, None, :]
    out += origin[:, None, None]
    return out


def map_points(vox2vox: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Layer voxel coordinates (3, ...) of base voxel coordinates ``points`` (3, ...)."""
    m = np.asarray(vox2vox, np.float64)
    p = np.asarray(points, np.float64)
    return np.tensordot(m[:3, :3], p, axes=1) + m[:3, 3].reshape((3,) + (1,) * (p.ndim - 1))


def inside(coords: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    """Boolean mask of the points of ``coords`` (3, ...) inside the grid ``shape`` (see above)."""
    mask = np.ones(coords.shape[1:], bool)
    for d in range(3):
        x, n = coords[d], int(shape[d])
        if order == 0:
            mask &= (x >= -0.5) & (x < n - 0.5)
        else:
            mask &= (x >= -EPS) & (x <= n - 1 + EPS)
    return mask


def bounding_box(
    coords: np.ndarray, shape: Sequence[int], order: int, mask: np.ndarray | None = None
) -> tuple[tuple[int, int], ...] | None:
    """The ``(start, stop)`` per axis of the layer voxels interpolating ``coords`` needs.

    Only points inside the grid count; None when there are none.
    """
    mask = inside(coords, shape, order) if mask is None else mask
    if not mask.any():
        return None
    box = []
    for d in range(3):
        x, n = coords[d][mask], int(shape[d])
        if order == 0:
            lo, hi = int(np.floor(x.min() + 0.5)), int(np.floor(x.max() + 0.5)) + 1
        else:
            lo, hi = int(np.floor(x.min())), int(np.floor(x.max())) + 2
        box.append((min(max(lo, 0), n - 1), min(max(hi, 1), n)))
    return tuple(box)


def _memory_order(coords: np.ndarray) -> list[int]:
    """Layer axes ordered so the one that changes most along the points' last grid axis
    is last (stride 1 in the copied box): lookups then walk memory, not jump through it."""
    if coords.ndim < 3 or coords.shape[-1] < 2:
        return [0, 1, 2]
    first = coords.reshape(3, -1, coords.shape[-1])[:, 0, :]
    change = np.abs(first[:, -1] - first[:, 0])
    return [int(d) for d in np.argsort(change, kind="stable")]


def interpolate(
    box: np.ndarray,
    start: Sequence[int],
    coords: np.ndarray,
    order: int,
    mask: np.ndarray,
    dtype: type = np.float64,
) -> np.ndarray:
    """Values (``dtype``, NaN outside ``mask``) of ``box`` at layer coordinates ``coords``.

    ``box`` holds the layer voxels from ``start`` on (from :func:`bounding_box`);
    ``mask`` is :func:`inside` of ``coords``. The box is copied with the layer axes
    in :func:`_memory_order` (neighbouring points are near in memory) and points are
    done :data:`CHUNK` at a time (the temporaries stay in the CPU cache).
    """
    perm = _memory_order(coords)
    sizes = [box.shape[d] for d in perm]
    flat = np.ascontiguousarray(np.transpose(box, perm), dtype=dtype).reshape(-1)
    strides = (sizes[1] * sizes[2], sizes[2], 1)
    pts = coords[perm].reshape(3, -1)
    origin = [start[d] for d in perm]
    out = np.empty(pts.shape[1], dtype)
    one = _nearest if order == 0 else _trilinear
    for lo in range(0, pts.shape[1], CHUNK):
        part = slice(lo, lo + CHUNK)
        out[part] = one(flat, pts[:, part], origin, sizes, strides, dtype)
    out = out.reshape(coords.shape[1:])
    out[~mask] = np.nan
    return out


CHUNK = 1 << 14


def _nearest(flat, pts, origin, sizes, strides, dtype) -> np.ndarray:
    linear = np.zeros(pts.shape[1], np.intp)
    for k in range(3):
        i = np.floor(pts[k] - (origin[k] - 0.5)).astype(np.intp)
        np.clip(i, 0, sizes[k] - 1, out=i)
        i *= strides[k]
        linear += i
    return flat.take(linear, mode="clip")


def _trilinear(flat, pts, origin, sizes, strides, dtype) -> np.ndarray:
    linear = np.zeros(pts.shape[1], np.intp)
    weights, offsets = [], []
    for k in range(3):
        p = pts[k] - origin[k]
        np.clip(p, 0.0, sizes[k] - 1.0, out=p)
        p = p.astype(dtype, copy=False)
        i0 = p.astype(np.intp)
        np.minimum(i0, max(sizes[k] - 2, 0), out=i0)
        f = p - i0
        linear += i0 * strides[k]
        weights.append((1.0 - f, f))
        offsets.append(strides[k] if sizes[k] > 1 else 0)
    out = np.zeros(pts.shape[1], dtype)
    for ux in (0, 1):
        for uy in (0, 1):
            wxy = weights[0][ux] * weights[1][uy]
            for uz in (0, 1):
                off = ux * offsets[0] + uy * offsets[1] + uz * offsets[2]
                out += wxy * weights[2][uz] * flat.take(linear + off, mode="clip")
    return out


def separable_roles(vox2vox: np.ndarray, axis: int) -> tuple | None:
    """For a plane of base slice ``axis``: which grid axis (0: the first in-plane axis,
    1: the second, None: neither) each layer axis follows, when each follows at most one
    and the two grid axes go to different layer axes (an axis-aligned resampling, any
    voxel sizes, flips or axis order); else None."""
    a, b = (x for x in range(3) if x != axis)
    m = np.asarray(vox2vox, np.float64)[:3, :3]
    scale = np.abs(m).max()
    roles = []
    for d in range(3):
        uses = [abs(m[d, c]) > 1e-9 * scale for c in (a, b)]
        if all(uses):
            return None
        roles.append(0 if uses[0] else 1 if uses[1] else None)
    return tuple(roles) if sorted(roles, key=str) == [0, 1, None] else None


def interpolate_separable(
    box: np.ndarray,
    start: Sequence[int],
    coords: np.ndarray,
    order: int,
    mask: np.ndarray,
    roles: tuple,
) -> np.ndarray:
    """:func:`interpolate` for a plane of :func:`map_plane` whose :func:`separable_roles`
    are ``roles``: one 1-D interpolation per layer axis (through the plane first), a few
    passes over the frame instead of eight gathers."""
    out = np.asarray(box, np.float64)
    for d in sorted(range(3), key=lambda d: roles[d] is not None):  # through the plane first
        role = roles[d]
        x = coords[d][:, 0] if role == 0 else coords[d][0, :] if role == 1 else coords[d][:1, 0]
        size = out.shape[d]
        p = np.clip(x - start[d], 0.0, size - 1.0)
        if order == 0:
            out = np.take(out, np.floor(p + 0.5).astype(np.intp), axis=d)
            continue
        i0 = np.minimum(p.astype(np.intp), max(size - 2, 0))
        i1 = np.minimum(i0 + 1, size - 1)
        shape = [1, 1, 1]
        shape[d] = -1
        f = (p - i0).reshape(shape)
        lo, hi = np.take(out, i0, axis=d), np.take(out, i1, axis=d)
        out = lo + (hi - lo) * f
    axes = [roles.index(0), roles.index(1), roles.index(None)]
    out = np.transpose(out, axes)[:, :, 0].copy()
    out[~mask] = np.nan
    return out
