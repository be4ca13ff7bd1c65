#!/usr/bin/env python3
"""Generate the sample volumes for the demo notebooks: no download, bounded memory.

Writes into OUTDIR (default ``notebooks/data``):

- ``huge_head.nii``: a procedurally generated head phantom (scalp, skull with diploe,
  CSF, folded cortex, white matter, ventricles, deep grey nuclei, cerebellum, eyes and
  a few lesions), int16 with ``scl_slope``, several GiB by default. It is written one
  axial slice at a time, so memory stays at a few slices whatever the size.
- ``fmri_4d.nii``: a small 4D series of the same phantom (a blob that pulses and a
  slow drift), for the viewer's volume slider.

The size of the huge file comes from ``--gib``, else the environment variable
``NLV_SAMPLE_GIB``, else 4 GiB. Running again is cheap: a file that already exists
with the expected size is kept (``--force`` rewrites). The paths are printed.

From Python (the notebooks do this)::

    import make_sample
    paths = make_sample.ensure_samples("data")   # {"huge": ..., "4d": ...}
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_GIB = 4.0
HUGE_NAME = "huge_head.nii"
FOURD_NAME = "fmri_4d.nii"
SLOPE = 0.5  # stored int16 * 0.5 = intensity
FOURD_SHAPE = (64, 78, 58, 12)
SEED = 20240601

# Field of view of the head phantom in mm (x: left-right, y: posterior-anterior,
# z: inferior-superior, RAS), and its half-axes.
FOV = np.array([172.0, 212.0, 190.0])
HEAD_RADII = np.array([76.0, 98.0, 90.0])
HEAD_CENTRE = np.array([0.0, 0.0, -4.0])

# Intensities (T1-like, arbitrary units).
WM, GM, CSF, SKULL, DIPLOE, FAT, SKIN, DEEP = 800.0, 520.0, 140.0, 60.0, 380.0, 900.0, 560.0, 640.0


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _profile(r: np.ndarray, edges, values, width: float) -> np.ndarray:
    """Piecewise-constant profile of ``r`` with smooth steps at ``edges``."""
    out = np.full_like(r, values[0])
    for edge, a, b in zip(edges, values[:-1], values[1:], strict=True):
        out += (b - a) * _smoothstep((r - edge) / width + 0.5)
    return out


@dataclass(frozen=True)
class Blob:
    centre: tuple[float, float, float]  # mm
    radii: tuple[float, float, float]  # mm
    value: float
    soft: float = 0.25  # soft edge, as a fraction of the normalised radius


# The phantom's named structures, with their FreeSurfer aseg labels (left, right):
# painted in this order into the anatomy, and into the label map (make_labels).
ANATOMY: tuple[tuple[Blob, tuple[int, int]], ...] = (
    (Blob((0.0, -58.0, -62.0), (46.0, 26.0, 22.0), GM * 1.1, 0.12), (8, 47)),  # cerebellum
    (Blob((0.0, -22.0, -55.0), (11.0, 12.0, 36.0), WM * 0.92, 0.3), (16, 16)),  # brainstem
    (Blob((-26.0, 8.0, 6.0), (6.0, 15.0, 10.0), DEEP, 0.4), (12, 51)),  # putamen L
    (Blob((26.0, 8.0, 6.0), (6.0, 15.0, 10.0), DEEP, 0.4), (12, 51)),  # putamen R
    (Blob((-10.0, -14.0, 8.0), (8.0, 13.0, 9.0), DEEP * 0.97, 0.4), (10, 49)),  # thalamus L
    (Blob((10.0, -14.0, 8.0), (8.0, 13.0, 9.0), DEEP * 0.97, 0.4), (10, 49)),  # thalamus R
    (Blob((-9.0, 4.0, 20.0), (5.0, 28.0, 8.0), CSF, 0.3), (4, 43)),  # lateral ventricle L
    (Blob((9.0, 4.0, 20.0), (5.0, 28.0, 8.0), CSF, 0.3), (4, 43)),  # lateral ventricle R
    (Blob((-13.0, -26.0, 10.0), (4.0, 8.0, 10.0), CSF, 0.3), (4, 43)),  # posterior horns
    (Blob((13.0, -26.0, 10.0), (4.0, 8.0, 10.0), CSF, 0.3), (4, 43)),
    (Blob((0.0, -6.0, 6.0), (1.6, 12.0, 7.0), CSF, 0.3), (14, 14)),  # third ventricle
    (Blob((-31.0, 66.0, -40.0), (17.0, 22.0, 16.0), FAT, 0.3), (0, 0)),  # orbits
    (Blob((31.0, 66.0, -40.0), (17.0, 22.0, 16.0), FAT, 0.3), (0, 0)),
    (Blob((-31.0, 72.0, -40.0), (12.0, 12.0, 12.0), 90.0, 0.15), (0, 0)),  # eyes
    (Blob((31.0, 72.0, -40.0), (12.0, 12.0, 12.0), 90.0, 0.15), (0, 0)),
    (Blob((-31.0, 82.0, -40.0), (5.0, 2.0, 5.0), 700.0, 0.3), (0, 0)),  # lenses
    (Blob((31.0, 82.0, -40.0), (5.0, 2.0, 5.0), 700.0, 0.3), (0, 0)),
)


class Phantom:
    """A head phantom sampled on a grid: ``slice(k, t)`` gives one axial slice.

    Slices are ``(ny, nx)`` C-ordered int16 arrays of stored values, so their bytes
    are a NIfTI (Fortran-ordered) z-plane as they are.
    """

    K = 8192  # entries of the radial look-up tables over r in [0, 2)

    def __init__(self, shape: tuple[int, int, int], seed: int = SEED, noise: float = 6.0):
        self.shape = tuple(int(n) for n in shape[:3])
        nx, ny, nz = self.shape
        self.voxel = FOV / np.array(self.shape)
        self.affine = np.diag([*self.voxel, 1.0])
        self.affine[:3, 3] = -FOV / 2 + self.voxel / 2
        self.x = (np.arange(nx) + 0.5) * self.voxel[0] - FOV[0] / 2
        self.y = (np.arange(ny) + 0.5) * self.voxel[1] - FOV[1] / 2
        self.z = (np.arange(nz) + 0.5) * self.voxel[2] - FOV[2] / 2
        rng = np.random.default_rng(seed)

        # head: r^2 = x2 + y2 + z2, the in-plane part computed once
        x2 = ((self.x - HEAD_CENTRE[0]) / HEAD_RADII[0]) ** 2
        y2 = ((self.y - HEAD_CENTRE[1]) / HEAD_RADII[1]) ** 2
        self.r2xy = (y2[:, None] + x2[None, :]).astype(np.float32)
        self.z2 = ((self.z - HEAD_CENTRE[2]) / HEAD_RADII[2]) ** 2

        # cortical folding: a sum of plane waves, sin(a(x, y) + c(z)) expanded so
        # that a slice costs multiply-adds only
        self.waves = []
        for _ in range(7):
            d = rng.normal(size=3)
            d /= np.linalg.norm(d)
            k = 2 * np.pi / rng.uniform(11.0, 19.0)  # gyri about a centimetre wide
            phase = rng.uniform(0, 2 * np.pi)
            a = (k * d[0] * self.x)[None, :] + (k * d[1] * self.y)[:, None] + phase
            self.waves.append(
                (np.sin(a).astype(np.float32), np.cos(a).astype(np.float32), k * d[2])
            )
        self.fold_amp = np.float32(0.11 / math.sqrt(len(self.waves) / 2))
        # the interhemispheric fissure: pushes the folded radius out near x = 0
        self.fissure = (0.3 * np.exp(-((self.x / 2.2) ** 2))).astype(np.float32)

        # radial look-up tables in stored units
        r = np.arange(self.K, dtype=np.float64) * (2.0 / self.K)
        w = max(0.004, 0.7 * float(self.voxel.max()) / HEAD_RADII.mean())
        head = _profile(
            r,
            [0.875, 0.89, 0.912, 0.932, 0.952, 0.983, 1.0],
            [CSF, CSF, SKULL, DIPLOE, SKULL, FAT, SKIN, 0.0],
            w,
        )
        brain = _profile(r, [0.795, 0.862], [WM, GM, CSF], w)
        self.lut_head = np.round(head / SLOPE).astype(np.int16)
        self.lut_brain = np.round(brain / SLOPE).astype(np.int16)
        self.brain_edge = np.float32(0.875)

        self.blobs = self._blobs(rng)
        ny_, nx_ = self.r2xy.shape
        self.noise = [
            np.round(rng.normal(0, noise / SLOPE, size=(ny_, nx_))).astype(np.int16)
            for _ in range(3)
        ]
        # scratch buffers reused for every slice
        self._f = np.empty((ny_, nx_), np.float32)
        self._g = np.empty((ny_, nx_), np.float32)
        self._i = np.empty((ny_, nx_), np.intp)

    @staticmethod
    def _blobs(rng: np.random.Generator) -> list[Blob]:
        blobs = [blob for blob, _ in ANATOMY]
        for _ in range(7):  # white-matter lesions, dark and bright
            c = (rng.uniform(-40, 40), rng.uniform(-45, 45), rng.uniform(15, 50))
            rad = rng.uniform(2.5, 7.0)
            val = rng.choice([CSF * 2.2, WM * 1.3])
            blobs.append(Blob(c, (rad, rad * rng.uniform(0.8, 1.3), rad), float(val), 0.5))
        return blobs

    def _paint(self, out: np.ndarray, zmm: float, blob: Blob, scale: float = 1.0) -> None:
        cx, cy, cz = blob.centre
        rx, ry, rz = blob.radii
        dz2 = ((zmm - cz) / rz) ** 2
        if dz2 >= 1.0:
            return
        s = math.sqrt(1.0 - dz2)
        x0, x1 = np.searchsorted(self.x, [cx - rx * s, cx + rx * s])
        y0, y1 = np.searchsorted(self.y, [cy - ry * s, cy + ry * s])
        if x0 >= x1 or y0 >= y1:
            return
        q = ((self.x[x0:x1] - cx) / rx) ** 2 + ((self.y[y0:y1, None] - cy) / ry) ** 2 + dz2
        alpha = _smoothstep((1.0 - q) / blob.soft) * scale
        box = out[y0:y1, x0:x1]
        box[...] = np.round(box + alpha * (blob.value / SLOPE - box))

    def slice(self, k: int, t: float | None = None) -> np.ndarray:
        """Axial slice ``k`` (stored int16 values); ``t``: time point of the 4D series."""
        zmm = float(self.z[k])
        f, g, idx = self._f, self._g, self._i
        np.add(self.r2xy, np.float32(self.z2[k]), out=f)
        np.sqrt(f, out=f)  # f = normalised head radius
        g.fill(0)
        drift = 0.0 if t is None else 0.3 * t
        for s, c, kz in self.waves:
            g += s * np.float32(math.cos(kz * zmm + drift))
            g += c * np.float32(math.sin(kz * zmm + drift))
        g *= self.fold_amp
        g += f  # g = folded radius for the brain
        if zmm > -5.0:
            g += self.fissure * np.float32(min(1.0, (zmm + 5.0) / 10.0))
        np.maximum(g, f - np.float32(0.04), out=g)  # cortex, not white matter, at the edge
        np.multiply(g, self.K / 2.0, out=g)
        np.clip(g, 0, self.K - 1, out=g)
        idx[...] = g
        brain = self.lut_brain[idx]
        np.multiply(f, self.K / 2.0, out=g)
        np.clip(g, 0, self.K - 1, out=g)
        idx[...] = g
        out = self.lut_head[idx]
        inside = f < self.brain_edge
        out[inside] = brain[inside]
        out = out.astype(np.float32)
        for blob in self.blobs:
            self._paint(out, zmm, blob)
        if t is not None:  # the 4D series: a visual-cortex blob that pulses
            pulse = 0.5 + 0.5 * math.sin(2 * math.pi * t / 6.0)
            self._paint(out, zmm, Blob((-8.0, -80.0, 10.0), (12.0, 9.0, 12.0), GM * 1.6), pulse)
        res = out.astype(np.int16)
        res += self.noise[k % len(self.noise)][:: 1 if k % 2 else -1, :] * (res > 0)
        np.maximum(res, 0, out=res)
        return res


def header_bytes(shape, affine, slope: float = SLOPE, tr: float = 0.0) -> bytes:
    """A single-file NIfTI-1 header (with vox_offset padding) for int16 data."""
    from nilazyview.core.header import Header
    from nilazyview.core.values import Scaling
    from nilazyview.formats import nifti
    from nilazyview.formats.headers import DTYPES

    src = Header(np.zeros((), DTYPES["nifti1"]), "nifti1")
    src["descrip"] = b"nilazyview synthetic head phantom"
    src["xyzt_units"] = 2 | 8  # mm, seconds
    if tr:
        src["pixdim"][4] = tr
    head, offset = nifti.build_header(
        src, tuple(shape), np.dtype("<i2"), affine, Scaling(slope, 0.0), single=True
    )
    assert len(head) == offset
    return head


def huge_shape(gib: float) -> tuple[int, int, int]:
    """Isotropic grid over the head's field of view holding about ``gib`` GiB of int16."""
    nvox = gib * 2**30 / 2
    n = (nvox / float(np.prod(FOV / FOV[1]))) ** (1 / 3)
    nx, ny = max(8, round(n * FOV[0] / FOV[1])), max(8, round(n))
    nz = max(8, round(nvox / (nx * ny)))
    return nx, ny, nz


def expected_size(shape) -> int:
    return 352 + 2 * int(np.prod(shape))


def _write(path: Path, shape, affine, slices, tr: float = 0.0, progress: bool = False) -> None:
    """Write header + slices to a temporary file beside ``path``, then rename."""
    tmp = path.with_name(path.name + ".part")
    n = int(np.prod(shape[2:]))
    t0 = time.monotonic()
    with open(tmp, "wb") as f:
        f.write(header_bytes(shape, affine, tr=tr))
        for i, plane in enumerate(slices):
            f.write(memoryview(np.ascontiguousarray(plane)).cast("B"))
            if progress and (i % 64 == 63 or i == n - 1):
                done = (i + 1) / n
                el = time.monotonic() - t0
                print(
                    f"\r  {path.name}: {100 * done:5.1f}%  {el:5.0f} s elapsed, "
                    f"~{el / done - el:4.0f} s left",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
        f.flush()
        os.fsync(f.fileno())
    if progress:
        print(file=sys.stderr)
    os.replace(tmp, path)


def _fresh(path: Path, shape) -> bool:
    return path.is_file() and path.stat().st_size == expected_size(shape)


def make_huge(outdir, gib: float | None = None, force: bool = False, progress=False) -> Path:
    """The huge 3D phantom (``gib`` GiB, default ``$NLV_SAMPLE_GIB`` or 4)."""
    gib = sample_gib() if gib is None else float(gib)
    path = Path(outdir) / HUGE_NAME
    shape = huge_shape(gib)
    if force or not _fresh(path, shape):
        path.parent.mkdir(parents=True, exist_ok=True)
        ph = Phantom(shape)
        _write(path, shape, ph.affine, (ph.slice(k) for k in range(shape[2])), progress=progress)
    return path


def make_4d(outdir, force: bool = False) -> Path:
    """The small 4D series (a pulsing blob and a slow drift of the folding)."""
    path = Path(outdir) / FOURD_NAME
    shape = FOURD_SHAPE
    if force or not _fresh(path, shape):
        path.parent.mkdir(parents=True, exist_ok=True)
        ph = Phantom(shape[:3], noise=10.0)
        planes = (ph.slice(k, t=float(t)) for t in range(shape[3]) for k in range(shape[2]))
        _write(path, shape, ph.affine, planes, tr=2.0)
    return path


# --- layers: a stat map on another (oblique) grid, a label map in another orientation ------
STAT_NAME = "stat_mni2mm.nii"
LABELS_NAME = "aseg_like.nii"
STAT_SHAPE = (91, 109, 91)
MNI_2MM = np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])
# (centre mm, sigma mm, peak): activations, positive and negative
STAT_BLOBS = (
    ((-34.0, -22.0, 44.0), 8.0, 8.0),
    ((36.0, -24.0, 42.0), 7.0, 6.5),
    ((2.0, -82.0, 6.0), 10.0, 9.0),
    ((-30.0, 18.0, -8.0), 9.0, -6.0),
    ((26.0, 32.0, 22.0), 7.0, -5.0),
    ((0.0, -12.0, 34.0), 12.0, 4.5),
)
LABELS_SHAPE = (128, 128, 128)
# 1.5 mm voxels in LIA order (FreeSurfer's "conformed" orientation), centred
LIA_1P5MM = np.array([[-1.5, 0, 0, 96], [0, 0, 1.5, -96], [0, -1.5, 0, 96], [0, 0, 0, 1]])


def _rotation(deg_z: float, deg_x: float) -> np.ndarray:
    a, b = math.radians(deg_z), math.radians(deg_x)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    out = np.eye(4)
    out[:3, :3] = rz @ rx
    return out


def stat_affine() -> np.ndarray:
    """The MNI 2 mm grid rotated (15 degrees about z, 10 about x) and shifted (6, -4, 10) mm."""
    shift = np.eye(4)
    shift[:3, 3] = (6.0, -4.0, 10.0)
    return shift @ _rotation(15.0, 10.0) @ MNI_2MM


def _world(affine: np.ndarray, shape) -> np.ndarray:
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    return affine[:3, :3] @ ijk + affine[:3, 3:]


def stat_values(affine: np.ndarray, shape=STAT_SHAPE) -> np.ndarray:
    """Smooth blobs (in world mm) inside an ellipsoidal brain mask; float32, zero outside."""
    xyz = _world(affine, shape)
    out = np.zeros(xyz.shape[1])
    for centre, sigma, peak in STAT_BLOBS:
        d2 = np.sum((xyz - np.array(centre)[:, None]) ** 2, axis=0)
        out += peak * np.exp(-d2 / (2 * sigma**2))
    x, y, z = xyz
    out += 0.8 * np.sin(x / 9.0) * np.cos(y / 11.0) * np.sin(z / 7.0 + 1.0)  # smooth "noise"
    brain = (x / 70) ** 2 + ((y + 18) / 92) ** 2 + ((z - 12) / 78) ** 2 <= 1
    return (out * brain).reshape(shape).astype(np.float32)


def _q(xyz, centre, radii) -> np.ndarray:
    """Squared normalised distance of the points ``xyz`` from an ellipsoid's centre."""
    return sum(((c - o) / h) ** 2 for c, o, h in zip(xyz, centre, radii, strict=True))


def label_values(affine: np.ndarray, shape=LABELS_SHAPE) -> np.ndarray:
    """FreeSurfer aseg labels of the phantom's structures (coarse: the folds are ignored)."""
    x, y, z = _world(affine, shape)
    r = np.sqrt(_q((x, y, z), HEAD_CENTRE, HEAD_RADII))
    right = x > 0
    out = np.zeros(x.shape, np.int16)
    out[r < 0.862] = 3  # cerebral cortex (left: 3, right: 42)
    out[r < 0.795] = 2  # cerebral white matter (left: 2, right: 41)
    out[right & (out == 3)] = 42
    out[right & (out == 2)] = 41
    for blob, (left_label, right_label) in ANATOMY:
        inside = _q((x, y, z), blob.centre, blob.radii) <= 1
        if left_label or right_label:
            out[inside & ~right] = left_label
            out[inside & right] = right_label
    return out.reshape(shape)


def _save_layer(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    import nilazyview as nlv

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part.nii")
    nlv.save(nlv.Image(data, affine), tmp)
    os.replace(tmp, path)
    return path


def make_stat(outdir, force: bool = False) -> Path:
    """An MNI-like 2 mm float32 stat map on an oblique grid (3.6 MB)."""
    path = Path(outdir) / STAT_NAME
    if force or not path.is_file():
        aff = stat_affine()
        _save_layer(path, stat_values(aff), aff)
    return path


def make_labels(outdir, force: bool = False) -> Path:
    """An aseg-like int16 label map, 1.5 mm voxels in LIA orientation (4 MiB)."""
    path = Path(outdir) / LABELS_NAME
    if force or not path.is_file():
        _save_layer(path, label_values(LIA_1P5MM), LIA_1P5MM)
    return path


def ensure_layer_samples(outdir=None, force: bool = False) -> dict:
    """Make (or reuse) the layer samples; returns ``{"stat": Path, "labels": Path}``."""
    outdir = Path(outdir or os.environ.get("NLV_DATA_DIR") or "notebooks/data")
    return {"stat": make_stat(outdir, force), "labels": make_labels(outdir, force)}


def sample_gib() -> float:
    return float(os.environ.get("NLV_SAMPLE_GIB") or DEFAULT_GIB)


def ensure_samples(outdir=None, gib: float | None = None, force: bool = False, progress=False):
    """Make (or reuse) both samples; returns ``{"huge": Path, "4d": Path}``."""
    outdir = Path(outdir or os.environ.get("NLV_DATA_DIR") or "notebooks/data")
    return {
        "huge": make_huge(outdir, gib, force, progress),
        "4d": make_4d(outdir, force),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "outdir", nargs="?", default=None, help="default: $NLV_DATA_DIR or notebooks/data"
    )
    ap.add_argument("--gib", type=float, default=None, help="size of the huge volume in GiB")
    ap.add_argument("--force", action="store_true", help="rewrite even if the files look right")
    args = ap.parse_args(argv)
    gib = sample_gib() if args.gib is None else args.gib
    shape = huge_shape(gib)
    outdir = Path(args.outdir or os.environ.get("NLV_DATA_DIR") or "notebooks/data")
    if not _fresh(outdir / HUGE_NAME, shape) or args.force:
        print(
            f"writing a {gib:g} GiB phantom {shape} into {outdir} (once; later runs reuse it)",
            file=sys.stderr,
        )
    t0 = time.monotonic()
    paths = ensure_samples(outdir, gib, args.force, progress=sys.stderr.isatty())
    for name, path in paths.items():
        print(f"{name}: {path.resolve()}  ({path.stat().st_size / 2**20:.1f} MiB)")
    print(f"done in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
