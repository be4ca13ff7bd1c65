"""The generic writer: an image's files in one atomic group, voxels streamed in slabs.

Formats only say what to write (:class:`~nilazyview.formats.codec.Encoded`);
this module writes it: each file through :func:`~nilazyview.fs.atomic.atomic_write`
(nested, so every file is complete and synced before any replaces its old
version), gzip on the way when asked, and the voxel data either as the source's
stored bytes or as values converted slab by slab, at most one slab copied at a time.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from typing import BinaryIO

import numpy as np

from ..array.protocol import LazyArray
from ..core.slabs import slabs
from ..fs import progress
from ..fs.atomic import atomic_write
from .codec import Encoded, ToWrite

CHUNK_BYTES = 32 * 2**20


@contextlib.contextmanager
def _maybe_gzip(f: BinaryIO, gz: bool, level: int):
    if not gz:
        yield f
        return
    with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=level, mtime=0) as g:
        yield g


class _Counted:
    """A file whose writes advance a progress bar."""

    def __init__(self, f: BinaryIO, shown) -> None:
        self._f, self._shown = f, shown

    def write(self, data) -> None:
        self._f.write(data)
        self._shown.update(memoryview(data).nbytes)


def _write_array(out: BinaryIO, arr: np.ndarray) -> None:
    """Write ``arr`` in Fortran order, at most one chunk copied at a time."""
    if arr.flags.f_contiguous:
        flat = memoryview(arr.reshape(-1, order="F").view(np.uint8))
        for start in range(0, len(flat), CHUNK_BYTES):
            out.write(flat[start : start + CHUNK_BYTES])
        return
    for idx in slabs(arr.shape, arr.dtype.itemsize, CHUNK_BYTES):
        out.write(np.asfortranarray(arr[idx]).tobytes(order="F"))


def _copy_stored(out: BinaryIO, array: LazyArray) -> None:
    """Copy the stored bytes of a byte-backed array, chunk by chunk."""
    for chunk in array.stored_chunks(CHUNK_BYTES):
        out.write(chunk)


def _write_values(out: BinaryIO, read, shape: tuple[int, ...], enc: Encoded, itemsize: int):
    """Write ``read(index)`` slab by slab as ``enc.dtype`` in Fortran order."""
    for idx in slabs(shape, max(itemsize, enc.dtype.itemsize), CHUNK_BYTES):
        slab = np.asarray(read(idx))
        if enc.check is not None:
            enc.check(slab)
        slab = slab.astype(enc.dtype, copy=False)
        out.write(np.asfortranarray(slab).tobytes(order="F"))


def _write_data(out: BinaryIO, item: ToWrite, enc: Encoded) -> None:
    data = item.data
    if data is not None:
        if data.dtype == enc.dtype and enc.check is None:
            _write_array(out, data)
        else:
            _write_values(out, data.__getitem__, data.shape, enc, data.dtype.itemsize)
    elif enc.stored:
        _copy_stored(out, item.array)
    else:
        _write_values(out, item.array.read, item.shape, enc, item.dtype.itemsize)


def write(item: ToWrite, enc: Encoded, compresslevel: int, file_mode: int | None) -> None:
    """Write the files of ``enc`` for ``item`` as one atomic group (see module docs).

    Writing the voxels shows a progress bar when it takes over a second.
    """
    nbytes = int(np.prod(item.shape, dtype=np.int64)) * enc.dtype.itemsize
    with contextlib.ExitStack() as group:
        for spec in enc.files:
            f = group.enter_context(atomic_write(spec.path, file_mode, spec.sync_folder))
            with _maybe_gzip(f, spec.gzip, compresslevel) as g:
                g.write(spec.head)
                if spec.data:
                    desc = f"saving {os.path.basename(spec.path)}"
                    with progress.bar(nbytes, desc) as shown:
                        _write_data(_Counted(g, shown), item, enc)
                g.write(spec.tail)
