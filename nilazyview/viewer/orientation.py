"""Pure functions: anatomical planes, edge labels and voxel aspect from an affine.

World space is RAS+ (x to the Right, y Anterior, z Superior), as in NIfTI.
Planes are shown in neurological convention: the subject's right on screen
right, anterior or superior up; sagittal slices with anterior on the right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nilazyview.core.orientation import NEG_CODES as _NEG
from nilazyview.core.orientation import POS_CODES as _POS
from nilazyview.core.orientation import axcodes, voxel_sizes, world_axes

PLANE_OF_WORLD_AXIS = {0: "sagittal", 1: "coronal", 2: "axial"}
# plane normal (world axis) -> (world axis shown left-to-right, world axis shown bottom-to-top)
_SCREEN = {2: (0, 1), 1: (0, 2), 0: (1, 2)}


def plane_names(affine: np.ndarray) -> dict[int, str]:
    """Anatomical name of the plane shown when slicing each voxel axis 0, 1, 2."""
    return {v: PLANE_OF_WORLD_AXIS[w] for v, (w, _) in enumerate(world_axes(affine))}


@dataclass(frozen=True, eq=False)  # hashed by identity: a cache-key part
class DisplayMap:
    """How a slab from slicing voxel ``axis`` is laid out on screen.

    The slab's two axes are the remaining voxel axes in increasing order;
    :meth:`apply` turns it into screen rows (top to bottom) and columns
    (left to right).

    Attributes
    ----------
    axis : int
        Voxel axis sliced.
    row_axis, col_axis : int
        Voxel axes shown vertically and horizontally.
    flip_rows, flip_cols : bool
        Whether those axes run against the screen direction.
    labels : dict
        Edge letters for ``"left"``, ``"right"``, ``"top"``, ``"bottom"``.
    aspect : float
        Height / width of one displayed pixel (voxel sizes along rows / columns).
    plane : str
        ``"axial"``, ``"coronal"`` or ``"sagittal"``.
    """

    axis: int
    row_axis: int
    col_axis: int
    flip_rows: bool
    flip_cols: bool
    labels: dict
    aspect: float
    plane: str

    def apply(self, slab: np.ndarray) -> np.ndarray:
        """A view of ``slab`` (axes in increasing voxel order) as screen rows x columns."""
        out = slab if self.row_axis < self.col_axis else slab.T
        return out[:: -1 if self.flip_rows else 1, :: -1 if self.flip_cols else 1]

    def to_voxel(self, row: int, col: int, index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Voxel (i, j, k) under screen pixel (``row``, ``col``) of slice ``index``."""
        vox = [0, 0, 0]
        vox[self.axis] = index
        nr, nc = shape[self.row_axis], shape[self.col_axis]
        vox[self.row_axis] = nr - 1 - row if self.flip_rows else row
        vox[self.col_axis] = nc - 1 - col if self.flip_cols else col
        return tuple(vox)

    def to_screen(self, voxel: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, int]:
        """Screen (row, col) of a voxel's in-plane position."""
        r, c = voxel[self.row_axis], voxel[self.col_axis]
        nr, nc = shape[self.row_axis], shape[self.col_axis]
        return (nr - 1 - r if self.flip_rows else r), (nc - 1 - c if self.flip_cols else c)


def display_map(affine: np.ndarray, axis: int) -> DisplayMap:
    """The :class:`DisplayMap` for slicing voxel ``axis`` (0, 1 or 2) of an image."""
    axes = world_axes(affine)
    normal = axes[axis][0]
    horiz, vert = _SCREEN[normal]
    others = [v for v in range(3) if v != axis]
    by_world = {axes[v][0]: v for v in others}
    col_axis, row_axis = by_world[horiz], by_world[vert]
    sizes = voxel_sizes(affine)
    labels = {
        "left": _NEG[horiz],
        "right": _POS[horiz],
        "top": _POS[vert],
        "bottom": _NEG[vert],
    }
    return DisplayMap(
        axis=axis,
        row_axis=row_axis,
        col_axis=col_axis,
        # rows run top to bottom: flip when the voxel axis points up (+vert)
        flip_rows=axes[row_axis][1] > 0,
        flip_cols=axes[col_axis][1] < 0,
        labels=labels,
        aspect=float(sizes[row_axis] / sizes[col_axis]),
        plane=PLANE_OF_WORLD_AXIS[normal],
    )


def world_coords(affine: np.ndarray, voxel: tuple[int, ...]) -> np.ndarray:
    """World (mm) coordinates of a voxel index (first three axes)."""
    ijk = np.zeros(3)
    ijk[: min(3, len(voxel))] = voxel[:3]
    a = np.asarray(affine, float)
    return a[:3, :3] @ ijk + a[:3, 3]


__all__ = ["axcodes", "display_map", "plane_names", "voxel_sizes", "world_axes", "world_coords"]
