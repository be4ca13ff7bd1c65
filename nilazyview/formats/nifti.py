"""Parse and build NIfTI-1, NIfTI-2 and Analyze 7.5 headers.

Everything here works on bytes already read; files are opened in ``nifti_codec``.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from ..core.header import Extension, Header
from ..core.values import Scaling
from ..errors import HeaderError, MalformedFileWarning, UnsupportedFormatError, warn
from . import affines
from .codec import Timing
from .datatypes import code_for_dtype, dtype_for_code
from .headers import DTYPES, PAIR_MAGIC, SINGLE_MAGIC

#: Largest total size of header extensions we read (bytes).
MAX_EXTENSION_BYTES = 256 * 2**20
SINGLE_OFFSET = {"nifti1": 352, "nifti2": 544}
#: Most elements a shape may declare, zeros counted as ones (numpy's limit for 16-byte items).
MAX_ELEMENTS = (2**63 - 1) // 16


def sniff(block: bytes, path: str) -> tuple[str, str]:
    """(kind, endian) of a header block: kind is "nifti1", "nifti2" or "analyze"."""
    if len(block) < 348:
        raise HeaderError(f"{path}: file too short for a header ({len(block)} bytes, need 348)")
    for endian in "<>":
        (size,) = struct.unpack(endian + "i", block[:4])
        if size == 348:
            magic = block[344:347]
            if magic in (b"n+1", b"ni1") and block[347:348] == b"\x00":
                return "nifti1", endian
            if magic in (b"n+2", b"ni2"):
                raise HeaderError(f"{path}: NIfTI-2 magic in a 348-byte header ('sizeof_hdr')")
            return "analyze", endian
        if size == 540:
            if len(block) < 540:
                raise HeaderError(f"{path}: NIfTI-2 header truncated at {len(block)} bytes")
            return "nifti2", endian
    (le,) = struct.unpack("<i", block[:4])
    raise UnsupportedFormatError(
        f"{path}: not a NIfTI or Analyze header (field 'sizeof_hdr' is {le}, expected 348 or 540)"
    )


#: NIfTI ``xyzt_units`` codes -> nibabel's labels.
_UNITS = {0: "unknown", 1: "meter", 2: "mm", 3: "micron", 8: "sec", 16: "msec", 24: "usec",
          32: "hz", 40: "ppm", 48: "rads"}  # fmt: skip


class NiftiHeader(Header):
    """A NIfTI-1, NIfTI-2 or Analyze header, with nibabel's header methods."""

    def get_data_shape(self) -> tuple[int, ...]:
        """The shape in ``dim`` (``(0,)`` for none), as nibabel's."""
        dim = [int(d) for d in self["dim"]]
        return (0,) if dim[0] <= 0 else tuple(dim[1 : dim[0] + 1])

    def get_zooms(self) -> tuple[float, ...]:
        """Voxel sizes (and the time step) from ``pixdim``, one per axis, as nibabel's."""
        ndim = int(self["dim"][0])
        return (1.0,) if ndim <= 0 else tuple(float(z) for z in self["pixdim"][1 : ndim + 1])

    def get_data_dtype(self) -> np.dtype:
        """The stored data type (``datatype``, in the header's byte order)."""
        return stored_dtype(self, "header")

    def get_slope_inter(self) -> tuple[float | None, float | None]:
        """``(slope, inter)`` of the stored values; ``(None, None)`` when unscaled (as nibabel).

        The file's scaling, as nibabel's header read from the file gives it (a
        nibabel image moves it to ``dataobj.slope``/``inter``). Analyze: the
        SPM2 slope (``funused1``, or from the gl/cal ranges); the intercept is
        None when zero.
        """
        if self.kind == "analyze":
            sc = scaling_of(self)
            return (None, None) if sc.is_identity else (sc.slope, sc.inter or None)
        slope, inter = float(self["scl_slope"]), float(self["scl_inter"])
        if slope == 0 or not math.isfinite(slope):
            return None, None
        if not math.isfinite(inter):
            raise HeaderError(f"valid slope but invalid intercept {inter}")
        return slope, inter

    def get_xyzt_units(self) -> tuple[str, str]:
        """Units of space and time from ``xyzt_units`` (Analyze: unknown), as nibabel's."""
        if "xyzt_units" not in self:
            return "unknown", "unknown"
        code = int(self["xyzt_units"])
        return _UNITS.get(code % 8, "unknown"), _UNITS.get(code - code % 8, "unknown")


def parse_header(block: bytes, path: str, single: bool) -> Header:
    """Header from its binary block; checks magic against single-file or pair storage."""
    kind, endian = sniff(block, path)
    dt = DTYPES[kind].newbyteorder(endian)
    rec = np.frombuffer(block[: dt.itemsize], dt).reshape(())
    if kind != "analyze":
        want = (SINGLE_MAGIC if single else PAIR_MAGIC)[kind]
        magic = bytes(rec["magic"][()])
        if magic != want and not (kind == "nifti2" and magic.rstrip(b"\x00") == want[:3]):
            where = "single file" if single else "header/image pair"
            raise HeaderError(f"{path}: field 'magic' is {magic!r}, not valid for a {where}")
    elif single:
        raise UnsupportedFormatError(f"{path}: an Analyze header needs a separate .img file")
    return NiftiHeader(rec, kind)


def parse_header_record(block: bytes, kind: str) -> Header:
    """Header of a known ``kind`` from its bytes (as pickled), no magic checks."""
    endian = "<" if struct.unpack("<i", block[:4])[0] == DTYPES[kind].itemsize else ">"
    dt = DTYPES[kind].newbyteorder(endian)
    return NiftiHeader(np.frombuffer(block[: dt.itemsize], dt).reshape(()), kind)


def shape_of(hdr: Header, path: str) -> tuple[int, ...]:
    dim = [int(d) for d in hdr["dim"]]
    if not 1 <= dim[0] <= 7:
        raise HeaderError(f"{path}: field 'dim' has dim[0]={dim[0]}, must be 1..7")
    shape = tuple(dim[1 : dim[0] + 1])
    if any(n < 0 for n in shape):
        raise HeaderError(f"{path}: field 'dim' has a negative size {shape}")
    # numpy cannot make such a shape even with a zero in it (the data checks see 0 bytes)
    if math.prod(max(1, n) for n in shape) > MAX_ELEMENTS:
        raise HeaderError(f"{path}: field 'dim' declares {shape}, too many elements for an array")
    return shape


def stored_dtype(hdr: Header, path: str) -> np.dtype:
    return dtype_for_code(hdr["datatype"], hdr.endian, path, analyze=hdr.kind == "analyze")


def data_offset(hdr: Header, path: str, single: bool) -> int:
    """Byte offset of the data in the data file (``vox_offset``, checked).

    A single file with ``vox_offset`` 0 (malformed: the data would overlap the
    header) is read from the header's end, with a :class:`MalformedFileWarning`.
    """
    off = float(hdr["vox_offset"])
    if not math.isfinite(off) or off < 0 or off != int(off):
        raise HeaderError(f"{path}: field 'vox_offset' is {off}, not a non-negative integer")
    off = int(off)
    if single:
        minimum = SINGLE_OFFSET[hdr.kind]
        if off == 0:
            warn(
                f"{path}: field 'vox_offset' is 0, which puts the data inside the header; "
                f"reading the data from byte {minimum}, the end of the header "
                "(nibabel and ITK read the header bytes as data)",
                MalformedFileWarning,
            )
            return minimum
        if off < minimum:
            raise HeaderError(
                f"{path}: field 'vox_offset' is {off}, below the header end {minimum}"
            )
    return off


def scaling_of(hdr: Header) -> Scaling:
    if hdr["datatype"] in (128, 2304):
        return Scaling()
    sc = Scaling.from_header(hdr["scl_slope"], hdr["scl_inter"])
    if hdr.kind == "analyze" and sc.is_identity and float(hdr["scl_slope"]) != 1.0:
        # SPM2: no usable slope; derive one from the gl/cal ranges when both are set
        g = int(hdr["glmax"]) - int(hdr["glmin"])
        c = float(hdr["cal_max"]) - float(hdr["cal_min"])
        if g and c and math.isfinite(c):
            slope = c / g
            # through from_header: a non-finite result (absurd fields) means unscaled
            return Scaling.from_header(slope, float(hdr["cal_min"]) - slope * int(hdr["glmin"]))
    return sc


def affine_of(hdr: Header, shape: tuple[int, ...]) -> np.ndarray:
    """Voxel-to-world affine by the NIfTI rules (sform, else qform, else pixdim).

    Without either (method 1) the affine is nibabel's: ``|pixdim|`` as voxel sizes,
    x flipped, the centre voxel at 0. Analyze follows SPM (signed pixdim, origin).
    """
    pixdim = np.asarray(hdr["pixdim"], dtype=np.float64)
    if hdr.kind == "analyze":
        dims = np.ones(3)
        dims[: min(3, len(shape))] = shape[:3]
        origin = np.asarray(hdr["origin"][:3], dtype=np.float64)
        if np.any(origin) and np.all(origin > -dims) and np.all(origin < dims * 2):
            return affines.base_affine(dims, pixdim[1:4], origin - 1)
        return affines.base_affine(dims, pixdim[1:4])
    if hdr["sform_code"] > 0:
        return affines.sform_affine(hdr["srow_x"], hdr["srow_y"], hdr["srow_z"])
    if hdr["qform_code"] > 0:
        quat = (hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"])
        offs = (hdr["qoffset_x"], hdr["qoffset_y"], hdr["qoffset_z"])
        return affines.qform_affine(quat, offs, pixdim)
    # method 1 (no qform, no sform): sizes are magnitudes, as nibabel reads them (SPM's
    # Analyze rule above instead lets a negative pixdim[1] cancel the x flip)
    return affines.base_affine(shape, np.abs(pixdim[1 : len(shape) + 1]))


_SPACE_UNITS = {1: "meter", 2: "mm", 3: "micron"}
_SPACE_CODES = {v: k for k, v in _SPACE_UNITS.items()}
_SECONDS_PER = {8: 1.0, 16: 1e-3, 24: 1e-6}  # xyzt_units time codes: s, ms, us


def timing_of(hdr: Header, ndim: int) -> Timing:
    """Spatial unit and TR (seconds) from ``xyzt_units`` and ``pixdim[4]``.

    With a time unit stated, ``pixdim[4]`` is the TR whatever the dimensions (as
    FreeSurfer reads it); without one, only for 4D+ images, taken as seconds.
    """
    units = 0 if hdr.kind == "analyze" else int(hdr["xyzt_units"])
    code = units & 0x38
    scale = _SECONDS_PER.get(code, 1.0 if code == 0 and ndim >= 4 else None)
    step = float(hdr["pixdim"][4])
    tr = step * scale if scale is not None and math.isfinite(step) and step > 0 else None
    return Timing(_SPACE_UNITS.get(units & 7), tr)


def _set_timing(rec: np.ndarray, timing: Timing) -> None:
    """Store a foreign header's units and TR (seconds) in ``xyzt_units``/``pixdim[4]``."""
    units = _SPACE_CODES.get(timing.space, 0)
    if timing.tr is not None:
        rec["pixdim"][4] = timing.tr
        units |= 8
    rec["xyzt_units"] = units


def parse_extensions(block: bytes, endian: str, path: str) -> list[Extension]:
    """Extensions from the bytes after the 4-byte extender (empty if the flag is unset)."""
    if len(block) < 4 or block[0] == 0:
        return []
    if len(block) - 4 > MAX_EXTENSION_BYTES:
        raise HeaderError(f"{path}: header extensions exceed {MAX_EXTENSION_BYTES} bytes")
    out, pos = [], 4
    while len(block) - pos >= 8:
        esize, ecode = struct.unpack(endian + "ii", block[pos : pos + 8])
        if esize == 0 and ecode == 0:
            break  # zero padding after the last extension
        if esize < 8 or pos + esize > len(block):
            raise HeaderError(
                f"{path}: header extension at byte {348 + pos} has invalid esize {esize}"
            )
        out.append(Extension(int(ecode), bytes(block[pos + 8 : pos + esize]).rstrip(b"\x00")))
        pos += esize
    return out


# --- building headers for saving -------------------------------------------------


def _extension_bytes(exts: list[Extension], endian: str) -> bytes:
    if not exts:
        return b"\x00\x00\x00\x00"
    parts = [b"\x01\x00\x00\x00"]
    for ext in exts:
        size = 8 + len(ext.content)
        size += -size % 16
        parts.append(struct.pack(endian + "ii", size, ext.code))
        parts.append(ext.content.ljust(size - 8, b"\x00"))
    return b"".join(parts)


def _set_affine(rec: np.ndarray, affine: np.ndarray, old: np.ndarray | None) -> None:
    """Store ``affine`` as sform (and qform where it is a rotation and zooms)."""
    if old is not None and np.array_equal(old, affine):
        return
    affine = np.asarray(affine, dtype=np.float64)
    rec["srow_x"], rec["srow_y"], rec["srow_z"] = affine[0], affine[1], affine[2]
    rec["sform_code"] = rec["sform_code"] or 2
    quat, offset, zooms, qfac = affines.affine_to_qform(affine)
    rec["quatern_b"], rec["quatern_c"], rec["quatern_d"] = quat
    rec["qoffset_x"], rec["qoffset_y"], rec["qoffset_z"] = offset
    rec["pixdim"][0] = qfac
    rec["pixdim"][1:4] = zooms
    rec["qform_code"] = rec["qform_code"] or (rec["sform_code"] if rec["sform_code"] else 2)


def nifti_kind(
    src: Header | None, shape: tuple[int, ...], scaling: Scaling, version: int | None = None
) -> str:
    """The NIfTI kind a save writes ("nifti1" or "nifti2").

    ``version`` (1 or 2) if given; else a NIfTI-2 ``src`` stays NIfTI-2; else
    NIfTI-1 unless a dimension exceeds int16 or the scaling is not exact in
    float32 (NIfTI-1 stores it as float32).
    """
    big = max(shape, default=1) > 32767
    if version is not None:
        if version not in (1, 2):
            raise ValueError(f"nifti_version must be 1 or 2, not {version!r}")
        if version == 1 and big:
            raise UnsupportedFormatError(
                f"NIfTI-1 holds dimensions up to 32767, not {max(shape)}: use nifti_version=2"
            )
        return f"nifti{version}"
    if big or (src is not None and src.kind == "nifti2"):
        return "nifti2"
    exact = all(float(np.float32(v)) == v for v in (scaling.slope, scaling.inter))
    return "nifti1" if scaling.is_identity or exact else "nifti2"


_CARRIED = (
    "descrip",
    "aux_file",
    "xyzt_units",
    "intent_code",
    "intent_p1",
    "intent_p2",
    "intent_p3",
    "intent_name",
    "cal_max",
    "cal_min",
    "slice_duration",
    "toffset",
    "dim_info",
    "slice_code",
    "slice_start",
    "slice_end",
    "qform_code",
    "sform_code",
    "quatern_b",
    "quatern_c",
    "quatern_d",
    "qoffset_x",
    "qoffset_y",
    "qoffset_z",
    "srow_x",
    "srow_y",
    "srow_z",
)


def build_header(
    src: Header | None,
    shape: tuple[int, ...],
    dtype: np.dtype,
    affine: np.ndarray,
    scaling: Scaling,
    single: bool,
    src_affine: np.ndarray | None = None,
    timing: Timing | None = None,
    version: int | None = None,
) -> tuple[bytes, int]:
    """(header bytes incl. extender and extensions, data offset) for a NIfTI file.

    The NIfTI version is :func:`nifti_kind`'s. Fields of ``src`` carry over
    (exactly between NIfTI-2 headers); the data fields (dim, datatype, offset,
    scaling) are set anew and the affine is stored only when it differs from
    ``src_affine``. Without a NIfTI/Analyze ``src``, ``timing`` (another
    format's units and TR) is stored.
    """
    if len(shape) > 7:
        raise UnsupportedFormatError(f"NIfTI holds at most 7 dimensions, not {len(shape)}")
    kind = nifti_kind(src, shape, scaling, version)
    dtype = np.dtype(dtype)
    endian = ">" if dtype.byteorder == ">" else "<"
    rec = np.zeros((), DTYPES[kind].newbyteorder(endian))
    if src is not None and src.kind == kind and src.endian == endian:
        rec[...] = src.record
    elif src is not None:
        for name in _CARRIED:
            if name in src and name in rec.dtype.names:
                rec[name] = src[name]
        rec["pixdim"][: len(src["pixdim"])] = src["pixdim"]
        if src.kind == "analyze":
            src_affine = None  # no sform/qform to carry: always store the affine
    rec["sizeof_hdr"] = DTYPES[kind].itemsize
    rec["magic"] = (SINGLE_MAGIC if single else PAIR_MAGIC)[kind]
    if src is None and timing is not None:
        _set_timing(rec, timing)
    rec["dim"] = 1
    rec["dim"][0] = len(shape)
    rec["dim"][1 : len(shape) + 1] = shape
    if float(rec["pixdim"][0]) not in (-1.0, 1.0):
        rec["pixdim"][0] = 1.0
    zeros = rec["pixdim"][1 : len(shape) + 1] == 0
    rec["pixdim"][1 : len(shape) + 1][zeros] = 1.0
    rec["datatype"] = code_for_dtype(dtype)
    rec["bitpix"] = dtype.itemsize * 8
    rec["scl_slope"], rec["scl_inter"] = (
        (np.nan, np.nan) if scaling.is_identity else (scaling.slope, scaling.inter)
    )
    _set_affine(rec, affine, src_affine)
    exts = _extension_bytes(src.extensions if src is not None else [], endian)
    head = rec.tobytes() + exts
    offset = 0
    if single:
        offset = len(head) + (-len(head) % 16)
        head = head.ljust(offset, b"\x00")
    rec["vox_offset"] = offset
    head = rec.tobytes() + head[rec.dtype.itemsize :]
    return head, offset
