"""nibabel at the array level: its ``dataobj`` as a :class:`LazyArray`, and the reverse.

nibabel (not a dependency) is imported only by the functions that need it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..core.indexing import canonical_index, simple_box
from ..errors import ImageFileError, UnsupportedFormatError
from .protocol import ArrayLike

if TYPE_CHECKING:
    import nibabel

    from .protocol import LazyArray


def nibabel_module():
    """The ``nibabel`` module, or an error saying how to install it."""
    try:
        import nibabel  # optional: only the interop needs it
    except ImportError:
        raise ImportError("this needs nibabel: pip install nibabel") from None
    return nibabel


class NibabelProxy(ArrayLike):
    """Lazy array reading through a nibabel ``dataobj`` (its own proxy slicing).

    Results are new native-order arrays of one dtype (that of a one-voxel read).
    nibabel scales values itself, so ``value_map`` is None; there is no byte plan.
    """

    layout = None
    value_map = None
    order: Literal["F"] = "F"
    why_no_plan = "reads go through nibabel and have no byte plan"

    def __init__(self, dataobj, name: str, filename: str | None = None):
        self.dataobj = dataobj
        self.name = name
        self.filename = filename
        self._dtype: np.dtype | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        # a file-backed nibabel proxy may hold an open handle: pickle its filename instead
        reopen = self.filename is not None and getattr(self.dataobj, "is_proxy", False)
        return {
            "dataobj": None if reopen else self.dataobj,
            "name": self.name,
            "filename": self.filename,
            "dtype": self._dtype,
        }

    def __setstate__(self, state: dict) -> None:
        dataobj = state["dataobj"]
        if dataobj is None:
            dataobj = nibabel_module().load(state["filename"]).dataobj
        self.__init__(dataobj, state["name"], state["filename"])
        self._dtype = state["dtype"]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.dataobj.shape)

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

    @property
    def stored_dtype(self) -> np.dtype:
        """The on-disk type when nibabel tells it, else the values' type."""
        dt = getattr(self.dataobj, "dtype", None)
        return np.dtype(dt) if dt is not None else self.dtype

    def plan(self, index=...) -> None:
        """None: reads go through nibabel and have no byte plan."""
        return None

    def check_fresh(self) -> None:
        """Nothing: nibabel opens its files itself."""

    def stored_chunks(self, chunk_bytes: int) -> Iterator[memoryview]:
        raise TypeError(f"{self.name}: reads go through nibabel; there is no byte layout")

    def read(self, index=..., raw: bool = False) -> np.ndarray:
        """A new array of ``dataobj[index]`` (``raw``: unscaled, when nibabel offers it).

        nibabel's proxies see only integers and positive-step slices within the
        shape (some mishandle other slices); reversal and new axes are applied here.
        """
        cidx = canonical_index(index, self.shape)  # numpy's basic-indexing rules and errors
        box, post = simple_box(cidx)
        if raw:
            unscaled = getattr(self.dataobj, "_get_unscaled", None)
            if unscaled is None:
                raise TypeError(f"{self.name}: nibabel gives no stored values here")
            arr = self._call(lambda: np.asarray(unscaled(box)))
            return np.array(arr[post], dtype=arr.dtype.newbyteorder("="), copy=True)
        if any(s.count == 0 for s in cidx.axes):
            return np.empty(cidx.out_shape, self.dtype)
        arr = self._call(lambda: np.asarray(self.dataobj[box]))
        return np.array(arr[post], dtype=self.dtype, copy=True)

    def _call(self, read):
        """``read()``, with nibabel's failures (file gone or cut, bad gzip) as ImageFileError."""
        try:
            return read()
        except (ImageFileError, MemoryError):
            raise
        except Exception as exc:  # nibabel's reader is a black box: any failure is a bad read
            raise ImageFileError(
                f"{self.name}: nibabel could not read the data ({type(exc).__name__}: {exc})"
            ) from exc

    def __repr__(self) -> str:
        return f"NibabelProxy({self.name!r}, shape={self.shape})"


class NilazyviewDataobj(ArrayLike):
    """nibabel's array-proxy protocol over a :class:`LazyArray` (``to_nibabel().dataobj``)."""

    is_proxy = True

    def __init__(self, proxy: LazyArray):
        self.proxy = proxy

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.proxy.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.proxy.dtype

    def read(self, index=...) -> np.ndarray:
        return self.proxy.read(index)


def nifti_image(
    dataobj: Any,
    dtype: np.dtype,
    shape: tuple[int, ...],
    affine: np.ndarray,
    header_block: bytes | None,
    kind: str | None,
) -> nibabel.Nifti1Image:
    """A nibabel NIfTI image over ``dataobj`` (an array or a :class:`NilazyviewDataobj`).

    ``header_block``/``kind`` are a NIfTI header's bytes and kind to carry over.
    """
    if dtype.kind in "OSUM" or (dtype.kind == "V" and dtype.names is None):
        raise UnsupportedFormatError(f"NIfTI cannot hold {dtype} values")
    nib = nibabel_module()
    big = max(shape, default=1) > 32767
    cls = nib.Nifti2Image if big or kind == "nifti2" else nib.Nifti1Image
    if header_block is not None and kind in ("nifti1", "nifti2") and not big:
        hdr = cls.header_class(binaryblock=header_block[: cls.header_class.sizeof_hdr])
        hdr.set_slope_inter(None, None)
    else:  # a header of our own: nibabel would otherwise read a voxel to learn the type
        hdr = cls.header_class()
    try:
        hdr.set_data_dtype(dtype)
    except Exception:  # a type NIfTI lacks: nibabel picks one when saving
        pass
    try:
        return cls(dataobj, np.array(affine, dtype=np.float64), hdr)
    except Exception as exc:  # e.g. an affine NIfTI cannot store (NaN)
        raise UnsupportedFormatError(
            f"nibabel cannot make a NIfTI image of this ({type(exc).__name__}: {exc})"
        ) from exc
