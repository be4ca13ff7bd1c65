"""Settings read from the environment (``NILAZYVIEW_*``), read at each use so tests can set them."""

from __future__ import annotations

import os
import tempfile

from .private import unsafe_reason, warn_once


def env_int(name: str, default: int, minimum: int = 0) -> int:
    """The integer in ``$name`` (``"1e9"`` allowed), at least ``minimum``; else ``default``."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return max(minimum, int(float(value)))
    except (ValueError, OverflowError):
        return default


def temp_root() -> str:
    """The folder for temporary files: ``$NILAZYVIEW_TMPDIR`` or the system temporary folder.

    ``$NILAZYVIEW_TMPDIR`` is used only if it is a real folder (not a symlink)
    of this user's, or root's with the sticky bit, that others cannot write
    without it; else one warning, and the system temporary folder.
    """
    root = os.environ.get("NILAZYVIEW_TMPDIR")
    if not root:
        return tempfile.gettempdir()
    reason = unsafe_reason(root, private=False)
    if reason is None:
        return root
    fallback = tempfile.gettempdir()
    warn_once(root, reason, "temporary files (NILAZYVIEW_TMPDIR)", f"using {fallback}")
    return fallback


def env_flag(name: str) -> bool:
    """True when ``$name`` is set to ``1``, ``yes``, ``true`` or ``on`` (any case)."""
    return os.environ.get(name, "").strip().lower() in ("1", "yes", "true", "on")
