"""nibabel at the array level: its ``dataobj`` as a :class:`LazyArray`, and the reverse.

nibabel (not a dependency) is imported only by the functions that need it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..core.indexing import canonical_index, simple_box
from ..errors import ImageFileError, UnsupportedFormatError, require
from .protocol import ArrayLike

if TYPE_CHECKING:
    import nibabel

    from .protocol import LazyArray


def nibabel_module(what: str = "nibabel interoperability"):
    """The ``nibabel`` module, or a :class:`MissingExtraError` naming the ``nibabel`` extra."""
    return require("nibabel", "nibabel", what)


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


def read_as(proxy: LazyArray, dtype: np.dtype, index=...) -> np.ndarray:
    """``proxy[index]`` as ``dtype`` values, scaled in that type (as nibabel scales).

    A linear scaling is applied to the stored values in ``dtype`` itself, so
    float64 results equal nibabel's ``get_fdata()`` bit for bit.
    """
    if isinstance(proxy, NibabelProxy) and index is Ellipsis:  # nibabel scales in dtype itself
        return proxy._call(lambda: np.array(np.asanyarray(proxy.dataobj, dtype=dtype)))
    vm = proxy.value_map
    linear = None if vm is None else vm.linear
    if linear is None or linear.is_identity or np.dtype(dtype).kind not in "fc":
        return np.asarray(proxy.read(index), dtype=dtype)
    raw = proxy.read(index, raw=True)
    out = np.empty(raw.shape, dtype)
    linear.apply(raw, out)
    return out


class NilazyviewDataobj(ArrayLike):
    """nibabel's array-proxy protocol over a :class:`LazyArray` (``img.dataobj``).

    As nibabel's ``ArrayProxy``: ``dtype`` is the stored type when the values
    are the stored ones linearly scaled (``slope``, ``inter``), slicing and
    ``np.asarray`` give values, ``get_unscaled()`` the stored values. Reading
    never loads the image it came from.
    """

    is_proxy = True

    def __init__(self, proxy: LazyArray):
        self.proxy = proxy
        vm = proxy.value_map
        self._linear = None if vm is None else vm.linear

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.proxy.shape)

    @property
    def dtype(self) -> np.dtype:
        """The stored type (nibabel's ``ArrayProxy.dtype``), or the values' when not linear."""
        return self.proxy.stored_dtype if self._linear is not None else self.proxy.dtype

    @property
    def slope(self) -> float:
        return 1.0 if self._linear is None else self._linear.slope

    @property
    def inter(self) -> float:
        return 0.0 if self._linear is None else self._linear.inter

    @property
    def scaled(self) -> bool:
        """True when values are the stored values times ``slope`` plus ``inter``."""
        return self._linear is not None

    def read(self, index=...) -> np.ndarray:
        return self.proxy.read(index)

    def get_unscaled(self) -> np.ndarray:
        """The stored values, unscaled."""
        return self.proxy.read(raw=True)

    def _get_unscaled(self, slicer) -> np.ndarray:  # nibabel's name, used by NibabelProxy
        return self.proxy.read(slicer, raw=True)

    def __array__(self, dtype=None, copy=None):
        if dtype is None:
            return self.proxy.read()
        return read_as(self.proxy, np.dtype(dtype))

    def __repr__(self) -> str:
        return f"<nilazyview dataobj of {self.proxy.name!r}, shape={self.shape}>"


class _StoredValues:
    """``np.asarray`` gives the stored values: what a lossless save writes."""

    def __init__(self, dataobj: NilazyviewDataobj):
        self.shape, self.ndim, self.dtype = dataobj.shape, dataobj.ndim, dataobj.dtype
        self._dataobj = dataobj

    def __array__(self, dtype=None, copy=None):
        return self._dataobj.get_unscaled()


def _to_file_map(self, file_map=None, dtype=None):
    """nibabel's save, writing the source's stored values and scaling as they are.

    Taken when the data is still the source's (a :class:`NilazyviewDataobj` with
    a linear scaling) and neither a dtype nor a scaling was asked for.
    """
    obj, hdr = self._dataobj, self._header
    unchanged = (
        isinstance(obj, NilazyviewDataobj)
        and obj.scaled
        and dtype is None
        and hdr.get_data_dtype() == obj.dtype
        and hdr.get_slope_inter() == (None, None)
    )
    ours = next(c for c in type(self).__mro__ if c.__dict__.get("to_file_map") is _to_file_map)
    base = super(ours, self)
    if not unchanged:
        return base.to_file_map(file_map, dtype)
    self._dataobj = _StoredValues(obj)
    hdr.set_slope_inter(obj.slope, obj.inter)
    try:
        return base.to_file_map(file_map)
    finally:
        self._dataobj = obj
        hdr.set_slope_inter(None, None)


#: nibabel classes subclassed with :func:`_to_file_map` (made on first use; they pickle).
_LOSSLESS = ("Nifti1Image", "Nifti2Image", "Nifti1Pair", "Nifti2Pair")


def _lossless_class(base_name: str) -> type:
    """nibabel's ``base_name`` class with a save that keeps stored values (made once)."""
    name = "Lossless" + base_name
    cls = globals().get(name)
    if cls is None:
        base = getattr(nibabel_module(), base_name)
        doc = f"nibabel's {base_name}; a save keeps the source's stored values and scaling."
        cls = type(name, (base,), {"to_file_map": _to_file_map, "__module__": __name__})
        cls.__doc__ = doc
        globals()[name] = cls
    return cls


def __getattr__(name: str):
    """``LosslessNifti1Image`` and the others, made on first use (so they unpickle)."""
    if name.startswith("Lossless") and name[len("Lossless") :] in _LOSSLESS:
        return _lossless_class(name[len("Lossless") :])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _storable(dtype: np.dtype) -> bool:
    return not (dtype.kind in "OSUM" or (dtype.kind == "V" and dtype.names is None))


def nifti_image(
    dataobj: Any,
    dtype: np.dtype,
    shape: tuple[int, ...],
    affine: np.ndarray,
    header_block: bytes | None,
    kind: str | None,
    filename: str | None = None,
    pair: bool = False,
    extensions: list | None = None,
) -> nibabel.Nifti1Image:
    """A nibabel NIfTI image over ``dataobj`` (an array or a :class:`NilazyviewDataobj`).

    ``header_block``/``kind`` are a NIfTI header's bytes and kind to carry over,
    ``extensions`` its (code, content) extensions. A scaled ``dataobj`` keeps its
    stored type and scaling: ``nib.save`` then writes the stored values and
    scale factors as they are. ``filename`` becomes ``get_filename()``.
    """
    if not _storable(dtype):
        raise UnsupportedFormatError(f"NIfTI cannot hold {dtype} values")
    nib = nibabel_module("to_nibabel()")
    big = max(shape, default=1) > 32767
    two = big or kind == "nifti2"
    cls = _lossless_class(f"Nifti{2 if two else 1}{'Pair' if pair else 'Image'}")
    if header_block is not None and kind in ("nifti1", "nifti2") and not big:
        hdr = cls.header_class(binaryblock=header_block[: cls.header_class.sizeof_hdr])
        hdr.set_slope_inter(None, None)
    else:  # a header of our own: nibabel would otherwise read a voxel to learn the type
        hdr = cls.header_class()
    for code, content in extensions or ():
        hdr.extensions.append(nib.nifti1.Nifti1Extension(code, content))
    stored = getattr(dataobj, "dtype", dtype) if getattr(dataobj, "scaled", False) else dtype
    try:
        hdr.set_data_dtype(stored if _storable(np.dtype(stored)) else dtype)
    except Exception:  # a type NIfTI lacks: nibabel picks one when saving
        pass
    try:
        img = cls(dataobj, np.array(affine, dtype=np.float64), hdr)
    except Exception as exc:  # e.g. an affine NIfTI cannot store (NaN)
        raise UnsupportedFormatError(
            f"nibabel cannot make a NIfTI image of this ({type(exc).__name__}: {exc})"
        ) from exc
    if filename is not None:
        try:
            img.set_filename(filename)
        except Exception:  # not a NIfTI file name (MGH, MINC): nibabel could not save there
            pass
    return img
