"""nilazyview: lazy proxy images for huge neuroimaging volumes.

>>> import nilazyview as nlv
>>> img = nlv.load("big.nii.gz")        # header and affine only
>>> plane = img.slicecopy[..., 40]      # reads just that plane
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .adapters import from_nibabel
from .errors import (
    DirtyImageError,
    HeaderError,
    ImageFileError,
    SaveError,
    StaleFileError,
    TruncatedDataError,
    UnsupportedFormatError,
)
from .handoff import HandoffPath, as_file, release
from .header import Extension, Header
from .image import Image
from .io.load import load
from .io.save import save
from .layout import DiskLayout
from .plan import ReadHeuristic, ReadPlan, plan_read

if TYPE_CHECKING:
    from .viewer import SliceViewer

__version__ = "0.1.0"


def view(obj: Any, **kwargs: Any) -> SliceViewer:
    """Open a slice viewer on a path, Image, nibabel image or numpy array.

    Needs the ``viewer`` extra (ipywidgets, matplotlib, ipyevents). Keyword
    arguments go to :class:`nilazyview.viewer.SliceViewer`; returns the widget.
    """
    from .viewer import view as _view

    return _view(obj, **kwargs)


__all__ = [
    "DirtyImageError",
    "DiskLayout",
    "Extension",
    "HandoffPath",
    "Header",
    "HeaderError",
    "Image",
    "ImageFileError",
    "ReadHeuristic",
    "ReadPlan",
    "SaveError",
    "StaleFileError",
    "TruncatedDataError",
    "UnsupportedFormatError",
    "as_file",
    "from_nibabel",
    "load",
    "plan_read",
    "release",
    "save",
    "view",
]
