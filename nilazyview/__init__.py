"""nilazyview: lazy proxy images for huge neuroimaging volumes.

>>> import nilazyview as nlv
>>> img = nlv.load("big.nii.gz")        # header and affine only
>>> plane = img.slicecopy[..., 40]      # reads just that plane
"""

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

__version__ = "0.1.0"


def view(obj, **kwargs):
    """Open a slice viewer widget on a path, Image, nibabel image or array.

    Needs the ``viewer`` extra (ipywidgets, matplotlib); see :mod:`nilazyview.viewer`.
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
