"""MINC2 (HDF5) reading via ``h5py`` (the ``minc`` extra); read-only.

Data are in C order (the last dimension varies fastest). A contiguous,
unfiltered image dataset is read through the byte planner (a C-order
:class:`DiskLayout` on a :class:`FileSource`); chunked or compressed datasets
are sliced through h5py. Values and affine follow nibabel's ``minc2``:

* integer data are clipped to ``valid_range`` (default: the type's range) and
  mapped linearly onto ``image-min``..``image-max``, which may vary over the
  first one or two dimensions (per-slice scaling); float data are not scaled;
* the affine columns are the spatial dimensions (names ending in ``space``) in
  array order: ``direction_cosines * step``, origin ``cosines @ start``.
"""

from __future__ import annotations

import os
import stat

import numpy as np

from ..array.bytes import ArrayProxy
from ..array.h5 import H5DatasetArray, H5Opener, h5py_module
from ..array.mapped import MappedArray
from ..core.header import Header
from ..core.layout import DiskLayout
from ..core.values import MincScaling
from ..errors import (
    HeaderError,
    ImageFileError,
    MalformedFileWarning,
    UnsupportedFormatError,
    warn,
)
from ..fs.settings import env_flag
from ..sources import FileIdentity, FileSource
from .codec import Encoded, Opened, Timing, ToWrite

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAX_DIMS = 8
#: Summary record kept as the image header (fixed size, so it pickles as bytes).
RECORD = np.dtype(
    [
        ("ndim", "<i4"),
        ("dimorder", "S256"),
        ("shape", "<i8", (MAX_DIMS,)),
        ("step", "<f8", (MAX_DIMS,)),
        ("start", "<f8", (MAX_DIMS,)),
        ("direction_cosines", "<f8", (MAX_DIMS, 3)),
        ("valid_range", "<f8", (2,)),
        ("datatype", "S8"),
        ("n_scale_dims", "<i4"),
    ]
)
_DEFAULT_COSINES = {"xspace": [1, 0, 0], "yspace": [0, 1, 0], "zspace": [0, 0, 1]}
_IMAGE = "minc-2.0/image/0/image"


class MincHeader(Header):
    """Summary of a MINC2 file's dimensions (names, steps, starts, cosines) and value range."""

    def __init__(self, record: np.ndarray, kind: str = "minc2", extensions=None):
        super().__init__(record, "minc2", extensions)

    @property
    def endian(self) -> str:
        return "<"

    def copy(self) -> MincHeader:
        return MincHeader(self._rec)

    @property
    def dim_names(self) -> list[str]:
        text = bytes(self["dimorder"]).decode()
        return text.split(",") if text else []


def parse_record(block: bytes) -> MincHeader:
    """Header from ``bytes(header)`` (as pickled)."""
    return MincHeader(np.frombuffer(block[: RECORD.itemsize], RECORD).reshape(()))


def _dimorder(var) -> list[str]:
    try:
        text = var.attrs["dimorder"]
    except KeyError:
        return []
    text = text.decode() if isinstance(text, bytes | np.bytes_) else str(text)
    return text.split(",")[: len(var.shape)]


def _valid_range(image, dtype: np.dtype) -> tuple[float, float]:
    if dtype.kind == "f":
        return (float("nan"), float("nan"))
    info = np.iinfo(dtype)
    vr = image.attrs.get("valid_range")
    if vr is None:
        return (float(info.min), float(info.max))
    vr = np.asarray(vr, dtype=np.float64).ravel()
    if vr[0] < info.min or vr[1] > info.max:
        raise HeaderError(f"valid_range {vr.tolist()} is outside the range of {dtype}")
    return (float(vr[0]), float(vr[1]))


#: Set to 1 to read MINC2 images whose data lives in other files (trusted files only).
TRUST_EXTERNAL_ENV = "NILAZYVIEW_MINC_EXTERNAL"


def _check_storage(path: str, image, plist) -> None:
    """Refuse data stored outside the file (external or virtual) unless trusted.

    A 9 KB ``.mnc`` can name ``/etc/passwd`` (relative names resolve against
    the working directory) as its external data, which then reads as voxels
    and saves into a NIfTI; a FIFO named there hangs the reader. With
    ``NILAZYVIEW_MINC_EXTERNAL=1`` external files are read, if they are
    regular files.
    """
    n_external = plist.get_external_count()
    virtual = bool(getattr(image, "is_virtual", False))
    if not (n_external or virtual):
        return
    what = (
        "a virtual dataset (data mapped from other files)"
        if virtual
        else (f"data stored in {n_external} external file(s)")
    )
    if not env_flag(TRUST_EXTERNAL_ENV):
        raise UnsupportedFormatError(
            f"{path}: the MINC2 image is {what}; refused, since such a file can make "
            f"nilazyview read any file on this machine. For a file you trust, set "
            f"{TRUST_EXTERNAL_ENV}=1"
        )
    for i in range(n_external):
        name = os.fsdecode(plist.get_external(i)[0])
        try:
            mode = os.stat(name).st_mode
        except OSError as exc:
            raise ImageFileError(f"{path}: external MINC2 data {name!r}: {exc}") from None
        if not stat.S_ISREG(mode):
            raise ImageFileError(f"{path}: external MINC2 data {name!r} is not a regular file")


def read_info(f, path: str) -> dict:
    """Everything the loader needs from an open ``h5py.File`` (reads no image data)."""
    if "minc-2.0" not in f:
        raise UnsupportedFormatError(f"{path}: an HDF5 file without a 'minc-2.0' group (not MINC2)")
    try:
        group = f["minc-2.0/image/0"]
        image = group["image"]
        dims_group = f["minc-2.0/dimensions"]
    except KeyError as exc:
        raise HeaderError(f"{path}: MINC2 file without image 0 or dimensions ({exc})") from None
    names = _dimorder(image)
    if len(names) != image.ndim:
        raise HeaderError(f"{path}: MINC2 image 'dimorder' does not name its {image.ndim} axes")
    if image.ndim > MAX_DIMS:
        raise UnsupportedFormatError(f"{path}: {image.ndim} dimensions (at most {MAX_DIMS})")
    dims = []
    for name in names:
        attrs = dict(dims_group[name].attrs) if name in dims_group else {}
        spacing = attrs.get("spacing", b"regular__")
        if spacing == b"irregular":
            raise UnsupportedFormatError(f"{path}: irregular spacing of {name!r} is not supported")
        if spacing != b"regular__":
            warn(
                f"{path}: invalid spacing {spacing!r} for {name!r}; assuming regular",
                MalformedFileWarning,
            )
        dims.append(attrs)
    dtype = np.dtype(image.dtype)
    if dtype.kind not in "iuf":
        raise UnsupportedFormatError(f"{path}: MINC2 data of type {dtype} is not supported")
    offset = None
    plist = image.id.get_create_plist()
    _check_storage(path, image, plist)
    if image.chunks is None and plist.get_nfilters() == 0 and plist.get_external_count() == 0:
        offset = image.id.get_offset()
    info = {
        "chunks": image.chunks,
        "names": names,
        "dims": dims,
        "shape": tuple(int(n) for n in image.shape),
        "dtype": dtype,
        "offset": offset,
        "valid": _valid_range(image, dtype),
        "imin": np.zeros(()),
        "imax": np.ones(()),
    }
    if dtype.kind != "f":
        mn, mx = group["image-min"], group["image-max"]
        if _dimorder(mn) != _dimorder(mx):
            raise HeaderError(f"{path}: 'image-max' and 'image-min' have different dimensions")
        scale_dims = _dimorder(mx)
        if len(scale_dims) > 2:
            raise HeaderError(f"{path}: more than two scaling dimensions")
        if scale_dims != names[: len(scale_dims)]:
            raise HeaderError(f"{path}: 'image-max' dimensions do not lead the image dimensions")
        info["imin"] = np.asarray(mn[()], dtype=np.float64)
        info["imax"] = np.asarray(mx[()], dtype=np.float64)
        if info["imin"].shape != info["shape"][: info["imin"].ndim]:
            raise HeaderError(f"{path}: 'image-min' has shape {info['imin'].shape}")
        if info["imax"].shape != info["imin"].shape:
            raise HeaderError(
                f"{path}: 'image-max' has shape {info['imax'].shape}, "
                f"'image-min' {info['imin'].shape}"
            )
    return info


def affine_of(names: list[str], dims: list[dict]) -> np.ndarray:
    """nibabel's MINC affine: spatial dimensions in array order; needs exactly three."""
    spatial = [i for i, n in enumerate(names) if n.endswith("space")]
    k = len(spatial)
    rot = np.eye(k)
    steps, starts = np.zeros(k), np.zeros(k)
    for col, i in enumerate(spatial):
        attrs = dims[i]
        cosines = attrs.get("direction_cosines", _DEFAULT_COSINES.get(names[i]))
        if cosines is None:
            raise ValueError(f"dimension {names[i]!r} has no direction_cosines")
        rot[:, col] = np.asarray(cosines, dtype=np.float64).reshape(k)
        steps[col] = _number(attrs.get("step", 1.0))
        starts[col] = _number(attrs.get("start", 0.0))
    aff = np.eye(k + 1)
    aff[:k, :k] = rot * steps
    aff[:k, k] = np.dot(rot, starts)
    if not np.isfinite(aff).all():
        raise ValueError("the dimensions' step, start or direction_cosines are not finite")
    return aff


def _number(value) -> float:
    """One number from an HDF5 attribute (a scalar or a one-element array)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != 1:
        raise ValueError(f"expected one number, got {arr.size}")
    return float(arr.reshape(()))


def _number_or_nan(value, default: float) -> float:
    """For the summary record only: a dimension nobody maps may hold anything."""
    try:
        return _number(default if value is None else value)
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def zooms_of(dims: list[dict]) -> tuple[float, ...]:
    return tuple(abs(float(d["step"])) if "step" in d else 1.0 for d in dims)


def _header(info: dict) -> MincHeader:
    rec = np.zeros((), RECORD)
    n = len(info["names"])
    rec["ndim"] = n
    rec["dimorder"] = ",".join(info["names"]).encode()
    rec["shape"][:n] = info["shape"]
    rec["step"][:n] = [_number_or_nan(d.get("step"), 1.0) for d in info["dims"]]
    rec["start"][:n] = [_number_or_nan(d.get("start"), 0.0) for d in info["dims"]]
    for i, (name, d) in enumerate(zip(info["names"], info["dims"], strict=True)):
        cosines = d.get("direction_cosines", _DEFAULT_COSINES.get(name, 0))
        try:
            rec["direction_cosines"][i] = np.asarray(cosines, dtype=np.float64)
        except (TypeError, ValueError):
            rec["direction_cosines"][i] = np.nan
    rec["valid_range"] = info["valid"]
    rec["datatype"] = info["dtype"].str.encode()
    rec["n_scale_dims"] = info["imin"].ndim
    return MincHeader(rec)


#: What h5py and numpy raise on metadata of the wrong kind, shape or type.
_METADATA_ERRORS = (
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    IndexError,
    OverflowError,
    OSError,
    RuntimeError,
)
#: deflate's best ratio: no MINC2 file holds more data than this times its size.
MAX_COMPRESSION = 1032


def _check_backed(path: str, info: dict, file_size: int) -> None:
    """Refuse an image declaring more data than the file can hold, even compressed.

    HDF5 reads unwritten chunks as the fill value, so a few-kB file may declare
    terabytes; reading it would allocate them (or spin in the HDF5 library).
    """
    declared = int(np.prod(info["shape"], dtype=object)) * info["dtype"].itemsize
    if declared > MAX_COMPRESSION * file_size + 2**20:
        raise HeaderError(
            f"{path}: the MINC2 image declares {declared} bytes of data; a file of "
            f"{file_size} bytes cannot hold that (even compressed {MAX_COMPRESSION}:1)"
        )


#: HDF5 needs about 6.5 KB of memory per chunk a read touches (measured: 1.7 GB to read
#: 262,144 one-byte chunks), so many tiny chunks are refused.
MAX_TINY_CHUNKS = 65536
MIN_CHUNK_BYTES = 4096


def _check_chunks(path: str, info: dict) -> None:
    chunks = info["chunks"]
    if not chunks:
        return
    n = int(np.prod([-(-s // c) for s, c in zip(info["shape"], chunks, strict=True)]))
    size = int(np.prod(chunks)) * info["dtype"].itemsize
    if n > MAX_TINY_CHUNKS and size < MIN_CHUNK_BYTES:
        raise UnsupportedFormatError(
            f"{path}: the MINC2 image is stored in {n} chunks of {size} bytes; HDF5 needs "
            f"~6.5 KB of memory per chunk read, so at most {MAX_TINY_CHUNKS} chunks smaller "
            f"than {MIN_CHUNK_BYTES} bytes are read"
        )


def open_minc2(path: str) -> Opened:
    """Open a MINC2 file: header, affine and scaling only."""
    h5py = h5py_module()
    identity = FileIdentity.of(path)
    try:
        f = h5py.File(path, "r")
    except _METADATA_ERRORS as exc:  # damaged HDF5 raises RuntimeError and others too
        raise ImageFileError(f"{path}: cannot open as HDF5: {exc}") from None
    try:
        with f:
            info = read_info(f, path)
        spatial = [n for n in info["names"] if n.endswith("space")]
        if len(spatial) != 3:
            raise UnsupportedFormatError(
                f"{path}: MINC2 image has {len(spatial)} spatial dimensions, not 3 ({spatial})"
            )
        affine = affine_of(info["names"], info["dims"])
        hdr = _header(info)
    except ImageFileError:
        raise
    except _METADATA_ERRORS as exc:  # a group where a dataset belongs, text for numbers, ...
        raise HeaderError(
            f"{path}: malformed MINC2 metadata ({type(exc).__name__}: {exc})"
        ) from None
    _check_backed(path, info, identity.size)
    _check_chunks(path, info)
    scaling = MincScaling(info["dtype"].kind == "f", info["valid"], info["imin"], info["imax"])
    if info["offset"] is not None:
        layout = DiskLayout(info["shape"], info["dtype"], int(info["offset"]), "C")
        if layout.offset + layout.nbytes > identity.size:
            raise ImageFileError(f"{path}: MINC2 image data run past the end of the file")
        raw = ArrayProxy(layout, FileSource(path, identity))
    else:
        raw = H5DatasetArray(H5Opener(path, identity, _IMAGE), info["shape"], info["dtype"])
    files = {"header": path, "image": path}
    ident = {"header": identity, "image": identity}
    return Opened(MappedArray(raw, scaling), affine, hdr, files, ident)


def _has_minc_group(path: str) -> bool:
    try:
        import h5py  # the optional 'minc' extra
    except ImportError:
        return True  # assume MINC2; the loader says h5py is needed
    try:
        with h5py.File(path, "r") as f:
            return "minc-2.0" in f
    except Exception:  # OSError, and RuntimeError/KeyError/ValueError from damaged files
        return True  # a damaged HDF5 file: the MINC2 loader says why it cannot open it


class Minc2Codec:
    """MINC2 (HDF5), read-only; C order."""

    name = "minc2"
    title = "MINC2"
    kinds = ("minc2",)
    names = {"minc2": "MINC2 (HDF5)", "hdf5": "HDF5 (not MINC2)"}
    writable = False
    opens_unrecognised = False

    def sniff(self, head: bytes, path: str | None) -> str | None:
        if not head.startswith(HDF5_SIGNATURE):
            return None
        return "minc2" if path is not None and _has_minc_group(path) else "hdf5"

    def suffix(self, path: str) -> tuple[str, bool] | None:
        return (".mnc", False) if path.lower().endswith(".mnc") else None

    def zooms(self, header: Header, ndim: int) -> list[float]:
        return [abs(float(s)) for s in header["step"][:ndim]]

    def open(self, path: str) -> Opened:
        return open_minc2(path)

    def timing(self, header: Header, ndim: int) -> Timing:
        """MINC world coordinates are in mm; a ``time`` step is the TR (s) when time is the
        fourth axis of the array (where other formats keep their TR)."""
        names = getattr(header, "dim_names", [])
        if len(names) >= 4 and names[3] == "time":
            step = abs(float(header["step"][3]))
            if np.isfinite(step) and step > 0:
                return Timing("mm", step)
        return Timing("mm")

    def written_files(self, path: str) -> list[str]:
        return [path]

    def encode(self, item: ToWrite, path: str) -> Encoded:
        raise UnsupportedFormatError(f"{path}: nilazyview reads MINC2 but does not write it")


CODEC = Minc2Codec()
