"""A range-serving HTTP server on 127.0.0.1 for the remote tests and benchmark (stdlib only).

Serves files from a dict ``{name: bytes}`` with ``Range``, ``ETag`` and
``Last-Modified``; counts requests and body bytes; injects latency and faults
(``faults``: a list of callables popped per request, see :class:`RangeServer`).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, *args):  # quiet
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head: bool):
        srv = self.server.owner
        with srv.lock:
            srv.requests += 1
            srv.log.append((self.command, self.path, self.headers.get("Range")))
            fault = srv.faults.pop(0) if srv.faults else None
        if srv.latency:
            time.sleep(srv.latency)
        name = self.path.split("?", 1)[0].lstrip("/")
        data = srv.files.get(name)
        if fault == "503":
            return self._plain(503, b"busy")
        if fault == "stall":  # longer than the client's timeout
            time.sleep(srv.stall)
        if data is None:
            return self._plain(404, b"not found")
        if name in srv.forbidden:
            return self._plain(403, b"forbidden")
        etag = srv.etag(name, data)
        size = len(data)
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m and not srv.ignore_range:
            a = int(m.group(1))
            b = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            if a >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[a : b + 1]
            shown_a = a + 1 if fault == "bad-range" else a
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {shown_a}-{b}/{size}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", "Fri, 04 Dec 2026 10:00:00 GMT")
        self.end_headers()
        if head:
            return
        if srv.bandwidth:  # a per-answer cap: size / bandwidth seconds
            time.sleep(len(body) / srv.bandwidth)
        if fault == "drop":  # half the body, then the connection goes away
            srv.count(len(body) // 2)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        srv.count(len(body))
        self.wfile.write(body)

    def _plain(self, code: int, body: bytes):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: RangeServer

    def handle_error(self, request, client_address):  # clients that hang up: expected here
        pass


class RangeServer:
    """``with RangeServer(files) as srv: srv.url("a.nii")``; counters ``requests``, ``bytes``.

    ``latency`` (s) is slept before each answer, ``bandwidth`` (B/s, 0: none)
    throttles each answer's body. ``faults`` holds per-request
    faults, first used first: ``"503"``, ``"drop"`` (half a body, then close),
    ``"stall"`` (wait ``stall`` seconds first),
    ``"bad-range"`` (a Content-Range one byte off), None (no fault).
    """

    def __init__(self, files: dict[str, bytes] | None = None, latency: float = 0.0):
        self.files = dict(files or {})
        self.latency = latency
        self.bandwidth = 0.0  # bytes per second per answer; 0: as fast as it goes
        self.stall = 1.0  # seconds a "stall" fault waits before answering
        self.faults: list = []
        self.forbidden: set[str] = set()
        self.ignore_range = False
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes = 0
        self.log: list = []
        self._etags: dict = {}
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def etag(self, name: str, data: bytes) -> str:
        """A strong ETag of the content (cached: digesting 64 MiB per request is slow)."""
        key = (name, id(data), len(data))
        tag = self._etags.get(key)
        if tag is None:
            tag = self._etags[key] = '"' + hashlib.md5(data).hexdigest() + '"'
        return tag

    def count(self, n: int) -> None:
        with self.lock:
            self.bytes += n

    def reset(self) -> None:
        with self.lock:
            self.requests = self.bytes = 0
            self.log.clear()

    def url(self, name: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
