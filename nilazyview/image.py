"""Image: a proxy or in-memory array with its affine and header (BIAP1)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from .array.nibabel import NilazyviewDataobj, nifti_image, read_as
from .array.protocol import LazyArray
from .core.header import Header
from .core.plan import ReadPlan
from .errors import DirtyImageError, ImageFileError, StaleFileError, require
from .slicecopy import SliceCopy
from .sources import FileIdentity

if TYPE_CHECKING:  # optional dependencies, never imported at run time here
    import dask.array
    import nibabel
    from numpy.typing import ArrayLike, DTypeLike

#: Opens an image's file again from its name (:func:`nilazyview.load`); pickled by reference.
Reopen = Callable[[str], "Image"]

_PICKLED_EXTENSION_BYTES = 1024


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass(frozen=True)
class Snapshot:
    """What defined the files at load: digests of header, affine and extensions, identities.

    Digests, not copies: an extension can be megabytes, and snapshots travel in pickles.
    """

    header: bytes
    affine: bytes
    extensions: bytes
    identity: dict[str, FileIdentity]

    @classmethod
    def take(cls, header: Header, affine: np.ndarray, identity: dict[str, FileIdentity]):
        return cls(*state_digests(header, affine), dict(identity))


def state_digests(header: Header | None, affine: np.ndarray) -> tuple[bytes, bytes, bytes]:
    """Digests of the header fields, the affine and the extensions, as they are now."""
    if header is None:
        return b"", _digest(np.asarray(affine, np.float64).tobytes()), b""
    exts = b"".join(e.digest() for e in header.extensions)
    return (
        _digest(bytes(header)),
        _digest(np.ascontiguousarray(affine, np.float64).tobytes()),
        _digest(exts),
    )


def _without_extensions(header: Header | None) -> Header | None:
    """A copy of ``header`` for pickling: fields only (extensions travel on their own)."""
    if header is None:
        return None
    out = header.copy()
    out.extensions = []
    return out


#: Time points a default dask chunk of whole volumes holds at least (if the image has them).
MIN_TIME_CHUNK = 4
#: Bytes of a default dask chunk (dask's own ``array.chunk-size``).
CHUNK_BYTES = 128 * 2**20


def default_chunks(shape: tuple[int, ...], itemsize: int, target: int = CHUNK_BYTES) -> tuple:
    """Dask chunks that suit per-volume work and reductions over time (see README.md).

    Up to 3D: whole along all axes but the last (slowest on disk), split to
    about ``target`` bytes. 4D and more: whole volumes (no rechunk for
    per-volume work), as many time points (the last axis) as fit in
    ``target`` but at least :data:`MIN_TIME_CHUNK` while that stays within 4x
    ``target`` (fewer partial results in a reduction over time); volumes larger
    than ``target`` are split along the third axis, 16 time points a chunk.
    Axes between the fourth and the last get chunks of 1.
    """
    if not shape:
        return ()
    if len(shape) < 4:
        plane = max(1, int(np.prod(shape[:-1], dtype=np.int64)) * itemsize)
        return (*shape[:-1], max(1, min(shape[-1], target // plane)))
    x, y, z, t = shape[0], shape[1], shape[2], shape[-1]
    middle = (1,) * (len(shape) - 4)
    volume = max(1, x * y * z * itemsize)
    if volume <= target:
        times = max(min(t, MIN_TIME_CHUNK), min(t, target // volume))
        return (x, y, z, *middle, times)
    times = min(t, 16)
    return (x, y, max(1, min(z, target // max(1, x * y * itemsize * times))), *middle, times)


class Image:
    """A neuroimaging volume: data (proxied or in memory), affine and header.

    Parameters
    ----------
    data : array_like
        Voxel array for an image made in memory.
    affine : (4, 4) array_like, optional
        Voxel-to-world transform; identity by default.
    header : Header, optional
        Header to carry into saved files.

    Notes
    -----
    Use :func:`nilazyview.load` for images from files (``img.proxy`` is then the
    :class:`~nilazyview.array.LazyArray` reading them). ``is_proxy`` is True
    while no voxel data is held; ``dirty`` is True when the in-memory data may
    differ from the file (set by :meth:`get_data`, clearable by the user).
    The repr shows the viewer badge's state: proxy, in memory or dirty (an
    image without a file is "in memory" whatever ``dirty`` says).
    """

    def __init__(
        self, data: ArrayLike, affine: ArrayLike | None = None, header: Header | None = None
    ) -> None:
        self._data: np.ndarray | None = np.asanyarray(data)
        self.proxy: LazyArray | None = None
        self.affine = np.eye(4) if affine is None else np.array(affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, not {self.affine.shape}")
        self.header = header
        self.filename: str | None = None
        self.files: dict[str, str] = {}
        self.snapshot: Snapshot | None = None
        self.dirty = True
        self._reopen: Reopen | None = None

    @classmethod
    def from_proxy(
        cls,
        proxy: LazyArray,
        affine: np.ndarray,
        header: Header | None,
        filename: str | None,
        files: dict[str, str],
        identity: dict[str, FileIdentity],
        reopen: Reopen | None = None,
    ) -> Image:
        """A proxied image of a file (made by :func:`nilazyview.load` and the adapters).

        ``reopen(filename)`` opens the file again; with it, a clean image pickles
        as "reopen this file" plus its snapshot, never its proxy.
        """
        img = cls.__new__(cls)
        img._data = None
        img.proxy = proxy
        img.affine = np.array(affine, dtype=np.float64)
        img.header = header
        img.filename = filename
        img.files = dict(files)
        img.snapshot = Snapshot.take(header, img.affine, identity)
        img.dirty = False
        img._reopen = reopen
        return img

    @property
    def slicecopy(self) -> SliceCopy:
        """``img.slicecopy[index]``: a new array, reading only the bytes it needs."""
        return SliceCopy(self)

    # --- array facts -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape (known without reading data)."""
        return tuple(self._data.shape) if self._data is not None else self.proxy.shape

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        """Type of the data :meth:`get_data` returns (scaled, native order)."""
        return self._data.dtype if self._data is not None else self.proxy.dtype

    @property
    def is_proxy(self) -> bool:
        """True while the voxel data has not been loaded into memory."""
        return self._data is None

    @property
    def in_memory(self) -> bool:
        """True when the array is held in memory (``not is_proxy``)."""
        return self._data is not None

    # --- data --------------------------------------------------------------------
    def get_data(self) -> np.ndarray:
        """The whole (scaled) array, loaded once and cached.

        The image becomes dirty: the caller may now change the array.
        """
        if self._data is None:
            self._data = self.proxy.read()
        self.dirty = True
        return self._data

    @property
    def data(self) -> np.ndarray:
        """Same as :meth:`get_data`."""
        return self.get_data()

    def get_fdata(
        self, caching: Literal["fill", "unchanged"] = "fill", dtype: DTypeLike = np.float64
    ) -> np.ndarray:
        """The whole array as floating point, as nibabel's ``get_fdata`` (same arguments).

        Parameters
        ----------
        caching : {"fill", "unchanged"}
            "fill" keeps the array as the image's data (as :meth:`get_data`);
            "unchanged" leaves a proxied image proxied.
        dtype : floating or complex type
            float64 by default; other types raise ``ValueError`` (as nibabel).
            A file's scaling is applied in this type, so the values equal
            nibabel's for the same file.

        Notes
        -----
        The image holds one array. A proxied image reads it in ``dtype`` and,
        with ``caching="fill"``, keeps it: from then on :meth:`get_data`
        returns that array (``img.dtype`` is ``dtype``). An image already in
        memory gives its array when the type matches, else a converted copy
        (not kept). ``dirty`` is set whenever the array returned is the kept one.
        """
        dtype = np.dtype(dtype)
        if not issubclass(dtype.type, np.inexact):
            raise ValueError(f"{dtype} should be floating point type")
        if caching not in ("fill", "unchanged"):
            raise ValueError('caching value should be "fill" or "unchanged"')
        if self._data is None:
            arr = read_as(self.proxy, dtype)
            if caching == "unchanged":
                return arr
            self._data = arr
        elif self._data.dtype != dtype:
            return self._data.astype(dtype)
        self.dirty = True
        return self._data

    def get_data_dtype(self) -> np.dtype:
        """The stored type: the file's (as nibabel's); an image made in memory: its array's."""
        if self.proxy is not None:
            return self.proxy.stored_dtype
        return self._data.dtype

    def get_filename(self) -> str | None:
        """The image's data file, as nibabel's (a pair's ``.img``), or None."""
        return self.files.get("image") or self.filename

    @property
    def dataobj(self) -> np.ndarray | NilazyviewDataobj:
        """nibabel's ``dataobj``: the array once in memory, else a lazy view of the file.

        The view has ``shape``, ``ndim``, ``dtype`` (stored, as nibabel's
        ``ArrayProxy``), ``slope``, ``inter``, basic slicing and ``np.asarray``
        (values); reading through it never loads the image or makes it dirty.
        """
        return self._data if self._data is not None else NilazyviewDataobj(self.proxy)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "np.asarray(img) would read the whole image: call img.get_data() (cached, marks "
            "the image dirty) or img.get_fdata(), or read a part with img.slicecopy[...]"
        )

    @property
    def cached_data(self) -> np.ndarray | None:
        """The array held in memory, or None; never loads and leaves ``dirty`` alone."""
        return self._data

    def read_plan(self, index=...) -> ReadPlan | None:
        """The byte plan of ``slicecopy[index]`` on the file, or None (no file, or no plan)."""
        return None if self.proxy is None else self.proxy.plan(index)

    def attach(self, other: Image) -> None:
        """Refer to ``other``'s file from now on: its proxy, header, affine and snapshot.

        In-memory data and ``dirty`` stay as they are. :func:`nilazyview.save`
        calls this after saving an image over its own file.
        """
        if other.proxy is None:
            raise ImageFileError("can only attach to an image loaded from a file")
        self.proxy = other.proxy
        self.header = other.header
        self.affine = other.affine.copy()
        self.filename = other.filename
        self.files = dict(other.files)
        self.snapshot = other.snapshot
        self._reopen = other._reopen

    def uncache(self, force: bool = False) -> None:
        """Drop the in-memory array and go back to reading from the file.

        Raises :class:`DirtyImageError` if the image is dirty, unless ``force``.
        """
        if self.proxy is None:
            raise ImageFileError("this image was made in memory: there is no file to go back to")
        if self.dirty and not force:
            raise DirtyImageError(
                "image is dirty: its array may hold changes the file does not. To keep them, "
                "nlv.save(img, img.filename) first, then set img.dirty = False; "
                "uncache(force=True) discards them"
            )
        self._data = None
        self.dirty = False

    def _reload(self, reopen: Reopen, filename: str, snapshot: Snapshot, dirty: bool) -> None:
        fresh = reopen(filename)
        for key, ident in snapshot.identity.items():
            now = fresh.snapshot.identity.get(key)
            if ident is None or now is None or ident.differences(now, portable=True):
                raise StaleFileError(
                    f"{filename}: file changed on disk since the image was pickled "
                    "(size or mtime differ)"
                )
        self.__dict__.update(fresh.__dict__)
        self.snapshot, self.dirty = snapshot, dirty

    def to_dask(self, chunks: int | str | tuple | dict | None = None) -> dask.array.Array:
        """A ``dask.array`` whose tasks read their blocks through the proxy.

        Parameters
        ----------
        chunks : optional
            Dask chunk spec; default :func:`default_chunks`: whole volumes,
            at least 4 time points, about 128 MiB (volumes over 128 MiB: slabs
            of the third axis, 16 time points); measured in README.md.

        Notes
        -----
        The graph holds the proxy (a few hundred bytes pickled), not the data;
        workers open the file by its path, so it must be visible to them at the
        same path (a shared filesystem). An in-memory image gives its array.
        """
        da = require("dask.array", "dask", "to_dask()")
        normalize_chunks = da.core.normalize_chunks

        if chunks is None:
            chunks = default_chunks(self.shape, self.dtype.itemsize)
        if self._data is not None or self.proxy is None:
            return da.from_array(self._data, chunks=chunks)
        meta = np.empty((0,) * self.ndim, self.dtype)
        # the chunks belong in the name: equal names with other chunks would clash in a graph
        chunks = normalize_chunks(chunks, self.shape, dtype=self.dtype)
        name = (
            "nilazyview-"
            + hashlib.blake2b(
                repr((self.proxy.name, self.snapshot, chunks)).encode(), digest_size=8
            ).hexdigest()
        )
        return da.from_array(
            self.proxy, chunks=chunks, asarray=False, fancy=False, lock=False, meta=meta, name=name
        )

    def to_nibabel(self) -> nibabel.Nifti1Image:
        """A nibabel NIfTI image of this image: proxy-backed while this is a proxy (needs nibabel).

        Reading its ``dataobj`` reads only the slab asked for, through this image's
        proxy. It keeps the stored type and scaling (``get_data_dtype()``,
        ``dataobj.slope``), NIfTI header fields, extensions, the affine and the
        file name (``get_filename()``), so ``nib.save`` writes the stored values
        and scale factors as they are. An in-memory image hands over its array
        (not a copy), whose type nibabel then saves.
        """
        hdr = self.header
        block = None if hdr is None else bytes(hdr)
        kind = None if hdr is None else hdr.kind
        exts = [] if hdr is None else [(e.code, e.content) for e in hdr.extensions]
        pair = self.files.get("header", self.filename) != self.files.get("image", self.filename)
        return nifti_image(
            self.dataobj, self.dtype, self.shape, self.affine, block, kind,
            self.filename, pair, exts,
        )  # fmt: skip

    # --- identity ----------------------------------------------------------------
    @property
    def state(self) -> str:
        """``"proxy"``, ``"in memory"`` or ``"dirty"`` (the viewer's badge).

        An image made in memory has no file to differ from: it is ``"in memory"``.
        """
        if self.is_proxy:
            return "proxy"
        return "dirty" if self.dirty and self.filename else "in memory"

    def __repr__(self) -> str:
        src = f" {self.filename!r}" if self.filename else ""
        return f"<nilazyview.Image{src} shape={self.shape} dtype={self.dtype} ({self.state})>"

    def __getstate__(self) -> dict:
        if (
            self._data is None
            and self._reopen is not None
            and self.filename is not None
            and self.snapshot is not None
            and state_digests(self.header, self.affine)
            == (self.snapshot.header, self.snapshot.affine, self.snapshot.extensions)
        ):
            # clean proxy: the file itself holds everything; reopen it on the other side
            return {"reload": (self._reopen, self.filename, self.snapshot, self.dirty)}
        exts = self.header.extensions if self.header is not None else []
        small = sum(len(e.content) for e in exts) <= _PICKLED_EXTENSION_BYTES
        keep_data = self._data is not None and (self.dirty or self.proxy is None)
        # large extensions are re-read from the file on the other side, but only if unchanged
        exts_as_loaded = (
            self._reopen is not None
            and self.filename is not None
            and self.snapshot is not None
            and state_digests(self.header, self.affine)[2] == self.snapshot.extensions
        )
        return {
            "data": self._data if keep_data else None,
            "proxy": self.proxy,
            "affine": self.affine,
            "header": _without_extensions(self.header),
            "extensions": exts if small or keep_data or not exts_as_loaded else None,
            "filename": self.filename,
            "files": self.files,
            "snapshot": self.snapshot,
            "dirty": self.dirty,
            "reopen": self._reopen,
        }

    def __setstate__(self, state: dict) -> None:
        if "reload" in state:
            self._reload(*state["reload"])
            return
        self._data = state["data"]
        self.proxy = state["proxy"]
        self.affine = state["affine"]
        self.header = state["header"]
        self._reopen = state["reopen"]
        if self.header is not None:
            exts = state["extensions"]
            if exts is None:  # too large to pickle: as in the file, if it is unchanged
                exts = self._reopen(state["filename"]).header.extensions
                found = _digest(b"".join(e.digest() for e in exts))
                if state["snapshot"] is not None and found != state["snapshot"].extensions:
                    raise StaleFileError(
                        f"{state['filename']}: header extensions changed on disk since the "
                        "image was pickled"
                    )
            self.header.extensions = list(exts)
        self.filename = state["filename"]
        self.files = state["files"]
        self.snapshot = state["snapshot"]
        self.dirty = state["dirty"]
