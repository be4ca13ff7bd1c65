"""An optional on-disk cache of fetched remote extents, bounded, under the user's cache folder.

Off unless ``NILAZYVIEW_REMOTE_DISK_CACHE_BYTES`` is set above 0. One folder per
file version (a digest of the shown URL + validator: a new ETag never meets an
old block), one file per extent named ``<offset>-<length>``, written atomically.
The whole ``blocks`` folder is least-recently-used bounded by that setting.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import tempfile
import threading
from pathlib import Path

from ..fs.settings import env_int
from . import gzindex


def max_bytes() -> int:
    """Bound of the on-disk block cache (``$NILAZYVIEW_REMOTE_DISK_CACHE_BYTES``; 0: off)."""
    return env_int("NILAZYVIEW_REMOTE_DISK_CACHE_BYTES", 0)


def root() -> Path:
    """``<cache folder>/blocks`` (beside the gzip indexes)."""
    return gzindex.cache_dir().parent / "blocks"


class DiskBlocks:
    """The cached extents of one version of one remote file."""

    def __init__(self, url: str, validator: str):
        digest = hashlib.sha256(f"{url}\0{validator}".encode()).hexdigest()[:32]
        self.folder = root() / digest
        self._starts: list[int] | None = None
        self._lengths: dict[int, int] = {}
        self._lock = threading.Lock()

    def _listing(self) -> None:
        starts, lengths = [], {}
        try:
            with os.scandir(self.folder) as it:
                for e in it:
                    a, sep, n = e.name.partition("-")
                    if sep and a.isdigit() and n.isdigit():
                        starts.append(int(a))
                        lengths[int(a)] = int(n)
        except OSError:
            pass
        self._starts, self._lengths = sorted(starts), lengths

    def get(self, offset: int, n: int) -> bytes | None:
        """Cached bytes from ``offset`` (up to ``n``), or None."""
        with self._lock:
            if self._starts is None:
                self._listing()
            i = bisect.bisect_right(self._starts, offset) - 1
            if i < 0:
                return None
            start = self._starts[i]
            length = self._lengths[start]
        if start + length <= offset:
            return None
        path = self.folder / f"{start}-{length}"
        try:
            with open(path, "rb") as f:
                f.seek(offset - start)
                data = f.read(min(n, start + length - offset))
            os.utime(path)  # least-recently-used order is by mtime
        except OSError:
            return None
        return data or None

    def put(self, offset: int, data: bytes) -> None:
        limit = max_bytes()
        if limit <= 0 or not data or len(data) > limit // 4:
            return
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".part.", dir=self.folder)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.folder / f"{offset}-{len(data)}")
        except OSError:
            return  # a cache that cannot be written is no cache
        with self._lock:
            if self._starts is not None and offset not in self._lengths:
                bisect.insort(self._starts, offset)
            self._lengths[offset] = len(data)
        enforce_limit(limit)


def enforce_limit(limit: int) -> None:
    """Delete least-recently-used block files until the folder fits ``limit`` bytes."""
    entries = []
    try:
        for folder in root().iterdir():
            for e in os.scandir(folder):
                st = e.stat()
                entries.append((st.st_mtime_ns, e.path, st.st_size))
    except OSError:
        return
    total = sum(size for _, _, size in entries)
    for _, path, size in sorted(entries):
        if total <= limit:
            break
        try:
            os.unlink(path)
        except OSError:
            continue
        total -= size


__all__ = ["DiskBlocks", "enforce_limit", "max_bytes", "root"]
