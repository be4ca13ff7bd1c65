"""Settings read from the environment (``NILAZYVIEW_*``), read at each use so tests can set them."""

from __future__ import annotations

import os
import tempfile


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
    """The folder for temporary files: ``$NILAZYVIEW_TMPDIR`` or the system temporary folder."""
    return os.environ.get("NILAZYVIEW_TMPDIR") or tempfile.gettempdir()


def env_flag(name: str) -> bool:
    """True when ``$name`` is set to ``1``, ``yes``, ``true`` or ``on`` (any case)."""
    return os.environ.get(name, "").strip().lower() in ("1", "yes", "true", "on")
