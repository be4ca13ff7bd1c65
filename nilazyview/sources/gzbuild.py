"""Background builds of gzip seek-point indexes, after a whole-stream pass.

A whole-stream decompression (:mod:`nilazyview.sources.gzwhole`) serves this
process; the index built here (``indexed_gzip``, at a low thread priority)
serves the next one: it imports the index in milliseconds instead of
decompressing again (:mod:`nilazyview.sources.gzindex`). Builds are daemon
threads, so a process never hangs on one at exit (an index of a 476 MiB stream
takes ~3.4 s); an exiting process waits up to :data:`EXIT_WAIT_S` for them,
and a build cut short leaves only a partial file that the next save removes.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref

from . import gzindex, gzstream
from .checked import CheckedFile

#: Seconds an exiting process waits, in all, for background index builds.
EXIT_WAIT_S = 2.0

_building: set[str] = set()
_building_lock = threading.Lock()


def start_index_build(
    path: str, end: int, file: CheckedFile | None = None
) -> threading.Thread | None:
    """Build and save the seek-point index of ``path`` in a background thread.

    Skipped when ``indexed_gzip`` is missing, persisting is off, the data is too
    small to be worth an index, or a matching index is cached already. The
    thread is a daemon; an exiting process waits up to :data:`EXIT_WAIT_S` for it.
    """
    if end < gzindex.MIN_NEW_POINTS * gzindex.spacing() or not gzindex.persisting():
        return None
    try:
        import indexed_gzip  # noqa: F401  (the optional 'gz' extra)
    except ImportError:  # pragma: no cover - depends on the install
        return None
    try:
        key = gzindex.IndexKey.of(path, None if file is None else file.fd)
    except OSError:
        return None
    if gzindex.has_index(key):
        return None
    own = None
    if file is not None:  # a descriptor of its own: the thread may outlive the source
        own = CheckedFile(os.dup(file.fd), file.path, file.identity)
    with _building_lock:
        if key.path in _building:
            return None
        _building.add(key.path)

    def run() -> None:
        try:
            gzstream.build_and_save(path, end, key, own)
        finally:
            if own is not None:
                own.close()
            with _building_lock:
                _building.discard(key.path)

    t = threading.Thread(target=run, name="nilazyview-gzindex", daemon=True)
    with _building_lock:
        _threads.add(t)
    t.start()
    return t


_threads: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _wait_for_builds() -> None:
    """At exit, give running index builds up to :data:`EXIT_WAIT_S` in all, then go.

    The builds are daemon threads: a process never hangs on one (an index of a
    huge stream takes seconds); one cut short leaves only a partial file, which
    the next save removes.
    """
    deadline = time.monotonic() + EXIT_WAIT_S
    for t in list(_threads):
        t.join(max(0.0, deadline - time.monotonic()))


def _reset_in_child() -> None:
    global _building_lock
    _building_lock = threading.Lock()
    _building.clear()  # the parent's build threads do not run here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


__all__ = ["EXIT_WAIT_S", "start_index_build"]
