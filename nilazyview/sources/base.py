"""The byte-source base: file identity, stale-file checks and :class:`ByteSource`.

A source pickles as its opener arguments only and reopens lazily, so proxies
travel to other processes without open handles.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np

from ..core.plan import PLAIN_FILE, ReadHeuristic, ReadPlan
from ..errors import StaleFileError, TruncatedDataError
from .urls import is_url


@dataclass(frozen=True)
class FileIdentity:
    """What identifies one version of a file: size, mtime and inode."""

    size: int
    mtime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, path: str | os.PathLike) -> FileIdentity:
        st = os.stat(path)
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)

    def differences(self, other: FileIdentity, portable: bool = False) -> list[str]:
        """Names of the fields that differ; ``portable`` compares size and mtime only.

        Portable comparisons are for another process, perhaps on another machine,
        reading its own copy of the file (same path, size and mtime, other inode).
        """
        names = ("size", "mtime_ns") if portable else ("size", "mtime_ns", "inode", "device")
        return [n for n in names if getattr(self, n) != getattr(other, n)]


def _when(ns: int) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9))
    return f"{stamp}.{ns // 10**6 % 1000:03d}"


def stale_error(
    path: str, old: FileIdentity, new: FileIdentity | None, changed=(), what: str = "file"
) -> StaleFileError:
    """The error for a file that is no longer the version loaded, saying what changed."""
    if new is None:
        details = "it was removed"
    else:
        texts = {
            "size": f"size {old.size} -> {new.size} bytes",
            "mtime_ns": f"mtime now {_when(new.mtime_ns)}, was {_when(old.mtime_ns)} at load",
            "inode": "replaced by another file (new inode)",
            "device": "now on another device",
        }
        details = "; ".join(texts[n] for n in changed)
    return StaleFileError(
        f"{path}: {what} changed on disk since it was loaded ({details}); the image still "
        f"describes the old version. Load it again: img = nilazyview.load({path!r})"
    )


def check_unchanged(
    path: str, identity: FileIdentity, portable: bool = False, what: str = "file"
) -> None:
    """Raise :class:`StaleFileError` if the file at ``path`` is no longer ``identity``.

    A URL is not checked here: its source checks the validator every answer carries.
    """
    if is_url(path):
        return
    try:
        now = FileIdentity.of(path)
    except FileNotFoundError:
        raise stale_error(path, identity, None, what=what) from None
    changed = identity.differences(now, portable)
    if changed:
        raise stale_error(path, identity, now, changed, what)


#: Every live source, so a forked child can reset them (:func:`_reset_in_child`).
_LIVE: weakref.WeakSet = weakref.WeakSet()


def _reset_in_child() -> None:
    for src in list(_LIVE):
        try:
            src._after_fork()
        except Exception:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


class ByteSource:
    """Base for byte sources. Subclasses implement :meth:`_open` and :meth:`read_into`."""

    heuristic: ReadHeuristic = PLAIN_FILE
    #: Reads any offset as it is, with no strategy of its own in :meth:`prepare`
    #: but cold gathers, so reads of a planned pattern may skip per-read planning
    #: (:mod:`nilazyview.core.pattern`).
    reads_patterns = False
    #: The stored bytes are compressed: offsets are into the uncompressed stream.
    compressed = False

    def __init__(self, path: str | os.PathLike, identity: FileIdentity | None = None):
        self.path = os.fspath(path)
        self.identity = identity
        self._lock = threading.Lock()
        self._handle = None
        _LIVE.add(self)

    def _after_fork(self) -> None:
        """In a forked child: new locks, and the parent's handle forgotten (reopened lazily).

        A parent thread may have held the lock, or been inside a read, at the
        moment of the fork; neither the lock nor the decompressor state is usable.
        """
        self._lock = threading.Lock()
        h, self._handle = self._handle, None
        if h is not None:
            try:
                self._close(h)  # the child's copy only; the parent keeps its own
            except Exception:
                pass

    def __getstate__(self) -> dict:
        return {"path": self.path, "identity": self.identity}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["identity"])
        self.portable = True  # unpickled: maybe another machine's copy of the file

    portable = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def stored_size(self) -> int:
        """Bytes of the file as stored (compressed, for a compressed stream)."""
        return self.identity.size if self.identity else os.path.getsize(self.path)

    def check_identity(self) -> None:
        """Raise :class:`StaleFileError` if the file is no longer the one loaded."""
        if self.identity is not None:
            check_unchanged(self.path, self.identity, self.portable)

    def check_fresh(self) -> None:
        """Before a read: raise :class:`StaleFileError` if the file changed since loading.

        Once open, a handle keeps reading whatever is written to the same inode,
        so an in-place rewrite would otherwise return the new bytes under the old header.
        """
        if self._handle is not None:
            self.check_identity()

    def check_read(self) -> None:
        """After a read: raise :class:`StaleFileError` if the bytes may have changed during it.

        A write that lands while bytes are copied moves the mtime first, so a
        check after the copy catches what a check before it cannot.
        """
        self.check_fresh()

    def begin_gather(self) -> bool:
        """Before a memory-map gather: True if it may run now (then call :meth:`end_gather`).

        False means read with ``pread`` instead (no lease could hold writers off).
        """
        return True

    def end_gather(self) -> None:
        """After a gather that :meth:`begin_gather` allowed."""

    def handle(self):
        if self._handle is None:
            with self._lock:
                if self._handle is None:
                    self.check_identity()
                    h = self._open()
                    try:  # the file may have been swapped between the check and the open
                        self._verify_open(h)
                    except BaseException:
                        self._close(h)
                        raise
                    self._handle = h
        return self._handle

    def _verify_open(self, h) -> None:
        """After opening: raise :class:`StaleFileError` unless ``h`` is the version loaded."""
        self.check_identity()

    def close(self) -> None:
        with self._lock:
            h, self._handle = self._handle, None
        if h is not None:
            self._close(h)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def prepare(self, plan: ReadPlan) -> tuple[ReadPlan, ByteSource]:
        """Before executing ``plan``: the plan and source to run it with (default: as is).

        Sources may switch strategy here: a gzip source decompresses the whole
        stream for plans that need most of it, a file source hints the kernel
        to fetch the runs of a plan whose pages are not cached.
        """
        return plan, self

    def gather_is_warm(self, n_runs: int, first: int, last: int) -> bool:
        """Whether a memory-map gather of ``n_runs`` runs in bytes ``first..last`` may run.

        False means its pages are not cached: read it with :meth:`cold_plan` instead.
        """
        return True

    def cold_plan(self, plan: ReadPlan) -> ReadPlan:
        """The plan to run instead of a memory-map gather whose pages are not cached."""
        return plan

    def read_runs(self, offsets: np.ndarray, length: int, out: memoryview) -> None:
        """Read ``len(offsets)`` runs of ``length`` bytes, concatenated, into ``out``."""
        pos = 0
        for off in offsets.tolist():
            self.read_into(off, out[pos : pos + length])
            pos += length

    def read_bytes(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``offset`` (fewer at the end of the stream)."""
        raise NotImplementedError

    def _short(self, offset: int, want: int, got: int) -> TruncatedDataError:
        return TruncatedDataError(
            f"{self.path}: data truncated: wanted {want} bytes at offset {offset}, "
            f"the file ends after {got}"
        )
