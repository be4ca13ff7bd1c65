"""Byte sources: where stored bytes come from (plain file, gzip stream, memory).

A source pickles as its opener arguments only and reopens lazily, so proxies
travel to other processes without open handles.
"""

from __future__ import annotations

import gzip
import mmap
import os
import threading
import time
import zlib
from dataclasses import dataclass, replace

import numpy as np

from . import coldread
from .errors import ImageFileError, StaleFileError, TruncatedDataError
from .plan import GZIP_STREAM, PLAIN_FILE, ReadHeuristic, ReadPlan, plan_read, run_offsets

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
    """Raise :class:`StaleFileError` if the file at ``path`` is no longer ``identity``."""
    try:
        now = FileIdentity.of(path)
    except FileNotFoundError:
        raise stale_error(path, identity, None, what=what) from None
    changed = identity.differences(now, portable)
    if changed:
        raise stale_error(path, identity, now, changed, what)


class ByteSource:
    """Base for byte sources. Subclasses implement :meth:`_open` and :meth:`read_into`."""

    heuristic: ReadHeuristic = PLAIN_FILE
    can_mmap = False
    #: Reads any offset as it is, with no strategy of its own in :meth:`prepare`
    #: but cold gathers, so reads of a planned pattern may skip per-read planning
    #: (:mod:`nilazyview.pattern`).
    reads_patterns = False

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
        if self.identity is not None:
            check_unchanged(self.path, self.identity, self.portable)

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


class FileSource(ByteSource):
    """An uncompressed file read with ``os.pread`` (no shared file position)."""

    heuristic = PLAIN_FILE
    can_mmap = True
    reads_patterns = True

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
            now = FileIdentity(st.st_size, st.st_mtime_ns, ident.inode, ident.device)
            raise stale_error(self.path, ident, now, ident.differences(now, portable=True))

    def _verify_open(self, fd: int) -> None:
        ident = self.identity
        if ident is None:
            return
        st = os.fstat(fd)  # exactly the file read from now on
        now = FileIdentity(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
        changed = ident.differences(now, self.portable)
        if changed:
            raise stale_error(self.path, ident, now, changed)

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

    def read_runs(self, offsets: np.ndarray, length: int, out: memoryview) -> None:
        # many runs not in the page cache: kernel hints and a thread pool (coldread)
        fd = self._handle if self._handle is not None else self.handle()
        if not coldread.read_runs_cold(fd, offsets, length, out, self._short):
            super().read_runs(offsets, length, out)

    def prepare(self, plan: ReadPlan) -> tuple[ReadPlan, ByteSource]:
        """A memory-map gather of many runs not in the page cache becomes hinted ``pread``s."""
        if plan.strategy != "mmap" or self.gather_is_warm(
            plan.n_runs, *coldread.probe_offsets(plan.layout, plan.box)
        ):
            return plan, self
        return self.cold_plan(plan), self

    def gather_is_warm(self, n_runs: int, first: int, last: int) -> bool:
        if n_runs < coldread.MIN_RUNS:
            return True
        fd = self._handle if self._handle is not None else self.handle()
        return not coldread.is_cold(fd, (first, last))

    def cold_plan(self, plan: ReadPlan) -> ReadPlan:
        if plan.n_runs > coldread.MAX_PREAD_RUNS:
            return plan  # runs this dense: the kernel's own readahead does best
        # hint now: the probe itself starts reading its pages, so the next probe may pass
        fd = self._handle if self._handle is not None else self.handle()
        coldread.advise(fd, *run_offsets(plan.layout, plan.box))
        return replace(plan, strategy="pread")

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

    With ``indexed_gzip`` the seek-point index is persisted per user
    (:mod:`nilazyview.gzindex`). Plans that need most of the stream are served
    by one whole-stream decompression (:mod:`nilazyview.gzwhole`), kept in
    memory or a spill file, after which this source reads like a plain file.
    Reads hold a lock (the decompressor has one position); runs are sorted so a
    plan streams forward.
    """

    can_mmap = False
    #: A plan that must decompress at least this fraction of the data goes whole-stream.
    WHOLE_FRACTION = 0.5
    #: ... and is streamed, keeping nothing, when its result is at least this fraction.
    FORWARD_FRACTION = 0.25

    def __init__(self, path, identity=None):
        super().__init__(path, identity)
        self._stream_heuristic = GZIP_STREAM
        self._whole: ByteSource | None = None
        self._whole_lock = threading.Lock()

    @property
    def heuristic(self) -> ReadHeuristic:  # type: ignore[override]
        """The stream's cost model, or the kept decompressed stream's once there is one."""
        whole = self._whole
        return self._stream_heuristic if whole is None else whole.heuristic

    @heuristic.setter
    def heuristic(self, value: ReadHeuristic) -> None:
        self._stream_heuristic = value

    @property
    def whole(self) -> ByteSource | None:
        """The decompressed stream once kept (``.kind``: ``"memory"`` or ``"spill"``), or None."""
        return self._whole

    def _open(self):
        if _have_indexed_gzip():
            from .gzindex import IndexedStream

            return IndexedStream(self.path)
        return gzip.GzipFile(self.path, "rb")

    def _close(self, f) -> None:
        f.close()

    def close(self) -> None:
        whole, self._whole = self._whole, None
        if whole is not None:
            whole.close()
        super().close()

    def check_fresh(self) -> None:
        if self._handle is not None or self._whole is not None:
            self.check_identity()

    def prepare(self, plan: ReadPlan) -> tuple[ReadPlan, ByteSource]:
        whole = self._whole
        if whole is None and plan.strategy != "empty":
            from . import gzindex, gzwhole

            end = plan.layout.offset + plan.layout.nbytes
            need = plan.nbytes + plan.n_runs * (gzindex.spacing() // 2)
            if end and need >= self.WHOLE_FRACTION * end:
                if gzwhole.plan_bytes(plan) >= self.FORWARD_FRACTION * end:
                    return plan, gzwhole.ForwardStream(self.path, end)
                whole = self._materialize(end)
        if whole is None:
            return plan, self
        if plan.heuristic is not whole.heuristic:
            plan = plan_read(plan.layout, plan.index, whole.heuristic)
        return plan, whole

    def _materialize(self, end: int) -> ByteSource | None:
        from . import gzwhole

        with self._whole_lock:
            if self._whole is None:
                self.check_identity()
                handle = self._handle
                if handle is None or not getattr(handle, "imported", False):
                    gzwhole.start_index_build(self.path, end)
                self._whole = gzwhole.materialize(self.path, end)
            return self._whole

    def mapping(self):
        """The kept decompressed stream's bytes, read-only (only once it is kept)."""
        if self._whole is None:
            raise TypeError(f"{self.path}: a gzip stream cannot be memory-mapped")
        return self._whole.mapping()

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
            if n is not None and n < 0:  # raw indexed_gzip returns some failures as codes
                raise OSError(f"gzip read failed (error code {n})")
            if not n:
                break
            done += n
        return done

    def read_into(self, offset: int, out: memoryview) -> None:
        if self._whole is not None:
            self._whole.read_into(offset, out)
            return
        self.read_runs(np.array([offset]), len(out), out)

    def read_runs(self, offsets, length, out) -> None:
        if self._whole is not None:
            self._whole.read_runs(offsets, length, out)
            return
        f = self.handle()
        pos = 0
        try:
            with self._lock:
                for off in offsets.tolist():
                    got = self._read_locked(f, off, out[pos : pos + length])
                    if got < length:
                        raise self._short(off, length, got)
                    pos += length
                after = getattr(f, "after_read", None)
                if after is not None:
                    after()
        except self._errors() as exc:
            raise ImageFileError(
                f"{self.path}: corrupt gzip stream near uncompressed offset "
                f"{int(offsets[0]) + pos}: {exc}"
            ) from exc

    def read_bytes(self, offset: int, n: int) -> bytes:
        if self._whole is not None and offset + n <= getattr(self._whole, "nbytes", 0):
            return self._whole.read_bytes(offset, n)
        buf = bytearray(n)
        f = self.handle()
        try:
            with self._lock:
                got = self._read_locked(f, offset, memoryview(buf))
        except self._errors() as exc:
            raise ImageFileError(
                f"{self.path}: corrupt gzip stream near uncompressed offset {offset}: {exc}"
            ) from exc
        return bytes(buf[:got])


class MemorySource(ByteSource):
    """Bytes already in memory (tests, and headers kept for pickling)."""

    can_mmap = True
    reads_patterns = True

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
