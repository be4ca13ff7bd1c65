"""Slab fetching: synchronous reads through the cache, plus a background prefetcher.

The prefetcher holds one list of wanted keys. Each :meth:`Prefetcher.want`
replaces it (a newer slider position wins), so fast scrubbing leaves no
backlog: at most the one read in progress finishes for a stale request.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from .cache import SlabCache


@dataclass(frozen=True)
class Fetched:
    """A slab with how it was obtained."""

    slab: np.ndarray
    hit: bool
    ms: float


def fetch(key: Hashable, read: Callable[[Hashable], np.ndarray], cache: SlabCache | None):
    """The slab for ``key``: from ``cache`` if there, else ``read(key)`` (and cached).

    With ``cache`` None the slab is always read and nothing is counted.
    """
    t0 = time.perf_counter()
    if cache is not None:
        slab = cache.get(key)
        if slab is not None:
            return Fetched(slab, True, (time.perf_counter() - t0) * 1e3)
    slab = read(key)
    if cache is not None:
        cache.put(key, slab)
    return Fetched(slab, False, (time.perf_counter() - t0) * 1e3)


class Prefetcher:
    """Does wanted work (read and render slabs) on one daemon thread, newest request first.

    Parameters
    ----------
    work : callable
        ``work(key)``, called on the background thread; it stores its own result.
    is_done : callable
        ``is_done(key) -> bool``; keys already done are skipped.
    """

    def __init__(self, work: Callable[[Hashable], object], is_done: Callable[[Hashable], bool]):
        self._work = work
        self._is_done = is_done
        self._cond = threading.Condition()
        self._wanted: list[Hashable] = []
        self._busy = False
        self._current: Hashable | None = None
        self._closed = False
        self.generation = 0
        self.done = 0
        self.errors = 0
        self._thread: threading.Thread | None = None
        _LIVE.add(self)

    def want(self, keys: Sequence[Hashable]) -> None:
        """Replace the wanted keys (earlier ones first); older requests are dropped."""
        with self._cond:
            if self._closed:
                return
            self.generation += 1
            self._wanted = [k for k in keys if not self._is_done(k)]
            if self._wanted and self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="nilazyview-prefetch", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._wanted and not self._closed:
                    self._busy = False
                    self._cond.notify_all()
                    self._cond.wait()
                if self._closed:
                    self._busy = False
                    self._cond.notify_all()
                    return
                key = self._wanted.pop(0)
                self._busy = True
                self._current = key
            try:
                if not self._is_done(key):
                    self._work(key)
                    self.done += 1
            except Exception:  # a failed prefetch is retried, and reported, in the foreground
                self.errors += 1
            finally:
                with self._cond:
                    self._current = None
                    self._cond.notify_all()

    def wait_for(self, key: Hashable, timeout: float = 1.0) -> bool:
        """If ``key`` is being worked on now, wait for it (not duplicating the work).

        Returns True if it was in progress and finished within ``timeout``.
        """
        end = time.monotonic() + timeout
        with self._cond:
            if self._current != key:
                return False
            while self._current == key:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def idle(self, timeout: float = 5.0) -> bool:
        """Wait until nothing is wanted or being read; True if that happened in time."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._wanted or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def cancel(self) -> None:
        """Forget the wanted keys (a read in progress still finishes)."""
        with self._cond:
            self.generation += 1
            self._wanted = []

    def close(self) -> None:
        """Stop the thread after its current read.

        Never blocks for long: at interpreter exit the thread may be frozen holding
        the lock (a widget's ``__del__`` then closes it during finalization).
        """
        if not self._cond.acquire(timeout=1.0):
            self._closed = True
            return
        try:
            self._closed = True
            self._wanted = []
            self._cond.notify_all()
        finally:
            self._cond.release()


_LIVE: weakref.WeakSet = weakref.WeakSet()


def _stop_all() -> None:
    """At exit: no prefetch starts another read (one in progress ends on its own)."""
    for p in list(_LIVE):
        p.close()


atexit.register(_stop_all)
