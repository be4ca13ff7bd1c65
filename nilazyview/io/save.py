"""``save``: write an image atomically in the format its file name asks for."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import SaveWarning, warn
from ..formats import registry, writer
from ..formats.codec import Timing, ToWrite
from ..image import Image
from .load import load
from .wrap import from_nibabel


def save(
    img: Image | Any,
    path: str | os.PathLike,
    compresslevel: int = 1,
    file_mode: int | None = None,
    nifti_version: int | None = None,
) -> str:
    """Save ``img`` as NIfTI (or MGH), atomically.

    In-memory data is written as it is (unscaled); a proxied image's stored
    bytes and scaling are copied without loading the array. A NIfTI target keeps
    the source's NIfTI version (NIfTI-2 stays NIfTI-2, its float64 fields exact);
    other images are written as NIfTI-1 unless a dimension exceeds 32767 or the
    scaling is not exact in float32, then NIfTI-2. Saving over the file the image
    came from is safe, and the image then refers to the new file (see
    :meth:`Image.attach`); ``dirty`` is left as it was.

    Parameters
    ----------
    img : Image or nibabel image
        The image to write, proxied or in memory; a nibabel image is wrapped
        first (:func:`nilazyview.from_nibabel`): its values, as nibabel scales
        them, are written.
    path : str or path-like
        Target; the extension picks the layout: ``.nii`` (single file),
        ``.hdr``/``.img`` (pair), either with ``.gz``; ``.mgh``/``.mgz`` write
        FreeSurfer MGH (values converted to an MGH type).
    compresslevel : int
        gzip level for ``.gz``/``.mgz`` targets (1 fastest, 9 smallest).
    file_mode : int, optional
        Permission bits of the new files; default those of the file replaced,
        else 0o666 less the umask.
    nifti_version : {None, 1, 2}
        Write this NIfTI version (NIfTI targets only; NIfTI-1 rounds float64 header
        fields to float32 and refuses dimensions over 32767).

    Returns
    -------
    str
        The path written (the header file for a pair).
    """
    path = os.fspath(path)
    if not isinstance(img, Image):
        if not (hasattr(img, "dataobj") and hasattr(img, "affine")):
            raise TypeError(f"expected a nilazyview or nibabel image, not {type(img).__name__}")
        img = from_nibabel(img)
    codec = registry.for_writing(path)
    data = img.cached_data
    source = registry.for_header(img.header)  # units and TR carry across formats
    item = ToWrite(
        shape=tuple(img.shape),
        dtype=img.dtype,
        affine=img.affine,
        header=img.header,
        data=None if data is None else np.asanyarray(data),
        array=img.proxy,
        files=dict(img.files),
        timing=Timing() if source is None else source.timing(img.header, len(img.shape)),
        version=nifti_version,
    )
    encoded = codec.encode(item, path)
    writer.write(item, encoded, compresslevel, file_mode)
    written = encoded.written
    if os.path.realpath(written) in _loaded_from(img):
        _reattach(img, written)
    return written


def _loaded_from(img: Image) -> set[str]:
    return {os.path.realpath(f) for k, f in img.files.items() if k != "mat"}


def _reattach(img: Image, written: str) -> None:
    """After a save over the image's own file: make the image describe the new file.

    Its proxy, header, affine (as stored), file names and snapshot become those of
    the file written, so reads after ``uncache``, ``as_file`` and pickles refer to
    it rather than to the replaced version. In-memory data and ``dirty`` stay.
    """
    try:
        fresh = load(written)
    except Exception as exc:  # saved, but not readable back: keep the old attachment
        warn(
            f"saved {written}, but could not reopen it ({exc}); the image still refers "
            "to the version it was loaded from",
            SaveWarning,
        )
        return
    img.attach(fresh)
