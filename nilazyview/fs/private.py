"""Is a folder safe to keep our files in? Owner and mode checks, as git and ssh make.

Found on main (issue 16): a gzip index cache folder owned by another user with
mode 0777 was used as is; that user replaced an index by a symlink to
``/dev/zero`` and the victim's next load died with ``MemoryError`` (a FIFO:
a hang). ``NILAZYVIEW_TMPDIR`` swapped for a symlink let another user replace
an ``as_file`` copy. So:

* a *private* folder (the index cache) must be a real folder (not a symlink),
  owned by this user, with no group or other permission bits (0700; a folder
  of ours that is only too open is closed to 0700 first, as one made by hand);
* a *shared root* (the temporary folder, where private subfolders are made)
  must be a real folder owned by this user, or by root with the sticky bit
  (``/tmp``); a folder others may write without the sticky bit is refused.

Refusals warn once per folder (:class:`~nilazyview.NilazyviewWarning`).
"""

from __future__ import annotations

import os
import stat
import threading
import warnings

from ..errors import NilazyviewWarning

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def unsafe_reason(path: str, private: bool) -> str | None:
    """Why ``path`` must not hold our files, or None when it may (or does not exist)."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # absent: whoever creates it says why it cannot
    except OSError as exc:
        return f"cannot check it ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a folder"
    me = os.geteuid() if hasattr(os, "geteuid") else st.st_uid
    mode = stat.S_IMODE(st.st_mode)
    if private:
        if st.st_uid != me:
            return f"it belongs to uid {st.st_uid}, not to this user (uid {me})"
        if mode & 0o077:
            return f"its mode is {mode:04o}; it must be 0700"
        return None
    sticky = bool(mode & stat.S_ISVTX)
    if st.st_uid not in (me, 0):
        return f"it belongs to uid {st.st_uid}"
    if mode & 0o022 and not sticky:
        return f"others may write it (mode {mode:04o}) and it has no sticky bit"
    if st.st_uid == 0 and me != 0 and not sticky and mode & 0o022:
        return "others may write it"
    return None


def usable_private(path: str, what: str, instead: str) -> bool:
    """True when ``path`` is a private folder of ours (or absent); else warn once, False."""
    reason = unsafe_reason(path, private=True)
    if reason is not None and reason.startswith("its mode"):
        try:  # our own folder, only too open (made by hand, say): close it
            os.chmod(path, 0o700)
            reason = unsafe_reason(path, private=True)
        except (OSError, NotImplementedError):
            pass
    if reason is None:
        return True
    warn_once(path, reason, what, instead)
    return False


def warn_once(path: str, reason: str, what: str, instead: str) -> None:
    """One :class:`NilazyviewWarning` per folder and reason."""
    with _warned_lock:
        if (path, reason) in _warned:
            return
        _warned.add((path, reason))
    warnings.warn(
        f"nilazyview: not using {path} for {what}: {reason}; {instead}",
        NilazyviewWarning,
        stacklevel=4,
    )


_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def read_private_file(path: str | os.PathLike, cap: int, want: int | None = None) -> bytes:
    """The bytes of a file of ours: a regular file owned by this user, at most ``cap`` bytes.

    Opened ``O_NOFOLLOW | O_NONBLOCK``: a symlink (to ``/dev/zero``, say) or a
    FIFO planted in its place raises ``OSError`` instead of being followed or
    blocking; anything else is an ``OSError`` too. ``want``: read only that many
    bytes (a header).
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path}: not a regular file")
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise OSError(f"{path}: belongs to uid {st.st_uid}")
        if st.st_size > cap:
            raise OSError(f"{path}: {st.st_size} bytes, more than the bound of {cap}")
        chunks, left = [], cap + 1 if want is None else min(want, cap + 1)
        while left > 0:
            piece = os.read(fd, min(left, 2**24))
            if not piece:
                break
            chunks.append(piece)
            left -= len(piece)
        return b"".join(chunks)
    finally:
        os.close(fd)


def reset_warnings() -> None:
    """Forget the folders warned about (tests)."""
    with _warned_lock:
        _warned.clear()


__all__ = ["read_private_file", "reset_warnings", "unsafe_reason", "usable_private", "warn_once"]
