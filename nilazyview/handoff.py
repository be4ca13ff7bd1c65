"""``as_file``: hand an image to a tool that wants a filename, saving only if needed (BIAP1)."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
import weakref

import numpy as np

from .core.slabs import slabs
from .errors import ImageFileError, SaveError
from .formats import registry, spm
from .fs.leftovers import clean_handoff_folders, handoff_prefix
from .fs.settings import temp_root
from .image import Image, state_digests
from .io.save import save
from .sources import FileIdentity, check_unchanged

_EXTS = (".nii", ".nii.gz", ".hdr", ".hdr.gz")
_lock = threading.Lock()
_folder: str | None = None
_folder_pid: int | None = None  # a forked child must not use (or remove) its parent's folder
_VERIFY_CHUNK = 64 * 2**20
#: Each image's temporary copies, by state key (the image owns none of this).
_copies: weakref.WeakKeyDictionary[Image, dict[bytes, str]] = weakref.WeakKeyDictionary()


class HandoffPath(str):
    """A filename from :func:`as_file`; ``is_temporary`` says if it is a copy.

    Use as a context manager to remove a temporary copy early::

        with nlv.as_file(img) as path:
            subprocess.run(["fslstats", path, "-M"])
    """

    is_temporary: bool = False
    _owner: weakref.ref | None = None

    def release(self) -> None:
        """Remove the temporary copy now (no-op for an original file)."""
        img = self._owner() if self._owner is not None else None
        if img is not None:
            with _lock:
                held = _copies.get(img, {})
                _copies[img] = {k: p for k, p in held.items() if p != str(self)}
        if self.is_temporary:
            _remove(str(self))

    def __enter__(self) -> HandoffPath:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _made(path: str, temporary: bool, img: Image) -> HandoffPath:
    out = HandoffPath(path)
    out.is_temporary = temporary
    out._owner = weakref.ref(img)
    return out


def temp_folder() -> str:
    """The private (0700) folder of this process's temporary copies.

    Named ``nilazyview-{host}-{pid}-{random}``; creating it first removes the
    folders of ended processes (see :mod:`nilazyview.fs.leftovers`).
    """
    global _folder, _folder_pid
    with _lock:
        if _folder is None or _folder_pid != os.getpid() or not os.path.isdir(_folder):
            base = temp_root()
            clean_handoff_folders(base)  # those of killed processes (pid in the name)
            try:
                _folder = tempfile.mkdtemp(prefix=handoff_prefix(), dir=base)
            except OSError as exc:
                raise ImageFileError(
                    f"cannot create a temporary folder in {base!r}: {exc.strerror}; "
                    "set NILAZYVIEW_TMPDIR to a writable folder"
                ) from exc
            _folder_pid = os.getpid()
            atexit.register(_remove_folder, _folder, _folder_pid)
        return _folder


def _remove_folder(folder: str, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child that inherited the atexit hook
        shutil.rmtree(folder, True)


def _remove_owned(path: str, pid: int) -> None:
    if os.getpid() == pid:
        _remove(path)


def _remove(path: str) -> None:
    codec = registry.for_path(path)
    names = [path] if codec is None else codec.written_files(path)
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def check_files(img: Image) -> None:
    """Raise :class:`~nilazyview.StaleFileError` if the files ``img`` was loaded from changed.

    Says what changed (size, mtime, inode) or that a file was removed.
    """
    snap = img.snapshot
    if snap is None:
        return
    for role, ident in snap.identity.items():
        path = img.files.get(role)
        if ident is not None and path is not None:
            check_unchanged(path, ident)


def files_unchanged(img: Image) -> bool:
    """True when the files on disk are still those ``img`` was loaded from."""
    snap = img.snapshot
    if snap is None:
        return False
    for key, ident in snap.identity.items():
        if ident is None or key not in img.files:
            return False
        try:
            if FileIdentity.of(img.files[key]).differences(ident):
                return False
        except OSError:
            return False
    if "mat" not in snap.identity and img.header is not None and img.header.kind == "analyze":
        if spm.has_mat(img.files.get("header", img.filename)):
            return False  # an SPM .mat appeared beside the pair: its affine now wins
    return True


def metadata_unchanged(img: Image) -> bool:
    """True when header, affine and extensions equal their snapshots."""
    snap = img.snapshot
    if snap is None:
        return False
    return state_digests(img.header, img.affine) == (snap.header, snap.affine, snap.extensions)


def is_unchanged(img: Image) -> bool:
    """The :func:`as_file` test: not dirty, metadata as loaded, files as loaded."""
    return (
        img.filename is not None
        and img.proxy is not None
        and not img.dirty
        and metadata_unchanged(img)
        and files_unchanged(img)
    )


def data_matches_file(img: Image) -> bool:
    """Compare the in-memory array with the file, chunk by chunk along the last axis."""
    data, proxy = img.cached_data, img.proxy
    if data is None:
        return True
    if proxy is None or data.shape != proxy.shape or data.dtype != proxy.dtype:
        return False
    nan = data.dtype.kind in "fc"
    for idx in slabs(data.shape, data.dtype.itemsize, _VERIFY_CHUNK):
        if not np.array_equal(data[idx], proxy.read(idx), equal_nan=nan):
            return False
    return True


def _state_key(img: Image, ext: str) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in state_digests(img.header, img.affine):
        h.update(part)
    h.update(ext.encode())
    if img.cached_data is not None:
        arr = np.ascontiguousarray(img.cached_data)
        h.update(str((arr.shape, arr.dtype.str)).encode())
        h.update(memoryview(arr.reshape(-1).view(np.uint8)))
    else:
        h.update(repr(img.snapshot.identity if img.snapshot else None).encode())
    return h.digest()


def _default_ext(img: Image) -> str:
    found = registry.suffix_of(img.filename) if img.filename else None
    if found is None:
        return ".nii"
    suffix, compressed = found
    if suffix in _EXTS:
        return suffix
    # other formats become NIfTI, keeping their compression (MGZ is gzipped)
    return ".nii.gz" if compressed else ".nii"


def _is_format(filename: str | None, ext: str) -> bool:
    """True when ``filename`` is already stored the way ``ext`` asks."""
    found = registry.suffix_of(filename) if filename else None
    return found is not None and found[0] == ext


def as_file(img: Image, ext: str | None = None, verify: bool = False) -> HandoffPath:
    """A filename an external tool can read for ``img``.

    The original filename when the image came from a file, is not dirty, its
    header, affine and extensions equal their snapshots and the file on disk is
    still the one loaded; otherwise a temporary copy (atomic save, private
    folder), reused while the image does not change and removed when the image
    is garbage-collected or at exit.

    Parameters
    ----------
    img : Image
    ext : {".nii", ".nii.gz", ".hdr", ".hdr.gz"}, optional
        Format wanted. The original is handed off only if it is stored so;
        default: the original's format, and NIfTI for other formats' copies.
    verify : bool
        If the image is dirty only because its data was loaded, compare the
        array with the file (a chunked re-read) and return the original if
        equal. ``dirty`` stays set: the array may still be changed in place,
        so each call compares again.

    Returns
    -------
    HandoffPath
        A ``str`` path; ``.is_temporary`` tells a copy from the original.
    """
    if img.proxy is None and img.cached_data is None:
        raise ImageFileError("image has neither a file nor data")
    if ext is not None and ext not in _EXTS:
        raise ValueError(f"ext must be one of {_EXTS}, not {ext!r}")
    original_ok = ext is None or _is_format(img.filename, ext)
    if original_ok and is_unchanged(img):
        return _made(img.filename, False, img)
    if (
        original_ok
        and verify
        and img.proxy is not None
        and metadata_unchanged(img)
        and files_unchanged(img)
        and data_matches_file(img)
    ):
        return _made(img.filename, False, img)
    ext = ext or _default_ext(img)
    key = _state_key(img, ext)
    with _lock:
        cached = _copies.get(img, {}).get(key)
    if cached is not None and os.path.exists(cached):
        return _made(cached, True, img)
    # copies of earlier states stay until release/GC/exit: a tool may still be reading one
    folder = temp_folder()
    fd, stub = tempfile.mkstemp(prefix="img-", suffix=".stub", dir=folder)
    os.close(fd)
    path = stub[: -len(".stub")] + ext
    try:
        save(img, path, file_mode=0o600)
    except SaveError as exc:  # names the copy already; say where copies go
        raise SaveError(
            f"{exc} (a temporary copy for as_file; NILAZYVIEW_TMPDIR picks another folder)",
            exc.errno,
            exc.strerror,
            exc.filename,
        ) from None
    except OSError as exc:
        raise ImageFileError(f"cannot write a temporary copy in {folder!r}: {exc}") from exc
    finally:
        os.unlink(stub)
    with _lock:
        _copies.setdefault(img, {})[key] = path
    weakref.finalize(img, _remove_owned, path, os.getpid())
    return _made(path, True, img)


def release(img: Image) -> None:
    """Remove all of ``img``'s temporary copies now."""
    with _lock:
        paths = list(_copies.pop(img, {}).values())
    for path in paths:
        _remove(path)
