"""Plain files: ``os.preadv`` reads, a read-only map for leased gathers, cold-cache hints.

Every read is checked before (``fstat`` of the open descriptor) and after
(:meth:`ByteSource.check_read`), so a rewrite during a ``pread`` is a
:class:`~nilazyview.StaleFileError`, never the new bytes under the old header;
memory-map gathers run under a read lease (:mod:`nilazyview.sources.lease`), so a
truncation cannot kill the process with ``SIGBUS``.
"""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import replace

import numpy as np

from ..core.plan import PLAIN_FILE, ReadPlan, run_offsets
from ..errors import ImageFileError
from . import coldread
from .base import ByteSource, FileIdentity, stale_error
from .lease import Lease

_MAX_READ = 1 << 30  # bytes per syscall (Linux caps a read near 2 GiB)


class FileSource(ByteSource):
    """An uncompressed file read with ``os.pread`` (no shared file position)."""

    heuristic = PLAIN_FILE
    reads_patterns = True

    def __init__(self, path, identity=None):
        super().__init__(path, identity)
        self._map: mmap.mmap | None = None
        self._lease: Lease | None = None

    def _open(self) -> int:
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        return os.open(self.path, flags)  # O_NONBLOCK: a FIFO put in its place never hangs

    def _close(self, fd: int) -> None:
        self._lease = None
        m, self._map = self._map, None
        if m is not None:
            try:
                m.close()
            except BufferError:  # arrays still view it; the GC unmaps later
                pass
        os.close(fd)

    def check_fresh(self) -> None:
        fd, ident = self._handle, self.identity
        if fd is None or ident is None:
            return
        st = os.fstat(fd)  # the open file itself: cheap, and right even if renamed over
        if st.st_size != ident.size or st.st_mtime_ns != ident.mtime_ns:
            now = FileIdentity(st.st_size, st.st_mtime_ns, ident.inode, ident.device)
            raise stale_error(self.path, ident, now, ident.differences(now, portable=True))

    def begin_gather(self) -> bool:
        """Take the read lease, then check the file still backs the whole map."""
        lease = self._lease
        if lease is None:
            fd = self.handle()
            with self._lock:
                if self._lease is None:
                    self._lease = Lease(fd)
                lease = self._lease
        if not lease.acquire():
            return False
        try:  # no truncation can start from here until end_gather
            self.check_fresh()
            m = self._map
            if m is not None and os.fstat(lease.fd).st_size < len(m):
                raise self._short(0, len(m), os.fstat(lease.fd).st_size)
        except BaseException:
            lease.release()
            raise
        return True

    def end_gather(self) -> None:
        lease = self._lease
        if lease is not None:
            lease.release()

    def _verify_open(self, fd: int) -> None:
        st = os.fstat(fd)  # exactly the file read from now on
        if not stat.S_ISREG(st.st_mode):
            raise ImageFileError(f"{self.path}: not a regular file")
        ident = self.identity
        if ident is None:
            return
        now = FileIdentity(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
        changed = ident.differences(now, self.portable)
        if changed:
            raise stale_error(self.path, ident, now, changed)

    def read_into(self, offset: int, out: memoryview) -> None:
        fd = self._handle if self._handle is not None else self.handle()
        want = len(out)
        if want <= _MAX_READ:  # one call, as a rule (a short read falls through to the loop)
            done = os.preadv(fd, [out], offset)
        else:
            done = 0
        while done < want:
            n = os.preadv(fd, [out[done : done + _MAX_READ]], offset + done)
            if n == 0:
                raise self._short(offset, want, done)
            done += n

    def read_runs(self, offsets: np.ndarray, length: int, out: memoryview) -> None:
        # many runs not in the page cache: kernel hints and a thread pool (coldread)
        fd = self._handle if self._handle is not None else self.handle()
        if not coldread.read_runs_cold(fd, offsets, length, out, self._short):
            super().read_runs(offsets, length, out)

    def prepare(self, plan: ReadPlan) -> tuple[ReadPlan, ByteSource]:
        """A memory-map gather of many runs not in the page cache becomes hinted ``pread``s."""
        if plan.strategy != "mmap" or self.gather_is_warm(
            plan.n_runs, *coldread.probe_offsets(plan.layout, plan.box)
        ):
            return plan, self
        return self.cold_plan(plan), self

    def gather_is_warm(self, n_runs: int, first: int, last: int) -> bool:
        if n_runs < coldread.MIN_RUNS:
            return True
        fd = self._handle if self._handle is not None else self.handle()
        return not coldread.is_cold(fd, (first, last))

    def cold_plan(self, plan: ReadPlan) -> ReadPlan:
        if plan.n_runs > coldread.MAX_PREAD_RUNS:
            return plan  # runs this dense: the kernel's own readahead does best
        # hint now: the probe itself starts reading its pages, so the next probe may pass
        fd = self._handle if self._handle is not None else self.handle()
        coldread.advise(fd, *run_offsets(plan.layout, plan.box))
        return replace(plan, strategy="pread")

    def read_bytes(self, offset: int, n: int) -> bytes:
        return os.pread(self.handle(), n, offset)

    def mapping(self) -> mmap.mmap:
        """A read-only memory map of the whole file (never copy-on-write)."""
        fd = self.handle()
        if self._map is None:
            with self._lock:
                if self._map is None:
                    self._map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        return self._map
