"""Remote files (``https://``, ``s3://``, any fsspec URL): range reads, a block cache, validators.

:class:`RemoteSource` reads byte ranges: HTTP(S) through :mod:`.http` (every
answer's ETag checked), other schemes through fsspec's ``cat_ranges``. Runs a
plan needs are looked up in a bounded LRU cache of fetched extents, the missing
ones coalesced when the gap between them costs less than a round trip, and sent
concurrently (a bounded number in flight). :class:`RemoteGzipSource` gives
``rapidgzip`` a seekable file object on the source, so a ``.nii.gz`` streams
once and its seek-point index is persisted keyed by URL + validator.

Settings (read at use): ``NILAZYVIEW_REMOTE_CACHE_BYTES`` (cache bound, default
256 MiB), ``NILAZYVIEW_REMOTE_RETRIES`` (4), ``NILAZYVIEW_REMOTE_TIMEOUT`` (s, 30),
``NILAZYVIEW_REMOTE_CONCURRENCY`` (16), ``NILAZYVIEW_REMOTE_LATENCY_MS`` (20) and
``NILAZYVIEW_REMOTE_BANDWIDTH_MBPS`` (MB/s, 50): the cost model's round trip.
"""

from __future__ import annotations

import bisect
import gzip
import io
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..core.plan import ReadHeuristic, ReadPlan, network_heuristic
from ..errors import ImageFileError, RemoteError, StaleFileError
from ..fs.settings import env_int
from . import blockcache, gzindex, gzstream
from .base import ByteSource
from .fsspecio import FsspecTransport
from .gzfile import GzipSource, _have_rapidgzip
from .http import Answer, HttpTransport
from .urls import URL

#: Bytes fetched by the first request (header and extensions of most files).
HEAD_BYTES = 64 * 2**10
#: A single request is split into concurrent parts of this size.
PART_BYTES = 4 * 2**20
#: Plans transferring at least this much show a progress bar (``tqdm``, if installed).
PROGRESS_MIN_BYTES = 64 * 2**20


def _progress_bar(name: str, total: int):
    try:
        from tqdm.auto import tqdm  # the optional 'gz' extra
    except ImportError:
        return None
    try:
        return tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"downloading {name.rsplit('/', 1)[-1]}",
            delay=1.0,
            leave=False,
        )
    except Exception:  # a broken terminal or widget never breaks a read
        return None


@dataclass(frozen=True)
class RemoteIdentity:
    """One version of a remote file: its size and validator (ETag, else Last-Modified)."""

    url: str
    size: int
    validator: str

    def differences(self, other, portable: bool = False) -> list[str]:
        if not isinstance(other, RemoteIdentity):
            return ["size", "validator"]
        return [n for n in ("size", "validator") if getattr(self, n) != getattr(other, n)]


def heuristic() -> ReadHeuristic:
    """The cost model of a remote source, from the latency and bandwidth settings."""
    return network_heuristic(
        latency_s=env_int("NILAZYVIEW_REMOTE_LATENCY_MS", 20) / 1000,
        bandwidth=env_int("NILAZYVIEW_REMOTE_BANDWIDTH_MBPS", 50, minimum=1) * 1e6,
        concurrency=env_int("NILAZYVIEW_REMOTE_CONCURRENCY", 16, minimum=1),
    )


class ExtentCache:
    """Fetched byte extents, least-recently-used first out, at most ``max_bytes`` in all."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._data: OrderedDict[int, bytes] = OrderedDict()
        self._starts: list[int] = []
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def covered(self, offset: int, n: int) -> memoryview | None:
        """The cached bytes from ``offset`` (up to ``n``, maybe fewer), or None."""
        with self._lock:
            i = bisect.bisect_right(self._starts, offset) - 1
            if i < 0:
                return None
            start = self._starts[i]
            data = self._data[start]
            if start + len(data) <= offset:
                return None
            self._data.move_to_end(start)
            return memoryview(data)[offset - start : offset - start + n]

    def put(self, offset: int, data: bytes) -> None:
        if len(data) > self.max_bytes // 4 or not data:
            return
        with self._lock:
            old = self._data.pop(offset, None)
            if old is not None:
                self._bytes -= len(old)
            else:
                bisect.insort(self._starts, offset)
            self._data[offset] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                start, gone = self._data.popitem(last=False)
                self._starts.remove(start)
                self._bytes -= len(gone)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._starts.clear()
            self._bytes = 0


class RemoteSource(ByteSource):
    """A remote file read by byte ranges, through a bounded in-memory block cache.

    ``stats`` counts ``requests``, ``bytes`` (transferred) and ``seconds``.
    """

    reads_patterns = False

    def __init__(self, path: URL, identity: RemoteIdentity | None = None):
        super().__init__(path if isinstance(path, URL) else URL(path), identity)
        self.heuristic = heuristic()
        self.cache = ExtentCache(env_int("NILAZYVIEW_REMOTE_CACHE_BYTES", 256 * 2**20))
        self.stats = {"requests": 0, "bytes": 0, "seconds": 0.0}
        self._stale: StaleFileError | None = None
        self._stats_lock = threading.Lock()
        self._bar = None
        self._disk: blockcache.DiskBlocks | None = None

    def _disk_blocks(self) -> blockcache.DiskBlocks | None:
        """The on-disk block cache of this file version, when it is on."""
        if self._disk is None and blockcache.max_bytes() > 0 and self.identity is not None:
            self._disk = blockcache.DiskBlocks(str(self.path), self.identity.validator)
        return self._disk

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def _open(self):
        url: URL = self.path
        conc = env_int("NILAZYVIEW_REMOTE_CONCURRENCY", 16, minimum=1)
        if url.scheme in ("http", "https"):
            opts = url.storage_options
            t = HttpTransport(
                url.url,
                str(url),
                headers=opts.get("headers"),
                timeout=float(opts.get("timeout", env_int("NILAZYVIEW_REMOTE_TIMEOUT", 30, 1))),
                retries=int(opts.get("retries", env_int("NILAZYVIEW_REMOTE_RETRIES", 4))),
                backoff=float(opts.get("backoff", 0.1)),
                concurrency=conc,
            )
            first = t.get(0, HEAD_BYTES)
            self._check(first)
            self.cache.put(0, first.data)
            self._count(1, len(first.data), 0.0)
            return t
        t = FsspecTransport(url, conc)
        size, validator = t.stat()
        self._check(Answer(b"", size, validator))
        return t

    def _close(self, t) -> None:
        t.close()

    def check_identity(self) -> None:
        pass  # answers carry the validator; checked on each (see _check)

    def _verify_open(self, h) -> None:
        pass

    def check_fresh(self) -> None:
        if self._stale is not None:
            raise self._stale

    def _check(self, ans: Answer) -> None:
        ident = self.identity
        if ident is None:
            self.identity = RemoteIdentity(str(self.path), ans.size, ans.validator)
            return
        if ans.validator != ident.validator or (ans.size >= 0 and ans.size != ident.size):
            self.cache.clear()
            self._disk = None
            self._stale = StaleFileError(
                f"{self.path}: remote file changed since it was loaded (validator "
                f"{ident.validator!r} -> {ans.validator!r}, size {ident.size} -> {ans.size}); "
                f"the image still describes the old version. Load it again: "
                f"img = nilazyview.load({str(self.path)!r})"
            )
            raise self._stale

    def _count(self, requests: int, nbytes: int, seconds: float) -> None:
        with self._stats_lock:
            self.stats["requests"] += requests
            self.stats["bytes"] += nbytes
            self.stats["seconds"] += seconds
            bar = self._bar
            if bar is not None:
                bar.update(nbytes)
                if bar.n >= bar.total:
                    bar.close()
                    self._bar = None

    def prepare(self, plan: ReadPlan) -> tuple[ReadPlan, ByteSource]:
        """A plan of many bytes (``get_data``) shows a progress bar while it streams."""
        if plan.strategy != "empty" and plan.nbytes >= PROGRESS_MIN_BYTES:
            with self._stats_lock:
                if self._bar is not None:
                    self._bar.close()
                self._bar = _progress_bar(str(self.path), plan.nbytes)
        return plan, self

    def stored_size(self) -> int:
        self.handle()
        return self.identity.size

    def _fetch(self, spans: list[tuple[int, int]]) -> list[bytes]:
        """Bytes of each ``(start, end)`` span (parts of at most PART_BYTES go concurrently)."""
        t = self.handle()
        self.check_fresh()
        parts, owner = [], []
        for i, (a, b) in enumerate(spans):
            for p in range(a, b, PART_BYTES):
                parts.append((p, min(b, p + PART_BYTES)))
                owner.append(i)
        t0 = time.perf_counter()
        ident = self.identity
        if isinstance(t, HttpTransport):
            answers = t.get_many(parts)
        else:
            answers = t.get_many(parts, ident.size, ident.validator)
        for ans in answers:
            self._check(ans)
        self._count(len(parts), sum(len(a.data) for a in answers), time.perf_counter() - t0)
        out: list[list[bytes]] = [[] for _ in spans]
        for i, ans in zip(owner, answers, strict=True):
            out[i].append(ans.data)
        return [b"".join(chunks) if len(chunks) > 1 else chunks[0] for chunks in out]

    def read_into(self, offset: int, out: memoryview) -> None:
        self.read_runs(np.array([offset]), len(out), out)

    def read_runs(self, offsets: np.ndarray, length: int, out: memoryview) -> None:
        self.handle()
        offs = offsets.tolist()
        gap = self.heuristic.run_cost_bytes
        disk = self._disk_blocks()
        groups: list[list[tuple[int, int, int]]] = []  # per request: (run, start, end)
        for i, off in enumerate(offs):
            dst = out[i * length : (i + 1) * length]
            done = 0
            while done < length:  # cached extents may follow one another
                got = self.cache.covered(off + done, length - done)
                if got is None and disk is not None:
                    got = disk.get(off + done, length - done)
                if not got:
                    break
                dst[done : done + len(got)] = got
                done += len(got)
            if done == length:
                continue
            start = off + done
            if groups and 0 <= start - groups[-1][-1][2] <= gap:
                groups[-1].append((i, start, off + length))
            else:
                groups.append([(i, start, off + length)])
        if not groups:
            return
        spans = [(g[0][1], g[-1][2]) for g in groups]
        blocks = self._fetch(spans)
        for g, (a, _), data in zip(groups, spans, blocks, strict=True):
            view = memoryview(data)
            for i, start, end in g:
                chunk = view[start - a : end - a]
                if len(chunk) < end - start:
                    raise self._short(start, end - start, len(chunk))
                base = i * length + (length - (end - start))
                out[base : base + len(chunk)] = chunk
            self.cache.put(a, data)
            if disk is not None:
                disk.put(a, data)

    def read_bytes(self, offset: int, n: int) -> bytes:
        size = self.stored_size()
        n = max(0, min(n, size - offset))
        buf = bytearray(n)
        if n:
            self.read_into(offset, memoryview(buf))
        return bytes(buf)


class RemoteFile(io.RawIOBase):
    """A seekable read-only file object on a :class:`RemoteSource`, reading ahead.

    Sequential reads grow the read-ahead from 256 KiB to 8 MiB, so streaming a
    file transfers each byte once in few requests; a seek starts small again.
    """

    def __init__(self, source: RemoteSource):
        super().__init__()
        self.source, self.pos = source, 0
        self.size = source.stored_size()
        self._buf, self._buf_start, self._ahead = b"", 0, 256 * 2**10
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self.pos, self.size)[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, b) -> int:
        view = memoryview(b).cast("B")
        n = min(len(view), self.size - self.pos)
        if n <= 0:
            return 0
        rel = self.pos - self._buf_start
        if not (0 <= rel and rel + n <= len(self._buf)):
            sequential = self.pos == self._buf_start + len(self._buf)
            self._ahead = min(8 * 2**20, self._ahead * 2) if sequential else 256 * 2**10
            want = min(max(n, self._ahead), self.size - self.pos)
            try:
                self._buf = self.source.read_bytes(self.pos, want)
            except BaseException as exc:
                self.error = exc
                raise
            self._buf_start, rel = self.pos, 0
        view[:n] = self._buf[rel : rel + n]
        self.pos += n
        return n


class RemoteGzipSource(GzipSource):
    """A remote gzip stream: ``rapidgzip`` on a :class:`RemoteFile`, index persisted.

    The index is keyed by URL + validator, so a new version of the file never
    uses an old index. Plans are never switched to a whole-stream decompression
    (that reads a local file); a deep first read streams the compressed file once.
    """

    def __init__(self, path: URL, identity=None, raw: RemoteSource | None = None):
        super().__init__(path, identity)
        self.raw = raw if raw is not None else RemoteSource(path, identity)
        self._plain_head: bytes | None = None

    def _head(self) -> bytes:
        """The start of the stream, inflated from the first request's bytes (no index)."""
        if self._plain_head is None:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                self._plain_head = d.decompress(self.raw.read_bytes(0, HEAD_BYTES), 4 * 2**20)
            except zlib.error:
                self._plain_head = b""
        return self._plain_head

    @property
    def stats(self) -> dict:
        return self.raw.stats

    def _open(self):
        f = RemoteFile(self.raw)
        self.identity = self.raw.identity
        if _have_rapidgzip():
            ident = self.raw.identity
            key = gzindex.IndexKey.remote(str(self.path), ident.size, ident.validator)
            return gzstream.RapidStream(str(self.path), f, key=key)
        return gzip.GzipFile(fileobj=f, mode="rb")

    def stored_size(self) -> int:
        return self.raw.stored_size()

    def check_identity(self) -> None:
        self.raw.check_fresh()

    def _verify_open(self, h) -> None:
        pass

    def check_fresh(self) -> None:
        self.raw.check_fresh()

    def prepare(self, plan: ReadPlan) -> tuple[ReadPlan, ByteSource]:
        return plan, self

    def read_runs(self, offsets, length, out) -> None:
        try:
            super().read_runs(offsets, length, out)
        except ImageFileError as exc:
            f = getattr(self._handle, "fileobj", None)
            err = getattr(f, "error", None)
            if isinstance(exc, RemoteError | StaleFileError) or err is None:
                raise
            raise err from exc

    def read_bytes(self, offset: int, n: int) -> bytes:
        head = self._head() if self._handle is None else b""
        if offset + n <= len(head):  # a header: no decompressor, no more requests
            return head[offset : offset + n]
        try:
            return super().read_bytes(offset, n)
        except ImageFileError as exc:
            err = getattr(getattr(self._handle, "fileobj", None), "error", None)
            if err is None:
                raise
            raise err from exc


def open_remote(url: URL) -> ByteSource:
    """The source for ``url``: one request fetches its head, gzip is told by content."""
    raw = RemoteSource(url)
    if raw.read_bytes(0, 2) == b"\x1f\x8b":
        return RemoteGzipSource(url, raw.identity, raw)
    return raw


__all__ = [
    "ExtentCache",
    "RemoteFile",
    "RemoteGzipSource",
    "RemoteIdentity",
    "RemoteSource",
    "heuristic",
    "open_remote",
]
