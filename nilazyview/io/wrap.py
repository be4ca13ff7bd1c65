"""nibabel images as :class:`Image`: wrap any nibabel image (nibabel is optional).

Here, below :mod:`nilazyview.adapters`, so that :func:`nilazyview.save` accepts
nibabel images too.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..array.nibabel import NibabelProxy, nibabel_module
from ..formats.nifti import parse_header_record
from ..image import Image
from ..sources import FileIdentity


def _nifti_header(nib, nib_hdr):
    """An nilazyview header from a nibabel NIfTI header, or None for other formats."""
    if isinstance(nib_hdr, nib.Nifti2Header):
        kind = "nifti2"
    elif isinstance(nib_hdr, nib.Nifti1Header):
        kind = "nifti1"
    else:
        return None
    return parse_header_record(nib_hdr.binaryblock, kind)


def from_nibabel(nib_img: Any) -> Image:
    """Wrap a nibabel image (PAR/REC, ECAT, MINC1, NIfTI, ...) as a proxied :class:`Image`.

    Slicing reads through ``nib_img.dataobj`` (nibabel's proxy), so only what an
    index needs is read when nibabel can do that. The image is clean and
    proxied; while unchanged, ``as_file`` hands off the original file(s), and
    otherwise saves a NIfTI copy. NIfTI header fields carry over. Values come in
    nibabel's scaled type (float64 for scaled integers, as ``get_fdata``), where
    :func:`nilazyview.load` of the same file may give float32.

    Parameters
    ----------
    nib_img : nibabel.spatialimages.SpatialImage
        Any image with ``dataobj`` and ``affine``.
    """
    nib = nibabel_module("from_nibabel()")
    if not hasattr(nib_img, "dataobj"):
        raise TypeError(f"expected a nibabel image, not {type(nib_img).__name__}")
    filename = nib_img.get_filename() if hasattr(nib_img, "get_filename") else None
    filename = os.fspath(filename) if filename else None
    proxy = NibabelProxy(nib_img.dataobj, filename or f"<{type(nib_img).__name__}>", filename)
    affine = nib_img.affine if getattr(nib_img, "affine", None) is not None else np.eye(4)
    hdr = _nifti_header(nib, getattr(nib_img, "header", None))
    files, identity = _source_files(nib_img) if filename else ({}, {})
    return Image.from_proxy(proxy, affine, hdr, filename if files else None, files, identity)


def _source_files(nib_img) -> tuple[dict[str, str], dict[str, FileIdentity]]:
    """The existing files behind a nibabel image and their identities (for ``as_file``)."""
    files, identity = {}, {}
    for role, holder in getattr(nib_img, "file_map", {}).items():
        path = getattr(holder, "filename", None)
        if path and os.path.exists(path):
            files[role] = os.fspath(path)
            identity[role] = FileIdentity.of(path)
    return files, identity
