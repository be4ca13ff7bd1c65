"""Lazy arrays: one protocol (:class:`LazyArray`) and its implementations.

``bytes`` (:class:`ArrayProxy`: a :class:`~nilazyview.core.layout.DiskLayout` in a
byte source, read through the planner), ``h5`` (an HDF5 dataset through h5py),
``mapped`` (any lazy array of stored values plus a value map) and ``nibabel``
(a nibabel ``dataobj``, and nibabel's proxy API over ours). Callers use the
protocol; none asks which kind it holds.
"""

from .bytes import ArrayProxy
from .mapped import MappedArray
from .protocol import LazyArray

__all__ = ["ArrayProxy", "LazyArray", "MappedArray"]
