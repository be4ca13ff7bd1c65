"""ArrayProxy: an array on disk that reads only what an index needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np

from ..core.layout import DiskLayout
from ..core.pattern import PatternPlan, match_pattern, plan_pattern
from ..core.plan import ReadPlan, plan_read
from ..core.values import Scaling
from ..sources import ByteSource, FileIdentity, check_unchanged
from .execute import execute, execute_pattern
from .protocol import ArrayLike

_RAW = Scaling()


class ArrayProxy(ArrayLike):
    """Lazy array: a :class:`DiskLayout` in a :class:`ByteSource`, with read scaling.

    Pickles as its layout, scaling and the source's opener arguments.

    ``watch`` lists other files the layout was read from, as ``(path, identity)``
    (a pair's header file): each read checks they are unchanged too.
    """

    def __init__(
        self,
        layout: DiskLayout,
        source: ByteSource,
        scaling: Scaling | None = None,
        watch: tuple[tuple[str, FileIdentity], ...] = (),
    ):
        self.layout = layout
        self.source = source
        self.scaling = scaling or Scaling()
        self.watch = tuple(watch)
        self._patterns: dict[tuple[bool, ...], PatternPlan] = {}
        # output types, scaled and raw: looked up on every read
        self._out_dtypes = (self.scaling.out_dtype(layout.dtype), _RAW.out_dtype(layout.dtype))

    @property
    def shape(self) -> tuple[int, ...]:
        return self.layout.shape

    @property
    def dtype(self) -> np.dtype:
        """Type of the scaled values returned."""
        return self._out_dtypes[0]

    @property
    def stored_dtype(self) -> np.dtype:
        return self.layout.dtype

    @property
    def order(self) -> Literal["F", "C"]:
        return self.layout.order

    @property
    def value_map(self) -> Scaling:
        return self.scaling

    @property
    def name(self) -> str:
        return self.source.path

    why_no_plan = ""

    def stored_chunks(self, chunk_bytes: int) -> Iterator[memoryview]:
        """The stored bytes in file order, ``chunk_bytes`` at a time, each read checked fresh.

        The chunks share one buffer: use each before asking for the next.
        """
        layout = self.layout
        buf = memoryview(bytearray(min(chunk_bytes, layout.nbytes)))
        done = 0
        while done < layout.nbytes:
            n = min(len(buf), layout.nbytes - done)
            self.check_fresh()  # never the new bytes under the old header
            self.source.read_into(layout.offset + done, buf[:n])
            self.source.check_read()
            yield buf[:n]
            done += n

    def plan(self, index=...) -> ReadPlan:
        return plan_read(self.layout, index, self.source.heuristic)

    def check_fresh(self) -> None:
        """Raise :class:`~nilazyview.StaleFileError` if a file changed since loading."""
        self.source.check_fresh()
        for path, ident in self.watch:
            check_unchanged(path, ident, self.source.portable, what="header file")

    def read(self, index=..., raw: bool = False) -> np.ndarray:
        """A new array of ``stored[index]``, scaled unless ``raw``."""
        self.check_fresh()
        source = self.source
        if source.reads_patterns:  # ints and ':' only: planned once per pattern
            found = match_pattern(index, self.layout)
            if found is not None:
                pattern = self._patterns.get(found[0])
                if pattern is None or pattern.plan.heuristic is not source.heuristic:
                    pattern = plan_pattern(self.layout, found[0], source.heuristic)
                    self._patterns[found[0]] = pattern
                scaling = _RAW if raw else self.scaling
                out = execute_pattern(
                    pattern, index, found[1], source, scaling, self._out_dtypes[raw]
                )
                if out is not None:
                    source.check_read()  # a write during the copy moved the mtime
                    return out
        plan, run_on = source.prepare(self.plan(index))
        try:
            out = execute(plan, run_on, self.scaling, raw=raw)
        finally:
            if getattr(run_on, "transient", False):  # serves this plan only (a gzip pass)
                run_on.close()
        source.check_read()
        return out

    __getitem__ = read

    def __reduce__(self):
        return (ArrayProxy, (self.layout, self.source, self.scaling, self.watch))

    def __repr__(self) -> str:
        return f"ArrayProxy({self.source!r}, shape={self.shape}, dtype={self.dtype})"
