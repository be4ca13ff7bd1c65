"""HTTP(S) range requests on the standard library: validators, Content-Range checks, retries.

fsspec's HTTP filesystem does not hand back the response headers of a range
read, so it cannot tell that the file changed between two reads. This
transport reads every ``206`` answer's ``ETag`` (else ``Last-Modified``) and
``Content-Range``: a changed validator is a :class:`StaleFileError`, a range
other than the one asked for or a short body is retried, and never returned.
Connections are kept alive, one per worker thread.
"""

from __future__ import annotations

import http.client
import random
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import RemoteAccessError, RemoteError, RemoteNotFoundError

#: A ``200`` answer to a range request (a server without Range support) is used
#: only for files up to this size; larger ones raise rather than download.
MAX_WHOLE_ANSWER = 16 * 2**20


@dataclass(frozen=True)
class Answer:
    """One range answer: the bytes, the file's total size and its validator."""

    data: bytes
    size: int
    validator: str


class Retry(Exception):
    """A failure worth another attempt (5xx, reset, timeout, short body, wrong range)."""


def validator_of(headers) -> str:
    """The version tag of an answer: its ETag, else ``Last-Modified`` (size is compared apart)."""
    etag = headers.get("ETag")
    if etag:
        return "etag:" + etag.removeprefix("W/")
    modified = headers.get("Last-Modified")
    return "modified:" + modified if modified else ""


def _content_range(value: str | None) -> tuple[int, int, int] | None:
    # "bytes a-b/total" (total may be "*")
    try:
        _unit, rest = value.split(" ", 1)
        span, total = rest.split("/", 1)
        a, b = span.split("-", 1)
        return int(a), int(b), int(total) if total != "*" else -1
    except (AttributeError, ValueError):
        return None


class HttpTransport:
    """Range GETs of one URL, with bounded retries and a thread pool for concurrent ranges."""

    def __init__(
        self,
        url: str,
        shown: str,
        headers: dict | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.1,
        concurrency: int = 16,
    ):
        parts = urlsplit(url)
        self.shown = shown
        self.https = parts.scheme.lower() == "https"
        self.host = parts.hostname or ""
        self.port = parts.port
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = dict(headers or {})
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.concurrency = concurrency
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.https:
                ctx = ssl.create_default_context()
                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=ctx
                )
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def _once(self, start: int, end: int) -> Answer:
        conn = self._connection()
        headers = {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        headers.update(self.headers)
        try:
            conn.request("GET", self.target, headers=headers)
            resp = conn.getresponse()
            status = resp.status
            if status == 206:
                got = _content_range(resp.getheader("Content-Range"))
                body = resp.read()
                if (
                    got is None
                    or got[0] != start
                    or (got[2] >= 0 and got[1] != min(end, got[2]) - 1)
                ):
                    raise Retry(f"wrong Content-Range {resp.getheader('Content-Range')!r}")
                if len(body) != got[1] - got[0] + 1:
                    raise Retry(f"short body: {len(body)} of {got[1] - got[0] + 1} bytes")
                return Answer(body, got[2], validator_of(resp.headers))
            if status == 200:
                length = int(resp.getheader("Content-Length") or -1)
                if length < 0 or length > MAX_WHOLE_ANSWER:
                    resp.close()
                    self._drop_connection()
                    raise RemoteError(
                        f"{self.shown}: the server ignores Range requests (answered 200 with "
                        f"{'an unknown size' if length < 0 else f'{length} bytes'}); nilazyview "
                        "reads remote files only from servers that serve byte ranges"
                    )
                body = resp.read()
                if len(body) != length:
                    raise Retry(f"short body: {len(body)} of {length} bytes")
                return Answer(body[start:end], length, validator_of(resp.headers))
            if status == 416:  # starts at or past the end
                resp.read()
                got = _content_range(resp.getheader("Content-Range"))
                return Answer(b"", got[2] if got else -1, validator_of(resp.headers))
            resp.read()
            if status == 404:
                raise RemoteNotFoundError(f"{self.shown}: no such file on the server (HTTP 404)")
            if status in (401, 403):
                raise RemoteAccessError(
                    f"{self.shown}: access denied (HTTP {status}); check the credentials or "
                    "headers in storage_options"
                )
            if status >= 500 or status in (408, 429):
                raise Retry(f"HTTP {status}")
            raise RemoteError(f"{self.shown}: the server answered HTTP {status} {resp.reason}")
        except RemoteError:
            raise
        except (OSError, http.client.HTTPException) as exc:  # reset, timeout, dropped mid-body
            self._drop_connection()
            raise Retry(f"{type(exc).__name__}: {exc}") from exc
        except Retry:
            self._drop_connection()
            raise

    def get(self, start: int, end: int) -> Answer:
        """Bytes ``start..end`` (fewer at the end of the file), retried with backoff."""
        last = ""
        for attempt in range(self.retries + 1):
            try:
                return self._once(start, end)
            except Retry as exc:
                last = str(exc)
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt * (0.5 + random.random()))
        raise RemoteError(
            f"{self.shown}: reading bytes {start}-{end - 1} failed after "
            f"{self.retries + 1} attempts (last: {last})"
        )

    def get_many(self, ranges: list[tuple[int, int]]) -> list[Answer]:
        """Many ranges at once, at most ``concurrency`` in flight; answers in order."""
        if len(ranges) == 1:
            return [self.get(*ranges[0])]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="nlv-http")
        return list(self._pool.map(lambda r: self.get(*r), ranges))

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)
        self._drop_connection()


__all__ = ["Answer", "HttpTransport", "validator_of"]
