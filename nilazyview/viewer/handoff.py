"""The hand-off button's work: a file path for other tools, original or temporary copy."""

from __future__ import annotations

from nilazyview.handoff import as_file


def hand_off(img) -> tuple[str, bool]:
    """A path to a file holding ``img``, and whether it is the original file.

    :func:`nilazyview.as_file` decides: the original while nothing changed,
    else a temporary copy.
    """
    path = as_file(img)
    return path, not path.is_temporary
