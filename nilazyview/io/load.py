"""``load``: parse the header and affine, set up a proxy; read no voxel."""

from __future__ import annotations

import os

from ..errors import UnsupportedFormatError
from ..formats import detect, registry
from ..fs.paths import names_for_reading
from ..image import Image
from ..sources import URL, is_url


def load(path: str | os.PathLike, storage_options: dict | None = None) -> Image:
    """Open an image file as a proxy: parses the header and affine, reads no voxel.

    Parameters
    ----------
    path : str or path-like
        ``.nii``, ``.nii.gz``, ``.hdr``/``.img`` (either member, optionally gzipped):
        NIfTI-1, NIfTI-2 and Analyze 7.5 (SPM flavour); ``.mgh``/``.mgz`` (FreeSurfer);
        ``.mnc`` (MINC2, needs h5py). The format is told by content, so a wrong
        extension still loads; an unreadable format raises
        :class:`~nilazyview.UnsupportedFormatError` naming what was found.
        A URL (``https://``, ``s3://``, ``gs://``, any fsspec URL) is read by byte
        ranges: single files (``.nii``, ``.nii.gz``, ``.mgh``, ``.mgz``).
    storage_options : dict, optional
        For a URL: options of its filesystem (fsspec's, e.g. ``{"anon": True}``);
        credentials in them are never pickled.

    Returns
    -------
    Image
        A proxied image (``is_proxy`` True, ``dirty`` False).
    """
    if is_url(path):
        path = URL(path, storage_options)
        names = names_for_reading(path)
        if not names.single:
            raise UnsupportedFormatError(
                f"{path}: remote header/image pairs are not supported; use a single file "
                "(.nii, .nii.gz, .mgh, .mgz)"
            )
    else:
        path = os.fspath(path)
        names = names_for_reading(path)
        for p in {names.header, names.image}:
            if not os.path.exists(p):
                raise FileNotFoundError(2, "No such file", p)
    found = detect.detect(names.header)
    codec = registry.for_kind(found.format)
    if codec is None:
        # content nothing recognised: a format may still explain its own file names
        named = registry.for_path(path)
        if found.format not in ("unknown", "empty") or named is None:
            raise detect.unsupported(path, found)
        if not named.opens_unrecognised:
            raise detect.unsupported(path, found)
        codec = named
    if isinstance(path, URL) and codec.name == "minc2":
        raise UnsupportedFormatError(
            f"{path}: MINC2 cannot be read from a URL yet (HDF5 needs a local file); "
            "download it first"
        )
    opened = codec.open(path)
    return Image.from_proxy(
        opened.array,
        opened.affine,
        opened.header,
        path,
        opened.files,
        opened.identity,
        reopen=load,
    )


__all__ = ["load"]
