"""FreeSurfer MGH/MGZ: big-endian header at 0, Fortran-order data at 284, optional footer.

The affine follows nibabel's ``MGHHeader.get_affine``: the columns of the
direction cosines (``Mdc`` is stored transposed) scaled by ``delta``, and a
translation putting ``Pxyz_c`` at the voxel ``dims / 2``. A header whose
``goodRASFlag`` is 0 is read as unit zooms, coronal cosines and a zero centre.
"""

from __future__ import annotations

import numpy as np

from ..array.bytes import ArrayProxy
from ..core.header import Header
from ..core.layout import DiskLayout
from ..errors import HeaderError, UnsupportedFormatError
from ..sources import open_source
from .codec import Encoded, FileToWrite, Opened, Timing, ToWrite, check_data_fits

DATA_OFFSET = 284
HEADER_FIELDS = np.dtype(
    [
        ("version", ">i4"),
        ("dims", ">i4", (4,)),
        ("type", ">i4"),
        ("dof", ">i4"),
        ("goodRASFlag", ">i2"),
        ("delta", ">f4", (3,)),
        ("Mdc", ">f4", (3, 3)),
        ("Pxyz_c", ">f4", (3,)),
    ]
)
FOOTER_FIELDS = np.dtype(
    [("tr", ">f4"), ("flip_angle", ">f4"), ("te", ">f4"), ("ti", ">f4"), ("fov", ">f4")]
)
#: Header record: the fixed header then the fixed footer fields (110 bytes).
RECORD = np.dtype(
    [(n, HEADER_FIELDS.fields[n][0]) for n in HEADER_FIELDS.names]
    + [(n, FOOTER_FIELDS.fields[n][0]) for n in FOOTER_FIELDS.names]
)
#: MGH type code -> on-disk dtype.
CODES = {0: np.dtype(">u1"), 1: np.dtype(">i4"), 3: np.dtype(">f4"), 4: np.dtype(">i2"),
         10: np.dtype(">u2")}  # fmt: skip
_CODE_OF = {dt.newbyteorder("="): code for code, dt in CODES.items()}
_DEFAULT_MDC = np.array([[-1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float32)
#: Uncompressed data size up to which an MGZ footer is read at load (it sits after the data).
GZIP_FOOTER_MAX = 64 * 2**20
_INT32 = np.iinfo(np.int32)


class MGHHeader(Header):
    """MGH header fields (``version`` ... ``Pxyz_c``) and footer fields (``tr`` ... ``fov``).

    ``footer_read`` is False when the footer of a large MGZ was not read at load
    (its fields are then zero).
    """

    footer_read: bool = True

    def __init__(self, record: np.ndarray, kind: str = "mgh", extensions=None):
        super().__init__(record, "mgh", extensions)

    @property
    def endian(self) -> str:
        return ">"

    def copy(self) -> MGHHeader:
        out = MGHHeader(self._rec)
        out.footer_read = self.footer_read
        return out

    def get_data_shape(self) -> tuple[int, ...]:
        """The data shape (no frame axis for one frame), as nibabel's."""
        return shape_of(self)

    def get_zooms(self) -> tuple[float, ...]:
        """Voxel sizes, and the TR for 4D images, as nibabel's."""
        return zooms_of(self)

    def get_data_dtype(self) -> np.dtype:
        """The stored data type (big-endian)."""
        return dtype_of(self)

    def get_slope_inter(self) -> tuple[None, None]:
        """``(None, None)``: MGH data is never scaled."""
        return None, None


def looks_like_mgh(block: bytes) -> bool:
    """True when ``block`` starts like an MGH header (version 1, positive dims, known type)."""
    if len(block) < HEADER_FIELDS.itemsize:
        return False
    rec = np.frombuffer(block[: HEADER_FIELDS.itemsize], HEADER_FIELDS)[0]
    return (
        int(rec["version"]) == 1
        and bool(np.all(rec["dims"] > 0))
        and int(rec["type"]) in CODES
        and int(rec["goodRASFlag"]) in (0, 1, -1)
    )


def parse_header(block: bytes, footer: bytes, path: str) -> MGHHeader:
    """Header from the first 90 bytes and the (possibly short or empty) footer bytes."""
    if len(block) < HEADER_FIELDS.itemsize:
        raise HeaderError(f"{path}: file too short for an MGH header ({len(block)} bytes, need 90)")
    raw = block[: HEADER_FIELDS.itemsize] + footer[: FOOTER_FIELDS.itemsize]
    raw = raw.ljust(RECORD.itemsize, b"\x00")
    rec = np.frombuffer(raw, RECORD).reshape(()).copy()
    if int(rec["version"]) != 1:
        raise HeaderError(f"{path}: MGH field 'version' is {int(rec['version'])}, expected 1")
    if not np.all(rec["dims"] > 0):
        raise HeaderError(f"{path}: MGH field 'dims' must be positive, not {rec['dims'].tolist()}")
    if int(rec["type"]) not in CODES:
        raise HeaderError(
            f"{path}: MGH data type code {int(rec['type'])} is not supported "
            f"(known: {sorted(CODES)})"
        )
    if not rec["goodRASFlag"]:  # as nibabel: fall back to the default geometry
        rec["delta"] = 1
        rec["Mdc"] = _DEFAULT_MDC
        rec["Pxyz_c"] = 0
    return MGHHeader(rec)


def parse_record(block: bytes) -> MGHHeader:
    """Header from ``bytes(header)`` (as pickled), no checks."""
    return MGHHeader(np.frombuffer(block[: RECORD.itemsize], RECORD).reshape(()))


def shape_of(hdr: Header) -> tuple[int, ...]:
    """Data shape: ``dims``, without the frame axis when there is one frame."""
    dims = tuple(int(n) for n in hdr["dims"])
    return dims[:3] if dims[3] == 1 else dims


def dtype_of(hdr: Header) -> np.dtype:
    return CODES[int(hdr["type"])]


def zooms_of(hdr: Header) -> tuple[float, ...]:
    """Voxel sizes (``delta``), plus the TR for 4D images, as nibabel reports them."""
    tr = (float(hdr["tr"]),) if int(hdr["dims"][3]) > 1 else ()
    return tuple(float(d) for d in hdr["delta"]) + tr


def affine_of(hdr: Header) -> np.ndarray:
    """Voxel-to-RAS affine with nibabel's arithmetic: float32 matrix and translation."""
    mdcd = hdr["Mdc"].T * hdr["delta"]  # float32, columns scaled by the zooms
    centre = mdcd.dot(hdr["dims"][:3]) / 2  # promoted to float64 by the int32 dims
    out = np.zeros((4, 4), np.float32)
    out[:3, :3] = mdcd
    out[:3, 3] = hdr["Pxyz_c"] - centre  # rounded to float32, as nibabel stores it
    out[3, 3] = 1
    return out.astype(np.float64)


def layout_of(hdr: Header) -> DiskLayout:
    return DiskLayout(shape_of(hdr), dtype_of(hdr), DATA_OFFSET, "F")


def storage_dtype(dtype: np.dtype) -> np.dtype:
    """The big-endian MGH type that holds values of ``dtype``.

    bool -> uint8, int8 -> int16, float16/float64 -> float32 (MGH has no double),
    uint32/int64/uint64 -> int32 (values are range-checked on write).
    """
    dtype = np.dtype(dtype)
    native = dtype.newbyteorder("=") if dtype.byteorder in "<>" else dtype
    if native in _CODE_OF:
        return CODES[_CODE_OF[native]]
    if native.kind == "b":
        return CODES[0]
    if native == np.int8:
        return CODES[4]
    if native.kind == "f":
        return CODES[3]
    if native.kind in "iu":
        return CODES[1]
    raise UnsupportedFormatError(f"MGH cannot store data of type {dtype} (real numbers only)")


def timing_of(hdr: Header) -> Timing:
    """MGH geometry is in mm; ``tr`` (ms in the footer; 0 when unset) in seconds."""
    tr = float(hdr["tr"])
    return Timing("mm", tr / 1000.0 if np.isfinite(tr) and tr > 0 else None)


def build_header(
    src: Header | None,
    shape: tuple[int, ...],
    dtype: np.dtype,
    affine: np.ndarray,
    timing: Timing | None = None,
) -> tuple[bytes, bytes]:
    """(header bytes padded to the data offset, footer bytes) for an MGH file.

    The geometry is set from ``affine`` as nibabel does; ``dof`` and the footer
    fields (TR, flip angle, TE, TI, FOV) carry over from an MGH ``src``, else the
    TR from ``timing`` (another format's, in seconds).
    """
    if len(shape) > 4:
        raise UnsupportedFormatError(f"MGH holds at most 4 dimensions, not {len(shape)}")
    if any(n < 1 for n in shape):
        raise UnsupportedFormatError(f"MGH cannot store an empty array (shape {shape})")
    rec = np.zeros((), RECORD)
    if src is not None and src.kind == "mgh":
        rec[...] = src.record
    elif timing is not None and timing.tr is not None:
        rec["tr"] = timing.tr * 1000.0
    dims = tuple(shape) + (1,) * (4 - len(shape))
    rec["version"] = 1
    rec["dims"] = dims
    rec["type"] = _CODE_OF[np.dtype(dtype).newbyteorder("=")]
    rec["goodRASFlag"] = 1
    affine = np.asarray(affine, dtype=np.float64)
    sizes = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if not np.all(sizes > 0):
        raise UnsupportedFormatError("MGH needs an affine with non-zero voxel sizes")
    rec["delta"] = sizes
    rec["Mdc"] = (affine[:3, :3] / sizes).T
    rec["Pxyz_c"] = affine.dot(np.hstack((np.array(dims[:3]) / 2.0, [1])))[:3]
    head = rec[list(HEADER_FIELDS.names)]
    head_bytes = np.array(head, HEADER_FIELDS).tobytes().ljust(DATA_OFFSET, b"\x00")
    foot_bytes = np.array(rec[list(FOOTER_FIELDS.names)], FOOTER_FIELDS).tobytes()
    return head_bytes, foot_bytes


def _fits_int32(block: np.ndarray) -> None:
    if block.size and (block.min() < _INT32.min or block.max() > _INT32.max):
        raise UnsupportedFormatError(
            f"values from {block.min()} to {block.max()} do not fit MGH int32; cast the data first"
        )


class MGHCodec:
    """FreeSurfer MGH and MGZ (gzip told by content, not extension)."""

    name = "mgh"
    title = "MGH/MGZ"
    kinds = ("mgh",)
    names = {"mgh": "MGH"}
    writable = True
    opens_unrecognised = False

    def sniff(self, head: bytes, path: str | None) -> str | None:
        return "mgh" if looks_like_mgh(head) else None

    def suffix(self, path: str) -> tuple[str, bool] | None:
        low = path.lower()
        for ext, gz in ((".mgh.gz", True), (".mgz", True), (".mgh", False)):
            if low.endswith(ext):
                return ext, gz
        return None

    def zooms(self, header: Header, ndim: int) -> list[float]:
        return list(zooms_of(header))

    def open(self, path: str) -> Opened:
        src = open_source(path)
        block = src.read_bytes(0, HEADER_FIELDS.itemsize)
        hdr = parse_header(block, b"", path)
        layout = layout_of(hdr)
        check_data_fits(src, layout, path)
        end = layout.offset + layout.nbytes
        if src.compressed and layout.nbytes > GZIP_FOOTER_MAX:
            hdr.footer_read = False
        else:
            hdr = parse_header(block, src.read_bytes(end, FOOTER_FIELDS.itemsize), path)
        files = {"header": path, "image": path}
        identity = {"header": src.identity, "image": src.identity}
        return Opened(ArrayProxy(layout, src), affine_of(hdr), hdr, files, identity)

    def timing(self, header: Header, ndim: int) -> Timing:
        return timing_of(header)

    def written_files(self, path: str) -> list[str]:
        return [path]

    def encode(self, item: ToWrite, path: str) -> Encoded:
        """Values are written scaled, converted to an MGH type (see :func:`storage_dtype`)."""
        if not item.shape:
            raise UnsupportedFormatError("MGH cannot store a 0-d array")
        if item.version is not None:
            raise UnsupportedFormatError(f"{path}: MGH has no versions to choose from")
        target = storage_dtype(item.dtype)
        head, foot = build_header(item.header, item.shape, target, item.affine, item.timing)
        gz = path.lower().endswith((".mgz", ".gz"))
        check = _fits_int32 if np.dtype(item.dtype).kind in "iu" and target == CODES[1] else None
        return Encoded((FileToWrite(path, gz, head, True, foot),), target, check=check)


CODEC = MGHCodec()
