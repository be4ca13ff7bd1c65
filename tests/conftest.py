"""Shared fixtures: a generated corpus of image files written with nibabel.

nibabel is the oracle: every corpus file is written with nibabel's header
classes and ``array_to_file`` and read back with ``nibabel.load``; tests compare
nilazyview against nibabel's *full* array (``np.asanyarray(img.dataobj)``) and
numpy indexing of it, never against nibabel's proxy slicing.

Tests that take a ``corpus_case`` argument are parametrized over :data:`CASES`
(format x dtype x endianness x scaling, dimensions cycling through 3D..7D).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import tempfile
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pytest
from nibabel.nifti1 import Nifti1PairHeader
from nibabel.nifti2 import Nifti2Header, Nifti2PairHeader
from nibabel.openers import ImageOpener
from nibabel.spm2analyze import Spm2AnalyzeHeader
from nibabel.volumeutils import array_to_file

RGB24 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])

NIFTI_DTYPES = (
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "rgb24",
)
ANALYZE_DTYPES = ("uint8", "int16", "int32", "float32", "float64", "complex64", "rgb24")

# name -> (header class, file name of the image written, single file?)
FORMATS = {
    "n1-nii": (nib.Nifti1Header, "img.nii", True),
    "n1-niigz": (nib.Nifti1Header, "img.nii.gz", True),
    "n1-pair": (Nifti1PairHeader, "img.hdr", False),
    "n1-pairgz": (Nifti1PairHeader, "img.hdr.gz", False),
    "n2-nii": (Nifti2Header, "img.nii", True),
    "n2-niigz": (Nifti2Header, "img.nii.gz", True),
    "n2-pair": (Nifti2PairHeader, "img.hdr", False),
    "analyze": (nib.AnalyzeHeader, "img.hdr", False),
    "analyze-gz": (nib.AnalyzeHeader, "img.img.gz", False),
    "spm2": (Spm2AnalyzeHeader, "img.img", False),
}

# name -> (slope, inter); None: no scaling stored.
SCALINGS = {
    "unscaled": None,
    "scaled": (0.5, -3.0),  # exact in float32
    "scaled64": (0.1, 1.0 / 3.0),  # not exact in float32 (NIfTI-2 stores float64)
}

SHAPES = (
    (5, 4, 3),
    (6, 5, 4, 3),
    (3, 4, 2, 3, 2),
    (2, 3, 1, 2, 2, 2),
    (2, 2, 2, 1, 2, 2, 3),
    (7, 1, 3),
)


@dataclass(frozen=True)
class Case:
    fmt: str
    dtype: str
    endian: str
    scaling: str
    shape: tuple[int, ...]

    @property
    def id(self) -> str:
        e = "le" if self.endian == "<" else "be"
        return f"{self.fmt}-{self.dtype}-{e}-{self.scaling}-{len(self.shape)}d"

    @property
    def slope_inter(self):
        si = SCALINGS[self.scaling]
        if si is not None and self.fmt == "spm2":
            return (si[0], 0.0)  # SPM2 stores no intercept
        return si

    @property
    def np_dtype(self) -> np.dtype:
        return RGB24 if self.dtype == "rgb24" else np.dtype(self.dtype)


def _make_cases() -> list[Case]:
    out = []
    for fmt in FORMATS:
        analyze = fmt.startswith(("analyze", "spm2"))
        dtypes = ANALYZE_DTYPES if analyze else NIFTI_DTYPES
        if fmt.startswith("analyze"):
            scalings = ("unscaled",)
        elif fmt == "n2-nii":
            scalings = ("unscaled", "scaled", "scaled64")
        else:
            scalings = ("unscaled", "scaled")
        for dt, endian, sc in itertools.product(dtypes, "<>", scalings):
            if dt == "rgb24" and sc != "unscaled":
                continue  # nibabel cannot read scaled RGB; see test_scaling
            out.append((fmt, dt, endian, sc))
    return [Case(*c, SHAPES[i % len(SHAPES)]) for i, c in enumerate(out)]


CASES = _make_cases()


def make_data(dtype: np.dtype, shape, seed: int = 0) -> np.ndarray:
    """Random data of ``dtype`` (native order) hitting the type's extremes."""
    rng = np.random.default_rng(seed)
    stored = np.dtype(dtype)
    if stored.fields is None and not stored.isnative:
        return make_data(stored.newbyteorder("="), shape, seed).astype(stored)
    dtype = stored
    n = int(np.prod(shape))
    if dtype.fields is not None:
        arr = np.zeros(n, dtype)
        for name in dtype.names:
            arr[name] = rng.integers(0, 256, n)
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
        special = [info.min, info.max, 0, 1]
        if dtype.kind == "i":
            special.append(-1)
        arr[: min(n, len(special))] = special[: min(n, len(special))]
    elif dtype.kind == "f":
        arr = (rng.standard_normal(n) * 1000).astype(dtype)
        special = [np.nan, np.inf, -np.inf, -0.0, np.finfo(dtype).tiny / 4, np.finfo(dtype).max]
        arr[: min(n, len(special))] = special[: min(n, len(special))]
    else:
        arr = (rng.standard_normal(n) * 1000 + 1j * rng.standard_normal(n) * 1000).astype(dtype)
        arr[0] = complex(np.nan, 1.0)
    return arr.reshape(shape)


AFFINE = np.array(
    [
        [-2.0, 0.1, 0.0, 90.0],
        [0.2, 3.0, -0.3, -126.0],
        [0.0, 0.25, 4.0, -72.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def write_image(
    path: str,
    header_class,
    data: np.ndarray,
    *,
    endian: str = "<",
    slope_inter=None,
    affine=AFFINE,
    single: bool,
    vox_offset: int | None = None,
    stored: np.dtype | None = None,
) -> str:
    """Write ``data`` as stored values with a nibabel header (no nibabel rescaling)."""
    hdr = header_class(endianness=endian)
    hdr.set_data_dtype(data.dtype if stored is None else stored)
    hdr.set_data_shape(data.shape)
    hdr.set_zooms(tuple(float(z) for z in range(1, data.ndim + 1)))
    if isinstance(hdr, nib.Nifti1Header):  # Nifti2Header derives from it
        hdr.set_sform(affine, code=2)
        hdr.set_qform(affine, code=1)
    if slope_inter is not None:
        hdr.set_slope_inter(*slope_inter)
    img_path = path
    if single:
        offset = vox_offset if vox_offset is not None else hdr.single_vox_offset
        hdr.set_data_offset(offset)
    else:
        hdr.set_data_offset(0)
        stem = path[:-3] if path.endswith(".gz") else path
        gz = ".gz" if path.endswith(".gz") else ""
        base, _ = os.path.splitext(stem)
        path, img_path = base + ".hdr" + gz, base + ".img" + gz
    with ImageOpener(path, "wb") as f:
        hdr.write_to(f)
        if single:
            pos = f.tell()
            f.write(b"\x00" * (hdr.get_data_offset() - pos))
            array_to_file(data, f, hdr.get_data_dtype(), offset=offset, nan2zero=False)
    if not single:
        with ImageOpener(img_path, "wb") as f:
            array_to_file(data, f, hdr.get_data_dtype(), nan2zero=False)
    return path


@dataclass
class CorpusFile:
    case: Case
    path: str
    nib_img: object
    full: np.ndarray  # nibabel's full (scaled) array
    unscaled: np.ndarray  # nibabel's stored values


class Corpus:
    def __init__(self, root):
        self.root = root
        self._cache: dict[str, CorpusFile] = {}

    def get(self, case: Case) -> CorpusFile:
        if case.id not in self._cache:
            header_class, name, single = FORMATS[case.fmt]
            folder = os.path.join(self.root, case.id)
            os.makedirs(folder)
            data = make_data(case.np_dtype, case.shape, seed=len(self._cache))
            path = os.path.join(folder, name)
            write_image(
                path,
                header_class,
                data,
                endian=case.endian,
                slope_inter=case.slope_inter,
                single=single,
            )
            nib_img = nib.load(path)
            full = np.asanyarray(nib_img.dataobj)
            unscaled = np.asanyarray(nib_img.dataobj.get_unscaled())
            self._cache[case.id] = CorpusFile(case, path, nib_img, full, unscaled)
        return self._cache[case.id]


def drop_page_cache(path) -> None:
    """Drop ``path``'s pages from the OS page cache, so the next read is cold."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest.fixture(scope="session", autouse=True)
def _private_gzip_index_cache(tmp_path_factory):
    """Tests never write gzip indexes into the user's cache folder (subprocesses inherit it)."""
    old = os.environ.get("NILAZYVIEW_CACHE_DIR")
    os.environ["NILAZYVIEW_CACHE_DIR"] = str(tmp_path_factory.mktemp("nlv-cache"))
    yield
    if old is None:
        os.environ.pop("NILAZYVIEW_CACHE_DIR", None)
    else:
        os.environ["NILAZYVIEW_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    return Corpus(str(tmp_path_factory.mktemp("corpus")))


def pytest_generate_tests(metafunc):
    if "corpus_case" in metafunc.fixturenames:
        metafunc.parametrize("corpus_case", CASES, ids=[c.id for c in CASES])


@pytest.fixture
def corpus_file(corpus, corpus_case) -> CorpusFile:
    return corpus.get(corpus_case)


# --- comparison helpers ----------------------------------------------------------

F32 = np.finfo(np.float32).eps


def _f32_exact(x: float) -> bool:
    return bool(np.isfinite(np.float32(x))) and float(np.float32(x)) == x


def expected_dtype(stored: np.dtype, slope_inter) -> np.dtype:
    """The dtype the issue specifies for data read with ``slope_inter``.

    Unscaled: the stored type in native order. Scaled: float32 (complex64) for
    8/16-bit integers and float32 (complex64) data when slope and intercept are
    float32 values (for float32 data also |slope| <= 1, so finite values stay
    finite), float64 (complex128) otherwise.
    """
    stored = np.dtype(stored)
    if stored.fields is not None:
        return stored
    if slope_inter is None:
        return stored.newbyteorder("=")
    slope, inter = slope_inter
    exact = _f32_exact(slope) and _f32_exact(inter)
    if stored.kind == "c":
        return np.dtype(np.complex64 if stored.itemsize == 8 and exact else np.complex128)
    small = stored.kind in "iu" and stored.itemsize <= 2
    if small:  # ... and the scaled range of the type fits float32
        info = np.iinfo(stored)
        peak = max(-float(info.min), float(info.max)) * abs(slope) + abs(inter)
        small = peak < float(np.finfo(np.float32).max)
    f32 = stored.kind == "f" and stored.itemsize == 4 and abs(slope) <= 1
    if exact and (small or f32):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def assert_scaled_close(got: np.ndarray, ref: np.ndarray, unscaled: np.ndarray, slope, inter):
    """``got`` within a couple of ulps (of its own type) of ``unscaled * slope + inter``."""
    assert got.shape == ref.shape
    eps = np.finfo(got.dtype).eps
    u = unscaled.astype(np.complex128 if unscaled.dtype.kind == "c" else np.float64)
    bound = 4 * eps * (np.abs(u) * abs(slope) + abs(inter))
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(got.astype(u.dtype) - ref.astype(u.dtype))
        finite = np.isfinite(ref)
        assert np.array_equal(np.isnan(got), np.isnan(ref))
        assert np.array_equal(got[~finite & ~np.isnan(ref)], ref[~finite & ~np.isnan(ref)])
        bad = finite & ~(err <= bound)
    assert not bad.any(), (
        f"{bad.sum()} values off by more than 4 ulps: got {got[bad][:5]}, want {ref[bad][:5]}"
    )


# basic indices applied to every corpus file; numpy decides what is valid
SAMPLE_INDICES = [
    (Ellipsis, 0),
    (Ellipsis, -1),
    (1,),
    (-1, Ellipsis, 0),
    (slice(None, None, -1),),
    (slice(-18, 16),),
    (slice(1, None, 2), None, Ellipsis, 1),
    (Ellipsis, slice(None, None, -2), slice(0, 1)),
    (slice(None), 2),
    (0, slice(3, 0, -1), None),
    (slice(2, 2),),
    (5,),
    (0, 0, 0, 0, 0, 0, 0, 0),
]


# --- fuzzing: one scratch folder per fuzz module ------------------------------------


class Scratch:
    """One temporary folder per test; files are rewritten for each example."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="nlv-fuzz-")
        self.dir = self._tmp.name
        self.n = 0

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def fresh(self) -> str:
        """A new sub-folder (no stale pair partners; h5py will not rewrite an open file)."""
        self.n += 1
        sub = os.path.join(self.dir, str(self.n))
        os.mkdir(sub)
        return sub

    def close(self):
        self._tmp.cleanup()


@pytest.fixture(scope="module")
def scratch():
    """The scratch folder; gzip indexes and spill files of fuzzed files stay inside it."""
    s = Scratch()
    saved = {k: os.environ.get(k) for k in ("NILAZYVIEW_CACHE_DIR", "NILAZYVIEW_TMPDIR")}
    os.environ["NILAZYVIEW_CACHE_DIR"] = os.path.join(s.dir, "cache")
    os.environ["NILAZYVIEW_TMPDIR"] = os.path.join(s.dir, "tmp")
    os.mkdir(os.environ["NILAZYVIEW_TMPDIR"])
    yield s
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    s.close()


# --- shared helpers -----------------------------------------------------------------


@pytest.fixture
def private_tmpdir(tmp_path, monkeypatch):
    """A private NILAZYVIEW_TMPDIR for as_file copies (the module's folder cache reset)."""
    from nilazyview import handoff

    base = tmp_path / "handoff-tmp"
    base.mkdir()
    monkeypatch.setenv("NILAZYVIEW_TMPDIR", str(base))
    monkeypatch.setattr(handoff, "_folder", None)
    return base


def make_sample_module():
    """scripts/make_sample.py as a module (registered: its dataclasses need that)."""
    mod = sys.modules.get("make_sample")
    if mod is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        spec = importlib.util.spec_from_file_location(
            "make_sample", os.path.join(root, "scripts", "make_sample.py")
        )
        mod = importlib.util.module_from_spec(spec)
        sys.modules["make_sample"] = mod
        spec.loader.exec_module(mod)
    return mod
