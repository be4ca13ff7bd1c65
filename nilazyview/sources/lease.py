"""Read leases that hold writers off while a memory-map gather runs (Linux).

A file truncated or rewritten in place (``open(path, "wb")``: what ``cp``,
nibabel and most tools do) while a memory-map gather reads it kills the reader
with ``SIGBUS`` (issue 16 saw 7-9 of 10 tight-loop readers die; here both
readers of ``tests/test_hostile_races.py`` and the prefetching viewer died,
rc -7, on main). A read lease (``fcntl(F_SETLEASE, F_RDLCK)``) makes every
``open`` for writing and every ``truncate`` of the file wait until the lease
is released, so a gather run under one, after a size check, cannot fault; the
writer waits for that gather only (milliseconds), never for the life of the
image.

Choice by measurement (512^3 float32, warm page cache, this shared 2-core
machine). A probe script: one lease taken and released ~2.9 us; a raw numpy
first-axis gather 4.4 ms with or without a lease, the same plane read with
``pread`` into an owned buffer (8 MiB pieces: every page is needed) 28.8 ms.
Through nilazyview (``slicecopy``): middle axis 0.08 ms under a lease, 1.5 ms
with ``pread`` runs (memmap 0.06); first axis 1.8 ms under a lease, 38 ms with
``pread`` (memmap 1.8). ``benchmarks/bench_slices.py``, 3 runs interleaved
with main: nilazyview/memmap medians 1.42 / 1.16 / 1.11 (last / middle /
first) against main's 1.40 / 1.12 / 1.07, i.e. the lease (~5 us with the owner
and signal set each time, below) and the check after each read cost 1-4%.

So gathers keep the map under a lease, and fall back to ``pread`` plans (the
bytes land in a buffer nilazyview owns; a short read is a
:class:`~nilazyview.TruncatedDataError`) whenever no lease can be had: the file
is another user's (leases need its owner or ``CAP_LEASE``), open for writing
right now, on a file system without leases (NFS, FUSE), or not on Linux. That
fallback is the price of safety, ~20x on middle and first axes;
``NILAZYVIEW_UNGUARDED_MMAP=1`` gathers without a lease, for files nobody
rewrites (a read-only archive).

The kernel tells a lease holder that a writer waits with a signal (``SIGIO``
by default, whose default action ends the process: a first version that only
switched it to ``SIGURG`` with ``F_SETSIG`` still died of ``SIGIO``, which the
kernel falls back to, because releasing a lease resets both owner and signal).
So before every lease the signal is directed (``F_SETOWN_EX``,
``F_OWNER_TID``) at one idle thread of this module that blocks ``SIGIO`` and
``SIGURG``: it stays pending there, harmless, and no handler of the
application ever sees it. A lease stays shared by
overlapping gathers of one file, except once a break is pending: then new
gathers use ``pread`` so the writer is not starved.
"""

from __future__ import annotations

import errno
import os
import signal
import struct
import sys
import threading

from ..fs.settings import env_flag

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)
F_GETLEASE = getattr(fcntl, "F_GETLEASE", 1025)
F_SETSIG = getattr(fcntl, "F_SETSIG", 10)
F_SETOWN_EX = getattr(fcntl, "F_SETOWN_EX", 15)
F_OWNER_TID = 0
#: The signal a lease break sends (ignored by default, unlike ``SIGIO``).
BREAK_SIGNAL = int(getattr(signal, "SIGURG", 23))
_SUPPORTED = sys.platform.startswith("linux") and fcntl is not None
#: errnos meaning "never for this descriptor" (not the owner, no leases here).
_NEVER = {errno.EACCES, errno.EPERM, errno.EINVAL, errno.ENOSYS, errno.ENOLCK, errno.EBADF}

#: Set to 1 to gather without a lease, as before issue 16: only for files nobody
#: rewrites while they are read (a read-only archive of another user's), where
#: leases are refused and the ``pread`` fallback costs ~20x on middle/first axes.
UNGUARDED_ENV = "NILAZYVIEW_UNGUARDED_MMAP"

#: Counters for tests and QA (per process).
stats: dict[str, int] = {"leases": 0, "refused": 0, "busy": 0}


_sink_tid: int | None = None
_sink_lock = threading.Lock()


def _sink(ready: threading.Event) -> None:
    global _sink_tid
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGIO, BREAK_SIGNAL})
    _sink_tid = threading.get_native_id()
    ready.set()
    threading.Event().wait()  # idle for the life of the process


def sink_tid() -> int:
    """The native id of the thread lease-break signals go to (started on first use)."""
    with _sink_lock:
        if _sink_tid is None:
            ready = threading.Event()
            threading.Thread(
                target=_sink, args=(ready,), name="nilazyview-lease", daemon=True
            ).start()
            ready.wait()
        return _sink_tid  # type: ignore[return-value]


def reset_after_fork() -> None:
    """In a forked child: the parent's signal thread does not exist here."""
    global _sink_tid, _sink_lock
    _sink_tid = None
    _sink_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reset_after_fork)


class Lease:
    """A read lease on one descriptor, shared by the gathers that overlap in time."""

    def __init__(self, fd: int):
        self.fd = fd
        self.usable = _SUPPORTED
        #: ``NILAZYVIEW_UNGUARDED_MMAP=1``: gather without a lease (files nobody rewrites)
        self.unguarded = env_flag(UNGUARDED_ENV)
        self._held = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take (or share) the lease; False when none can be had now."""
        if self.unguarded:
            return True
        with self._lock:
            if not self.usable:
                return False
            try:
                if self._held:
                    # a writer waiting turns our lease to F_UNLCK: let it in, use pread
                    if fcntl.fcntl(self.fd, F_GETLEASE) != fcntl.F_RDLCK:
                        stats["busy"] += 1
                        return False
                    self._held += 1
                    return True
                # every time: releasing a lease resets the owner and the signal
                # (fs/locks.c lease_modify), and the next lease would take the
                # whole process as owner, with SIGIO
                fcntl.fcntl(self.fd, F_SETOWN_EX, struct.pack("ii", F_OWNER_TID, sink_tid()))
                fcntl.fcntl(self.fd, F_SETSIG, BREAK_SIGNAL)
                fcntl.fcntl(self.fd, F_SETLEASE, fcntl.F_RDLCK)
            except OSError as exc:
                if exc.errno in _NEVER:
                    self.usable = False
                    stats["refused"] += 1
                else:  # EAGAIN: open for writing now, or a break pending
                    stats["busy"] += 1
                return False
            self._held = 1
            stats["leases"] += 1
            return True

    def release(self) -> None:
        """Give up one share; the last one releases the lease."""
        if self.unguarded:
            return
        with self._lock:
            if self._held <= 0:
                return  # not held (a caller's mistake): never go negative
            self._held -= 1
            if self._held == 0:
                try:
                    fcntl.fcntl(self.fd, F_SETLEASE, fcntl.F_UNLCK)
                except OSError:
                    pass  # broken by the kernel already (lease-break-time passed)


__all__ = ["BREAK_SIGNAL", "Lease", "reset_after_fork", "sink_tid", "stats"]
