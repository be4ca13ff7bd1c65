"""The exception family raised for files that cannot be read or written."""

from __future__ import annotations

import importlib
import os
import sys
import types
import warnings


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


class MalformedFileWarning(NilazyviewWarning):
    """A file breaks its format's rules in a way nilazyview reads sensibly anyway."""


class CacheWarning(NilazyviewWarning, RuntimeWarning):
    """A cache or spill folder cannot be used; nilazyview carries on without it."""


class SaveWarning(NilazyviewWarning, RuntimeWarning):
    """A save succeeded but something after it did not (re-reading the file written)."""


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = NilazyviewWarning) -> None:
    """Warn with the stack level of the first caller outside nilazyview (the user's line)."""
    frame, level = sys._getframe(1), 2  # level 2: the frame that called warn()
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def require(module: str, extra: str, what: str, package: str = "") -> types.ModuleType:
    """Import the optional ``module``, or raise :class:`MissingExtraError` naming ``extra``.

    Parameters
    ----------
    module : str
        Module to import (``"ipywidgets"``, ``"dask.array"``).
    extra : str
        The nilazyview extra that installs it.
    what : str
        What needs it, for the message (``"nlv.view()"``).
    package : str, optional
        The distribution's name when it differs from the module's (``"Pillow"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = package or exc.name or module
        raise MissingExtraError(
            f'{what} needs {missing}, which is not installed: pip install "nilazyview[{extra}]"'
        ) from exc
