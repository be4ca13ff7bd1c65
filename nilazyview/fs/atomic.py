"""Atomic file replacement: write a temporary file beside the target, fsync, rename.

Errors name the file the caller asked for, never the temporary file: every
:class:`OSError` of creating, writing, syncing or renaming the temporary file
becomes a :class:`~nilazyview.errors.SaveError` (an ``OSError`` too) whose
``filename`` is the target.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import SaveError
from .leftovers import PARTIAL_SUFFIX, clean_partials, partial_suffix

#: Temporary files of interrupted saves end with this, after a leading dot.
TMP_SUFFIX = PARTIAL_SUFFIX

_ACCESS = (errno.EACCES, errno.EPERM, errno.EROFS)
_group = threading.local()  # the files of the outermost atomic_write block of this thread


@dataclass
class _Pending:
    """A complete, synced temporary file waiting to replace ``path``."""

    tmp: str
    path: str
    folder: str
    sync_folder: bool
    backup: str | None = None  # a hard link to the old ``path``, for a group's rollback
    existed: bool = False


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


def _strerror(exc: OSError) -> str:
    if exc.strerror:
        return exc.strerror
    return os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__


def _create_error(exc: OSError, path: str, folder: str) -> SaveError:
    """The error for a temporary file that could not be created in ``folder``."""
    if not os.path.lexists(folder) or (exc.errno == errno.ENOENT and not os.path.isdir(folder)):
        what = f"folder {folder} does not exist"
    elif not os.path.isdir(folder):
        what = f"{folder} is not a folder"
    else:
        what = f"{_strerror(exc)} (folder {folder})"
    return SaveError(f"cannot write {path}: {what}", exc.errno, _strerror(exc), path)


def _write_error(exc: OSError, path: str, note: str = "") -> SaveError:
    """The error for a failed write, sync or rename of the file replacing ``path``."""
    if not note:
        note = " (the existing file is unchanged)" if os.path.lexists(path) else ""
    return SaveError(
        f"cannot write {path}: {_strerror(exc)}{note}", exc.errno, _strerror(exc), path
    )


class _TempFile(io.FileIO):
    """The raw temporary file: a failed write raises a SaveError naming the target."""

    def __init__(self, fd: int, target: str) -> None:
        super().__init__(fd, "wb", closefd=True)
        self.target = target

    def write(self, data) -> int:  # type: ignore[override]
        try:
            return os.write(self.fileno(), data)
        except OSError as exc:
            raise _write_error(exc, self.target) from None


def _discard(path: str | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _link_backup(p: _Pending) -> None:
    """Hard-link the old target beside it, so a failed group commit can put it back."""
    p.existed = os.path.lexists(p.path)
    if not p.existed:
        return
    name = os.path.basename(p.path)
    backup = tempfile.mktemp(prefix=f".{name}.", suffix=partial_suffix(), dir=p.folder)
    with contextlib.suppress(OSError):  # taken meanwhile, or no hard links: no rollback
        os.link(p.path, backup, follow_symlinks=False)
        p.backup = backup


def _commit(pending: list[_Pending]) -> None:
    """Rename every temporary file over its target; on failure put the old files back."""
    if len(pending) > 1:
        for p in pending:
            _link_backup(p)
    done: list[_Pending] = []
    try:
        for p in pending:
            try:
                os.replace(p.tmp, p.path)
            except OSError as exc:
                note = ""
                if done:
                    restored = _rollback(done)
                    names = ", ".join(d.path for d in done)
                    note = (
                        f" (restored the old {names} too)"
                        if restored
                        else f" ({names} already replaced; could not restore the old version)"
                    )
                raise _write_error(exc, p.path, note) from None
            done.append(p)
    finally:
        for p in pending:
            _discard(p.backup)
            if p not in done:
                _discard(p.tmp)
    for folder in dict.fromkeys(p.folder for p in pending if p.sync_folder):
        _fsync_dir(folder)


def _rollback(done: list[_Pending]) -> bool:
    """Put back the old files of a partly committed group; True when all are back."""
    ok = True
    for p in reversed(done):
        try:
            if p.backup is not None:
                os.replace(p.backup, p.path)
                p.backup = None
            elif not p.existed:
                os.unlink(p.path)
            else:
                ok = False
        except OSError:
            ok = False
    return ok


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

    Blocks nested in one thread form a group: an inner block's file is written
    and synced when it ends but replaces its target only when the outermost
    block completes, right before the outer file; if anything in the group
    fails, no target is replaced (a rename failing after another succeeded puts
    the old file back, where the filesystem allows hard links).

    A ``path`` that is a symbolic link is written through: the link stays and its
    target is replaced atomically (in the target's folder), as git's lock files do.

    The temporary file is ``.{name}.{random}.{host}-{pid}.nlv-partial`` (mode
    0600 until renamed). Partial files that killed processes left in the folder
    are removed first (see :mod:`nilazyview.fs.leftovers` for the safety rules).

    Raises
    ------
    SaveError
        When the temporary file cannot be created, written, synced or renamed
        (also an ``OSError``; ``filename`` is ``path``). No partial file remains.
    """
    path = os.fspath(path)
    if os.path.islink(path):  # write through to the target, as git's lock files do
        path = os.path.realpath(path)
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    if os.path.isdir(path):
        raise SaveError(
            f"cannot write {path}: is a folder", errno.EISDIR, os.strerror(errno.EISDIR), path
        )
    clean_partials(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=partial_suffix(), dir=folder)
    except OSError as exc:
        raise _create_error(exc, path, folder) from None
    outer: list[_Pending] | None = getattr(_group, "pending", None)
    pending = [] if outer is None else outer
    if outer is None:
        _group.pending = pending
    f = None
    try:
        try:
            f = io.BufferedWriter(_TempFile(fd, path))
        except BaseException:
            os.close(fd)
            raise
        yield f
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            if mode is None:
                try:
                    mode = os.stat(path).st_mode & 0o7777
                except FileNotFoundError:
                    mode = 0o666 & ~_umask()
            os.chmod(tmp, mode)
        except SaveError:
            raise
        except OSError as exc:
            raise _write_error(exc, path) from None
        pending.append(_Pending(tmp, path, folder, sync_folder))
        if outer is None:
            _commit(pending)
    except BaseException:
        if f is not None:
            with contextlib.suppress(OSError, ValueError):
                f.close()  # after a failed write this retries and fails again: ignore
        _discard(tmp)
        if outer is None:
            for p in pending:
                _discard(p.tmp)
        raise
    finally:
        if outer is None:
            _group.pending = None
