"""A thread-safe LRU cache of slabs (numpy arrays) under a byte budget."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np

DEFAULT_MAX_BYTES = 256 * 2**20


def _size(obj) -> int:
    return int(obj.nbytes) if isinstance(obj, np.ndarray) else len(obj)


class SlabCache:
    """Least-recently-used cache of arrays (or ``bytes``), bounded by their total size.

    Parameters
    ----------
    max_bytes : int
        Byte budget; the least recently used slabs are evicted to stay within it.
        A slab larger than the whole budget is not kept.

    Attributes
    ----------
    hits, misses : int
        Counted by :meth:`get` (not by :meth:`peek`).
    nbytes : int
        Bytes held now.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, not {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0
        self.nbytes = 0
        self._items: OrderedDict[Hashable, np.ndarray | bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> np.ndarray | bytes | None:
        """The slab for ``key`` (marked most recently used), or None; counts a hit or miss."""
        with self._lock:
            arr = self._items.get(key)
            if arr is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return arr

    def get_quiet(self, key: Hashable) -> np.ndarray | bytes | None:
        """Like :meth:`get` but changes neither order nor counters (for prefetching)."""
        with self._lock:
            return self._items.get(key)

    def peek(self, key: Hashable) -> bool:
        """True if ``key`` is cached; changes neither order nor counters."""
        with self._lock:
            return key in self._items

    def put(self, key: Hashable, arr: np.ndarray | bytes) -> None:
        """Store ``arr`` under ``key`` (arrays are made read-only), evicting as needed."""
        size = _size(arr)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.nbytes -= _size(old)
            if size > self.max_bytes:
                return
            if isinstance(arr, np.ndarray):
                arr.flags.writeable = False
            self._items[key] = arr
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.nbytes -= _size(dropped)

    def clear(self) -> None:
        """Drop every slab (counters are kept)."""
        with self._lock:
            self._items.clear()
            self.nbytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return self.peek(key)

    def __repr__(self) -> str:
        return (
            f"SlabCache({len(self)} slabs, {self.nbytes / 2**20:.1f} of "
            f"{self.max_bytes / 2**20:.0f} MiB, hits={self.hits}, misses={self.misses})"
        )
