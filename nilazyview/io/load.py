"""``load``: parse the header and affine, set up a proxy; read no voxel."""

from __future__ import annotations

import os

from ..errors import HeaderError, TruncatedDataError
from ..formats import detect, mgh, minc2, nifti, spm
from ..header import Extension, Header
from ..image import Image
from ..layout import DiskLayout
from ..proxy import ArrayProxy
from ..sources import ByteSource, FileIdentity, FileSource, GzipSource, open_source
from .paths import FileNames, names_for_reading, split_ext

#: Deflate cannot expand data more than about 1032:1; more is a corrupt header.
GZIP_MAX_RATIO = 1032


def _read_header(source: ByteSource, names: FileNames) -> Header:
    block = source.read_bytes(0, 544)
    return nifti.parse_header(block, names.header, single=names.single)


def _extensions(source: ByteSource, hdr: Header, names: FileNames, data_offset: int):
    start = nifti.DTYPES[hdr.kind].itemsize
    flag = source.read_bytes(start, 4)
    if len(flag) < 4 or flag[0] == 0:
        return []
    cap = _backable(source)
    stop = data_offset if names.single else min(cap, start + 4 + nifti.MAX_EXTENSION_BYTES)
    if stop - start - 4 > nifti.MAX_EXTENSION_BYTES:
        raise HeaderError(
            f"{names.header}: header extensions would take {stop - start - 4} bytes, "
            f"more than the limit of {nifti.MAX_EXTENSION_BYTES}"
        )
    if stop > cap:  # checked before allocating the block
        raise TruncatedDataError(
            f"{names.header}: field 'vox_offset' ({stop}) puts the data past what the "
            f"file can hold ({cap} bytes)"
        )
    block = source.read_bytes(start, max(0, stop - start))
    return nifti.parse_extensions(block, hdr.endian, names.header)


def _stream_size(source: ByteSource) -> int | None:
    if isinstance(source, FileSource):
        return source.identity.size if source.identity else os.path.getsize(source.path)
    return None


def _backable(source: ByteSource) -> int:
    """The most (uncompressed) bytes ``source`` can hold: its size, or the gzip bound."""
    size = source.identity.size if source.identity else os.path.getsize(source.path)
    if isinstance(source, GzipSource):
        return GZIP_MAX_RATIO * size + 2**20
    return size


def _check_data_fits(source: ByteSource, layout: DiskLayout, path: str) -> None:
    end = layout.offset + layout.nbytes
    if isinstance(source, GzipSource):
        compressed = source.identity.size if source.identity else os.path.getsize(path)
        if end > _backable(source):
            raise TruncatedDataError(
                f"{path}: header declares data up to byte {end} (offset {layout.offset} + "
                f"{layout.nbytes}); a gzip stream of {compressed} bytes cannot hold that many "
                f"(deflate expands at most {GZIP_MAX_RATIO}:1)"
            )
        return
    size = _stream_size(source)
    if size is not None and end > size:
        raise TruncatedDataError(
            f"{path}: header declares data up to byte {end} (vox_offset {layout.offset} + "
            f"{layout.nbytes}), but the file has {size} bytes"
        )


def read_extensions(files: dict[str, str]) -> list[Extension]:
    """Re-read the extensions of an image's files (after unpickling)."""
    names = FileNames(files["header"], files["image"])
    src = open_source(names.header)
    try:
        hdr = _read_header(src, names)
        return _extensions(src, hdr, names, nifti.data_offset(hdr, names.header, names.single))
    finally:
        src.close()


def _nifti_like(path: str) -> bool:
    return split_ext(path)[1] in (".nii", ".hdr", ".img")


def load(path: str | os.PathLike) -> Image:
    """Open an image file as a proxy: parses the header and affine, reads no voxel.

    Parameters
    ----------
    path : str or path-like
        ``.nii``, ``.nii.gz``, ``.hdr``/``.img`` (either member, optionally gzipped):
        NIfTI-1, NIfTI-2 and Analyze 7.5 (SPM flavour); ``.mgh``/``.mgz`` (FreeSurfer);
        ``.mnc`` (MINC2, needs h5py). The format is told by content, so a wrong
        extension still loads; an unreadable format raises
        :class:`~nilazyview.UnsupportedFormatError` naming what was found.

    Returns
    -------
    Image
        A proxied image (``is_proxy`` True, ``dirty`` False).
    """
    path = os.fspath(path)
    names = names_for_reading(path)
    for p in {names.header, names.image}:
        if not os.path.exists(p):
            raise FileNotFoundError(2, "No such file", p)
    found = detect.detect(names.header)
    if found.format == "mgh":
        return mgh.load(path)
    if found.format == "minc2":
        return minc2.load(path)
    if not found.readable and (found.format not in ("unknown", "empty") or not _nifti_like(path)):
        raise detect.unsupported(path, found)
    hsrc = open_source(names.header)
    hdr = _read_header(hsrc, names)
    shape = nifti.shape_of(hdr, names.header)
    dtype = nifti.stored_dtype(hdr, names.header)
    offset = nifti.data_offset(hdr, names.header, names.single)
    hdr.extensions = _extensions(hsrc, hdr, names, offset)
    dsrc = hsrc if names.single else open_source(names.image)
    if not names.single:
        hsrc.close()
    layout = DiskLayout(shape, dtype, offset, "F")
    _check_data_fits(dsrc, layout, names.image)
    watch = () if names.single else ((names.header, hsrc.identity),)  # pair: header too
    proxy = ArrayProxy(layout, dsrc, nifti.scaling_of(hdr), watch)
    identity = {"header": hsrc.identity, "image": dsrc.identity}
    files = {"header": names.header, "image": names.image}
    affine = nifti.affine_of(hdr, shape)
    if hdr.kind == "analyze" and spm.has_mat(names.header):
        mat = spm.mat_path(names.header)
        files["mat"], identity["mat"] = mat, FileIdentity.of(mat)
        mat_affine = spm.read_mat_affine(mat)
        if mat_affine is not None:
            affine = mat_affine
    return Image.from_proxy(proxy, affine, hdr, path, files, identity)


__all__ = ["load", "read_extensions"]
