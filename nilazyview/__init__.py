"""nilazyview: lazy proxy images for huge neuroimaging volumes.

>>> import nilazyview as nlv
>>> img = nlv.load("big.nii.gz")        # header and affine only
>>> plane = img.slicecopy[..., 40]      # reads just that plane
"""

from .errors import (
    DirtyImageError,
    HeaderError,
    ImageFileError,
    StaleFileError,
    TruncatedDataError,
    UnsupportedFormatError,
)
from .header import Extension, Header
from .image import Image
from .io.load import load
from .io.save import save
from .layout import DiskLayout
from .plan import ReadHeuristic, ReadPlan, plan_read

__version__ = "0.1.0"

__all__ = [
    "DirtyImageError",
    "DiskLayout",
    "Extension",
    "Header",
    "HeaderError",
    "Image",
    "ImageFileError",
    "ReadHeuristic",
    "ReadPlan",
    "StaleFileError",
    "TruncatedDataError",
    "UnsupportedFormatError",
    "load",
    "plan_read",
    "save",
]
