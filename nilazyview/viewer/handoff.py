"""The hand-off button's work: a file path for other tools, original or temporary copy."""

from __future__ import annotations

import os
import tempfile

import nilazyview

from .adapt import NibabelImage, check_files


def _stem(img) -> str:
    name = os.path.basename(getattr(img, "filename", None) or "image")
    for ext in (".gz", ".nii", ".hdr", ".img"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name or "image"


def _temp_path(img) -> str:
    folder = tempfile.mkdtemp(prefix="nilazyview-")
    return os.path.join(folder, _stem(img) + ".nii.gz")


def _same_file(a: str, b: str | None) -> bool:
    if not b:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def hand_off(img) -> tuple[str, bool]:
    """A path to a file holding ``img``, and whether it is the original file.

    Uses ``nilazyview.as_file`` when it exists; otherwise the original file
    when the image is unchanged (proxy, or not dirty) and its file is intact,
    else a temporary ``.nii.gz`` written with :func:`nilazyview.save`.
    """
    if isinstance(img, NibabelImage):
        import nibabel

        if img.filename and img.is_proxy:
            img.check_files()
            return img.filename, True
        path = _temp_path(img)
        nibabel.save(img.nib, path)
        return path, False
    as_file = getattr(nilazyview, "as_file", None)
    if as_file is not None:
        path = as_file(img)
        temporary = getattr(path, "is_temporary", None)
        if temporary is None:
            return os.fspath(path), _same_file(os.fspath(path), img.filename)
        return path, not temporary
    if img.filename and not img.dirty:
        intact = True
        try:
            check_files(img, always=True)
        except nilazyview.StaleFileError:
            intact = False
        if intact and os.path.exists(img.filename):
            return img.filename, True
    path = _temp_path(img)
    nilazyview.save(img, path)
    return path, False
