"""Jupyter slice viewer: reads only the displayed slab, with an LRU slab cache.

>>> from nilazyview.viewer import view
>>> v = view("sub-01_T1w.nii.gz")   # displays itself as a cell's last expression
"""

from .cache import SlabCache
from .layers import Layer
from .links import Link, link
from .widget import SliceViewer, view

__all__ = ["Layer", "Link", "SlabCache", "SliceViewer", "link", "view"]
