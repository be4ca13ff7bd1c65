"""HDF5 datasets read through h5py (the ``minc`` extra): chunked or filtered data."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from typing import Literal

import numpy as np

from ..core.indexing import canonical_index
from ..errors import ImageFileError, UnsupportedFormatError
from ..sources import FileIdentity, check_unchanged
from .protocol import ArrayLike


def h5py_module():
    """The ``h5py`` module, or an error naming the extra that brings it."""
    try:
        import h5py  # the optional 'minc' extra
    except ImportError:
        raise UnsupportedFormatError(
            'reading MINC2 needs h5py: pip install "nilazyview[minc]"'
        ) from None
    return h5py


_LIVE: weakref.WeakSet = weakref.WeakSet()


def _reset_in_child() -> None:
    for opener in list(_LIVE):
        opener._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


class H5Opener:
    """Opens one dataset of one HDF5 file lazily; pickles as path, identity and dataset name."""

    def __init__(self, path: str, identity: FileIdentity | None, dataset: str):
        self.path = path
        self.identity = identity
        self.dataset_name = dataset
        self._lock = threading.Lock()
        self._file = None

        _LIVE.add(self)

    def _after_fork(self) -> None:
        """In a forked child: a new lock; the parent's HDF5 handle is forgotten, not closed."""
        self._lock = threading.Lock()
        self._file = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "identity": self.identity, "dataset": self.dataset_name}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["identity"], state["dataset"])

    def __repr__(self) -> str:
        return f"H5Opener({self.path!r})"

    def dataset(self):
        with self._lock:
            if self._file is None:
                if self.identity is not None:
                    check_unchanged(self.path, self.identity)
                self._file = h5py_module().File(self.path, "r")
            return self._file[self.dataset_name]

    def close(self) -> None:
        with self._lock:
            f, self._file = self._file, None
        if f is not None:
            f.close()


class H5DatasetArray(ArrayLike):
    """Stored values of a chunked or filtered dataset, sliced through h5py (C order)."""

    layout = None
    value_map = None
    order: Literal["C"] = "C"
    why_no_plan = (
        "the dataset is chunked or compressed; reads go through h5py and have no byte plan"
    )

    def __init__(self, source: H5Opener, shape: tuple[int, ...], dtype: np.dtype):
        self.source = source
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    @property
    def stored_dtype(self) -> np.dtype:
        return self.dtype

    @property
    def name(self) -> str:
        return self.source.path

    def plan(self, index=...) -> None:
        """None: reads go through h5py and have no byte plan."""
        return None

    def check_fresh(self) -> None:
        """Raise :class:`~nilazyview.StaleFileError` if the file changed since loading.

        By path (``stat``: size, mtime, inode), before and after every read: HDF5
        keeps its own handle, so a truncated file read as zeros and a rewritten
        one as new values before this check existed.
        """
        src = self.source
        if src.identity is not None:
            check_unchanged(src.path, src.identity)

    def stored_chunks(self, chunk_bytes: int) -> Iterator[memoryview]:
        raise TypeError(f"{self.name}: a chunked HDF5 dataset has no byte layout")

    def read(self, index=..., raw: bool = True) -> np.ndarray:
        cidx = canonical_index(index, self.shape)
        if any(s.count == 0 for s in cidx.axes):
            return np.empty(cidx.out_shape, self.dtype.newbyteorder("="))
        box = tuple(slice(s.lo, s.hi, abs(s.step) if s.count > 1 else 1) for s in cidx.axes)
        self.check_fresh()
        try:
            arr = np.asarray(self.source.dataset()[box])
        except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
            self.check_fresh()  # a changed file first: StaleFileError says so
            raise ImageFileError(f"{self.name}: cannot read the MINC2 data: {exc}") from None
        self.check_fresh()  # the bytes HDF5 read may be a rewrite's
        post = []
        for it in cidx.items:
            if it is None:
                post.append(None)
                continue
            sel = cidx.axes[it]
            post.append(slice(None, None, -1) if sel.reversed else (slice(None) if sel.keep else 0))
        out = arr[tuple(post)]
        return np.array(out, dtype=out.dtype.newbyteorder("="), copy=True)
