"""File naming: single files, header/image pairs, gzip suffixes."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import UnsupportedFormatError


@dataclass(frozen=True)
class FileNames:
    """The file(s) of one image: ``header`` and ``image`` are equal for a single file."""

    header: str
    image: str

    @property
    def single(self) -> bool:
        return self.header == self.image


def split_ext(path: str) -> tuple[str, str, bool]:
    """(stem, lower-case extension without .gz, gzipped?) of ``path``."""
    gz = path.lower().endswith(".gz")
    base = path[:-3] if gz else path
    stem, ext = os.path.splitext(base)
    return stem, ext.lower(), gz


def _partner(stem: str, ext: str, like: str) -> str:
    """The existing file ``stem + ext`` (case of ``like``), gzipped or not."""
    ext = ext.upper() if like.isupper() else ext
    for cand in (stem + ext, stem + ext + ".gz", stem + ext + ".GZ"):
        if os.path.exists(cand):
            return cand
    return stem + ext


def names_for_reading(path: str) -> FileNames:
    """The files to read for ``path``; pairs are found from either member."""
    stem, ext, _ = split_ext(path)
    if ext in (".hdr", ".img"):
        given_ext = os.path.splitext(path[:-3] if path.lower().endswith(".gz") else path)[1]
        hdr = path if ext == ".hdr" else _partner(stem, ".hdr", given_ext)
        img = path if ext == ".img" else _partner(stem, ".img", given_ext)
        return FileNames(hdr, img)
    return FileNames(path, path)


def names_for_writing(path: str) -> FileNames:
    """The single file or the header/image pair a save to ``path`` writes.

    Raises
    ------
    UnsupportedFormatError
        For a name that is neither a single file (``.nii``) nor a pair member.
    """
    stem, ext, gz = split_ext(path)
    suffix = ".gz" if gz else ""
    if ext == ".nii":
        return FileNames(path, path)
    if ext in (".hdr", ".img"):
        return FileNames(stem + ".hdr" + suffix, stem + ".img" + suffix)
    raise UnsupportedFormatError(
        f"{path}: not a NIfTI or Analyze file name (.nii, .hdr or .img, optionally .gz)"
    )
