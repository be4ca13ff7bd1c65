"""SPM's ``.mat`` sidecar: the voxel-to-world affine stored beside an Analyze pair.

Beside a gzipped pair it is ``x.mat.gz`` (nibabel reads and writes that name).

SPM's ``mat`` maps 1-based voxel indices to world; ``M`` (SPM99) lacks the x flip.
Reading needs scipy (the ``spm`` extra).
"""

from __future__ import annotations

import gzip
import io
import os

import numpy as np

from ..errors import HeaderError, MalformedFileWarning, NilazyviewWarning, warn
from ..fs.paths import split_ext

_FLIP = np.diag([-1.0, 1.0, 1.0, 1.0])
_TO_111 = np.eye(4)
_TO_111[:3, 3] = 1


def mat_path(header_path: str) -> str:
    """The ``.mat`` a save writes beside an Analyze pair: gzipped (``.mat.gz``) when the
    header is, as nibabel does."""
    stem, _, gz = split_ext(header_path)
    return stem + (".mat.gz" if gz else ".mat")


def find_mat(header_path: str) -> str | None:
    """The existing ``.mat`` of a pair (the one compressed like the header first), or None."""
    stem = split_ext(header_path)[0]
    first = mat_path(header_path)
    for cand in (first, stem + (".mat" if first.endswith(".gz") else ".mat.gz")):
        if os.path.exists(cand):
            return cand
    return None


def read_mat_affine(path: str) -> np.ndarray | None:
    """Affine (0-based voxels) from an SPM ``.mat``, or None to use the header's.

    Falls back (with a warning) when scipy is missing, the file is unreadable or it
    holds no 4x4 ``mat``/``M``; raises :class:`HeaderError` when it is corrupt.
    """
    try:
        from scipy.io import loadmat  # the optional 'spm' extra
    except ImportError:
        warn(
            f"{path}: scipy is not installed; ignoring the SPM .mat affine "
            '(pip install "nilazyview[spm]")',
            NilazyviewWarning,
        )
        return None
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        warn(f"{path}: cannot read SPM .mat ({exc}); using the header affine", NilazyviewWarning)
        return None
    try:
        if path.lower().endswith(".gz"):
            raw = gzip.decompress(raw)
        mats = loadmat(io.BytesIO(raw))
    except Exception as exc:  # scipy raises many types for corrupt files
        raise HeaderError(f"{path}: corrupt SPM .mat file: {exc}") from exc
    if "mat" in mats:
        mat = np.asarray(mats["mat"], dtype=np.float64)
        if mat.ndim > 2:
            mat = mat[:, :, 0]
    elif "M" in mats:
        mat = _FLIP @ np.asarray(mats["M"], dtype=np.float64)
    else:
        warn(f"{path}: no 'mat' or 'M' in SPM .mat; using the header affine", MalformedFileWarning)
        return None
    if mat.shape != (4, 4) or not np.all(np.isfinite(mat)):
        msg = f"{path}: SPM 'mat' is not a finite 4x4; using the header affine"
        warn(msg, MalformedFileWarning)
        return None
    return mat @ _TO_111


def mat_bytes(affine: np.ndarray) -> bytes:
    """``affine`` as an SPM ``.mat`` file's bytes (``mat`` and ``M``; needs scipy)."""
    from scipy.io import savemat  # the optional 'spm' extra

    mat = np.asarray(affine, dtype=np.float64) @ np.linalg.inv(_TO_111)
    buf = io.BytesIO()
    savemat(buf, {"M": _FLIP @ mat, "mat": mat}, format="4")
    return buf.getvalue()


def has_mat(header_path: str) -> bool:
    return find_mat(header_path) is not None
