"""Tell an image format by content: magic numbers, the HDF5 signature, gzip + inner magic."""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

from ..errors import UnsupportedFormatError
from ..header import Header
from . import mgh, minc2

#: Formats :func:`nilazyview.load` reads.
READABLE = ("nifti1", "nifti2", "analyze", "mgh", "minc2")
_HEAD_BYTES = 1024
_NAMES = {
    "nifti1": "NIfTI-1",
    "nifti2": "NIfTI-2",
    "analyze": "Analyze 7.5",
    "mgh": "MGH",
    "minc2": "MINC2 (HDF5)",
    "hdf5": "HDF5 (not MINC2)",
    "minc1": "MINC1 (NetCDF)",
    "parrec": "Philips PAR header",
    "dicom": "DICOM",
    "empty": "an empty file",
    "unknown": "unknown content",
}


@dataclass(frozen=True)
class Detected:
    """What a file holds: ``format`` (a key of the names table) and whether it is gzipped."""

    format: str
    gzipped: bool
    head: bytes = b""

    @property
    def description(self) -> str:
        name = _NAMES.get(self.format, self.format)
        if self.format == "unknown" and self.head:
            name += f" (starts with {self.head[:8]!r})"
        return name + (", gzip-compressed" if self.gzipped else "")

    @property
    def readable(self) -> bool:
        return self.format in READABLE


def _gunzip_head(block: bytes, n: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        return d.decompress(block, n)
    except zlib.error:
        return b""


def sniff(head: bytes) -> str:
    """Format of an uncompressed stream from its first bytes."""
    if not head:
        return "empty"
    if head.startswith(minc2.HDF5_SIGNATURE):
        return "hdf5"
    if head[:4] in (b"CDF\x01", b"CDF\x02"):
        return "minc1"
    if len(head) >= 4:
        for endian in "<>":
            (size,) = struct.unpack(endian + "i", head[:4])
            if size == 348:
                return "nifti1" if head[344:347] in (b"n+1", b"ni1") else "analyze"
            if size == 540:
                return "nifti2"
    if mgh.looks_like_mgh(head):
        return "mgh"
    if head.lstrip().startswith(b"# === DATA DESCRIPTION FILE"):
        return "parrec"
    if head[128:132] == b"DICM":
        return "dicom"
    return "unknown"


def detect(path: str | os.PathLike) -> Detected:
    """Detect the format of the file at ``path`` from its first bytes."""
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    gz = head[:2] == b"\x1f\x8b"
    if gz:
        head = _gunzip_head(head if len(head) < _HEAD_BYTES else _more(path), _HEAD_BYTES)
    fmt = sniff(head)
    if fmt == "hdf5" and not gz:
        fmt = "minc2" if _has_minc_group(path) else "hdf5"
    return Detected(fmt, gz, head)


def _more(path) -> bytes:
    # a compressed header may need more than 1 KiB of input to give 1 KiB of output
    with open(path, "rb") as f:
        return f.read(64 * 1024)


def _has_minc_group(path) -> bool:
    try:
        import h5py
    except ImportError:
        return True  # assume MINC2; the loader says h5py is needed
    try:
        with h5py.File(path, "r") as f:
            return "minc-2.0" in f
    except OSError:
        return True  # a damaged HDF5 file: the MINC2 loader says why it cannot open it


def unsupported(path: str, found: Detected) -> UnsupportedFormatError:
    """The error for a file :func:`nilazyview.load` cannot read, naming what was found."""
    hint = ""
    if found.format in ("minc1", "parrec", "dicom"):
        hint = "; nibabel may read it: nlv.from_nibabel(nibabel.load(path))"
    if found.format == "hdf5" and found.gzipped:
        hint = "; MINC2 cannot be read gzip-compressed: decompress it first"
    return UnsupportedFormatError(
        f"{path}: found {found.description}; nilazyview reads NIfTI-1/2, Analyze, "
        f"MGH/MGZ and MINC2{hint}"
    )


def header_from_record(block: bytes, kind: str) -> Header:
    """A header of a known ``kind`` from ``bytes(header)`` (used when unpickling)."""
    if kind == "mgh":
        return mgh.parse_record(block)
    if kind == "minc2":
        return minc2.parse_record(block)
    from .nifti import parse_header_record

    return parse_header_record(block, kind)
