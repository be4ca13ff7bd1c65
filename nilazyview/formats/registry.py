"""The format registry: every format codec, in the order content sniffing tries them.

Adding a format is one module with a ``CODEC`` (see :mod:`nilazyview.formats.codec`)
and one line in :data:`CODECS`. Loading, saving, detection, the command line and
the hand-off all ask this module; none of them names a format.
"""

from __future__ import annotations

from ..core.header import Header
from ..errors import UnsupportedFormatError
from . import mgh, minc2, nifti_codec
from .codec import FormatCodec

#: Content is sniffed in this order (NIfTI's header sizes before MGH's looser test).
CODECS: tuple[FormatCodec, ...] = (nifti_codec.CODEC, mgh.CODEC, minc2.CODEC)


def for_kind(kind: str) -> FormatCodec | None:
    """The codec that reads headers of ``kind`` ("nifti1", "mgh", ...), or None."""
    for codec in CODECS:
        if kind in codec.kinds:
            return codec
    return None


def for_header(header: Header | None) -> FormatCodec | None:
    """The codec of an image's header, or None (no header, or a foreign one)."""
    return None if header is None else for_kind(header.kind)


def for_path(path: str) -> FormatCodec | None:
    """The codec whose file names ``path`` has (by extension), or None."""
    for codec in CODECS:
        if codec.suffix(path) is not None:
            return codec
    return None


def suffix_of(path: str) -> tuple[str, bool] | None:
    """``path``'s canonical suffix (".nii.gz", ".hdr", ".mgz", ...) and compression, or None."""
    codec = for_path(path)
    return None if codec is None else codec.suffix(path)


def readable_titles() -> str:
    """The formats read, for messages: "NIfTI-1/2, Analyze, MGH/MGZ and MINC2"."""
    titles = [c.title for c in CODECS]
    return ", ".join(titles[:-1]) + " and " + titles[-1]


def for_writing(path: str) -> FormatCodec:
    """The writable codec for a save to ``path``, chosen by its extension.

    Raises
    ------
    UnsupportedFormatError
        For an extension no writable format has; the message lists those that do.
    """
    codec = for_path(path)
    if codec is not None and codec.writable:
        return codec
    raise UnsupportedFormatError(
        f"{path}: cannot tell the format to write from the extension "
        "(use .nii, .nii.gz, .hdr/.img or .hdr.gz/.img.gz for NIfTI, "
        ".mgh, .mgh.gz or .mgz for FreeSurfer MGH)"
    )
