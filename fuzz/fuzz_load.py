"""Coverage-guided fuzzing of ``nlv.load``, ``slicecopy`` and ``get_data`` with atheris.

Each input is one image file (or a header/image pair) in one of eight containers:
plain ``.nii``, ``.nii`` compressed by the harness, raw bytes named ``.nii.gz`` (to
fuzz the gzip stream itself), a ``.hdr``/``.img`` pair, a gzipped pair, an
Analyze-style pair with a gzipped image, ``.mgh`` and ``.mgz``; gzip is read with
rapidgzip or (high bit of the first byte) the plain ``gzip`` fallback. The payload is
mutated by libFuzzer, guided by coverage of ``nilazyview``. Seeds (NIfTI-1/2,
Analyze, MGH; both byte orders; scaled; with extensions) are written by
:func:`write_seeds`.

The contract checked: the only exceptions out of ``load``, ``slicecopy`` and
``get_data`` are ``nlv.ImageFileError`` subclasses, plus ``IndexError`` exactly
when numpy rejects the index; the declared data never exceed what the file can
back (the file size, or 1032 x a gzip file's size); no input runs longer than
``-timeout``; the address space is capped (``RLIMIT_AS``), so an allocation the
file cannot back fails loudly as ``MemoryError``. Anything else is a crash that
libFuzzer reports, with the input saved as ``crash-*``.

Bounded run (tests/test_fuzz_atheris.py runs this, skipped without atheris)::

    .venv/bin/python fuzz/fuzz_load.py -runs=3000

Long run (the figures in RELIABILITY.md; about 4 minutes, 1,400 inputs/s on one core)::

    mkdir -p fuzz/corpus
    .venv/bin/python fuzz/fuzz_load.py fuzz/corpus -runs=300000 -timeout=10 \
        -rss_limit_mb=4096 -print_final_stats=1

``fuzz/corpus`` keeps the inputs that found new coverage, so later runs resume
where the last one stopped. Needs ``pip install -e ".[fuzz]"`` (atheris).
"""

from __future__ import annotations

import ctypes
import gzip
import os
import resource
import shutil
import struct
import sys
import tempfile
import time
import warnings

import atheris
import numpy as np

with atheris.instrument_imports(include=["nilazyview"]):
    import nilazyview as nlv
    from nilazyview.formats.codec import GZIP_MAX_RATIO
    from nilazyview.fs.leftovers import process_gone
    from nilazyview.sources import gzfile

_INDEXED_GZIP = gzfile._have_rapidgzip

MODES = ("nii", "nii-gz", "nii-gzraw", "pair", "pair-gz", "pair-imggz", "mgh", "mgz")
#: get_data only when the declared data are at most this big.
GET_DATA_MAX = 8 * 2**20
#: Address-space headroom over the harness's own (numpy, atheris) at start.
AS_HEADROOM = 2 * 2**30

_base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
_dir = tempfile.mkdtemp(prefix=f"nlv-fuzz-{os.getpid()}-", dir=_base)
# fuzzed files must not leave gzip indexes in the user's cache, nor spill files elsewhere
os.environ["NILAZYVIEW_CACHE_DIR"] = os.path.join(_dir, "cache")
os.environ["NILAZYVIEW_TMPDIR"] = os.path.join(_dir, "tmp")
os.makedirs(os.environ["NILAZYVIEW_TMPDIR"])


def _sweep_old_dirs() -> None:
    """libFuzzer exits without running Python's cleanup: remove dead runs' scratch folders."""
    for name in os.listdir(_base):
        parts = name.split("-")
        if name.startswith("nlv-fuzz-") and len(parts) >= 4 and parts[2].isdigit():
            path = os.path.join(_base, name)
            if os.stat(path).st_uid == os.getuid() and process_gone(int(parts[2]), time.time()):
                shutil.rmtree(path, True)


def _write(name: str, data: bytes) -> str:
    path = os.path.join(_dir, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def materialise(mode: str, split: int, payload: bytes) -> tuple[str, list[str]]:
    """Write ``payload`` as files of ``mode``; (path to load, all files written)."""
    if mode in ("nii", "nii-gz", "nii-gzraw"):
        data = gzip.compress(payload, 1, mtime=0) if mode == "nii-gz" else payload
        name = "f.nii" if mode == "nii" else f"{mode}.nii.gz"
        p = _write(name, data)
        return p, [p]
    if mode.startswith("pair"):
        cut = split % (len(payload) + 1)
        head, body = payload[:cut], payload[cut:]
        hz = mode == "pair-gz"
        iz = mode in ("pair-gz", "pair-imggz")
        h = _write(f"{mode}.hdr" + (".gz" if hz else ""), gzip.compress(head, 1) if hz else head)
        i = _write(f"{mode}.img" + (".gz" if iz else ""), gzip.compress(body, 1) if iz else body)
        return h, [h, i]
    data = gzip.compress(payload, 1, mtime=0) if mode == "mgz" else payload
    p = _write("f." + mode, data)
    return p, [p]


def backable(files: list[str]) -> int:
    """The most uncompressed bytes the files can hold."""
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        size = os.path.getsize(f)
        total += GZIP_MAX_RATIO * size + 2**20 if gz else size
    return total


def indices(shape: tuple[int, ...], sel: int) -> list:
    """A few basic indices for ``shape``, picked by ``sel`` (some out of range)."""
    n = len(shape)
    last = shape[-1] if shape else 1
    first = shape[0] if shape else 1
    k = sel % 7
    out = [
        (..., (sel >> 3) % max(1, last) if last else 0),
        ((sel >> 3) % (first + 2) - 1,),
        (slice(None, None, -(1 + (sel >> 5) % 3)),),
        (slice(1, None, 2), None, Ellipsis, 0),
        (..., slice(-3, None)),
        (0,) * n,
        (..., last + (sel >> 4)),  # out of range
    ]
    return [out[k], out[(k + 3) % 7]]


def _numpy_result(shape: tuple[int, ...], index) -> tuple[int, ...] | None:
    """The shape numpy gives ``zeros(shape)[index]``, or None if numpy raises IndexError.

    Computed on a zero-stride view (no allocation), with axes longer than any
    integer in the index shortened (same validity); such axes' lengths are
    restored from the slices.
    """
    ints = [abs(i) + 2 for i in (index if isinstance(index, tuple) else (index,)) if type(i) is int]
    cap = max(ints, default=2)
    small = tuple(min(n, cap) for n in shape)
    try:
        got = np.broadcast_to(np.empty((), np.uint8), small)[index].shape
    except IndexError:
        return None
    if small == shape:
        return got
    # redo the arithmetic per axis on the real sizes
    idx = index if isinstance(index, tuple) else (index,)
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


def check(mode: str, sel: int, split: int, payload: bytes) -> None:
    path, files = materialise(mode, split, payload)
    try:
        img = nlv.load(path)
    except nlv.ImageFileError:
        return
    layout = getattr(img.proxy, "layout", None)
    if layout is not None:
        end = layout.offset + layout.nbytes
        if end > backable(files):
            raise AssertionError(f"declared data end {end} exceed what the files can back")
    for index in indices(img.shape, sel):
        want = _numpy_result(img.shape, index)
        try:
            out = img.slicecopy[index]
        except IndexError:
            if want is not None:
                raise
            continue
        except nlv.ImageFileError:
            return
        if want is None:
            raise AssertionError(f"index {index!r} on {img.shape} should raise IndexError")
        if out.shape != want:
            raise AssertionError(f"slicecopy{index!r} gave {out.shape}, numpy {want}")
    if layout is not None and layout.nbytes <= GET_DATA_MAX:
        try:
            data = img.get_data()
        except nlv.ImageFileError:
            return
        if data.shape != img.shape:
            raise AssertionError(f"get_data shape {data.shape} != {img.shape}")


def TestOneInput(data: bytes) -> None:
    if len(data) < 4:
        return
    mode = MODES[data[0] % len(MODES)]
    sel = data[1]
    # the high bit of the mode byte reads gzip with the plain ``gzip`` fallback
    gzfile._have_rapidgzip = (lambda: False) if data[0] & 0x80 else _INDEXED_GZIP
    split = struct.unpack("<H", data[2:4])[0]
    check(mode, sel, split, data[4:])


# --- seeds ---------------------------------------------------------------------------


def _nii(img, ext: str) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = nlv.save(img, os.path.join(d, "s" + ext))
        with open(p, "rb") as f:
            return f.read()


def _pair(img) -> tuple[bytes, bytes]:
    with tempfile.TemporaryDirectory() as d:
        h = nlv.save(img, os.path.join(d, "s.hdr"))
        with open(h, "rb") as f, open(h[:-4] + ".img", "rb") as g:
            return f.read(), g.read()


def seeds() -> list[bytes]:
    """Inputs (mode byte, index byte, split, payload) covering every reader path."""
    rng = np.random.default_rng(0)
    aff = np.diag([2.0, 3.0, 4.0, 1.0])
    aff[:3, 3] = (-10, 20, 5)
    arrays = [
        rng.integers(-500, 500, (4, 5, 6)).astype(np.int16),
        rng.standard_normal((3, 4, 5, 2)).astype(">f4"),
        rng.integers(0, 255, (6, 5, 4)).astype(np.uint8),
        (rng.standard_normal((3, 3, 2)) + 1j).astype(np.complex64),
        rng.integers(0, 9, (32768, 1, 1)).astype(np.uint8),  # NIfTI-2 (dim > 32767)
    ]
    out = []

    def add(mode: str, payload: bytes, split: int = 0, sel: int = 0) -> None:
        out.append(bytes([MODES.index(mode), sel]) + struct.pack("<H", split) + payload)

    for k, arr in enumerate(arrays):
        img = nlv.Image(arr, aff)
        single = _nii(img, ".nii")
        add("nii", single, sel=k)
        add("nii-gz", single, sel=k + 1)
        out.append(bytes([MODES.index("nii-gz") | 0x80]) + out[-1][1:])  # gzip fallback
        add("nii-gzraw", gzip.compress(single, 1, mtime=0), sel=k + 2)
        head, body = _pair(img)
        add("pair", head + body, len(head), k)
        add("pair-gz", head + body, len(head), k + 1)
        if k < 4:  # Analyze: the NIfTI pair header without its magic
            ana = bytearray(head[:348])
            ana[344:348] = b"\x00" * 4
            if arr.dtype.kind != "c":
                add("pair-imggz", bytes(ana) + body, 348, k)
        if arr.ndim <= 4 and arr.dtype.kind in "iuf":
            add("mgh", _nii(img, ".mgh"), sel=k)
            add("mgz", _nii(img, ".mgh"), sel=k + 2)
    # scaled, with an extension, qform only
    loaded = nlv.load(_write("seed.nii", _nii(nlv.Image(arrays[0], aff), ".nii")))
    loaded.header.extensions = [nlv.Extension(4, b"<xml>" + b"a" * 40 + b"</xml>")]
    ext = bytearray(_nii(loaded, ".nii"))
    struct.pack_into("<ff", ext, 112, 0.5, -3.0)  # scl_slope, scl_inter
    struct.pack_into("<hh", ext, 252, 1, 0)  # qform_code, sform_code
    add("nii", bytes(ext), sel=5)
    add("nii-gz", bytes(ext), sel=6)
    return out


def write_seeds(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for k, s in enumerate(seeds()):
        with open(os.path.join(folder, f"seed-{k:03d}"), "wb") as f:
            f.write(s)


def _limit_address_space() -> None:
    # glibc reserves 64 MiB of address space per malloc arena (one per thread that
    # allocates, e.g. gzip index builders): cap them so the limit measures allocations
    try:
        ctypes.CDLL(None).mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = vm + AS_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: list[str]) -> None:
    warnings.simplefilter("ignore")  # overflow warnings of absurd scalings are not errors
    _sweep_old_dirs()
    args = [a for a in argv[1:] if not a.startswith("-")]
    if args:  # a corpus folder (seeded when empty), or input files to replay
        if os.path.isdir(args[0]) and not os.listdir(args[0]):
            write_seeds(args[0])
    else:
        seed_dir = os.path.join(_dir, "seeds")
        write_seeds(seed_dir)
        argv = [*argv, seed_dir]
    if os.path.exists("/proc/self/statm"):
        _limit_address_space()
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()  # never returns: libFuzzer exits the process (the next run sweeps _dir)


if __name__ == "__main__":
    main(sys.argv)
