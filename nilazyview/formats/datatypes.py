"""NIfTI / Analyze datatype codes and the numpy dtypes they stand for."""

from __future__ import annotations

import numpy as np

from ..errors import HeaderError, UnsupportedFormatError

RGB24 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
RGBA32 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1"), ("A", "u1")])

#: code -> (name, dtype); RGB types are structured dtypes, as in nibabel.
CODES: dict[int, tuple[str, np.dtype]] = {
    2: ("uint8", np.dtype("u1")),
    4: ("int16", np.dtype("i2")),
    8: ("int32", np.dtype("i4")),
    16: ("float32", np.dtype("f4")),
    32: ("complex64", np.dtype("c8")),
    64: ("float64", np.dtype("f8")),
    128: ("RGB24", RGB24),
    256: ("int8", np.dtype("i1")),
    512: ("uint16", np.dtype("u2")),
    768: ("uint32", np.dtype("u4")),
    1024: ("int64", np.dtype("i8")),
    1280: ("uint64", np.dtype("u8")),
    1792: ("complex128", np.dtype("c16")),
    2304: ("RGBA32", RGBA32),
}
#: Codes defined by NIfTI that numpy cannot hold faithfully.
UNREPRESENTABLE = {1: "binary (1 bit)", 1536: "float128", 2048: "complex256"}
#: Analyze 7.5 knows only these.
ANALYZE_CODES = frozenset({2, 4, 8, 16, 32, 64, 128})


def dtype_for_code(code: int, endian: str, path: str, analyze: bool = False) -> np.dtype:
    """The on-disk dtype (with byte order ``endian``, '<' or '>') for a datatype code."""
    code = int(code)
    if code in UNREPRESENTABLE:
        raise UnsupportedFormatError(
            f"{path}: datatype {code} ({UNREPRESENTABLE[code]}) has no exact numpy type"
        )
    if code not in CODES or (analyze and code not in ANALYZE_CODES):
        raise HeaderError(f"{path}: unknown datatype code {code} in field 'datatype'")
    dt = CODES[code][1]
    return dt if dt.fields is not None else dt.newbyteorder(endian)


def code_for_dtype(dtype: np.dtype) -> int:
    """The NIfTI datatype code for a numpy dtype (byte order ignored)."""
    dtype = np.dtype(dtype)
    for code, (_, dt) in CODES.items():
        if dt.fields is not None:
            if dtype == dt:
                return code
        elif dtype.fields is None and dtype.newbyteorder("=") == dt.newbyteorder("="):
            return code
    if dtype == np.bool_:
        return 2
    raise UnsupportedFormatError(f"no NIfTI datatype for numpy dtype {dtype}")
