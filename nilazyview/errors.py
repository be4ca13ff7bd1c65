"""The exception family raised for files that cannot be read or written."""

from __future__ import annotations


class ImageFileError(Exception):
    """Base class: a file that is not a readable, writable image."""


class HeaderError(ImageFileError):
    """A header field is invalid (bad magic, sizes, datatype, offsets)."""


class UnsupportedFormatError(ImageFileError):
    """The file is not in a format, or a variant, that nilazyview reads."""


class TruncatedDataError(ImageFileError):
    """The file ends before the voxel data the header declares."""


class StaleFileError(ImageFileError):
    """The file changed on disk after the image was loaded."""


class DirtyImageError(ImageFileError):
    """An operation would discard in-memory changes (use ``force=True``)."""
