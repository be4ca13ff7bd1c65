"""Byte sources: where stored bytes come from (plain file, gzip stream, memory).

A source pickles as its opener arguments only and reopens lazily, so proxies
travel to other processes without open handles.
"""

from __future__ import annotations

import gzip
import mmap
import os
import threading
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import ImageFileError, StaleFileError, TruncatedDataError
from .plan import GZIP_STREAM, PLAIN_FILE, ReadHeuristic

_MAX_READ = 1 << 30  # bytes per syscall (Linux caps a read near 2 GiB)


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


class ByteSource:
    """Base for byte sources. Subclasses implement :meth:`_open` and :meth:`read_into`."""

    heuristic: ReadHeuristic = PLAIN_FILE
    can_mmap = False

    def __init__(self, path: str | os.PathLike, identity: FileIdentity | None = None):
        self.path = os.fspath(path)
        self.identity = identity
        self._lock = threading.Lock()
        self._handle = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "identity": self.identity}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["identity"])
        self.portable = True  # unpickled: maybe another machine's copy of the file

    portable = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def check_identity(self) -> None:
        """Raise :class:`StaleFileError` if the file is no longer the one loaded."""
        if self.identity is None:
            return
        try:
            now = FileIdentity.of(self.path)
        except FileNotFoundError:
            raise StaleFileError(f"{self.path}: file was removed after loading") from None
        changed = self.identity.differences(now, self.portable)
        if changed:
            raise StaleFileError(
                f"{self.path}: file changed on disk after loading ({', '.join(changed)} differ); "
                "load it again with nilazyview.load"
            )

    def check_fresh(self) -> None:
        """Before a read: raise :class:`StaleFileError` if the file changed since loading.

        Once open, a handle keeps reading whatever is written to the same inode,
        so an in-place rewrite would otherwise return the new bytes under the old header.
        """
        if self._handle is not None:
            self.check_identity()

    def handle(self):
        if self._handle is None:
            with self._lock:
                if self._handle is None:
                    self.check_identity()
                    self._handle = self._open()
        return self._handle

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


class FileSource(ByteSource):
    """An uncompressed file read with ``os.pread`` (no shared file position)."""

    heuristic = PLAIN_FILE
    can_mmap = True

    def __init__(self, path, identity=None):
        super().__init__(path, identity)
        self._map: mmap.mmap | None = None

    def _open(self) -> int:
        return os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def _close(self, fd: int) -> None:
        m, self._map = self._map, None
        if m is not None:
            try:
                m.close()
            except BufferError:  # arrays still view it; the GC unmaps later
                pass
        os.close(fd)

    def check_fresh(self) -> None:
        fd, ident = self._handle, self.identity
        if fd is None or ident is None:
            return
        st = os.fstat(fd)  # the open file itself: cheap, and right even if renamed over
        if st.st_size != ident.size or st.st_mtime_ns != ident.mtime_ns:
            raise StaleFileError(
                f"{self.path}: file changed on disk after loading (size or mtime differ); "
                "load it again with nilazyview.load"
            )

    def read_into(self, offset: int, out: memoryview) -> None:
        fd = self._handle if self._handle is not None else self.handle()
        want = len(out)
        if want <= _MAX_READ:  # one call, as a rule (a short read falls through to the loop)
            done = os.preadv(fd, [out], offset)
        else:
            done = 0
        while done < want:
            n = os.preadv(fd, [out[done : done + _MAX_READ]], offset + done)
            if n == 0:
                raise self._short(offset, want, done)
            done += n

    def read_bytes(self, offset: int, n: int) -> bytes:
        return os.pread(self.handle(), n, offset)

    def mapping(self) -> mmap.mmap:
        """A read-only memory map of the whole file (never copy-on-write)."""
        fd = self.handle()
        if self._map is None:
            with self._lock:
                if self._map is None:
                    self._map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        return self._map


def _have_indexed_gzip() -> bool:
    try:
        import indexed_gzip  # noqa: F401
    except ImportError:
        return False
    return True


class GzipSource(ByteSource):
    """A gzip stream with random access: ``indexed_gzip`` if installed, else ``gzip``.

    Reads hold a lock (the decompressor has one position); runs are sorted so a
    plan streams forward.
    """

    heuristic = GZIP_STREAM
    can_mmap = False

    def _open(self):
        if _have_indexed_gzip():
            import indexed_gzip

            return indexed_gzip.IndexedGzipFile(self.path, spacing=4 * 2**20, readbuf_size=2**20)
        return gzip.GzipFile(self.path, "rb")

    def _close(self, f) -> None:
        f.close()

    def _errors(self):
        errs: tuple[type[BaseException], ...] = (zlib.error, EOFError, gzip.BadGzipFile, OSError)
        try:
            import indexed_gzip

            errs += (indexed_gzip.ZranError,)
        except (ImportError, AttributeError):
            pass
        return errs

    def _read_locked(self, f, offset: int, out: memoryview) -> int:
        f.seek(offset)
        done = 0
        while done < len(out):
            n = f.readinto(out[done:])
            if not n:
                break
            done += n
        return done

    def read_into(self, offset: int, out: memoryview) -> None:
        self.read_runs(np.array([offset]), len(out), out)

    def read_runs(self, offsets, length, out) -> None:
        f = self.handle()
        pos = 0
        try:
            with self._lock:
                for off in offsets.tolist():
                    got = self._read_locked(f, off, out[pos : pos + length])
                    if got < length:
                        raise self._short(off, length, got)
                    pos += length
        except self._errors() as exc:
            raise ImageFileError(
                f"{self.path}: corrupt gzip stream near uncompressed offset "
                f"{int(offsets[0]) + pos}: {exc}"
            ) from exc

    def read_bytes(self, offset: int, n: int) -> bytes:
        buf = bytearray(n)
        f = self.handle()
        try:
            with self._lock:
                got = self._read_locked(f, offset, memoryview(buf))
        except self._errors() as exc:
            raise ImageFileError(f"{self.path}: corrupt gzip stream: {exc}") from exc
        return bytes(buf[:got])


class MemorySource(ByteSource):
    """Bytes already in memory (tests, and headers kept for pickling)."""

    can_mmap = True

    def __init__(self, data: bytes, heuristic: ReadHeuristic = PLAIN_FILE):
        self.path = "<memory>"
        self.identity = None
        self._lock = threading.Lock()
        self._handle = None
        self._data = memoryview(bytes(data))
        self.heuristic = heuristic

    def __getstate__(self) -> dict:
        return {"data": bytes(self._data), "heuristic": self.heuristic}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["data"], state["heuristic"])

    def _open(self):
        return self._data

    def _close(self, h) -> None:
        pass

    def read_into(self, offset: int, out: memoryview) -> None:
        chunk = self._data[offset : offset + len(out)]
        if len(chunk) < len(out):
            raise self._short(offset, len(out), len(chunk))
        out[:] = chunk

    def read_bytes(self, offset: int, n: int) -> bytes:
        return bytes(self._data[offset : offset + n])

    def mapping(self) -> memoryview:
        """The bytes themselves, read-only (plans may gather from them like from a map)."""
        return self._data


def is_gzip(path: str | os.PathLike) -> bool:
    """True when the file starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def open_source(path: str | os.PathLike) -> ByteSource:
    """The right source for ``path``, chosen by content (gzip magic), not extension."""
    ident = FileIdentity.of(path)
    cls = GzipSource if is_gzip(path) else FileSource
    return cls(path, ident)
