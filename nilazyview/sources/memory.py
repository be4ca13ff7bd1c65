"""Bytes already in memory: a source for tests and for headers kept in pickles."""

from __future__ import annotations

import threading

from ..core.plan import PLAIN_FILE, ReadHeuristic
from .base import ByteSource


class MemorySource(ByteSource):
    """Bytes already in memory (tests, and headers kept for pickling)."""

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

    def stored_size(self) -> int:
        return len(self._data)

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
