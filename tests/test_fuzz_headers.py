"""Header fuzzing: bad bytes only ever raise ImageFileError (or IndexError for bad indices).

Property tests over NIfTI-1, NIfTI-2 and Analyze headers (single files, pairs,
gzip-wrapped) and MGH: random bytes, valid headers with fields set to hostile
values (dims, datatype, bitpix, vox_offset, pixdim, qform/sform codes, scaling,
extension sizes and flags), and truncation at every length. For every case:

* ``nlv.load``, ``slicecopy[index]`` and (for small declared data) ``get_data``
  raise nothing but :class:`nlv.ImageFileError` subclasses, and ``IndexError``
  exactly when numpy rejects the index; a valid index gives numpy's shape;
* the traced peak allocation stays below what the files can back (plain: their
  size; gzip: 1032 x their size), times 8 for scaled output, plus 4 MiB;
* no case takes more than a few seconds (a hang fails the test).

``NLV_FUZZ_EXAMPLES`` sets the examples per property (default 60; the long run
in RELIABILITY.md uses 5000). The coverage-guided harness is ``fuzz/fuzz_load.py``.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import os
import signal
import struct
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from unittest import mock

import nibabel as nib
import numpy as np
import pytest
from conftest import Scratch, write_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import basic_indices
from nibabel.nifti1 import Nifti1PairHeader
from nibabel.nifti2 import Nifti2Header, Nifti2PairHeader

import nilazyview as nlv
from nilazyview.formats import mgh
from nilazyview.formats.codec import GZIP_MAX_RATIO
from nilazyview.formats.headers import DTYPES
from nilazyview.sources import gzfile

EXAMPLES = int(os.environ.get("NLV_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # our own wall-clock check below catches hangs
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
#: get_data only when the declared data are at most this big.
GET_DATA_MAX = 4 * 2**20
#: Seconds one case may take (load, a few slices, get_data of at most GET_DATA_MAX).
HANG_S = 5.0

pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),  # absurd scalings overflow
    pytest.mark.filterwarnings("ignore::nilazyview.MalformedFileWarning"),  # vox_offset 0
]


# --- the contract ------------------------------------------------------------------


#: Fixed allocation allowed besides 8 x backable: numpy and parsing (4 MiB), plus for gzip
#: the 16 MiB read buffer indexed_gzip allocates per open file (reserved, mostly untouched).
BASE_ALLOWANCE = 4 * 2**20
GZIP_ALLOWANCE = 16 * 2**20 + 2**20


def _is_gz(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def backable(paths: list[str]) -> int:
    """The most uncompressed bytes these files can hold."""
    total = 0
    for p in paths:
        size = os.path.getsize(p)
        total += GZIP_MAX_RATIO * size + 2**20 if _is_gz(p) else size
    return total


def numpy_shape(shape: tuple[int, ...], index) -> tuple[int, ...] | None:
    """Shape of ``zeros(shape)[index]`` as numpy gives it, or None for IndexError.

    Uses a zero-stride view of shortened axes (no allocation; integer indices
    decide validity the same), then recomputes slice lengths on the real sizes.
    """
    idx = index if isinstance(index, tuple) else (index,)
    ints = [abs(int(i)) + 2 for i in idx if isinstance(i, int | np.integer)]
    small = tuple(min(n, max(ints, default=2)) for n in shape)
    try:
        np.broadcast_to(np.empty((), np.uint8), small)[idx]
    except IndexError:
        return None
    n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
    full: list = []
    for i in idx:
        full.extend([slice(None)] * (len(shape) - n_real) if i is Ellipsis else [i])
    if Ellipsis not in idx:
        full.extend([slice(None)] * (len(shape) - n_real))
    out, ax = [], 0
    for i in full:
        if i is None:
            out.append(1)
            continue
        if isinstance(i, slice):
            out.append(len(range(*i.indices(shape[ax]))))
        ax += 1
    return tuple(out)


def fixed_indices(shape: tuple[int, ...]) -> list:
    last = shape[-1] if shape else 1
    return [(..., last // 2 if last else 0), (slice(None, None, -1),), (..., last + 3)]


@dataclass
class Outcome:
    loaded: bool = False
    read: bool = False
    error: str = ""
    data: np.ndarray | None = None


def check_contract(path: str, files: list[str], indices=None) -> Outcome:
    """Run load, slicecopy and get_data on ``path``; fail on any contract breach."""
    out = Outcome()
    limit = BASE_ALLOWANCE + 8 * backable(files)
    limit += sum(GZIP_ALLOWANCE for p in files if _is_gz(p))
    tracemalloc.start()
    t0 = time.perf_counter()
    with _alarm(2 * HANG_S):
        return _run_contract(path, files, indices, out, limit, t0)


class Hang(Exception):
    """A case ran past the alarm (a loop that never ends)."""


@contextlib.contextmanager
def _alarm(seconds: float):
    """Interrupt a Python-level endless loop (a hang fails the test instead of CI)."""

    def ring(signum, frame):
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _run_contract(path, files, indices, out: Outcome, limit: int, t0: float) -> Outcome:
    try:
        try:
            img = nlv.load(path)
        except nlv.ImageFileError as exc:
            out.error = type(exc).__name__
            return out
        out.loaded = True
        layout = getattr(img.proxy, "layout", None)
        if layout is not None:
            assert layout.offset + layout.nbytes <= backable(files), "declared past the file"
        for index in indices(img.shape) if indices else fixed_indices(img.shape):
            want = numpy_shape(img.shape, index)
            try:
                got = img.slicecopy[index]
            except IndexError:
                assert want is None, f"IndexError for a valid index {index!r} on {img.shape}"
                continue
            except nlv.ImageFileError as exc:
                out.error = type(exc).__name__
                return out
            assert want is not None, f"{index!r} on {img.shape} should raise IndexError"
            assert got.shape == want
        if layout is not None and layout.nbytes <= GET_DATA_MAX:
            try:
                data = img.get_data()
            except nlv.ImageFileError as exc:
                out.error = type(exc).__name__
                return out
            assert data.shape == img.shape
            out.read, out.data = True, data
        return out
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        took = time.perf_counter() - t0
        assert peak <= limit, f"peak allocation {peak} B, the files back {backable(files)} B"
        assert took < HANG_S, f"took {took:.1f} s"


# --- valid base files --------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    name: str
    kind: str  # nifti1, nifti2, analyze, mgh
    single: bool
    endian: str
    header: bytes  # the header file (single: the whole file)
    image: bytes = b""  # pair: the image file

    @property
    def dtype(self) -> np.dtype:
        if self.kind == "mgh":
            return mgh.HEADER_FIELDS
        return DTYPES[self.kind].newbyteorder(self.endian)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _make_bases() -> list[Base]:
    out = []
    rng = np.random.default_rng(1)
    data = rng.integers(-300, 300, (3, 4, 5)).astype(np.int16)
    with tempfile.TemporaryDirectory() as d:
        specs = [
            ("n1", nib.Nifti1Header, "nifti1", True),
            ("n1pair", Nifti1PairHeader, "nifti1", False),
            ("n2", Nifti2Header, "nifti2", True),
            ("n2pair", Nifti2PairHeader, "nifti2", False),
            ("analyze", nib.AnalyzeHeader, "analyze", False),
        ]
        for name, cls, kind, single in specs:
            for endian in "<>":
                path = os.path.join(d, f"{name}{endian == '<'}.{'nii' if single else 'hdr'}")
                write_image(path, cls, data, endian=endian, slope_inter=None, single=single)
                img = b"" if single else _read(path[:-4] + ".img")
                out.append(Base(f"{name}-{endian}", kind, single, endian, _read(path), img))
        # NIfTI-1 single file with two extensions, scaled
        src = nlv.load(os.path.join(d, "n1True.nii"))
        src.header.extensions = [nlv.Extension(6, b"comment"), nlv.Extension(4, b"<x>" * 9)]
        ext = bytearray(_read(nlv.save(src, os.path.join(d, "ext.nii"))))
        struct.pack_into("<ff", ext, 112, 0.5, -3.0)
        out.append(Base("n1ext-<", "nifti1", True, "<", bytes(ext)))
        mg = nlv.save(nlv.Image(data.astype(np.float32), np.diag([2, 3, 4, 1.0])), d + "/m.mgh")
        out.append(Base("mgh", "mgh", True, ">", _read(mg)))
    return out


BASES = _make_bases()
NIFTI_BASES = [b for b in BASES if b.kind != "mgh"]


def place(scratch: Scratch, base: Base, header: bytes, image: bytes | None, gz: bool) -> tuple:
    """Write a (mutated) base as files; (path to load, files written)."""
    sub = scratch.fresh()
    suffix = ".gz" if gz else ""
    pack = (lambda b: gzip.compress(b, 1, mtime=0)) if gz else (lambda b: b)
    if base.kind == "mgh":
        p = os.path.join(sub, "f.mgz" if gz else "f.mgh")
        with open(p, "wb") as f:
            f.write(pack(header))
        return p, [p]
    if base.single:
        p = os.path.join(sub, "f.nii" + suffix)
        with open(p, "wb") as f:
            f.write(pack(header))
        return p, [p]
    h, i = os.path.join(sub, "f.hdr" + suffix), os.path.join(sub, "f.img" + suffix)
    with open(h, "wb") as f:
        f.write(pack(header))
    with open(i, "wb") as f:
        f.write(pack(base.image if image is None else image))
    return h, [h, i]


# --- hostile field values ------------------------------------------------------------

INT_SPECIALS = [0, 1, -1, 2, 3, 7, 8, 9, 16, 255, 256, 348, 352, 540, 544, 32767, -32768]
INT_SPECIALS += [2**31 - 1, -(2**31), 2**32, 2**40, 2**62, 2**63 - 1, -(2**63)]
FLOAT_SPECIALS = [0.0, -0.0, 1.0, -1.0, 0.5, 352.0, 352.5, 544.0, 1e6, 1e30, -1e30]
FLOAT_SPECIALS += [3.4e38, 1e-45, float("nan"), float("inf"), float("-inf"), 2.0**63, 1e300]
#: Fields worth mutating most; any other field is picked too.
HOT = [
    "sizeof_hdr", "dim", "datatype", "bitpix", "vox_offset", "pixdim", "qform_code",
    "sform_code", "scl_slope", "scl_inter", "quatern_b", "quatern_c", "quatern_d",
    "srow_x", "magic", "glmax", "glmin", "cal_max", "cal_min", "origin",
    "version", "dims", "type", "goodRASFlag", "delta", "Mdc",
]  # fmt: skip


def _wrap_int(value: int, dt: np.dtype) -> int:
    info = np.iinfo(dt)
    span = int(info.max) - int(info.min) + 1
    return (int(value) - int(info.min)) % span + int(info.min)


@st.composite
def field_edit(draw, dtype: np.dtype):
    """(field, element, value) for one field of a header ``dtype``."""
    names = [n for n in HOT if n in dtype.names]
    name = draw(st.sampled_from(names) | st.sampled_from(dtype.names))
    fdt, _ = dtype.fields[name]
    base, shape = fdt.base, fdt.shape
    elem = draw(st.integers(0, int(np.prod(shape)) - 1)) if shape else None
    if base.kind in "iu":
        info = np.iinfo(base)
        raw = draw(
            st.sampled_from(INT_SPECIALS) | st.integers(int(info.min), int(info.max)),
        )
        value = _wrap_int(raw, base)
    elif base.kind == "f":
        value = draw(st.sampled_from(FLOAT_SPECIALS) | st.floats(width=8 * base.itemsize))
    else:
        value = draw(
            st.sampled_from([b"n+1", b"ni1", b"n+2", b"ni2", b"", b"\xff\xff\xff"])
            | st.binary(max_size=base.itemsize)
        )
    return name, elem, value


def apply_edits(block: bytes, dtype: np.dtype, edits) -> bytes:
    buf = bytearray(block)
    if len(buf) < dtype.itemsize:
        return bytes(buf)
    rec = np.frombuffer(buf, dtype, count=1)
    for name, elem, value in edits:
        field = rec[name]
        if elem is None:
            field[0] = value
        else:
            field.reshape(1, -1)[0, elem] = value
    return bytes(buf)


@st.composite
def extension_edit(draw, base: Base):
    """Bytes to splice after the fixed header: extender flag, esize, ecode."""
    flag = draw(st.sampled_from([b"\x00\x00\x00\x00", b"\x01\x00\x00\x00", b"\xff\x00\x00\x00"]))
    esize = draw(st.sampled_from([0, 8, 16, 24, 7, -8, 2**31 - 1, 2**20, 9]) | st.integers())
    ecode = draw(st.integers(-(2**31), 2**31 - 1))
    e = "<" if base.endian == "<" else ">"
    return flag + struct.pack(e + "ii", _wrap_int(esize, np.dtype("i4")), ecode)


# --- properties --------------------------------------------------------------------


def _draw_indices(data):
    def pick(shape):
        valid = basic_indices(shape, allow_newaxis=True, allow_ellipsis=True) if shape else None
        bad_ax = st.integers(0, max(0, len(shape) - 1))
        picks = []
        if valid is not None:
            picks.append(data.draw(valid, label="index"))
            ax = data.draw(bad_ax, label="bad axis")
            picks.append((slice(None),) * ax + (shape[ax] + data.draw(st.integers(0, 5)),))
        return picks

    return pick


@FUZZ
@given(
    base=st.sampled_from(BASES),
    edits=st.data(),
    gz=st.booleans(),
    data=st.data(),
)
def test_mutated_header_fields(scratch, base, edits, gz, data):
    """Valid headers with 1-4 fields set to hostile values (all formats, gz or not)."""
    changes = edits.draw(st.lists(field_edit(base.dtype), min_size=1, max_size=4), label="edits")
    header = apply_edits(base.header, base.dtype, changes)
    path, files = place(scratch, base, header, None, gz)
    check_contract(path, files, _draw_indices(data))


@FUZZ
@given(base=st.sampled_from(NIFTI_BASES), data=st.data(), gz=st.booleans())
def test_mutated_extensions(scratch, base, data, gz):
    """Extender flag and first extension's esize/ecode, with vox_offset moved around."""
    n = base.dtype.itemsize
    ext = data.draw(extension_edit(base), label="extension")
    rest = data.draw(st.binary(max_size=64), label="extension body")
    header = base.header[:n] + ext + rest + (base.header[n + len(ext) + len(rest) :])
    if data.draw(st.booleans(), label="move vox_offset"):
        off = data.draw(st.sampled_from([0, n, n + 4, n + 16, 2**20, 2**28, 2**31 - 8]))
        header = apply_edits(header, base.dtype, [("vox_offset", None, off)])
    path, files = place(scratch, base, header, None, gz)
    check_contract(path, files)


@FUZZ
@given(base=st.sampled_from(BASES), data=st.data())
def test_random_byte_flips(scratch, base, data):
    """Valid files with random bytes overwritten anywhere (header, extensions, data)."""
    buf = bytearray(base.header)
    for _ in range(data.draw(st.integers(1, 8), label="n flips")):
        pos = data.draw(st.integers(0, len(buf) - 1), label="pos")
        buf[pos] = data.draw(st.integers(0, 255), label="byte")
    image = None
    if not base.single and data.draw(st.booleans(), label="cut image"):
        image = base.image[: data.draw(st.integers(0, len(base.image)), label="image len")]
    gz = data.draw(st.booleans(), label="gz")
    path, files = place(scratch, base, bytes(buf), image, gz)
    check_contract(path, files)


@FUZZ
@given(
    prefix=st.sampled_from([b"", b"\x5c\x01\x00\x00", b"\x00\x00\x01\x5c", b"\x1c\x02\x00\x00"]),
    body=st.binary(max_size=1500),
    name=st.sampled_from(["r.nii", "r.nii.gz", "r.hdr", "r.mgh", "r.img"]),
)
def test_random_bytes(scratch, prefix, body, name):
    """Arbitrary bytes, optionally behind a valid sizeof_hdr (348 LE/BE, 540 LE)."""
    sub = scratch.fresh()
    payload = prefix + body
    if name.endswith((".nii", ".hdr")) and len(payload) > 348:
        payload = payload[:344] + b"n+1\x00" + payload[348:] if name.endswith("nii") else payload
    path = os.path.join(sub, name)
    with open(path, "wb") as f:
        f.write(payload)
    files = [path]
    if name.endswith((".hdr", ".img")):  # its partner, also random
        other = os.path.join(sub, "r.img" if name.endswith(".hdr") else "r.hdr")
        with open(other, "wb") as f:
            f.write(body[::-1])
        files.append(other)
    check_contract(path, files)


@FUZZ
@given(base=st.sampled_from(NIFTI_BASES), data=st.data(), indexed=st.booleans())
def test_gzip_stream_corruption(scratch, base, data, indexed):
    """A valid .nii.gz / .hdr.gz with its compressed bytes flipped or cut.

    Read with rapidgzip, and with the plain ``gzip`` fallback (without the extra).
    """
    comp = bytearray(gzip.compress(base.header + base.image if base.single else base.header))
    if data.draw(st.booleans(), label="flip"):
        pos = data.draw(st.integers(0, len(comp) - 1))
        comp[pos] ^= data.draw(st.integers(1, 255))
    else:
        comp = comp[: data.draw(st.integers(0, len(comp)))]
    sub = scratch.fresh()
    name = "g.nii.gz" if base.single else "g.hdr.gz"
    path = os.path.join(sub, name)
    with open(path, "wb") as f:
        f.write(bytes(comp))
    files = [path]
    if not base.single:
        files.append(os.path.join(sub, "g.img.gz"))
        with open(files[1], "wb") as f:
            f.write(gzip.compress(base.image))
    with mock.patch.object(gzfile, "_have_rapidgzip", lambda: indexed):
        check_contract(path, files)


# --- truncation at every length ---------------------------------------------------------


@pytest.mark.parametrize("base", BASES, ids=[b.name for b in BASES])
def test_truncated_at_every_length(scratch, base):
    """Every prefix of a valid file (header file of pairs too) is read or refused."""
    outcomes = {"loaded": 0, "refused": 0}
    whole = base.header
    for n in range(len(whole) + 1):
        path, files = place(scratch, base, whole[:n], None, False)
        out = check_contract(path, files, lambda shape: [(..., 0)] if shape else [])
        outcomes["loaded" if out.loaded else "refused"] += 1
        # a single file cut before its data end cannot be read (MGH's footer is optional)
        data_end = len(whole) - (mgh.FOOTER_FIELDS.itemsize if base.kind == "mgh" else 0)
        if n < data_end and base.single:
            assert not out.read, f"read a file cut at {n} of {len(whole)} bytes"
    assert outcomes["loaded"] >= 1  # the whole file


@pytest.mark.parametrize("base", [b for b in BASES if not b.single], ids=lambda b: b.name)
def test_pair_image_truncated_at_every_length(scratch, base):
    for n in range(len(base.image) + 1):
        path, files = place(scratch, base, base.header, base.image[:n], False)
        out = check_contract(path, files)
        assert out.read == (n == len(base.image)), n


def _reference(scratch: Scratch, base: Base) -> np.ndarray:
    path, _ = place(scratch, base, base.header, None, False)
    return nlv.load(path).get_data()


@pytest.mark.parametrize("base", [b for b in BASES if b.name in ("n1-<", "n2->", "mgh")])
def test_gzipped_truncated_at_every_length(scratch, base):
    """Every prefix of a .nii.gz / .mgz: refused, or (cut in the gzip trailer) the same data."""
    ref = _reference(scratch, base)
    comp = gzip.compress(base.header, 6, mtime=0)
    for n in range(len(comp) + 1):
        sub = scratch.fresh()
        target = os.path.join(sub, "t.mgz" if base.kind == "mgh" else "t.nii.gz")
        with open(target, "wb") as f:
            f.write(comp[:n])
        out = check_contract(target, [target])
        if n == len(comp):
            assert out.read
        if out.read:  # random access cannot check the CRC; what it reads must be right
            np.testing.assert_array_equal(out.data, ref)
            assert n > len(comp) - 16, n


# --- inputs that once escaped -----------------------------------------------------------

#: A 203-byte .nii.gz found by fuzz/fuzz_load.py: indexed_gzip's raw reader returned a
#: negative count for it, which the read loop took for progress -- a hang that grew
#: memory without bound. Now a corrupt-stream ImageFileError.
NEGATIVE_READINTO_GZ = base64.b64decode(
    "H4sIAAAAAAAEA4sBAAAAAAAEABMD3etdla2fkAkLNNgDKSDTAYgbgBgdbHBmYDhQD8HocvTnMwH9gwoUDjIw"
    "LHAEYgegOAhDAUgcBBwcwBRYDYQF8SdYPUwATOdpG4Jpy3NuB4Bq7HtiHwLDpsEd/qCfHYgOZlwG5p+bengf"
    "mF/bAXMC5hyL07qKy8Di7xj9wHwjs0n7QerO/vcG668VlN8L4v/9vQGs7lWUsgOIb/whG6xOPeoXWJwncA6Y"
    "v9MXYi4ABE5y1fABAAA="
)


@pytest.mark.parametrize("indexed", [True, False], ids=["rapidgzip", "gzip"])
def test_regression_negative_readinto(scratch, indexed):
    path = scratch.write("neg.nii.gz", NEGATIVE_READINTO_GZ)
    with mock.patch.object(gzfile, "_have_rapidgzip", lambda: indexed):
        out = check_contract(path, [path])
    assert not out.loaded and out.error


# --- the contract checker itself catches escapes ---------------------------------------


def test_checker_flags_an_escape(scratch, monkeypatch):
    base = BASES[0]
    path, files = place(scratch, base, base.header, None, False)

    def broken(*a, **k):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(nlv, "load", broken)
    with pytest.raises(OSError):
        check_contract(path, files)


def test_checker_flags_big_allocations(scratch, monkeypatch):
    base = BASES[0]
    path, files = place(scratch, base, base.header, None, False)
    real = nlv.load

    def greedy(p):
        blob = np.ones(64 * 2**20, np.uint8)  # 64 MiB for a ~500-byte file
        del blob
        return real(p)

    monkeypatch.setattr(nlv, "load", greedy)
    with pytest.raises(AssertionError, match="peak allocation"):
        check_contract(path, files)
