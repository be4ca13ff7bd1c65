"""gzip streams with random access: ``rapidgzip`` (parallel, persisted index) or ``gzip``."""

from __future__ import annotations

import gzip
import os
import threading
import zlib

import numpy as np

from ..core.plan import GZIP_STREAM, ReadHeuristic, ReadPlan, plan_read
from ..errors import ImageFileError
from . import gzforward, gzindex, gzstream, gzwhole
from .base import ByteSource
from .checked import CheckedFile


def _have_rapidgzip() -> bool:
    return gzstream.available()


#: Compressed bytes inflated with ``zlib`` for header reads, and the most kept of the result.
HEAD_COMPRESSED = 64 * 2**10
HEAD_PLAIN = 2**20


class GzipSource(ByteSource):
    """A gzip stream with random access: ``rapidgzip`` if installed, else ``gzip``.

    With ``rapidgzip`` (the ``gz`` extra) reads decompress on every core and the
    seek-point index is persisted per user
    (:mod:`nilazyview.sources.gzindex`). Plans that need most of the stream are served
    by one whole-stream decompression (:mod:`nilazyview.sources.gzwhole`), kept in
    memory or a spill file, after which this source reads like a plain file.
    Reads hold a lock (the decompressor has one position); runs are sorted so a
    plan streams forward.
    """

    compressed = True
    #: A plan that must decompress at least this fraction of the data goes whole-stream.
    WHOLE_FRACTION = 0.5
    #: ... and is streamed, keeping nothing, when its result is at least this fraction.
    FORWARD_FRACTION = 0.25

    def __init__(self, path, identity=None):
        super().__init__(path, identity)
        self._stream_heuristic = GZIP_STREAM
        self._whole: ByteSource | None = None
        self._whole_lock = threading.Lock()
        self._file: CheckedFile | None = None
        self._plain_head: bytes | None = None

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
        # one descriptor, opened and checked here; every read goes through it
        file = CheckedFile.open(self.path, self.identity, self.portable)
        try:
            if _have_rapidgzip():
                stream = gzstream.RapidStream(self.path, file)
            else:
                stream = gzip.GzipFile(fileobj=file, mode="rb")
        except BaseException:
            file.close()
            raise
        self._file = file
        return stream

    def _verify_open(self, h) -> None:
        pass  # CheckedFile.open checked the descriptor itself

    def _close(self, f) -> None:
        try:
            f.close()
        finally:
            file, self._file = self._file, None
            if file is not None:
                file.close()

    def _after_fork(self) -> None:
        # the decompressor may be mid-read in a parent thread: drop it unclosed
        # (gzstream closed its rapidgzip copy); close only the child's descriptor copy
        self._whole_lock = threading.Lock()
        self._lock = threading.Lock()
        self._handle = None
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def check_read(self) -> None:
        """After a read: the descriptor read is still the version loaded (``fstat``)."""
        file = self._file
        if file is not None:
            file.check()

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
            end = plan.layout.offset + plan.layout.nbytes
            need = plan.nbytes + plan.n_runs * (self._chunk_bytes(end) // 2)
            if end and need >= self.WHOLE_FRACTION * end:
                if gzwhole.plan_bytes(plan) >= self.FORWARD_FRACTION * end:
                    return plan, gzforward.forward_stream(self.path, end, self._checked())
                whole = self._materialize(end)
        if whole is None:
            return plan, self
        if plan.heuristic is not whole.heuristic:
            plan = plan_read(plan.layout, plan.index, whole.heuristic)
        return plan, whole

    def _chunk_bytes(self, end: int) -> int:
        """Uncompressed bytes a read from a seek point decompresses, at most.

        rapidgzip's chunks are ``spacing`` *compressed* bytes: a stream compressed
        4:1 has a seek point every 16 MiB of data at the default 4 MiB.
        """
        try:
            stored = max(1, self.stored_size())
        except OSError:
            stored = end
        return int(gzindex.spacing() * max(1.0, end / stored))

    def _checked(self) -> CheckedFile:
        self.handle()  # opens and checks the descriptor
        file = self._file
        if file is None:
            raise ImageFileError(f"{self.path}: closed while reading")
        return file

    def _materialize(self, end: int) -> ByteSource | None:
        with self._whole_lock:
            if self._whole is None:
                self.check_identity()
                file = self._checked()
                whole = gzwhole.materialize(self.path, end, file)
                file.check()  # the bytes kept are the version loaded
                self._whole = whole
            return self._whole

    def mapping(self):
        """The kept decompressed stream's bytes, read-only (only once it is kept)."""
        if self._whole is None:
            raise TypeError(f"{self.path}: a gzip stream cannot be memory-mapped")
        return self._whole.mapping()

    def _errors(self):
        errs: tuple[type[BaseException], ...] = (zlib.error, EOFError, gzip.BadGzipFile, OSError)
        if isinstance(self._handle, gzstream.RapidStream):
            errs += gzstream.RAPID_ERRORS
        return errs

    def _raise_recorded(self, exc: BaseException, end: int) -> None:
        """Raise what is wrong when ``rapidgzip`` refused the stream reading up to ``end``.

        The file object's own error (stale, truncated) if it raised one; else a
        ``zlib`` pass from the start names the damage as a core install would
        (:class:`TruncatedDataError` for a cut stream), on damaged files only.
        """
        err = getattr(self._handle, "error", None)
        if isinstance(err, ImageFileError):
            raise err from exc
        file = self._file
        if isinstance(self._handle, gzstream.RapidStream) and file is not None:
            file.check()
            gzwhole.diagnose(self.path, end, file)

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
                        self.check_read()
                        raise self._short(off, length, got)
                    pos += length
                after = getattr(f, "after_read", None)
                if after is not None:
                    after()
        except self._errors() as exc:
            if isinstance(exc, ImageFileError):
                raise
            self.check_read()  # a changed file first: StaleFileError says so
            self._raise_recorded(exc, int(offsets.max()) + length)
            raise ImageFileError(
                f"{self.path}: corrupt gzip stream near uncompressed offset "
                f"{int(offsets[0]) + pos}: {exc}"
            ) from exc

    def _head(self) -> bytes:
        """The stream's first bytes, inflated with ``zlib`` from its first compressed ones.

        A header read so never starts the parallel decompressor (which would
        read ahead several chunks for a 352-byte header).
        """
        if self._plain_head is None:
            file = self._checked()
            blob = os.pread(file.fd, HEAD_COMPRESSED, 0)
            file.check()
            try:
                self._plain_head = zlib.decompressobj(31).decompress(blob, HEAD_PLAIN)
            except zlib.error:
                self._plain_head = b""  # the stream reader reports what is wrong
        return self._plain_head

    def read_bytes(self, offset: int, n: int) -> bytes:
        if self._whole is not None and offset + n <= getattr(self._whole, "nbytes", 0):
            return self._whole.read_bytes(offset, n)
        head = self._head()
        if offset + n <= len(head):
            return head[offset : offset + n]
        buf = bytearray(n)
        f = self.handle()
        try:
            with self._lock:
                got = self._read_locked(f, offset, memoryview(buf))
        except self._errors() as exc:
            if isinstance(exc, ImageFileError):
                raise
            self.check_read()
            self._raise_recorded(exc, offset + n)
            raise ImageFileError(
                f"{self.path}: corrupt gzip stream near uncompressed offset {offset}: {exc}"
            ) from exc
        return bytes(buf[:got])
