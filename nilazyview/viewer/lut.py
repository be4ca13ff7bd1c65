"""Label lookup tables: value -> (name, RGBA), from a dict, a FreeSurfer ``*ColorLUT.txt``
file, or the FreeSurfer table built in for the standard aseg and aparc values.

A FreeSurfer colour table has one label a line: ``value name R G B A``, with ``#``
comments; its ``A`` column is a transparency (0: opaque), so alpha is ``255 - A``.
Value 0 is the background of every label map here: never drawn.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from nilazyview.errors import ImageFileError

Lut = dict[int, tuple[str, tuple[int, int, int, int]]]

# Names and colours of FreeSurfer's FreeSurferColorLUT.txt (the de-facto standard table
# for aseg/aparc label maps; FreeSurfer, Laboratory for Computational Neuroimaging,
# MGH), retyped here for the subcortical (aseg) values and the Desikan-Killiany cortical
# parcels (aparc: 1000s left, 2000s right, same colours).
_ASEG = """
2 Left-Cerebral-White-Matter 245 245 245
3 Left-Cerebral-Cortex 205 62 78
4 Left-Lateral-Ventricle 120 18 134
5 Left-Inf-Lat-Vent 196 58 250
7 Left-Cerebellum-White-Matter 220 248 164
8 Left-Cerebellum-Cortex 230 148 34
10 Left-Thalamus 0 118 14
11 Left-Caudate 122 186 220
12 Left-Putamen 236 13 176
13 Left-Pallidum 12 48 255
14 3rd-Ventricle 204 182 142
15 4th-Ventricle 42 204 164
16 Brain-Stem 119 159 176
17 Left-Hippocampus 220 216 20
18 Left-Amygdala 103 255 255
24 CSF 60 60 60
26 Left-Accumbens-area 255 165 0
28 Left-VentralDC 165 42 42
30 Left-vessel 160 32 240
31 Left-choroid-plexus 0 200 200
41 Right-Cerebral-White-Matter 245 245 245
42 Right-Cerebral-Cortex 205 62 78
43 Right-Lateral-Ventricle 120 18 134
44 Right-Inf-Lat-Vent 196 58 250
46 Right-Cerebellum-White-Matter 220 248 164
47 Right-Cerebellum-Cortex 230 148 34
49 Right-Thalamus 0 118 14
50 Right-Caudate 122 186 220
51 Right-Putamen 236 13 176
52 Right-Pallidum 13 48 255
53 Right-Hippocampus 220 216 20
54 Right-Amygdala 103 255 255
58 Right-Accumbens-area 255 165 0
60 Right-VentralDC 165 42 42
62 Right-vessel 160 32 240
63 Right-choroid-plexus 0 200 221
72 5th-Ventricle 120 190 150
77 WM-hypointensities 200 70 255
85 Optic-Chiasm 234 169 30
251 CC_Posterior 0 0 64
252 CC_Mid_Posterior 0 0 112
253 CC_Central 0 0 160
254 CC_Mid_Anterior 0 0 208
255 CC_Anterior 0 0 255
"""
_APARC = """
0 unknown 25 5 25
1 bankssts 25 100 40
2 caudalanteriorcingulate 125 100 160
3 caudalmiddlefrontal 100 25 0
4 corpuscallosum 120 70 50
5 cuneus 220 20 100
6 entorhinal 220 20 10
7 fusiform 180 220 140
8 inferiorparietal 220 60 220
9 inferiortemporal 180 40 120
10 isthmuscingulate 140 20 140
11 lateraloccipital 20 30 140
12 lateralorbitofrontal 35 75 50
13 lingual 225 140 140
14 medialorbitofrontal 200 35 75
15 middletemporal 160 100 50
16 parahippocampal 20 220 60
17 paracentral 60 220 60
18 parsopercularis 220 180 140
19 parsorbitalis 20 100 50
20 parstriangularis 220 60 20
21 pericalcarine 120 100 60
22 postcentral 220 20 20
23 posteriorcingulate 220 180 220
24 precentral 60 20 220
25 precuneus 160 140 180
26 rostralanteriorcingulate 80 20 140
27 rostralmiddlefrontal 75 50 125
28 superiorfrontal 20 220 160
29 superiorparietal 20 180 140
30 superiortemporal 140 220 220
31 supramarginal 80 160 20
32 frontalpole 100 0 100
33 temporalpole 70 70 70
34 transversetemporal 150 150 200
35 insula 255 192 32
"""


def parse_colorlut(text: str, source: str = "colour table") -> Lut:
    """A :data:`Lut` from the text of a FreeSurfer colour table (``value name R G B [A]``).

    Raises
    ------
    ImageFileError
        For a line that is not a label (naming ``source`` and the line).
    """
    out: Lut = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            value = int(parts[0])
            rgb = [int(p) for p in parts[2:5]]
            transparency = int(parts[5]) if len(parts) > 5 else 0
            if len(parts) < 5 or not all(0 <= c <= 255 for c in [*rgb, transparency]):
                raise ValueError
        except ValueError:
            raise ImageFileError(
                f"{source}, line {number}: not 'value name R G B [A]' with 0-255 colours: "
                f"{line[:80]!r}"
            ) from None
        out[value] = (parts[1], (*rgb, 255 - transparency))
    return out


def _builtin() -> Lut:
    lut = parse_colorlut(_ASEG)
    for offset, hemi in ((1000, "lh"), (2000, "rh")):
        for value, (name, rgba) in parse_colorlut(_APARC).items():
            lut[offset + value] = (f"ctx-{hemi}-{name}", rgba)
    return lut


FREESURFER: Lut = _builtin()


def _rgba(colour, value) -> tuple[int, int, int, int]:
    c = tuple(colour)
    if len(c) not in (3, 4):
        raise ValueError(f"lut: the colour of label {value} must be RGB or RGBA, not {colour!r}")
    if all(isinstance(x, float | np.floating) for x in c) and all(0 <= x <= 1 for x in c):
        c = tuple(round(255 * x) for x in c)  # floats in [0, 1]
    c = tuple(int(x) for x in c)
    if not all(0 <= x <= 255 for x in c):
        raise ValueError(f"lut: colour components of label {value} must be 0-255: {colour!r}")
    return (*c, 255)[:4] if len(c) == 3 else c


def as_lut(lut: Mapping | str | os.PathLike | None) -> Lut:
    """The :data:`Lut` for ``lut``: None (the built-in FreeSurfer table), a dict
    ``value -> (name, RGB or RGBA)`` (0-255 ints, or floats in [0, 1]), or the path of
    a FreeSurfer ``*ColorLUT.txt`` file."""
    if lut is None:
        return dict(FREESURFER)
    if isinstance(lut, str | os.PathLike):
        path = os.fspath(lut)
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_colorlut(f.read(), path)
    if not isinstance(lut, Mapping):
        raise TypeError(
            f"lut must be a dict value -> (name, RGBA) or a ColorLUT path, not {type(lut).__name__}"
        )
    out: Lut = {}
    for value, entry in lut.items():
        try:
            name, colour = entry
        except (TypeError, ValueError):
            raise ValueError(f"lut[{value!r}] must be (name, RGBA), not {entry!r}") from None
        out[int(value)] = (str(name), _rgba(colour, value))
    return out


def _fallback(values: np.ndarray) -> np.ndarray:
    """A stable colour (RGBA uint8) for labels the table lacks: a hash of the value."""
    h = (values.astype(np.int64) * 2654435761) & 0xFFFFFF
    rgb = np.stack([(h >> 16) & 255, (h >> 8) & 255, h & 255], -1)
    return np.concatenate([rgb // 2 + 96, np.full((*values.shape, 1), 255)], -1).astype(np.uint8)


def colours(lut: Lut, values: np.ndarray) -> np.ndarray:
    """RGBA (uint8, ``(*values.shape, 4)``) of label ``values`` (floats, NaN allowed).

    NaN and 0 are transparent; labels not in ``lut`` get a stable colour of their own.
    """
    out = np.zeros((*values.shape, 4), np.uint8)
    finite = np.isfinite(values)
    ints = np.zeros(values.shape, np.int64)
    ints[finite] = np.floor(values[finite] + 0.5).astype(np.int64)
    shown = finite & (ints != 0)
    if not shown.any():
        return out
    keys = np.array(sorted(lut), np.int64)
    table = np.array([lut[k][1] for k in keys], np.uint8).reshape(-1, 4)
    v = ints[shown]
    pos = np.clip(np.searchsorted(keys, v), 0, max(len(keys) - 1, 0))
    known = (keys[pos] == v) if len(keys) else np.zeros(v.shape, bool)
    rgba = _fallback(v)
    if len(keys):
        rgba[known] = table[pos[known]]
    out[shown] = rgba
    return out
