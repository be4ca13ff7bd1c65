"""The NIfTI-1/2 and Analyze 7.5 codec: single files and pairs, gzipped or not, SPM ``.mat``.

Header bytes are parsed and built in :mod:`nilazyview.formats.nifti`; this module
opens the files (header, extensions, a byte proxy over the data) and encodes saves.
"""

from __future__ import annotations

import contextlib
import os
import struct

import numpy as np

from ..array.bytes import ArrayProxy
from ..core.header import Extension, Header
from ..core.layout import DiskLayout
from ..core.values import Scaling
from ..errors import HeaderError, TruncatedDataError
from ..fs.paths import FileNames, names_for_reading, names_for_writing, split_ext
from ..sources import ByteSource, FileIdentity, open_source
from . import nifti, spm
from .codec import Encoded, FileToWrite, Opened, Timing, ToWrite, capacity, check_data_fits
from .codec import stored_copy_allowed as _stored_scaling


def _read_header(source: ByteSource, names: FileNames) -> Header:
    block = source.read_bytes(0, 544)
    return nifti.parse_header(block, names.header, single=names.single)


def _extensions(source: ByteSource, hdr: Header, names: FileNames, data_offset: int):
    start = nifti.DTYPES[hdr.kind].itemsize
    flag = source.read_bytes(start, 4)
    if len(flag) < 4 or flag[0] == 0:
        return []
    cap = capacity(source)
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


def _storable(dtype: np.dtype) -> np.dtype:
    """The type NIfTI stores values of ``dtype`` as (bool -> uint8, float16 -> float32)."""
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype


class NiftiCodec:
    """NIfTI-1, NIfTI-2 and Analyze 7.5 (SPM flavour)."""

    name = "nifti"
    title = "NIfTI-1/2, Analyze"
    kinds = ("nifti1", "nifti2", "analyze")
    names = {"nifti1": "NIfTI-1", "nifti2": "NIfTI-2", "analyze": "Analyze 7.5"}
    writable = True
    opens_unrecognised = True  # its loader says which header field is wrong
    _SUFFIXES = (".nii", ".hdr", ".img")

    def sniff(self, head: bytes, path: str | None) -> str | None:
        if len(head) < 4:
            return None
        for endian in "<>":
            (size,) = struct.unpack(endian + "i", head[:4])
            if size == 348:
                return "nifti1" if head[344:347] in (b"n+1", b"ni1") else "analyze"
            if size == 540:
                return "nifti2"
        return None

    def suffix(self, path: str) -> tuple[str, bool] | None:
        _, ext, gz = split_ext(path)
        if ext not in self._SUFFIXES:
            return None
        ext = ".hdr" if ext == ".img" else ext
        return ext + (".gz" if gz else ""), gz

    def zooms(self, header: Header, ndim: int) -> list[float]:
        return [float(z) for z in header["pixdim"][1 : ndim + 1]]

    def open(self, path: str) -> Opened:
        names = names_for_reading(path)
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
        check_data_fits(dsrc, layout, names.image)
        watch = () if names.single else ((names.header, hsrc.identity),)  # pair: header too
        proxy = ArrayProxy(layout, dsrc, nifti.scaling_of(hdr), watch)
        identity = {"header": hsrc.identity, "image": dsrc.identity}
        files = {"header": names.header, "image": names.image}
        affine = nifti.affine_of(hdr, shape)
        mat = spm.find_mat(names.header) if hdr.kind == "analyze" else None
        if mat is not None:
            files["mat"], identity["mat"] = mat, FileIdentity.of(mat)
            mat_affine = spm.read_mat_affine(mat)
            if mat_affine is not None:
                affine = mat_affine
        return Opened(proxy, affine, hdr, files, identity)

    def timing(self, header: Header, ndim: int) -> Timing:
        return nifti.timing_of(header, ndim)

    def written_files(self, path: str) -> list[str]:
        names = names_for_writing(path)
        if names.single:
            return [names.image]
        return [names.image, names.header, spm.mat_path(names.header)]

    def encode(self, item: ToWrite, path: str) -> Encoded:
        """The version of :func:`~nilazyview.formats.nifti.nifti_kind`; in-memory data
        unscaled, a proxy's stored bytes and scaling copied as they are (Fortran order)."""
        names = names_for_writing(path)
        scaling = None if item.data is not None else _stored_scaling(item.array)
        if item.data is not None:
            dtype, scaling, stored = _storable(item.data.dtype), Scaling(), False
        elif scaling is not None:
            dtype, stored = item.array.layout.dtype, True
        else:
            dtype, scaling, stored = _storable(item.dtype), Scaling(), False
        hdr = item.header
        if hdr is not None and hdr.kind not in self.kinds:
            hdr = None  # another format's header: nothing carries into NIfTI
        src_affine = None
        if hdr is not None and hdr.kind != "analyze":
            with contextlib.suppress(Exception):
                src_affine = nifti.affine_of(hdr, nifti.shape_of(hdr, ""))
        head, _ = nifti.build_header(
            hdr,
            item.shape,
            dtype,
            item.affine,
            scaling,
            names.single,
            src_affine,
            item.timing,
            item.version,
        )
        if names.single:
            files = (FileToWrite(names.image, split_ext(path)[2], head, data=True),)
            return Encoded(files, dtype, stored)
        gz = split_ext(names.image)[2]
        same_folder = os.path.dirname(os.path.abspath(names.image)) == os.path.dirname(
            os.path.abspath(names.header)
        )
        # every file of a pair (image, header, SPM .mat) is complete and synced before any
        # replaces its old version; the renames follow each other with no fsync between
        files = [
            FileToWrite(names.image, gz, data=True),
            FileToWrite(names.header, gz, head, sync_folder=not same_folder),
        ]
        if "mat" in item.files:  # an SPM image: keep its affine where SPM looks for it
            mat = spm.mat_path(names.header)  # x.mat.gz beside a gzipped pair
            files.append(FileToWrite(mat, gz, spm.mat_bytes(item.affine)))
        return Encoded(tuple(files), dtype, stored, primary=names.header)


CODEC = NiftiCodec()

__all__ = ["CODEC", "Extension", "NiftiCodec"]
