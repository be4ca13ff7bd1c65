"""The live badge: poll a viewer every few seconds while the kernel's event loop is idle."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .widget import SliceViewer


def start_polling(viewer: SliceViewer, interval: float) -> asyncio.Task | None:
    """Call ``viewer.poll()`` every ``interval`` seconds on the running event loop.

    Returns the task, or None when ``interval <= 0`` or there is no running loop
    (plain scripts: the badge updates on interaction). Holds the viewer weakly; the
    task ends when the viewer is gone or closed. Errors of ``poll`` are ignored.
    """
    if interval <= 0:
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    ref = weakref.ref(viewer)

    async def poll() -> None:
        while True:
            await asyncio.sleep(interval)
            alive = ref()
            if alive is None or alive._closed:
                return
            with contextlib.suppress(Exception):
                alive.poll()
            del alive  # no strong reference while asleep

    return loop.create_task(poll())
