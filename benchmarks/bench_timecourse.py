"""The time course, linked viewers and panel clicks: bytes read and kernel-side times.

Usage::

    python benchmarks/bench_timecourse.py [--dir DIR] [--volumes N] [--repeat R] [--json OUT]

Writes a 4D int16 NIfTI (128 x 128 x 80 x N, 400 volumes by default: 1 GiB) and
measures, interleaved and as medians over ``R`` repeats:

* one voxel's series through ``img.slicecopy[i, j, k, :]``: the read plan's bytes
  and runs, and the time (warm page cache; new voxel each time), against what
  reading the whole 4D array would be;
* drawing the plot: numpy (the viewer's ``timecourse.draw``) against a matplotlib
  Agg figure of the same size, both encoded as PNG;
* ``v.crosshair = voxel`` on a 4D viewer (redraw, readout, series, plot);
* a move in one of two linked viewers (different grids) until both are redrawn;
* a click on an orthogonal panel until the crosshair, image and panels are redrawn.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time

import nibabel as nib
import numpy as np

import nilazyview as nlv
from nilazyview.viewer import ortho, timecourse, view


def write_4d(path: str, shape: tuple[int, ...]) -> None:
    """A 4D int16 NIfTI written volume by volume (never the whole array in memory)."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.int16)
    hdr.set_sform(np.diag([2.0, 2.0, 2.0, 1.0]), code=1)
    hdr["vox_offset"] = 352
    g = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape[:3]], indexing="ij")
    base = 500 + 3 * g[0] + 2 * g[1] + g[2]
    with open(path, "wb") as f:
        f.write(hdr.binaryblock + b"\0" * 4)
        for t in range(shape[3]):
            vol = base + 40 * np.sin(t / 8 + g[0] / 20)
            f.write(vol.astype("<i2").tobytes(order="F"))


def mpl_plot(series: np.ndarray, current: int, width: int, height: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    ax = fig.add_axes((0.02, 0.05, 0.96, 0.9))
    ax.plot(series, lw=1)
    ax.axvline(current, color="r")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=None)
    ap.add_argument("--volumes", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    tmp = args.dir or tempfile.mkdtemp(prefix="nlv-tc-")
    shape = (128, 128, 80, args.volumes)
    path = os.path.join(tmp, "bold.nii")
    if not os.path.exists(path):
        write_4d(path, shape)
    other = os.path.join(tmp, "t1.nii")
    if not os.path.exists(other):
        aff = np.diag([1.0, 1.0, 1.0, 1.0])
        aff[:3, 3] = (3.3, -2.1, 1.7)
        nib.save(nib.Nifti1Image(np.zeros((256, 256, 160), np.int16), aff), other)

    img = nlv.load(path)
    rng = np.random.default_rng(0)
    voxels = [tuple(int(rng.integers(0, n)) for n in shape[:3]) for _ in range(args.repeat)]
    plan = img.read_plan(timecourse.series_index(img.shape, voxels[0]))
    out: dict = {
        "shape": shape,
        "file_bytes": os.path.getsize(path),
        "series_plan": plan.describe(),
        "series_bytes": plan.nbytes,
        "series_runs": plan.n_runs,
    }
    series = timecourse.series_at(img, voxels[0])
    read, numpy_draw, mpl_draw = [], [], []
    for k, vox in enumerate(voxels):  # interleaved
        read.append(ms(lambda vox=vox: timecourse.series_at(img, vox)))
        numpy_draw.append(ms(lambda k=k: timecourse.draw(series, k, 512, 96)))
        mpl_draw.append(ms(lambda k=k: mpl_plot(series, k, 512, 96)))
    out["series_read_ms"] = statistics.median(read)
    out["plot_numpy_ms"] = statistics.median(numpy_draw)
    out["plot_matplotlib_ms"] = statistics.median(mpl_draw)
    out["plot_ratio"] = out["plot_matplotlib_ms"] / out["plot_numpy_ms"]

    v = view(path, prefetch=0, ortho=True, poll_interval=0)
    w = view(other, prefetch=0, poll_interval=0)
    cross, linked, click = [], [], []
    for vox in voxels:
        cross.append(ms(lambda vox=vox: setattr(v, "crosshair", vox)))
    lk = nlv.link(v, w)
    for vox in voxels:
        linked.append(ms(lambda vox=vox: setattr(v, "crosshair", vox)))
        fy, fx = rng.uniform(0.1, 0.9, 2)
        im = v.ortho_images[1]
        ev = {"type": "click", "relativeX": fx * int(im.width), "relativeY": fy * int(im.height),
              "boundingRectWidth": int(im.width), "boundingRectHeight": int(im.height)}  # fmt: skip
        click.append(ms(lambda ev=ev: ortho.on_click(v, 1, ev)))
    lk.unlink()
    out["crosshair_4d_ms"] = statistics.median(cross)
    out["linked_move_ms"] = statistics.median(linked)
    out["panel_click_linked_ms"] = statistics.median(click)
    out["still_proxy"] = v.img.is_proxy and w.img.is_proxy
    v.close()
    w.close()
    for k, val in out.items():
        print(f"{k:24s} {val:.2f}" if isinstance(val, float) else f"{k:24s} {val}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
