"""Whole-stream gzip decompression: for plans that need most of the stream.

A strided plane of a ``.nii.gz`` (``[256, :, :]``, ``[:, 256, :]``) touches every
part of the stream, so even a complete seek-point index does not help: the
fastest way is one pass on every core (``rapidgzip``, the ``gz`` extra, from
the cached index when there is one; else ``zlib``; never ``gzip.GzipFile.read``),
and that pass saves the seek-point index for later processes. What the pass
produces is kept so later planes cost what they cost on an uncompressed file:

* in memory when it fits the process-wide budget
  (``$NILAZYVIEW_GZ_MEMORY_BYTES``, default 1 GiB),
* else in a private spill file (mode 0600, unlinked as soon as it is created, so
  nothing is left behind even after a crash) in ``$NILAZYVIEW_TMPDIR`` or the
  system temporary folder, read with ``pread`` and a read-only ``mmap``.

Plans whose *result* is most of the stream (``get_data()``, thick slabs) are
streamed instead (:class:`ForwardStream`): decompressed once, in order, straight
into the result, with nothing kept. A progress bar (``tqdm.auto``, optional)
appears for passes that last over a second.

Measured on a 512^3 int16 ``.nii.gz`` (207 MiB compressed, level 6), one pass:
``rapidgzip`` 0.92 s on 1 core, 0.51-0.72 s on 2 (filled in place into the
kept buffer: copying the pieces had cost 0.38 s more); ``zlib`` 1.49 s,
``isal`` 0.96 s (1 core). A stream ``rapidgzip`` refuses is read again with ``zlib``
(:func:`diagnose`), so damage is named as a core install names it.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import threading
import weakref
import zlib
from collections.abc import Iterator

import numpy as np

from ..core.plan import PLAIN_FILE
from ..errors import CacheWarning, ImageFileError, TruncatedDataError, warn
from ..fs import progress as fs_progress
from ..fs.settings import env_int, temp_root
from . import gzstream
from .base import ByteSource
from .checked import CheckedFile
from .file import FileSource

log = logging.getLogger("nilazyview.gzwhole")

#: Compressed bytes read per step.
READ_BYTES = 2**20
#: Uncompressed bytes produced per step at most (bounds memory of a high-ratio stream).
OUT_BYTES = 8 * 2**20
#: Default budget for decompressed streams kept in memory, for the whole process.
DEFAULT_MEMORY_BYTES = 2**30
#: Free space a spill file must leave on its file system.
SPILL_RESERVE_BYTES = 2**30

#: Counters for tests and QA (per process).
stats: dict[str, int] = {"memory": 0, "spill": 0, "forward": 0}


def inflater_name() -> str:
    """``"rapidgzip"`` when the ``gz`` extra is installed, else ``"zlib"``."""
    return "rapidgzip" if gzstream.available() else "zlib"


def memory_budget() -> int:
    """Bytes of decompressed streams a process may keep in memory."""
    return env_int("NILAZYVIEW_GZ_MEMORY_BYTES", DEFAULT_MEMORY_BYTES)


class _Budget:
    def __init__(self) -> None:
        self.used = 0
        self._lock = threading.Lock()

    def reserve(self, n: int) -> bool:
        with self._lock:
            if self.used + n > memory_budget():
                return False
            self.used += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.used = max(0, self.used - n)


#: Bytes of decompressed streams this process holds in memory.
BUDGET = _Budget()


def spill_dir() -> str:
    """Folder for spill files: ``$NILAZYVIEW_TMPDIR`` or the system temporary folder."""
    return temp_root()


def _progress(path: str, total: int):
    return fs_progress.bar(total, f"decompressing {os.path.basename(path)}")


def _reader(path: str, file: CheckedFile | None):
    if file is None:
        return open(path, "rb", buffering=0)
    return CheckedFile(file.fd, file.path, file.identity, owns=False)  # its own position


def inflate(
    path: str,
    end: int,
    progress: bool = True,
    file: CheckedFile | None = None,
    into: memoryview | None = None,
) -> Iterator[bytes | bytearray | memoryview]:
    """Decompress ``path`` from its start, yielding pieces, until ``end`` bytes came out.

    With ``rapidgzip`` the pass runs on every core and leaves the stream's
    seek-point index in the cache (:mod:`.gzstream`); without, it is ``zlib``.
    ``file``: read that checked descriptor instead of opening the path (a file
    renamed over it is never read; a rewrite is a ``StaleFileError``).
    ``into``: a buffer of ``end`` bytes that ``rapidgzip`` fills in place (the
    pieces yielded are then views of it). Concatenated gzip members are
    followed. Raises :class:`TruncatedDataError` when the stream ends first
    and :class:`ImageFileError` on a corrupt stream, naming the file and the
    compressed and uncompressed offsets.
    """
    bar = _progress(path, end) if progress else fs_progress.NoBar()
    try:
        if gzstream.available():
            done = yield from _inflate_rapid(path, end, file, bar, into)
            if done < end:  # rapidgzip refused the stream: zlib names what is wrong
                yield from _skip(_inflate_zlib(path, end, file, fs_progress.NoBar()), done)
        else:
            yield from _inflate_zlib(path, end, file, bar)
    finally:
        bar.close()


def diagnose(path: str, end: int, file: CheckedFile | None = None) -> None:
    """Inflate with ``zlib`` up to ``end``, keeping nothing: raises what is wrong, if anything.

    For a stream ``rapidgzip`` refused: the errors then name the damage exactly
    as a core install does (:class:`TruncatedDataError`, compressed offsets).
    """
    with _progress(path, end) as bar:
        for _ in _inflate_zlib(path, end, file, bar):
            pass


def _skip(pieces: Iterator, n: int) -> Iterator:
    """The pieces after the first ``n`` bytes."""
    for piece in pieces:
        if n >= len(piece):
            n -= len(piece)
            continue
        yield memoryview(piece)[n:] if n else piece
        n = 0


def _inflate_rapid(path: str, end: int, file: CheckedFile | None, bar, into=None):
    """The ``rapidgzip`` pass; returns the bytes it produced (short: a stream it refused)."""
    upos = 0
    with gzstream.RapidStream(path, _reader(path, file)) as stream:
        try:
            stream.seek(0)
            while upos < end:
                k = min(OUT_BYTES, end - upos)
                piece = bytearray(k) if into is None else into[upos : upos + k]
                n = stream.readinto(piece)
                if not n:
                    return upos
                piece = piece[:n]
                upos += n
                bar.update(n)
                yield piece
            stream.read_to_end()  # through the members' ends: sizes and CRCs checked
            stream.after_read(force=True)  # the index this pass built, for later opens
        except gzstream.RAPID_ERRORS as exc:
            if isinstance(stream.error, ImageFileError):  # stale or truncated file
                raise stream.error from exc
            if file is not None:
                file.check()
            if upos >= end:  # all the data came out, but the stream's check failed
                raise ImageFileError(f"{path}: corrupt gzip stream: {exc}") from exc
            log.debug("rapidgzip refused %s at %d: %s", path, upos, exc)
            return upos
    return upos


def _inflate_zlib(path: str, end: int, file: CheckedFile | None, bar) -> Iterator[bytes]:
    """The single-core pass with the standard library's ``zlib``."""
    name, mod = "zlib", zlib
    upos = 0
    cread = 0
    with _reader(path, file) as f:
        d = mod.decompressobj(31)
        pending = b""
        member_start = True
        while upos < end:
            if not pending:
                pending = f.read(READ_BYTES)
                cread += len(pending)
                if not pending:
                    state = "ends" if d.eof or member_start else "is cut short"
                    raise TruncatedDataError(
                        f"{path}: data truncated: the gzip stream {state} at compressed "
                        f"offset {cread}, uncompressed offset {upos}; the data needs {end} "
                        "bytes"
                    )
            if member_start:
                if len(pending) < 2:
                    more = f.read(READ_BYTES)
                    cread += len(more)
                    pending += more
                if pending[:2] != b"\x1f\x8b":
                    raise ImageFileError(
                        f"{path}: corrupt gzip stream: no gzip member at compressed offset "
                        f"{cread - len(pending)} (uncompressed offset {upos})"
                    )
                member_start = False
            try:
                out = d.decompress(pending, min(end - upos, OUT_BYTES))
            except mod.error as exc:
                raise _corrupt(path, cread - len(pending), upos, exc, name) from exc
            if d.eof:  # end of a member: another may follow
                pending = d.unused_data
                d = mod.decompressobj(31)
                member_start = True
            else:
                pending = d.unconsumed_tail
            if out:
                upos += len(out)
                bar.update(len(out))
                yield out
        if not member_start:
            _check_member_end(f, d, pending, path, cread, upos, name, mod)


def _corrupt(path: str, coff: int, uoff: int, exc: BaseException, name: str) -> ImageFileError:
    return ImageFileError(
        f"{path}: corrupt gzip stream near compressed offset {coff} "
        f"(uncompressed offset {uoff}): {exc} [{name}]"
    )


def _check_member_end(f, d, pending: bytes, path, cread, upos, name, mod) -> None:
    """Finish the member holding the last byte wanted, so its size and CRC are checked.

    Bytes after the data are decompressed and dropped (at most 64 MiB of them: a
    longer tail is left unchecked); a file cut short after the data is whole.
    """
    budget_in, budget_out = 64 * 2**20, 64 * 2**20
    while not d.eof:
        if not pending:
            pending = f.read(2**16)
            cread += len(pending)
            budget_in -= len(pending)
            if not pending or budget_in < 0:
                return  # cut short after the data (no trailer): the data itself is whole
        try:
            more = d.decompress(pending, 2**20)
        except mod.error as exc:
            raise _corrupt(path, cread - len(pending), upos, exc, name) from exc
        budget_out -= len(more)
        if budget_out < 0:
            return
        pending = d.unconsumed_tail


class MemoryWhole(ByteSource):
    """A decompressed stream prefix held in memory (read like an uncompressed file)."""

    heuristic = PLAIN_FILE

    def __init__(self, buf: np.ndarray, path: str, reserved: int = 0):
        super().__init__(path, None)
        self._buf = buf
        self._mv = memoryview(buf).toreadonly()
        self.nbytes = int(buf.size)
        self.kind = "memory"
        self._release = weakref.finalize(self, BUDGET.release, reserved)

    def __getstate__(self):  # pragma: no cover - never pickled (GzipSource pickles its path)
        raise TypeError("a decompressed gzip stream does not pickle; pickle the image")

    def _open(self):
        return self._mv

    def _close(self, h) -> None:
        pass

    def close(self) -> None:
        super().close()
        self._release()

    def read_into(self, offset: int, out: memoryview) -> None:
        chunk = self._mv[offset : offset + len(out)]
        if len(chunk) < len(out):
            raise self._short(offset, len(out), len(chunk))
        out[:] = chunk

    def read_bytes(self, offset: int, n: int) -> bytes:
        return bytes(self._mv[offset : offset + n])

    def mapping(self) -> memoryview:
        return self._mv


class SpillWhole(FileSource):
    """A decompressed stream prefix in an unlinked private temporary file."""

    def __init__(self, fd: int, path: str, nbytes: int):
        super().__init__(f"{path} (decompressed spill file)", None)
        self._handle = fd
        self.nbytes = nbytes
        self.kind = "spill"

    def __getstate__(self):  # pragma: no cover
        raise TypeError("a decompressed gzip stream does not pickle; pickle the image")

    def _open(self):  # the file has no name: once closed it is gone
        raise ValueError(f"{self.path} was closed")

    def _after_fork(self) -> None:  # keep the descriptor: the file has no name to reopen
        self._lock = threading.Lock()

    def begin_gather(self) -> bool:  # nameless and private: nobody can truncate it
        return True

    def end_gather(self) -> None:
        pass

    def check_fresh(self) -> None:  # written once by this process; the gzip source checks
        pass

    @property
    def fd(self) -> int | None:
        return self._handle


def _fill_memory(path: str, end: int, file: CheckedFile | None) -> np.ndarray:
    buf = np.empty(end, np.uint8)
    mv = memoryview(buf)
    pos = 0
    for piece in inflate(path, end, file=file, into=mv):
        n = len(piece)
        if not (isinstance(piece, memoryview) and piece.obj is buf):  # not filled in place
            mv[pos : pos + n] = piece
        pos += n
    return buf


def _fill_spill(path: str, end: int, file: CheckedFile | None) -> int:
    fd, name = tempfile.mkstemp(prefix="nilazyview-spill-", suffix=".raw", dir=spill_dir())
    try:
        os.unlink(name)  # private (0600) and nameless: removed even if the process dies
        for piece in inflate(path, end, file=file):
            view = memoryview(piece)
            while view:
                n = os.write(fd, view)
                view = view[n:]
    except BaseException:
        os.close(fd)
        raise
    return fd


_warned_spill = False


def materialize(
    path: str, end: int, file: CheckedFile | None = None
) -> MemoryWhole | SpillWhole | None:
    """Decompress the first ``end`` bytes of ``path`` once; keep them in memory or spilled.

    Returns None (and warns once per process) when neither memory budget nor a
    spill file is available; the caller then keeps reading through the index.
    """
    global _warned_spill
    if BUDGET.reserve(end):
        try:
            buf = _fill_memory(path, end, file)
        except MemoryError:
            BUDGET.release(end)
        except BaseException:
            BUDGET.release(end)
            raise
        else:
            stats["memory"] += 1
            return MemoryWhole(buf, path, reserved=end)
    try:
        free = shutil.disk_usage(spill_dir()).free
        if free < end + SPILL_RESERVE_BYTES:
            raise OSError(28, f"only {free} bytes free for a {end}-byte spill file")
        fd = _fill_spill(path, end, file)
    except OSError as exc:
        if not _warned_spill:
            _warned_spill = True
            warn(
                f"nilazyview: cannot spill the decompressed {path} to {spill_dir()} ({exc}); "
                "reading it through the gzip index instead (set NILAZYVIEW_TMPDIR or raise "
                "NILAZYVIEW_GZ_MEMORY_BYTES)",
                CacheWarning,
            )
        return None
    stats["spill"] += 1
    return SpillWhole(fd, path, end)


class ForwardStream(ByteSource):
    """Reads of one plan, served by a single in-order decompression pass.

    Offsets must not go backwards (plans read in storage order); if they do,
    the pass restarts from the beginning. Nothing is kept after the plan.
    """

    heuristic = PLAIN_FILE
    #: Serves one plan: closed after it.
    transient = True

    def __init__(self, path: str, end: int, file: CheckedFile | None = None):
        super().__init__(path, None)
        self._end = end
        self._file = file
        self._restart()
        stats["forward"] += 1

    def _restart(self) -> None:
        self._it = inflate(self.path, self._end, file=self._file)
        self._piece = memoryview(b"")
        self._piece_start = 0  # stream offset of self._piece[0]

    def _open(self):
        return self

    def _close(self, h) -> None:
        pass

    def close(self) -> None:
        self._it.close()

    def read_into(self, offset: int, out: memoryview) -> None:
        if offset < self._piece_start:
            self._it.close()
            self._restart()
        want = len(out)
        done = 0
        while done < want:
            pos = offset + done
            rel = pos - self._piece_start
            if rel >= len(self._piece):
                self._piece_start += len(self._piece)
                try:
                    self._piece = memoryview(next(self._it))
                except StopIteration:
                    raise self._short(offset, want, done) from None
                continue
            n = min(want - done, len(self._piece) - rel)
            out[done : done + n] = self._piece[rel : rel + n]
            done += n

    def read_bytes(self, offset: int, n: int) -> bytes:
        buf = bytearray(n)
        self.read_into(offset, memoryview(buf))
        return bytes(buf)


def _reset_in_child() -> None:
    BUDGET._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


def plan_bytes(plan) -> int:
    """Bytes of the result of ``plan`` (raw, before scaling)."""
    return math.prod(plan.out_shape) * plan.layout.dtype.itemsize


__all__ = [
    "BUDGET",
    "ForwardStream",
    "MemoryWhole",
    "SpillWhole",
    "diagnose",
    "inflate",
    "inflater_name",
    "materialize",
    "memory_budget",
    "plan_bytes",
    "spill_dir",
    "stats",
]
