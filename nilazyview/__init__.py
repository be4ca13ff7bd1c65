"""nilazyview: lazy proxy images for huge neuroimaging volumes.

>>> import nilazyview as nlv
>>> img = nlv.load("big.nii.gz")        # header and affine only
>>> plane = img.slicecopy[..., 40]      # reads just that plane
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .adapters import from_nibabel
from .core.header import Extension, Header
from .core.layout import DiskLayout
from .core.plan import ReadHeuristic, ReadPlan, plan_read
from .errors import (
    DirtyImageError,
    HeaderError,
    ImageFileError,
    NilazyviewWarning,
    RemoteAccessError,
    RemoteError,
    RemoteNotFoundError,
    SaveError,
    StaleFileError,
    TruncatedDataError,
    UnsupportedFormatError,
)
from .handoff import HandoffPath, as_file, release
from .image import Image
from .io.load import load
from .io.save import save
from .version import __version__

if TYPE_CHECKING:
    from .viewer import SliceViewer


def view(obj: Any, **kwargs: Any) -> SliceViewer:
    """Open a slice viewer on a path, Image, nibabel image or numpy array.

    Needs the ``viewer`` extra (ipywidgets, matplotlib, ipyevents). Keyword
    arguments go to :class:`nilazyview.viewer.SliceViewer`; returns the widget.
    """
    from .viewer import view as _view  # the optional 'viewer' extra (ipywidgets)

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
    "NilazyviewWarning",
    "ReadHeuristic",
    "ReadPlan",
    "RemoteAccessError",
    "RemoteError",
    "RemoteNotFoundError",
    "SaveError",
    "StaleFileError",
    "TruncatedDataError",
    "UnsupportedFormatError",
    "__version__",
    "as_file",
    "from_nibabel",
    "load",
    "plan_read",
    "release",
    "save",
    "view",
]
