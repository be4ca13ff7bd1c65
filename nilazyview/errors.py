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


class SaveError(ImageFileError, OSError):
    """A save failed (no permission, no such folder, disk full, ...); nothing was replaced.

    Also an :class:`OSError`: ``errno`` and ``strerror`` are those of the failed
    system call and ``filename`` is the file the caller asked to write (never the
    temporary file the save was writing into).

    Parameters
    ----------
    message : str
        The full message, naming the target file and what went wrong.
    errno, strerror : int, str, optional
        Those of the underlying :class:`OSError`.
    filename : str, optional
        The target file.
    """

    def __init__(
        self,
        message: str,
        errno: int | None = None,
        strerror: str | None = None,
        filename: str | None = None,
    ) -> None:
        OSError.__init__(self, errno, strerror, filename)
        self.args = (message,)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return type(self), (self.message, self.errno, self.strerror, self.filename)


class NilazyviewWarning(UserWarning):
    """Base class of the warnings nilazyview gives (filter them all with this class)."""


class RemoteError(ImageFileError):
    """A remote file (a URL) could not be read: the server failed after retries, or answered wrong.

    The message names the URL (without credentials or query string).
    """


class RemoteNotFoundError(RemoteError, FileNotFoundError):
    """The server says the URL does not exist (HTTP 404, S3 NoSuchKey)."""

    def __init__(self, message: str) -> None:
        FileNotFoundError.__init__(self, message)

    def __str__(self) -> str:
        return str(self.args[0])


class RemoteAccessError(RemoteError, PermissionError):
    """The server refuses access to the URL (HTTP 401/403): credentials are missing or wrong."""

    def __init__(self, message: str) -> None:
        PermissionError.__init__(self, message)

    def __str__(self) -> str:
        return str(self.args[0])
