"""The seekable gzip reader over a persisted index: ``indexed_gzip`` plus :mod:`.gzindex`.

:class:`IndexedStream` looks a cached index up on its first deep read and saves
it when it has grown; :func:`build_and_save` builds one in the background. Both
read a file object when given one (a checked descriptor, or a remote file),
never the path again. The measurements behind the spacing and buffers are in
:mod:`nilazyview.sources.gzindex`.
"""

from __future__ import annotations

import logging
import os
import threading

from ..fs import progress
from . import gzindex

log = logging.getLogger("nilazyview.gzindex")


def new_indexed_file(path: str, fileobj=None):
    """A raw ``_IndexedGzipFile`` with the index's spacing and buffers (no readahead).

    With ``fileobj`` (a :class:`~nilazyview.sources.checked.CheckedFile`) it reads
    the descriptor the source opened and checked, never the path again: a file
    renamed over it or cut short cannot reach the decompressor. Without, it
    reopens the path for each read (``drop_handles=True``): indexed_gzip 1.10
    leaks about 9 KB per file opened with a kept handle.
    """
    from indexed_gzip.indexed_gzip import _IndexedGzipFile  # the optional 'gz' extra

    # a file object (a checked descriptor, or a remote file) is read as it is, never reopened
    where = (
        {"fileobj": fileobj, "drop_handles": False}
        if fileobj is not None
        else {"filename": path, "drop_handles": True}
    )
    return _IndexedGzipFile(
        **where,
        spacing=gzindex.spacing(),
        window_size=gzindex.WINDOW_SIZE,
        readbuf_size=gzindex.READBUF_SIZE,
    )


class IndexedStream:
    """Seekable gzip reader: ``indexed_gzip`` with a persisted index.

    Offers ``seek``/``readinto``/``close`` like a file (a remote stream passes
    its ``fileobj`` and ``key``, URL + validator, instead of a path). The cached index is looked
    up on the first read past the first seek point (opening a file to parse its
    header costs nothing extra); :meth:`after_read` saves the index when it grew.
    """

    def __init__(self, path: str, fileobj=None, key: gzindex.IndexKey | None = None):
        self.path = path
        self.fileobj = fileobj  # closed with the stream (closing twice is harmless)
        self._igz = new_indexed_file(path, fileobj)
        self._spacing = gzindex.spacing()
        self._key: gzindex.IndexKey | None = key
        self._looked_up = False
        self.imported = False
        self._saved_points = 0
        self._reached = 0  # uncompressed bytes decompressed (or indexed) so far

    @property
    def npoints(self) -> int:
        return int(self._igz.npoints)

    def _lookup(self) -> None:
        self._looked_up = True
        if gzindex.max_cache_bytes() <= 0:
            return
        if self._index_key() is not None and gzindex.load_index(self._igz, self._key):
            self.imported = True
            self._saved_points = self.npoints

    def _index_key(self) -> gzindex.IndexKey | None:
        """The file's index key, read once (None if the file cannot be read for it)."""
        if self._key is None:
            try:
                self._key = gzindex.IndexKey.of(self.path, self._fd())
            except OSError:
                return None
        return self._key

    def _fd(self) -> int | None:
        return getattr(self.fileobj, "fd", None)

    def seek(self, offset: int) -> int:
        if not self._looked_up and offset >= self._spacing:
            self._lookup()
        if not self.imported and offset - self._reached > gzindex.PROGRESS_STEP:
            self._seek_with_progress(offset)
        self._reached = max(self._reached, offset)
        return self._igz.seek(offset)

    def _seek_with_progress(self, offset: int) -> None:
        """Decompress up to ``offset`` in steps, with a progress bar if it takes over 1 s."""
        start = self._reached
        name = os.path.basename(self.path)
        with progress.bar(offset - start, f"indexing {name}") as shown:
            for pos in range(start + gzindex.PROGRESS_STEP, offset, gzindex.PROGRESS_STEP):
                self._igz.seek(pos)
                self._reached = pos
                shown.update(gzindex.PROGRESS_STEP)

    def readinto(self, buf) -> int:
        return self._igz.readinto(buf)

    def after_read(self, force: bool = False) -> None:
        """Save the index if it grew enough since it was imported or last saved."""
        n = self.npoints
        grown = n - self._saved_points
        if grown <= 0 or not gzindex.persisting():
            return
        if not force and (grown < gzindex.MIN_NEW_POINTS or grown < self._saved_points // 4):
            return
        if n < gzindex.MIN_NEW_POINTS:
            return
        if self._index_key() is not None and gzindex.save_index(self._igz, self._key):
            self._saved_points = n

    def close(self) -> None:
        try:
            self.after_read(force=True)
        except Exception as exc:  # a cache problem never breaks closing
            log.debug("could not save gzip index of %s: %s", self.path, exc)
        self._igz.close()
        if self.fileobj is not None:
            self.fileobj.close()


def build_and_save(path: str, end: int, key: gzindex.IndexKey | None = None, fileobj=None) -> bool:
    """Build the index of ``path`` up to uncompressed byte ``end`` and save it.

    Meant for a background thread (``zran_seek`` releases the GIL); lowers its
    own thread's priority first where the platform allows. ``fileobj``: read
    it instead of the path (the key must then be of the same descriptor).
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass
    try:
        key = key or gzindex.IndexKey.of(path, getattr(fileobj, "fd", None))
        igz = new_indexed_file(path, fileobj)
        try:
            igz.seek(max(0, end - 1))
            if igz.npoints < gzindex.MIN_NEW_POINTS:
                return False
            return gzindex.save_index(igz, key)
        finally:
            igz.close()
    except Exception as exc:  # a corrupt stream is reported by the reader, not here
        log.debug("background index build of %s failed: %s", path, exc)
        return False


__all__ = ["IndexedStream", "build_and_save", "new_indexed_file"]
