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
    CacheWarning,
    DirtyImageError,
    HeaderError,
    ImageFileError,
    MalformedFileWarning,
    MissingExtraError,
    NilazyviewWarning,
    RemoteAccessError,
    RemoteError,
    RemoteNotFoundError,
    SaveError,
    SaveWarning,
    StaleFileError,
    TruncatedDataError,
    UnsupportedFormatError,
    require,
)
from .handoff import HandoffPath, as_file, release
from .image import Image
from .io.load import load
from .io.save import save
from .version import __version__

if TYPE_CHECKING:
    from .viewer import Link, SliceViewer


def view(obj: Any, **kwargs: Any) -> SliceViewer:
    """Open a slice viewer on a path, Image, nibabel image or numpy array.

    Needs the ``viewer`` extra (ipywidgets, matplotlib, ipyevents). Keyword
    arguments go to :class:`nilazyview.viewer.SliceViewer`; returns the widget.
    """
    for module, package in (("ipywidgets", ""), ("matplotlib", ""), ("PIL", "Pillow")):
        require(module, "viewer", "nlv.view()", package)
    from .viewer import view as _view  # the optional 'viewer' extra (ipywidgets)

    return _view(obj, **kwargs)


def link(*viewers: Any, zoom: bool = False, plane: bool = False) -> Link:
    """Keep the crosshairs of viewers of different images on one world point.

    Each follows at its voxel nearest the point; with ``zoom`` / ``plane`` their
    zoom and anatomical plane follow too. Returns a link with ``.unlink()``; see
    :func:`nilazyview.viewer.link`.
    """
    require("ipywidgets", "viewer", "nlv.link()")
    from .viewer import link as _link  # the optional 'viewer' extra (ipywidgets)

    return _link(*viewers, zoom=zoom, plane=plane)


def __getattr__(name: str) -> Any:
    """``nlv.Layer``: the viewer's layer class, imported on first use (the viewer extra)."""
    if name == "Layer":
        require("ipywidgets", "viewer", "nlv.Layer")
        from .viewer.layers import Layer  # the optional 'viewer' extra (ipywidgets)

        return Layer
    raise AttributeError(f"module 'nilazyview' has no attribute {name!r}")


__all__ = [
    "CacheWarning",
    "DirtyImageError",
    "DiskLayout",
    "Extension",
    "HandoffPath",
    "Header",
    "HeaderError",
    "Image",
    "ImageFileError",
    "MalformedFileWarning",
    "MissingExtraError",
    "NilazyviewWarning",
    "ReadHeuristic",
    "ReadPlan",
    "RemoteAccessError",
    "RemoteError",
    "RemoteNotFoundError",
    "SaveError",
    "SaveWarning",
    "StaleFileError",
    "TruncatedDataError",
    "UnsupportedFormatError",
    "__version__",
    "as_file",
    "from_nibabel",
    "link",
    "load",
    "plan_read",
    "release",
    "save",
    "view",
]
