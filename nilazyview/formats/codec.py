"""The format contract: what a format module provides, and what it gets and gives back.

A format is one module holding one object that follows :class:`FormatCodec`,
and one line in :mod:`nilazyview.formats.registry`. It reads headers into a
:class:`Opened` (header, affine, lazy array, files) and, when writable, encodes
a :class:`ToWrite` into an :class:`Encoded` (the files' header and footer bytes
and how the voxels are stored); :mod:`nilazyview.formats.writer` does the rest.
Format modules import nothing above this layer (no image, io, hand-off or viewer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..array.protocol import LazyArray
from ..core.header import Header
from ..core.layout import DiskLayout
from ..core.values import Scaling
from ..errors import TruncatedDataError
from ..sources import ByteSource, FileIdentity


@dataclass(frozen=True)
class Opened:
    """A file opened by a format: everything an image is made of, no voxel read."""

    array: LazyArray
    affine: np.ndarray
    header: Header
    files: dict[str, str]
    identity: dict[str, FileIdentity]


@dataclass(frozen=True)
class Timing:
    """Units and time step an image's header states, in a form every format can write.

    ``space`` is the spatial unit ("mm", "meter", "micron") or None when not stated;
    ``tr`` the time between volumes in seconds, or None.
    """

    space: str | None = None
    tr: float | None = None


@dataclass(frozen=True)
class ToWrite:
    """An image to encode: its facts and where its values come from.

    ``data`` is the in-memory array (values), else ``array`` is read; ``files``
    are the files the image came from (a format may carry a sidecar over);
    ``timing`` is what the source's format states (units, TR), for a target of
    another format to carry over; ``version`` the format version the user asked for
    (NIfTI: 1 or 2), None to let the format choose.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    affine: np.ndarray
    header: Header | None
    data: np.ndarray | None
    array: LazyArray | None
    files: dict[str, str] = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)
    version: int | None = None


@dataclass(frozen=True)
class FileToWrite:
    """One file of a save: ``head``, then the voxel data if ``data``, then ``tail``."""

    path: str
    gzip: bool
    head: bytes = b""
    data: bool = False
    tail: bytes = b""
    sync_folder: bool = True


@dataclass(frozen=True)
class Encoded:
    """How to write an image: its files (one atomic group) and the voxels' stored form.

    ``stored`` copies the source's stored bytes as they are (same type, order and
    scaling); otherwise values are written as ``dtype`` in Fortran order, each slab
    passed to ``check`` first (which raises for values ``dtype`` cannot hold).
    ``primary`` is the file a save reports (a pair's header); default the first.
    """

    files: tuple[FileToWrite, ...]
    dtype: np.dtype
    stored: bool = False
    check: Callable[[np.ndarray], None] | None = None
    primary: str = ""

    @property
    def written(self) -> str:
        """The path :func:`nilazyview.save` returns."""
        return self.primary or self.files[0].path


class FormatCodec(Protocol):
    """What a format module provides (one object per module, in the registry).

    Attributes: ``name`` (registry key), ``title`` (for people: "MGH/MGZ"),
    ``kinds`` (header kinds it owns, e.g. "nifti1"), ``names`` (kind -> text for
    content it recognises), ``writable``, ``opens_unrecognised`` (its loader
    explains files of its extensions whose content nothing recognised).
    """

    name: str
    title: str
    kinds: tuple[str, ...]
    names: dict[str, str]
    writable: bool
    opens_unrecognised: bool

    def sniff(self, head: bytes, path: str | None) -> str | None:
        """The kind of an uncompressed stream from its first bytes, or None.

        ``path`` is given for uncompressed files so a codec may look further.
        """
        ...

    def suffix(self, path: str) -> tuple[str, bool] | None:
        """``path``'s canonical suffix and whether it is compressed, if it names this format."""
        ...

    def open(self, path: str) -> Opened:
        """Parse headers and set up the lazy array; read no voxel."""
        ...

    def zooms(self, header: Header, ndim: int) -> list[float]:
        """Voxel sizes (and a time step for 4D) as the header states them."""
        ...

    def timing(self, header: Header, ndim: int) -> Timing:
        """Spatial unit and repetition time (seconds) that ``header`` states."""
        ...

    def written_files(self, path: str) -> list[str]:
        """Every file a save to ``path`` writes (pairs, sidecars)."""
        ...

    def encode(self, item: ToWrite, path: str) -> Encoded:
        """The files and stored form for saving ``item`` to ``path``."""
        ...


#: Deflate cannot expand data more than about 1032:1; more is a corrupt header.
GZIP_MAX_RATIO = 1032


def capacity(source: ByteSource) -> int:
    """The most (uncompressed) bytes ``source`` can hold: its size, or the gzip bound."""
    size = source.stored_size()
    return GZIP_MAX_RATIO * size + 2**20 if source.compressed else size


def check_data_fits(source: ByteSource, layout: DiskLayout, path: str) -> None:
    """Raise :class:`TruncatedDataError` if the file cannot hold the data the header declares."""
    end = layout.offset + layout.nbytes
    if source.compressed:
        if end > capacity(source):
            raise TruncatedDataError(
                f"{path}: header declares data up to byte {end} (offset {layout.offset} + "
                f"{layout.nbytes}); a gzip stream of {source.stored_size()} bytes cannot hold "
                f"that many (deflate expands at most {GZIP_MAX_RATIO}:1)"
            )
        return
    size = source.stored_size()
    if end > size:
        raise TruncatedDataError(
            f"{path}: header declares data up to byte {end} (vox_offset {layout.offset} + "
            f"{layout.nbytes}), but the file has {size} bytes"
        )


def stored_copy_allowed(array: LazyArray | None) -> Scaling | None:
    """The linear scaling of a Fortran-order byte array whose stored bytes can be copied."""
    if array is None or array.layout is None or array.order != "F" or array.value_map is None:
        return None
    return array.value_map.linear
