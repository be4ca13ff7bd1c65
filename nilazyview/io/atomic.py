"""Atomic file replacement: write a temporary file beside the target, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from .leftovers import PARTIAL_SUFFIX, clean_partials, partial_suffix

#: Temporary files of interrupted saves end with this, after a leading dot.
TMP_SUFFIX = PARTIAL_SUFFIX


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` is racy across threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o077)  # briefly the strictest mask, never a looser one
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_write(
    path: str, mode: int | None = None, sync_folder: bool = True
) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only if the block completes.

    The old file stays intact if anything fails or the process dies before the
    final ``os.replace``. The new file keeps the old one's permission bits, or
    gets ``mode`` (default: 0o666 less the umask). ``sync_folder=False`` skips
    the folder fsync after the rename (for a caller that renames a second file
    right after and syncs the folder then).

    The temporary file is ``.{name}.{random}.{host}-{pid}.nlv-partial`` (mode
    0600 until renamed). Partial files that killed processes left in the folder
    are removed first (see :mod:`nilazyview.io.leftovers` for the safety rules).
    """
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    clean_partials(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=partial_suffix(), dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if mode is None:
            try:
                mode = os.stat(path).st_mode & 0o7777
            except FileNotFoundError:
                mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_folder:
        _fsync_dir(folder)
