"""nibabel interoperability: wrap any nibabel image, and hand images back to nibabel.

nibabel is imported only when these functions run; nilazyview does not need it.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ImageFileError, UnsupportedFormatError
from .image import Image
from .indexing import canonical_index
from .sources import FileIdentity

if TYPE_CHECKING:
    import nibabel


def _nibabel():
    try:
        import nibabel
    except ImportError:
        raise ImportError("this needs nibabel: pip install nibabel") from None
    return nibabel


class _Named:
    """Stands in for a byte source where only a name is needed (reprs, dask keys)."""

    heuristic = None
    can_mmap = False
    identity = None

    def __init__(self, path: str):
        self.path = path

    def __repr__(self) -> str:
        return f"nibabel({self.path!r})"

    def close(self) -> None:
        pass


class NibabelProxy:
    """Lazy array reading through a nibabel ``dataobj`` (its own proxy slicing).

    Results are new native-order arrays of one dtype (that of a one-voxel read).
    """

    def __init__(self, dataobj, name: str, filename: str | None = None):
        self.dataobj = dataobj
        self.source = _Named(name)
        self.filename = filename
        self._dtype: np.dtype | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        # a file-backed nibabel proxy may hold an open handle: pickle its filename instead
        reopen = self.filename is not None and getattr(self.dataobj, "is_proxy", False)
        return {
            "dataobj": None if reopen else self.dataobj,
            "name": self.source.path,
            "filename": self.filename,
            "dtype": self._dtype,
        }

    def __setstate__(self, state: dict) -> None:
        dataobj = state["dataobj"]
        if dataobj is None:
            dataobj = _nibabel().load(state["filename"]).dataobj
        self.__init__(dataobj, state["name"], state["filename"])
        self._dtype = state["dtype"]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.dataobj.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        """Type of the values read (nibabel's scaled type, native byte order)."""
        if self._dtype is None:
            with self._lock:
                if self._dtype is None:
                    if isinstance(self.dataobj, np.ndarray) or not hasattr(
                        self.dataobj, "__getitem__"
                    ):  # an in-memory array's type is exact; reading a voxel may not be
                        dt = np.dtype(self.dataobj.dtype)
                    else:  # one voxel (none if empty), as nibabel scales it
                        first = slice(0, 0) if 0 in self.shape else 0
                        dt = self._call(lambda: np.asarray(self.dataobj[(first,) * self.ndim]))
                        dt = dt.dtype
                    self._dtype = dt.newbyteorder("=") if dt.byteorder in "<>" else dt
        return self._dtype

    def plan(self, index=...):
        raise TypeError(f"{self.source.path}: reads go through nibabel and have no byte plan")

    def read(self, index=..., raw: bool = False) -> np.ndarray:
        """A new array of ``dataobj[index]`` (``raw``: unscaled, when nibabel offers it)."""
        cidx = canonical_index(index, self.shape)  # numpy's basic-indexing rules and errors
        if raw:
            unscaled = getattr(self.dataobj, "_get_unscaled", None)
            if unscaled is None:
                raise TypeError(f"{self.source.path}: nibabel gives no stored values here")
            arr = self._call(lambda: np.asarray(unscaled(index)))
            return np.array(arr, dtype=arr.dtype.newbyteorder("="), copy=True)
        if any(s.count == 0 for s in cidx.axes):
            return np.empty(cidx.out_shape, self.dtype)
        return self._call(lambda: np.array(self.dataobj[index], dtype=self.dtype, copy=True))

    def _call(self, read):
        """``read()``, with nibabel's failures (file gone or cut, bad gzip) as ImageFileError."""
        try:
            return read()
        except (ImageFileError, MemoryError):
            raise
        except Exception as exc:  # nibabel's reader is a black box: any failure is a bad read
            raise ImageFileError(
                f"{self.source.path}: nibabel could not read the data ({type(exc).__name__}: {exc})"
            ) from exc

    __getitem__ = read

    def __array__(self, dtype=None, copy=None):
        arr = self.read()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"NibabelProxy({self.source.path!r}, shape={self.shape})"


def _nifti_header(nib, nib_hdr):
    """An nilazyview header from a nibabel NIfTI header, or None for other formats."""
    from .formats.nifti import parse_header_record

    if isinstance(nib_hdr, nib.Nifti2Header):
        kind = "nifti2"
    elif isinstance(nib_hdr, nib.Nifti1Header):
        kind = "nifti1"
    else:
        return None
    return parse_header_record(nib_hdr.binaryblock, kind)


def from_nibabel(nib_img: Any) -> Image:
    """Wrap a nibabel image (PAR/REC, ECAT, MINC1, NIfTI, ...) as a proxied :class:`Image`.

    Slicing reads through ``nib_img.dataobj`` (nibabel's proxy), so only what an
    index needs is read when nibabel can do that. The image is clean and
    proxied; while unchanged, ``as_file`` hands off the original file(s), and
    otherwise saves a NIfTI copy. NIfTI header fields carry over. Values come in
    nibabel's scaled type (float64 for scaled integers, as ``get_fdata``), where
    :func:`nilazyview.load` of the same file may give float32.

    Parameters
    ----------
    nib_img : nibabel.spatialimages.SpatialImage
        Any image with ``dataobj`` and ``affine``.
    """
    nib = _nibabel()
    if not hasattr(nib_img, "dataobj"):
        raise TypeError(f"expected a nibabel image, not {type(nib_img).__name__}")
    filename = nib_img.get_filename() if hasattr(nib_img, "get_filename") else None
    filename = os.fspath(filename) if filename else None
    proxy = NibabelProxy(nib_img.dataobj, filename or f"<{type(nib_img).__name__}>", filename)
    affine = nib_img.affine if getattr(nib_img, "affine", None) is not None else np.eye(4)
    hdr = _nifti_header(nib, getattr(nib_img, "header", None))
    files, identity = _source_files(nib_img) if filename else ({}, {})
    return Image.from_proxy(proxy, affine, hdr, filename if files else None, files, identity)


def _source_files(nib_img) -> tuple[dict[str, str], dict[str, FileIdentity]]:
    """The existing files behind a nibabel image and their identities (for ``as_file``)."""
    files, identity = {}, {}
    for role, holder in getattr(nib_img, "file_map", {}).items():
        path = getattr(holder, "filename", None)
        if path and os.path.exists(path):
            files[role] = os.fspath(path)
            identity[role] = FileIdentity.of(path)
    return files, identity


class NilazyviewDataobj:
    """nibabel's array-proxy protocol over an nilazyview proxy (``img.to_nibabel().dataobj``)."""

    is_proxy = True

    def __init__(self, proxy):
        self.proxy = proxy

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.proxy.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.proxy.dtype

    def __getitem__(self, index) -> np.ndarray:
        return self.proxy.read(index)

    def __array__(self, dtype=None, copy=None):
        arr = self.proxy.read()
        return arr if dtype is None else arr.astype(dtype, copy=False)


def to_nibabel(img: Image) -> nibabel.Nifti1Image:
    """A nibabel NIfTI image of ``img``: proxy-backed while ``img`` is a proxy.

    The nibabel image reads through ``img``'s proxy (``dataobj`` slicing reads
    only the slab), holds the scaled values' type and the affine; NIfTI header
    fields carry over. In-memory images hand over their array (not a copy).
    """
    if not isinstance(img, Image):
        raise TypeError(f"expected a nilazyview Image, not {type(img).__name__}")
    if img.dtype.kind in "OSUM" or (img.dtype.kind == "V" and img.dtype.names is None):
        raise UnsupportedFormatError(f"NIfTI cannot hold {img.dtype} values")
    nib = _nibabel()
    dataobj = img._data if img._data is not None else NilazyviewDataobj(img.proxy)
    big = max(img.shape, default=1) > 32767
    cls = (
        nib.Nifti2Image
        if big or (img.header is not None and img.header.kind == "nifti2")
        else (nib.Nifti1Image)
    )
    if img.header is not None and img.header.kind in ("nifti1", "nifti2") and not big:
        hdr = cls.header_class(binaryblock=bytes(img.header)[: cls.header_class.sizeof_hdr])
        hdr.set_slope_inter(None, None)
    else:  # a header of our own: nibabel would otherwise read a voxel to learn the type
        hdr = cls.header_class()
    try:
        hdr.set_data_dtype(img.dtype)
    except Exception:  # a type NIfTI lacks: nibabel picks one when saving
        pass
    try:
        return cls(dataobj, img.affine.copy(), hdr)
    except Exception as exc:  # e.g. an affine NIfTI cannot store (NaN)
        raise UnsupportedFormatError(
            f"nibabel cannot make a NIfTI image of this ({type(exc).__name__}: {exc})"
        ) from exc


def as_image(obj: Any) -> Image:
    """An :class:`Image` from a path, an Image, a nibabel image or an array."""
    if isinstance(obj, Image):
        return obj
    if isinstance(obj, str | os.PathLike):
        from .io.load import load

        return load(obj)
    if hasattr(obj, "dataobj") and hasattr(obj, "affine"):
        return from_nibabel(obj)
    if obj is None or isinstance(obj, bytes | dict):
        raise TypeError(f"cannot make an image of {type(obj).__name__}")
    arr = np.asanyarray(obj)
    if arr.dtype.kind in "OSUM" or (arr.dtype.kind == "V" and arr.dtype.names is None):
        raise TypeError(f"cannot make an image of {type(obj).__name__} ({arr.dtype} values)")
    return Image(arr)


__all__ = ["NibabelProxy", "NilazyviewDataobj", "as_image", "from_nibabel", "to_nibabel"]
