"""Leftovers of killed processes: partial saves and hand-off folders, found and removed safely.

A process killed in the middle of a save leaves its temporary file beside the
target; one killed while it held ``as_file`` copies leaves its private folder in
the temp dir. Their names record who made them, so the next run can tell them
from live work:

* partial saves: ``.{name}.{random}.{host}-{pid}.nlv-partial``
* hand-off folders: ``nilazyview-{host}-{pid}-{random}``

where ``host`` is a 6-hex-digit tag of the host name. A leftover is removed
only when all of these hold: its name has exactly that form, it is a regular
file (a real folder) owned by this user, it was last modified more than
:data:`MIN_AGE_S` seconds ago, and its creating process is gone -- it was made
on this host and that pid is no longer running (or is a zombie, or is a newer
process that reused the pid). Partial files without an owner record (older
versions) are removed only once untouched for :data:`ABANDONED_AFTER_S`: a save
writes continuously, so such a file is no one's. Nothing else is ever touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import stat
import time

#: Temporary files of interrupted saves end with this, after a leading dot.
PARTIAL_SUFFIX = ".nlv-partial"
#: Hand-off folders in the temp dir start with this.
HANDOFF_PREFIX = "nilazyview-"
#: Leftovers younger than this are never removed (seconds since last modified).
MIN_AGE_S = 3.0
#: Partial saves with no owner record, untouched this long, are abandoned.
ABANDONED_AFTER_S = 24 * 3600.0

HOST_TAG = hashlib.blake2b(socket.gethostname().encode(), digest_size=3).hexdigest()
_PARTIAL = re.compile(r"\..+\.([0-9a-f]{6})-([0-9]+)" + re.escape(PARTIAL_SUFFIX))
_HANDOFF = re.compile(re.escape(HANDOFF_PREFIX) + r"([0-9a-f]{6})-([0-9]+)-.+")


def owner_tag() -> str:
    """``{host}-{pid}`` of this process, as recorded in leftover names."""
    return f"{HOST_TAG}-{os.getpid()}"


def partial_suffix() -> str:
    """Suffix of this process's partial files: ``.{host}-{pid}.nlv-partial``."""
    return f".{owner_tag()}{PARTIAL_SUFFIX}"


def handoff_prefix() -> str:
    """Prefix of this process's hand-off folder: ``nilazyview-{host}-{pid}-``."""
    return f"{HANDOFF_PREFIX}{owner_tag()}-"


def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def _proc_stat(pid: int) -> list[str] | None:
    """Fields after the command name in ``/proc/<pid>/stat`` (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def process_gone(pid: int, since: float) -> bool:
    """True when process ``pid`` of this host, alive at time ``since``, has ended.

    Gone: no such process, a zombie, or a process started after ``since`` (the pid
    was reused). Unsure (no permission, no ``/proc``) counts as alive.
    """
    if pid <= 0:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, another user's
        return False
    fields = _proc_stat(pid)
    if not fields:
        return False
    if fields[0] in ("Z", "X"):
        return True
    boot = _boot_time()
    if boot is None:
        return False
    try:
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError, OSError):
        return False
    return started > since + 1.0  # btime has 1 s resolution: stay on the safe side


def _ours(st: os.stat_result, want_dir: bool) -> bool:
    kind = stat.S_ISDIR(st.st_mode) if want_dir else stat.S_ISREG(st.st_mode)
    return kind and st.st_uid == os.getuid()


def _stale(match: re.Match | None, mtime: float, now: float, abandoned: float | None) -> bool:
    if now - mtime < MIN_AGE_S:
        return False
    if match is None:
        return abandoned is not None and now - mtime > abandoned
    host, pid = match.group(1), int(match.group(2))
    return host == HOST_TAG and process_gone(pid, mtime)


def clean_partials(folder: str) -> list[str]:
    """Remove stale partial saves in ``folder``; returns the paths removed. Never raises."""
    removed: list[str] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(PARTIAL_SUFFIX)):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not _ours(st, want_dir=False):
            continue
        if _stale(_PARTIAL.fullmatch(name), st.st_mtime, now, ABANDONED_AFTER_S):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(entry.path)
    return removed


def clean_handoff_folders(base: str) -> list[str]:
    """Remove hand-off folders of ended processes in ``base``; returns those removed.

    Folders without an owner record are left alone (a live kernel of an older
    version may still use one). Never raises.
    """
    removed: list[str] = []
    now = time.time()
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        match = _HANDOFF.fullmatch(entry.name)
        if match is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if _ours(st, want_dir=True) and _stale(match, st.st_mtime, now, None):
            shutil.rmtree(entry.path, ignore_errors=True)
            if not os.path.lexists(entry.path):
                removed.append(entry.path)
    return removed


def owner_of(name: str) -> tuple[str, int] | None:
    """(host tag, pid) recorded in a leftover's name, or None."""
    m = _PARTIAL.fullmatch(name) or _HANDOFF.fullmatch(name)
    return (m.group(1), int(m.group(2))) if m else None


__all__ = [
    "HANDOFF_PREFIX",
    "HOST_TAG",
    "MIN_AGE_S",
    "PARTIAL_SUFFIX",
    "clean_handoff_folders",
    "clean_partials",
    "handoff_prefix",
    "owner_of",
    "owner_tag",
    "partial_suffix",
    "process_gone",
]
