"""Tell an image format by content: magic numbers, the HDF5 signature, gzip + inner magic."""

from __future__ import annotations

import errno
import os
import stat
import zlib
from dataclasses import dataclass

from ..errors import UnsupportedFormatError
from ..sources import is_url, open_source
from . import registry

_HEAD_BYTES = 1024
#: Content recognised but not read here (nibabel may read some of it).
_FOREIGN = {
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
        name = _name(self.format)
        if self.format == "unknown" and self.head:
            name += f" (starts with {self.head[:8]!r})"
        return name + (", gzip-compressed" if self.gzipped else "")

    @property
    def readable(self) -> bool:
        return registry.for_kind(self.format) is not None


def _name(fmt: str) -> str:
    for codec in registry.CODECS:
        if fmt in codec.names:
            return codec.names[fmt]
    return _FOREIGN.get(fmt, fmt)


def _gunzip_head(block: bytes, n: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        return d.decompress(block, n)
    except zlib.error:
        return b""


def sniff(head: bytes, path: str | None = None) -> str:
    """Format of an uncompressed stream from its first bytes (``path``: of a plain file)."""
    if not head:
        return "empty"
    if head[:4] in (b"CDF\x01", b"CDF\x02"):
        return "minc1"
    for codec in registry.CODECS:
        found = codec.sniff(head, path)
        if found is not None:
            return found
    if head.lstrip().startswith(b"# === DATA DESCRIPTION FILE"):
        return "parrec"
    if head[128:132] == b"DICM":
        return "dicom"
    return "unknown"


def detect(path: str | os.PathLike) -> Detected:
    """Detect the format of the file at ``path`` from its first bytes."""
    path = os.fspath(path)
    remote = is_url(path)
    first = _stored_head(path, 64 * 1024 if remote else _HEAD_BYTES)  # a URL: one request
    head = first[:_HEAD_BYTES]
    gz = head[:2] == b"\x1f\x8b"
    if gz:
        more = first if remote or len(head) < _HEAD_BYTES else _stored_head(path, 64 * 1024)
        head = _gunzip_head(more, _HEAD_BYTES)
    return Detected(sniff(head, None if gz or is_url(path) else path), gz, head)


def _stored_head(path: str, n: int) -> bytes:
    """The first ``n`` stored bytes (a compressed header may need 64 KiB to give 1 KiB).

    A local path must be a regular file: a FIFO or device is refused, never waited on.
    """
    if is_url(path):  # one range request (64 KiB, cached by the source)
        src = open_source(path)
        try:
            return getattr(src, "raw", src).read_bytes(0, n)
        finally:
            src.close()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        if not stat.S_ISREG(mode):
            raise UnsupportedFormatError(f"{path}: not a regular file")
        return os.pread(fd, n, 0)
    finally:
        os.close(fd)


def unsupported(path: str, found: Detected) -> UnsupportedFormatError:
    """The error for a file :func:`nilazyview.load` cannot read, naming what was found."""
    hint = ""
    if found.format in ("minc1", "parrec", "dicom"):
        hint = "; nibabel may read it: nlv.from_nibabel(nibabel.load(path))"
    if found.format == "hdf5" and found.gzipped:
        hint = "; MINC2 cannot be read gzip-compressed: decompress it first"
    return UnsupportedFormatError(
        f"{path}: found {found.description}; nilazyview reads {registry.readable_titles()}{hint}"
    )
