"""Persisted gzip seek-point indexes (``rapidgzip``'s, in ``indexed_gzip``'s format), per user.

A gzip stream can only be decompressed from its start, so the first read deep
into a ``.nii.gz`` costs a decompression of everything before it. ``rapidgzip``
records *seek points* (a compressed position and 32 KiB of history) at every
chunk (``spacing`` compressed bytes) while it decompresses; this module saves
that index, and a later process imports it (about 1 ms) before its first read
instead of decompressing again.

Where: ``$NILAZYVIEW_CACHE_DIR/gzindex`` if that variable is set, else
``$XDG_CACHE_HOME/nilazyview/gzindex``, else ``~/.cache/nilazyview/gzindex``;
never beside the user's data. One file per gzip file, named by a digest of its
real path, holding the file's identity (real path, size, mtime, a digest of its
first 64 KiB and its 8-byte gzip trailer) and a CRC of the exported index. An
index whose identity no longer matches (the file was rewritten) or that fails
its CRC or the import is deleted and rebuilt, never trusted; one of the earlier
``indexed_gzip`` backend (magic ``NLVGZIX1``) is replaced without a warning. The
folder is a least-recently-used cache bounded by ``$NILAZYVIEW_GZINDEX_MAX_BYTES``
(default 1 GiB; 0 turns persisting off). A folder that cannot be written
(read-only, full) gives one warning, and indexes then live in memory only.

When: after a whole-stream pass (:mod:`nilazyview.sources.gzwhole`: the pass
that served the read built it), and after a read or at close once half the
compressed stream was decompressed: ``rapidgzip`` exports only a complete
index, so saving decompresses the rest (in parallel), which past half-way costs
less than what was paid. Files under :data:`MIN_NEW_POINTS` chunks are never
persisted. Exporting the index of a 207 MiB file (53 points, 1.6 MiB) takes 3 ms.

Spacing, measured on a 512^3 int16 ``.nii.gz`` (207 MiB, level 6) at
``rapidgzip``'s default 4 MiB chunks: a 1 MiB read at any depth from an
imported index takes 17 ms; the whole stream is decompressed in 0.51-0.72 s on
2 cores and 0.92 s on one. Smaller chunks cost parallel efficiency and re-reads
(rapidgzip reads 1.14x the compressed bytes at 4 MiB, 1.58x at 1 MiB, 2.0x at
64 KiB).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
import tempfile
import threading
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import CacheWarning, warn
from ..fs import leftovers
from ..fs.private import read_private_file, unsafe_reason, usable_private
from ..fs.settings import env_int
from .urls import is_url

log = logging.getLogger("nilazyview.gzindex")

#: Compressed bytes per rapidgzip chunk, one seek point each (see the module docstring).
SPACING = 4 * 2**20
#: History kept per seek point (deflate's window; the smallest spacing allowed).
WINDOW_SIZE = 32 * 2**10
#: Default bound of the cache folder.
DEFAULT_MAX_BYTES = 2**30
#: Persist indexes only of files of at least this many chunks (~16 MiB compressed).
MIN_NEW_POINTS = 4
#: A first seek further than this past the bytes decompressed so far shows progress.
PROGRESS_STEP = 64 * 2**20
#: Bytes of the compressed file digested into its identity.
HEAD_BYTES = 64 * 2**10

_MAGIC = b"NLVGZIX2"  # 1: indexes built by indexed_gzip (other spacing)
_OLD_MAGICS = (b"NLVGZIX1",)
_META_BYTES = 64 * 2**10  # the identity record leads the file
_SUFFIX = ".gzidx"

#: Counters for tests and QA (per process).
stats: dict[str, int] = dict.fromkeys(
    ("imports", "exports", "stale", "corrupt", "evictions", "write_failures"), 0
)

_state_lock = threading.Lock()
_disabled_reason: str | None = None  # set after a failed write: one warning, memory only


def _reset_in_child() -> None:
    global _state_lock
    _state_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


def cache_dir() -> Path:
    """The folder holding persisted gzip indexes (not created here)."""
    root = os.environ.get("NILAZYVIEW_CACHE_DIR")
    if not root:
        root = _user_cache_dir()
    return Path(root) / "gzindex"


def _user_cache_dir() -> str:
    """The platform's cache folder for nilazyview (platformdirs: XDG, macOS, Windows)."""
    try:
        import platformdirs  # the optional 'gz' extra (only rapidgzip needs a cache)
    except ImportError:  # the XDG rule platformdirs follows on Linux
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
        return str(base / "nilazyview")
    return platformdirs.user_cache_dir("nilazyview", appauthor=False)


def max_cache_bytes() -> int:
    """Size bound of the cache folder (``$NILAZYVIEW_GZINDEX_MAX_BYTES``; 0: persist nothing)."""
    return env_int("NILAZYVIEW_GZINDEX_MAX_BYTES", DEFAULT_MAX_BYTES)


def spacing() -> int:
    """Seek-point spacing of new indexes: ``$NILAZYVIEW_GZINDEX_SPACING`` or :data:`SPACING`."""
    return env_int("NILAZYVIEW_GZINDEX_SPACING", SPACING, minimum=WINDOW_SIZE)


def persisting() -> bool:
    """True while indexes are saved to disk (bound > 0 and no write has failed)."""
    return _disabled_reason is None and max_cache_bytes() > 0


def reset_state() -> None:
    """Forget a write failure and zero :data:`stats` (tests, or after fixing the folder)."""
    global _disabled_reason
    with _state_lock:
        _disabled_reason = None
        for k in stats:
            stats[k] = 0


def _write_failed(folder: Path, exc: BaseException) -> None:
    global _disabled_reason
    with _state_lock:
        stats["write_failures"] += 1
        if _disabled_reason is not None:
            return
        _disabled_reason = str(exc)
    warn(
        f"nilazyview: cannot write gzip indexes to {folder} ({exc}); indexes are kept in "
        "memory only for the rest of this process (set NILAZYVIEW_CACHE_DIR to a writable "
        "folder to persist them)",
        CacheWarning,
    )


@dataclass(frozen=True)
class IndexKey:
    """Identity of one version of a gzip file, as stored with its index."""

    path: str
    size: int
    mtime_ns: int
    head: str
    tail: str

    @classmethod
    def remote(cls, url: str, size: int, validator: str) -> IndexKey:
        """The key of a remote file: its URL (as shown), size and the server's validator."""
        return cls(str(url), size, 0, validator, "remote")

    @classmethod
    def of(cls, path: str | os.PathLike, fd: int | None = None) -> IndexKey:
        """The key of ``path``, read from ``fd`` when given (the descriptor a source checked)."""
        real = os.path.realpath(os.fspath(path))
        if fd is None:
            with open(real, "rb", buffering=0) as f:
                return cls._of_fd(real, f.fileno())
        return cls._of_fd(real, fd)

    @classmethod
    def _of_fd(cls, real: str, fd: int) -> IndexKey:
        st = os.fstat(fd)
        head = hashlib.blake2b(os.pread(fd, HEAD_BYTES, 0), digest_size=16).hexdigest()
        tail = os.pread(fd, 8, max(0, st.st_size - 8)).hex()
        return cls(real, st.st_size, st.st_mtime_ns, head, tail)

    @property
    def filename(self) -> str:
        digest = hashlib.sha256(self.path.encode("utf-8", "surrogateescape")).hexdigest()
        return digest[:40] + _SUFFIX


def folder_ok(folder: Path | None = None) -> bool:
    """True when the cache folder is ours alone, 0700 (or absent); else warn once, False."""
    folder = cache_dir() if folder is None else folder
    return usable_private(str(folder), "gzip indexes", _INSTEAD)


_INSTEAD = (
    "indexes are kept in memory only (set NILAZYVIEW_CACHE_DIR to a folder of your own, mode 0700)"
)


def index_path(key: IndexKey) -> Path:
    """Where the index of ``key`` is stored."""
    return cache_dir() / key.filename


def _drop(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def load_index(rg, key: IndexKey) -> bool:
    """Import the cached index of ``key`` into ``rg`` (a ``RapidgzipFile`` not read yet).

    Returns True when imported. A stale (identity differs, or an index of the
    earlier ``indexed_gzip`` backend) or corrupt (bad magic, CRC or import)
    index file is deleted and False returned; the caller rebuilds.
    """
    if max_cache_bytes() <= 0:
        return False
    if not folder_ok():
        return False
    path = index_path(key)
    try:
        blob = read_private_file(path, max_cache_bytes())
    except FileNotFoundError:
        return False
    except OSError as exc:
        stats["corrupt"] += 1
        log.warning("unusable gzip index %s (%s); dropped", path, exc)
        _drop(path)
        return False
    if blob[:8] in _OLD_MAGICS:  # written by an earlier version: replaced, no warning
        stats["stale"] += 1
        log.info("gzip index %s for %s is of an earlier format; rebuilding", path, key.path)
        _drop(path)
        return False
    try:
        if blob[:8] != _MAGIC:
            raise ValueError("bad magic")
        (hlen,) = struct.unpack_from("<I", blob, 8)
        meta = json.loads(blob[12 : 12 + hlen].decode("utf-8"))
        payload = memoryview(blob)[12 + hlen :]
        if meta.get("key") != asdict(key):
            stats["stale"] += 1
            log.info("stale gzip index %s for %s: file changed; rebuilding", path, key.path)
            _drop(path)
            return False
        if len(payload) != meta["payload_bytes"] or zlib.crc32(payload) != meta["payload_crc32"]:
            raise ValueError("index CRC mismatch")
        rg.import_index(io.BytesIO(payload))
    except Exception as exc:  # anything wrong with the file: never trust it
        stats["corrupt"] += 1
        log.warning("corrupt gzip index %s for %s (%s); rebuilding", path, key.path, exc)
        _drop(path)
        raise RefusedIndex(str(exc)) from exc
    stats["imports"] += 1
    log.debug("imported gzip index %s (%d points) for %s", path, meta["npoints"], key.path)
    try:
        os.utime(path)  # least-recently-used order is by mtime
    except OSError:
        pass
    return True


class RefusedIndex(Exception):
    """A cached index failed its checks or its import (the file was dropped)."""


def save_index(rg, key: IndexKey) -> bool:
    """Export the index of ``rg`` (a ``RapidgzipFile``) for ``key`` into the cache, atomically.

    Exporting completes the index (``rapidgzip`` decompresses the rest); the
    cache is then bounded.

    Returns True when written. A folder that cannot be written warns once and
    turns persisting off for this process.
    """
    if not persisting():
        return False
    folder = cache_dir()
    buf = io.BytesIO()
    rg.export_index(buf)  # indexed_gzip's format (rapidgzip's default)
    payload = buf.getvalue()
    meta = {
        "key": asdict(key),
        "npoints": len(rg.block_offsets()),
        "payload_bytes": len(payload),
        "payload_crc32": zlib.crc32(payload),
    }
    head = json.dumps(meta, sort_keys=True).encode("utf-8")
    limit = max_cache_bytes()
    if 12 + len(head) + len(payload) > limit:
        return False
    tmp = None
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not folder_ok(folder):
            return False
        leftovers.clean_partials(str(folder))  # of processes killed while saving
        fd, tmp = tempfile.mkstemp(prefix=".gzidx.", suffix=leftovers.partial_suffix(), dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + struct.pack("<I", len(head)) + head)
            f.write(payload)
        os.replace(tmp, folder / key.filename)
        tmp = None
    except OSError as exc:
        if tmp is not None:
            _drop(Path(tmp))
        _write_failed(folder, exc)
        return False
    stats["exports"] += 1
    log.debug("saved gzip index for %s (%d points)", key.path, meta["npoints"])
    enforce_limit(keep=key.filename)
    return True


def enforce_limit(keep: str | None = None, limit: int | None = None) -> None:
    """Delete least-recently-used index files until the folder fits its bound."""
    limit = max_cache_bytes() if limit is None else limit
    folder = cache_dir()
    if unsafe_reason(str(folder), private=True) is not None:
        return
    entries = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if not e.name.endswith(_SUFFIX):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if _source_gone(folder / e.name):  # raw voxel windows of a deleted file
                    _drop(folder / e.name)
                    stats["evictions"] += 1
                    continue
                entries.append((st.st_mtime_ns, e.name, st.st_size))
    except OSError:
        return
    total = sum(size for _, _, size in entries)
    entries.sort()
    for _, name, size in entries:
        if total <= limit:
            break
        if name == keep:
            continue
        try:
            os.unlink(folder / name)
        except OSError:
            continue
        stats["evictions"] += 1
        total -= size


def _source_gone(index_file: Path) -> bool:
    """True for the index of a local file that no longer exists (never for a URL's)."""
    meta = read_meta(index_file)
    src = (meta or {}).get("key", {}).get("path")
    return isinstance(src, str) and not is_url(src) and not os.path.exists(src)


def cached_bytes() -> int:
    """Bytes held by index files in the cache folder."""
    try:
        with os.scandir(cache_dir()) as it:
            return sum(e.stat().st_size for e in it if e.name.endswith(_SUFFIX))
    except OSError:
        return 0


def read_meta(path: str | os.PathLike) -> dict | None:
    """The metadata stored with an index file (identity, points, CRC), or None."""
    try:
        blob = read_private_file(Path(path), max_cache_bytes(), want=_META_BYTES)
        if blob[:8] != _MAGIC:
            return None
        (hlen,) = struct.unpack_from("<I", blob, 8)
        return json.loads(blob[12 : 12 + hlen].decode("utf-8"))
    except (OSError, ValueError, struct.error):
        return None


def has_index(key: IndexKey) -> bool:
    """True when an index file for ``key`` exists with a matching identity (not CRC-checked)."""
    if unsafe_reason(str(cache_dir()), private=True) is not None:
        return False
    meta = read_meta(index_path(key))
    return meta is not None and meta.get("key") == asdict(key)


__all__ = [
    "IndexKey",
    "RefusedIndex",
    "cache_dir",
    "cached_bytes",
    "enforce_limit",
    "has_index",
    "load_index",
    "max_cache_bytes",
    "read_meta",
    "reset_state",
    "save_index",
    "stats",
]
