"""NIfTI affine rules: sform, qform (quaternion) and the pixdim fallback."""

from __future__ import annotations

import numpy as np

_QUAT_THRESHOLD = -np.finfo(np.float32).eps * 3


def quaternion_to_matrix(b: float, c: float, d: float) -> np.ndarray:
    """Rotation matrix of the unit quaternion with vector part (b, c, d)."""
    b, c, d = float(b), float(c), float(d)
    w2 = 1.0 - (b * b + c * c + d * d)
    a = np.sqrt(w2) if w2 > 0 else 0.0
    if w2 < _QUAT_THRESHOLD:  # not a unit quaternion: normalise as nibabel does not
        n = np.sqrt(b * b + c * c + d * d)
        b, c, d = b / n, c / n, d / n
    nq = a * a + b * b + c * c + d * d
    if nq < np.finfo(np.float64).eps:
        return np.eye(3)
    s = 2.0 / nq
    X, Y, Z = b * s, c * s, d * s
    wX, wY, wZ = a * X, a * Y, a * Z
    xX, xY, xZ = b * X, b * Y, b * Z
    yY, yZ, zZ = c * Y, c * Z, d * Z
    return np.array(
        [
            [1.0 - (yY + zZ), xY - wZ, xZ + wY],
            [xY + wZ, 1.0 - (xX + zZ), yZ - wX],
            [xZ - wY, yZ + wX, 1.0 - (xX + yY)],
        ]
    )


def qform_affine(quatern, qoffset, pixdim) -> np.ndarray:
    """Affine from the qform fields (``pixdim[0]`` is qfac; 0 counts as 1)."""
    rot = quaternion_to_matrix(*quatern)
    zooms = np.abs(np.asarray(pixdim[1:4], dtype=np.float64))
    qfac = -1.0 if float(pixdim[0]) < 0 else 1.0
    zooms[2] *= qfac
    out = np.eye(4)
    out[:3, :3] = rot * zooms
    out[:3, 3] = np.asarray(qoffset, dtype=np.float64)
    return out


def sform_affine(srow_x, srow_y, srow_z) -> np.ndarray:
    out = np.eye(4)
    out[0], out[1], out[2] = srow_x, srow_y, srow_z
    return out


def base_affine(shape, zooms, origin=None) -> np.ndarray:
    """Analyze-style affine: x flipped, origin at ``origin`` (0-based) or the centre."""
    shape3 = np.ones(3)
    zoom3 = np.ones(3)
    n = min(3, len(shape))
    shape3[:n] = np.asarray(shape[:n], dtype=np.float64)
    zoom3[:n] = np.asarray(zooms[:n], dtype=np.float64)
    zoom3[0] *= -1
    centre = (shape3 - 1) / 2.0 if origin is None else np.asarray(origin, dtype=np.float64)
    out = np.diag([*zoom3, 1.0])
    out[:3, 3] = -centre * zoom3
    return out


def matrix_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """Unit quaternion (a, b, c, d) with a >= 0 of the rotation nearest ``rot``."""
    u, _, vt = np.linalg.svd(rot)
    r = u @ vt
    # Bar-Itzhack: eigenvector of the largest eigenvalue of a symmetric 4x4
    qxx, qyx, qzx, qxy, qyy, qzy, qxz, qyz, qzz = r.flat
    k = (
        np.array(
            [
                [qxx - qyy - qzz, 0, 0, 0],
                [qyx + qxy, qyy - qxx - qzz, 0, 0],
                [qzx + qxz, qzy + qyz, qzz - qxx - qyy, 0],
                [qyz - qzy, qzx - qxz, qxy - qyx, qxx + qyy + qzz],
            ]
        )
        / 3.0
    )
    vals, vecs = np.linalg.eigh(k)
    q = vecs[[3, 0, 1, 2], np.argmax(vals)]
    return -q if q[0] < 0 else q


def affine_to_qform(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Split an affine into (quatern_bcd, qoffset, zooms, qfac) for the qform fields."""
    m = np.asarray(affine, dtype=np.float64)[:3, :3]
    zooms = np.sqrt((m * m).sum(axis=0))
    zooms[zooms == 0] = 1.0
    rot = m / zooms
    qfac = 1.0
    if np.linalg.det(rot) < 0:
        qfac = -1.0
        rot[:, 2] *= -1
    q = matrix_to_quaternion(rot)
    return q[1:], np.asarray(affine, dtype=np.float64)[:3, 3], zooms, qfac
