"""Byte sources: where stored bytes come from (plain file, gzip stream, memory, URL).

``base`` holds the contract (:class:`ByteSource`, :class:`FileIdentity`, stale
checks); each kind of source is one module beside it. A new source (a remote
one, say) is one module here and, if files can hold it, one line in
:func:`open_source`.
"""

from __future__ import annotations

import os

from .base import ByteSource, FileIdentity, check_unchanged, stale_error
from .file import FileSource
from .gzfile import GzipSource
from .memory import MemorySource
from .remote import RemoteGzipSource, RemoteIdentity, RemoteSource, open_remote
from .urls import URL, is_url


def is_gzip(path: str | os.PathLike) -> bool:
    """True when the file starts with the gzip magic bytes."""
    if is_url(path):
        return open_source(path).compressed
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def open_source(path: str | os.PathLike) -> ByteSource:
    """The right source for ``path``, chosen by content (gzip magic), not extension.

    A :class:`URL` (or a ``scheme://`` string) gives a remote source: its first
    request fetches the head, which tells gzip apart.
    """
    if is_url(path):
        return open_remote(path if isinstance(path, URL) else URL(path))
    ident = FileIdentity.of(path)
    cls = GzipSource if is_gzip(path) else FileSource
    return cls(path, ident)


__all__ = [
    "URL",
    "ByteSource",
    "FileIdentity",
    "FileSource",
    "GzipSource",
    "MemorySource",
    "RemoteGzipSource",
    "RemoteIdentity",
    "RemoteSource",
    "check_unchanged",
    "is_gzip",
    "is_url",
    "open_source",
    "stale_error",
]
