"""Progress bars for long operations: ``tqdm.auto`` when installed, else nothing.

A bar shows only when the operation lasts longer than :data:`DELAY_S` (tqdm's
``delay``), so short saves and reads print nothing; ``TQDM_DISABLE=1`` hides all.
"""

from __future__ import annotations

import os
from typing import Any

#: Seconds an operation runs before its bar appears.
DELAY_S = 1.0


class NoBar:
    """Stands in for a bar: ``update`` and ``close`` do nothing."""

    def update(self, n: int = 1) -> None:
        """Nothing."""

    def close(self) -> None:
        """Nothing."""

    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def bar(total: int, desc: str, unit: str = "B") -> Any:
    """A ``tqdm.auto`` bar of ``total`` units (bytes by default), or a :class:`NoBar`.

    Use it as a context manager and call ``update(n)``. No bar without tqdm,
    when ``$TQDM_DISABLE`` is set, or when tqdm cannot draw (a broken terminal).
    """
    if os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes"):
        return NoBar()
    try:
        from tqdm.auto import tqdm  # optional (the 'gz' extra and most environments)
    except ImportError:
        return NoBar()
    try:
        return tqdm(
            total=total,
            unit=unit,
            unit_scale=unit == "B",
            unit_divisor=1024 if unit == "B" else 1000,
            desc=desc,
            delay=DELAY_S,
            leave=False,
        )
    except Exception:  # a broken terminal or widget never breaks the operation
        return NoBar()
