"""``save``: write NIfTI atomically, streaming proxied data in bounded chunks."""

from __future__ import annotations

import contextlib
import gzip
import os
import warnings
from typing import BinaryIO

import numpy as np

from ..formats import mgh, nifti, spm
from ..image import Image
from ..proxy import ArrayProxy
from ..scaling import Scaling
from .atomic import atomic_write
from .paths import names_for_writing, split_ext

CHUNK_BYTES = 32 * 2**20


@contextlib.contextmanager
def _maybe_gzip(f: BinaryIO, gz: bool, level: int):
    if not gz:
        yield f
        return
    with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=level, mtime=0) as g:
        yield g


def _storable(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype == np.float16:
        return arr.astype(np.float32)
    return arr


def _write_array(out: BinaryIO, arr: np.ndarray) -> None:
    """Write ``arr`` in Fortran order, at most one chunk copied at a time."""
    if arr.flags.f_contiguous:
        out.write(memoryview(arr.reshape(-1, order="F").view(np.uint8)))
        return
    if arr.ndim == 0:
        out.write(arr.tobytes())
        return
    per = max(1, arr.nbytes // max(1, arr.shape[-1]))
    step = max(1, CHUNK_BYTES // per)
    for i in range(0, arr.shape[-1], step):
        out.write(np.asfortranarray(arr[..., i : i + step]).tobytes(order="F"))


def _copy_stored(out: BinaryIO, img: Image) -> None:
    """Copy the stored bytes of a proxied image, chunk by chunk."""
    layout = img.proxy.layout
    buf = bytearray(min(CHUNK_BYTES, layout.nbytes))
    view = memoryview(buf)
    done = 0
    while done < layout.nbytes:
        n = min(len(buf), layout.nbytes - done)
        img.proxy.check_fresh()  # never the new bytes under the old header
        img.proxy.source.read_into(layout.offset + done, view[:n])
        out.write(view[:n])
        done += n


def _write_proxy(out: BinaryIO, proxy) -> None:
    """Write a non-byte proxy's (scaled) values in Fortran order, slab by slab."""
    if not proxy.shape:
        out.write(_storable(proxy.read()).tobytes())
        return
    per = max(1, int(np.prod(proxy.shape[:-1], dtype=np.int64)) * proxy.dtype.itemsize)
    step = max(1, CHUNK_BYTES // per)
    for i in range(0, proxy.shape[-1], step):
        slab = _storable(np.asarray(proxy.read((..., slice(i, i + step)))))
        out.write(np.asfortranarray(slab).tobytes(order="F"))


def save(
    img: Image, path: str | os.PathLike, compresslevel: int = 1, file_mode: int | None = None
) -> str:
    """Save ``img`` as NIfTI (or MGH), atomically.

    In-memory data is written as it is (unscaled); a proxied image's stored
    bytes and scaling are copied without loading the array. NIfTI-2 is written
    only when a dimension does not fit NIfTI-1. Saving over the file the image
    came from is safe, and the image then refers to the new file (see
    :meth:`Image.attach`); ``dirty`` is left as it was.

    Parameters
    ----------
    img : Image
        The image to write, proxied or in memory.
    path : str or path-like
        Target; the extension picks the layout: ``.nii`` (single file),
        ``.hdr``/``.img`` (pair), either with ``.gz``; ``.mgh``/``.mgz`` write
        FreeSurfer MGH (:func:`nilazyview.formats.mgh.save`).
    compresslevel : int
        gzip level for ``.gz``/``.mgz`` targets (1 fastest, 9 smallest).
    file_mode : int, optional
        Permission bits of the new files; default those of the file replaced,
        else 0o666 less the umask.

    Returns
    -------
    str
        The path written (the header file for a pair).
    """
    path = os.fspath(path)
    written = _save(img, path, compresslevel, file_mode)
    if os.path.realpath(written) in _loaded_from(img):
        _reattach(img, written)
    return written


def _loaded_from(img: Image) -> set[str]:
    return {os.path.realpath(f) for k, f in img.files.items() if k != "mat"}


def _reattach(img: Image, written: str) -> None:
    """After a save over the image's own file: make the image describe the new file.

    Its proxy, header, affine (as stored), file names and snapshot become those of
    the file written, so reads after ``uncache``, ``as_file`` and pickles refer to
    it rather than to the replaced version. In-memory data and ``dirty`` stay.
    """
    from .load import load

    try:
        fresh = load(written)
    except Exception as exc:  # saved, but not readable back: keep the old attachment
        warnings.warn(
            f"saved {written}, but could not reopen it ({exc}); the image still refers "
            "to the version it was loaded from",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    img.attach(fresh)


def _save(img: Image, path: str, compresslevel: int, file_mode: int | None) -> str:
    if split_ext(path)[1] in (".mgh", ".mgz"):
        return mgh.save(img, path, compresslevel, file_mode)
    names = names_for_writing(path)
    # stored bytes copy as they are only from a Fortran-order byte proxy
    stored = (
        not img.in_memory and isinstance(img.proxy, ArrayProxy) and img.proxy.layout.order == "F"
    )
    if img.in_memory:
        arr = _storable(np.asanyarray(img._data))
        dtype, scaling = arr.dtype, Scaling()
    elif stored:
        arr = None
        dtype, scaling = img.proxy.layout.dtype, img.proxy.scaling
    else:
        arr = None
        dtype, scaling = _storable(np.empty(0, img.proxy.dtype)).dtype, Scaling()
    hdr = img.header
    if hdr is not None and hdr.kind not in ("nifti1", "nifti2", "analyze"):
        hdr = None  # another format's header: nothing carries into NIfTI
    src_affine = None
    if hdr is not None and hdr.kind != "analyze":
        with contextlib.suppress(Exception):
            src_affine = nifti.affine_of(hdr, nifti.shape_of(hdr, ""))
    head, _ = nifti.build_header(
        hdr, img.shape, dtype, img.affine, scaling, names.single, src_affine
    )

    def write_data(out: BinaryIO) -> None:
        if arr is not None:
            _write_array(out, arr)
        elif stored:
            _copy_stored(out, img)
        else:
            _write_proxy(out, img.proxy)

    if names.single:
        with (
            atomic_write(names.image, file_mode) as f,
            _maybe_gzip(f, split_ext(path)[2], compresslevel) as g,
        ):
            g.write(head)
            write_data(g)
    else:
        gz = split_ext(names.image)[2]
        # nested atomic writes commit as one group: every file (image, header, SPM .mat)
        # is complete and synced before any replaces its old version, and a failure puts
        # back what was replaced; the renames follow each other with no fsync between (a
        # kill can still land there)
        same_folder = os.path.dirname(os.path.abspath(names.image)) == os.path.dirname(
            os.path.abspath(names.header)
        )
        with atomic_write(names.image, file_mode) as f:
            with _maybe_gzip(f, gz, compresslevel) as g:
                write_data(g)
            with (
                atomic_write(names.header, file_mode, sync_folder=not same_folder) as fh,
                _maybe_gzip(fh, gz, compresslevel) as g,
            ):
                g.write(head)
            if "mat" in img.files:  # an SPM image: keep its affine where SPM looks for it
                spm.write_mat_affine(spm.mat_path(names.header), img.affine, file_mode)
    return names.header
