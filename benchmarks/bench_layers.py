"""A stat map over a huge anatomical: nilazyview's layers against nilearn's ``view_img``.

Usage::

    python benchmarks/bench_layers.py [--size 384] [--reps 3] [--data DIR] [--json OUT]

The pair of files (written once into ``--data``, reused while the size matches):

* ``anat_<size>.nii``: ``size``^3 int16 at 1 mm, the head phantom of
  ``scripts/make_sample.py`` (113 MiB at 384);
* ``stat_mni2mm.nii`` (``make_sample.make_stat``, the notebooks' too): a 91 x 109 x 91
  float32 map on the MNI 2 mm grid, rotated (15 degrees about z, 10 about x) and
  shifted by (6, -4, 10) mm: smooth positive and negative blobs inside a brain mask,
  zero outside (as nilearn users have).

Measured, each run in a fresh process (imports not timed; runs of the two tools
interleaved; both files in the page cache unless ``--cold``):

* **first image**: nilearn ``view_img(stat, bg_img=anat, threshold=t)`` until its
  page exists (``view._repr_html_()``, the HTML a notebook shows), against
  ``nlv.view(anat, layers=[{"src": stat, "kind": "stat", "threshold": t}])``
  until it returns with its first frame encoded (as ``bench_viewer`` measures the
  first image), in the main plane and in ortho mode;
* **peak memory**: the child's own ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
  at the end (the peak resident set, file-backed pages included), and the
  resident set after the imports;
* **frames** (nilazyview, one process): stepping the slider on every axis, zooming
  and panning, each frame's time with the layer and, interleaved, on a viewer of
  the anatomical alone; the bytes read for the layer (``layer.img``'s proxy reads,
  counted by wrapping its ``read`` (the read plans' bytes, gaps read through
  included) and its source's ``read_into`` / ``read_runs`` (bytes ``pread``) and
  gathers) against the layer's bounding box of the shown plane: the shown voxels'
  corners mapped through both affines (from nibabel's headers) into the layer's
  grid, widened to the trilinear neighbours, times 4 bytes; and the same box for
  the window the base reads (the shown voxels plus the viewer's pan margin).

``--nlv-path`` puts another checkout's nilazyview first (PYTHONPATH of the
children). ``benchmarks/run_all.py --only layers`` runs this (``--quick``: ``--size 192``,
2 runs; about 30 s, 3 min at 384).

Measured (2 shared cores, 384^3, medians of 3 interleaved runs, warm; cold in brackets):
nilearn 53 s (22 s) to its page at a 3637 MiB peak, 5.2 MiB of HTML; nilazyview 0.34 s
(0.19 s) at 100 MiB (53 MiB after the imports), a 33 KB frame: 155x (112x) faster, 36x
less memory; ortho 0.59 s (0.28 s) at 208 MiB. Frames with the layer: 26-29 ms a step
(1.9-5.7 ms without it), 2-4 ms a pan or zoom at zoom 4-8; the layer asks for 0.57-1.0
of its bounding box; read plans of sagittal steps fetch up to 2.0x it (gaps read through).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_viewer import _run, evict, rss_mib, write_streamed

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

MIB = 2**20
THRESHOLD = 3.0


# --- the pair of files -------------------------------------------------------------------
def head_on_grid(make_sample, size: int):
    """The phantom head at its true size (1 mm voxels) centred in a ``size``^3 field of view.

    Returns the affine and ``slab(z)``, plane ``z`` as an (x, y) int16 array (zero
    around the head: a large field of view, or the head cropped when ``size`` is small).
    """
    head = tuple(int(n) for n in make_sample.FOV)  # 172 x 212 x 190 voxels of 1 mm
    ph = make_sample.Phantom(head)
    off = [(size - n) // 2 for n in head]  # head voxel j is grid voxel j + off
    aff = np.eye(4)
    aff[:3, 3] = [-o - (n - 1) / 2 for o, n in zip(off, head, strict=True)]
    src = [slice(max(0, -o), min(n, size - o)) for o, n in zip(off[:2], head[:2], strict=True)]
    dst = [slice(s.start + o, s.stop + o) for s, o in zip(src, off[:2], strict=True)]

    def slab(z: int) -> np.ndarray:
        out = np.zeros((size, size), np.int16)
        if 0 <= z - off[2] < head[2]:
            out[dst[0], dst[1]] = ph.slice(z - off[2]).T[src[0], src[1]]
        return out

    return aff, slab


def make_pair(folder: str, size: int) -> tuple[str, str]:
    """Write (or reuse) the anatomical and the stat map; returns their paths."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import make_sample

    os.makedirs(folder, exist_ok=True)
    anat = os.path.join(folder, f"anat_{size}.nii")
    shape = (size,) * 3
    if not (os.path.exists(anat) and os.path.getsize(anat) == 352 + 2 * size**3):
        t0 = time.perf_counter()
        aff, slab = head_on_grid(make_sample, size)
        write_streamed(anat, shape, np.int16, aff, slab)
        print(f"wrote {anat} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    stat = str(make_sample.make_stat(folder))  # the notebooks' oblique MNI-like map
    return anat, stat


# --- the layer's bounding box, from the affines alone -----------------------------------
def layer_bbox(base_aff, layer_aff, layer_shape, axis: int, index: int, ranges) -> tuple:
    """Layer voxels ``(lo, hi)`` per axis (inclusive) that trilinear sampling of a base plane needs.

    ``ranges`` are the shown ``(start, stop)`` voxels along the base's two other
    axes (increasing order). Returns None when the plane misses the layer's grid.
    """
    axes = [a for a in range(3) if a != axis]
    corners = []
    for u in (ranges[0][0], ranges[0][1] - 1):
        for w in (ranges[1][0], ranges[1][1] - 1):
            ijk = [0.0, 0.0, 0.0, 1.0]
            ijk[axis], ijk[axes[0]], ijk[axes[1]] = index, u, w
            corners.append(ijk)
    to_layer = np.linalg.inv(layer_aff) @ base_aff
    c = (to_layer @ np.array(corners).T)[:3]
    lo = np.maximum(np.floor(c.min(axis=1)), 0).astype(int)
    hi = np.minimum(np.floor(c.max(axis=1)) + 1, np.array(layer_shape[:3]) - 1).astype(int)
    return None if np.any(hi < lo) else tuple(zip(lo.tolist(), hi.tolist(), strict=True))


def bbox_bytes(box, itemsize: int) -> int:
    return 0 if box is None else int(np.prod([h - lo + 1 for lo, h in box])) * itemsize


def widened(ranges, shape2, margin: float) -> tuple:
    """``ranges`` grown by ``margin`` of their extent on each side, clipped to ``shape2``."""
    out = []
    for (a, b), n in zip(ranges, shape2, strict=True):
        m = math.ceil((b - a) * margin)
        out.append((max(0, a - m), min(n, b + m)))
    return tuple(out)


class ByteCounter:
    """Counts what an image's proxy reads: plan bytes, ``pread`` bytes and gathers."""

    def __init__(self, img):
        self.proxy = proxy = img.proxy
        self.reset()
        read, src = proxy.read, proxy.source
        read_into, read_runs, begin = src.read_into, src.read_runs, src.begin_gather
        self._in_runs = False

        def counted_read(index=..., raw=False):
            plan = proxy.plan(index)
            self.reads += 1
            self.plan_bytes += int(plan.nbytes)
            self.wanted_bytes += math.prod(plan.out_shape) * proxy.stored_dtype.itemsize
            return read(index, raw=raw)

        def counted_into(offset, out):
            if not self._in_runs:
                self.pread_bytes += len(out)
            return read_into(offset, out)

        def counted_runs(offsets, length, out):
            self.pread_bytes += len(offsets) * length
            self._in_runs = True
            try:
                return read_runs(offsets, length, out)
            finally:
                self._in_runs = False

        def counted_gather():
            self.gathers += 1
            return begin()

        proxy.read = counted_read  # instance attributes: this image's reads only
        src.read_into, src.read_runs, src.begin_gather = counted_into, counted_runs, counted_gather

    def reset(self) -> None:
        self.reads = self.plan_bytes = self.wanted_bytes = self.pread_bytes = self.gathers = 0

    def snapshot(self) -> dict:
        keys = ("reads", "wanted_bytes", "plan_bytes", "pread_bytes", "gathers")
        return {k: getattr(self, k) for k in keys}


# --- the children (fresh processes) -----------------------------------------------------
CHILD = (
    "import json, sys; sys.path.insert(0, sys.argv[1]); import bench_layers as b; "
    "print(json.dumps(getattr(b, 'child_' + sys.argv[2])(*sys.argv[3:])))"
)


def _peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_nilearn(anat: str, stat: str, thr: str) -> dict:
    import warnings

    from nilearn.plotting import view_img

    warnings.simplefilter("ignore")  # nilearn warns about the oblique affine's resampling
    start = rss_mib()[0]
    t0 = time.perf_counter()
    view = view_img(stat, bg_img=anat, threshold=float(thr))
    built = time.perf_counter() - t0
    html = view._repr_html_()
    return {
        "first_s": time.perf_counter() - t0,
        "view_img_s": built,
        "peak_mib": _peak_mib(),
        "import_rss_mib": start,
        "sent_bytes": len(html),
    }


def _layer_viewer(anat: str, stat: str, thr: float, **kw):
    import nilazyview as nlv

    layer = {"src": stat, "kind": "stat", "threshold": thr}
    return nlv.view(anat, layers=[layer], prefetch=0, poll_interval=0, **kw)


def child_nlv(anat: str, stat: str, thr: str, ortho: str) -> dict:
    import nilazyview.viewer  # noqa: F401  (the widget stack: imports are not timed)

    start = rss_mib()[0]
    t0 = time.perf_counter()
    v = _layer_viewer(anat, stat, float(thr), ortho=ortho == "1")
    first = time.perf_counter() - t0
    assert v.image.value and v.error.value == "", v.error.value
    sent = len(v.image.value) + sum(len(w.value) for w in v.ortho_images if v.ortho)
    layer = v.layers[0]
    return {
        "first_s": first,
        "peak_mib": _peak_mib(),
        "import_rss_mib": start,
        "sent_bytes": sent,
        "layer_is_proxy": bool(layer.img.is_proxy),
        "base_is_proxy": bool(v.img.is_proxy),
    }


def child_frames(anat: str, stat: str, thr: str, steps: str) -> dict:
    import nibabel as nib

    import nilazyview as nlv
    from nilazyview.viewer.view_window import MARGIN

    v = _layer_viewer(anat, stat, float(thr))
    plain = nlv.view(anat, prefetch=0, poll_interval=0)  # the anatomical alone
    layer = v.layers[0]
    count = ByteCounter(layer.img)
    base_h, lay_h = nib.load(anat), nib.load(stat)
    geo = (base_h.affine, lay_h.affine, lay_h.shape)
    item = lay_h.get_data_dtype().itemsize
    shape = base_h.shape
    frames = []

    def frame(kind: str, act) -> None:
        count.reset()
        t0 = time.perf_counter()
        act(v)
        t = time.perf_counter() - t0
        t0 = time.perf_counter()
        act(plain)
        tp = time.perf_counter() - t0
        assert v.error.value == "" and plain.error.value == "", v.error.value
        shown = v.last_step["shown"]
        shape2 = [shape[a] for a in range(3) if a != v.axis]
        box = layer_bbox(*geo, v.axis, v.index, shown)
        rbox = layer_bbox(*geo, v.axis, v.index, widened(shown, shape2, MARGIN))
        frames.append(
            {"kind": kind, "s": t, "plain_s": tp, "axis": v.axis, "zoom": v.zoom}
            | count.snapshot()
            | {"bbox_bytes": bbox_bytes(box, item), "read_bbox_bytes": bbox_bytes(rbox, item)}
        )

    n = int(steps)
    for axis in (2, 0, 1):
        for w in (v, plain):
            w.axis = axis
        size = shape[axis]
        for i in np.linspace(size * 0.2, size * 0.8, n).astype(int).tolist():
            frame(f"step axis {axis}", lambda w, i=i: setattr(w, "index", i))
    for w in (v, plain):
        w.axis, w.index = 2, shape[2] // 2
    for z in (2, 4, 8):
        frame(f"zoom {z}", lambda w, z=z: setattr(w, "zoom", z))
    for z, d in ((4, 8.0), (8, 4.0)):
        for w in (v, plain):
            w.zoom = z
        c = v.center
        for k in range(1, n + 1):
            target = (c[0] + d * k, c[1] - d * k / 2)
            frame(f"pan at zoom {z}", lambda w, t=target: setattr(w, "center", t))
    return {"frames": frames, "layer_is_proxy": bool(layer.img.is_proxy), "itemsize": item}


def child(name: str, nlv_path: str, *args) -> dict:
    path = os.pathsep.join(p for p in (nlv_path, os.environ.get("PYTHONPATH")) if p)
    return _run(CHILD, path, HERE, name, *args)


# --- the run ----------------------------------------------------------------------------
def first_images(anat: str, stat: str, args) -> dict:
    """Fresh-process first image and peak memory of each tool, interleaved."""
    tools = {"nilazyview": ("nlv", "0"), "nilazyview ortho": ("nlv", "1")}
    if not args.no_nilearn:
        tools["nilearn view_img"] = ("nilearn",)
    runs: dict = {name: [] for name in tools}
    for rep in range(args.reps):
        for name, spec in tools.items():
            if args.cold:
                evict(anat)
                evict(stat)
            try:
                extra = spec[1:]
                runs[name].append(child(spec[0], args.nlv_path, anat, stat, args.threshold, *extra))
            except RuntimeError as exc:  # the layers API missing, say: report, go on
                runs[name].append({"error": str(exc).strip().splitlines()[-1]})
            print(f"  rep {rep + 1} {name}: {runs[name][-1]}", file=sys.stderr)
    out = {}
    for name, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            if rs:
                out[name] = {"error": rs[-1]["error"]}
            continue
        med = {k: statistics.median(r[k] for r in ok) for k in ok[0] if not k.endswith("proxy")}
        med |= {k: all(r[k] for r in ok) for k in ok[0] if k.endswith("proxy")}
        out[name] = med | {"runs": len(ok)}
    return out


def worst(frames: list, key: str) -> float:
    """The largest ``frame[key]`` over the frame's layer bounding box of the shown plane."""
    return round(max(f[key] / max(1, f["bbox_bytes"]) for f in frames), 3)


def summarize_frames(res: dict) -> dict:
    groups: dict = {}
    for f in res["frames"]:
        groups.setdefault(f["kind"], []).append(f)
    out = {}
    for kind, fs in groups.items():
        out[kind] = {
            "frames": len(fs),
            "median_ms": round(1e3 * statistics.median(f["s"] for f in fs), 2),
            "plain_median_ms": round(1e3 * statistics.median(f["plain_s"] for f in fs), 2),
            "layer_reads": sum(f["reads"] for f in fs),
            "layer_wanted_bytes_max": max(f["wanted_bytes"] for f in fs),
            "layer_plan_bytes_max": max(f["plan_bytes"] for f in fs),
            "layer_pread_bytes_max": max(f["pread_bytes"] for f in fs),
            "layer_gathers": sum(f["gathers"] for f in fs),
            "bbox_bytes_max": max(f["bbox_bytes"] for f in fs),
            "read_bbox_bytes_max": max(f["read_bbox_bytes"] for f in fs),
            "worst_wanted_over_bbox": worst(fs, "wanted_bytes"),
            "worst_plan_over_bbox": worst(fs, "plan_bytes"),
        }
    return out


def table(first: dict, frames: dict | None, info: dict) -> str:
    lines = [
        f"first image, fresh process ({info['size']}^3 int16 anatomical + "
        "91x109x91 float32 oblique stat map; "
        f"{'cold' if info['cold'] else 'warm'} page cache; medians of {info['reps']})",
        f"{'tool':18s} {'first image s':>14s} {'peak RSS MiB':>13s} {'after imports':>14s} "
        f"{'sent MiB':>9s} {'vs nlv time':>12s} {'vs nlv peak':>12s}",
    ]
    ref = first.get("nilazyview", {})
    for name, r in first.items():
        if "error" in r:
            lines.append(f"{name:18s} failed: {r['error'][:90]}")
            continue
        tr = f"{r['first_s'] / ref['first_s']:11.1f}x" if "first_s" in ref else ""
        mr = f"{r['peak_mib'] / ref['peak_mib']:11.1f}x" if "peak_mib" in ref else ""
        lines.append(
            f"{name:18s} {r['first_s']:14.3f} {r['peak_mib']:13.0f} {r['import_rss_mib']:14.0f} "
            f"{r['sent_bytes'] / MIB:9.2f} {tr:>12s} {mr:>12s}"
        )
    if frames:
        lines += [
            "",
            "nilazyview frames with the stat layer (and the anatomical alone, interleaved);"
            " layer bytes per frame, max",
            f"{'frames':16s} {'n':>3s} {'ms':>7s} {'alone ms':>8s} {'reads':>5s} "
            f"{'wanted KiB':>10s} {'plan KiB':>9s} {'pread KiB':>9s} {'gathers':>7s} "
            f"{'bbox KiB':>9s} {'read-bbox KiB':>13s} {'wanted/bbox':>11s} {'plan/bbox':>9s}",
        ]
        for kind, r in frames.items():
            kib = [r[k] / 1024 for k in ("layer_wanted_bytes_max", "layer_plan_bytes_max")]
            kib += [r[k] / 1024 for k in ("layer_pread_bytes_max",)]
            lines.append(
                f"{kind:16s} {r['frames']:3d} {r['median_ms']:7.1f} {r['plain_median_ms']:8.1f} "
                f"{r['layer_reads']:5d} {kib[0]:10.1f} {kib[1]:9.1f} {kib[2]:9.1f} "
                f"{r['layer_gathers']:7d} {r['bbox_bytes_max'] / 1024:9.1f} "
                f"{r['read_bbox_bytes_max'] / 1024:13.1f} {r['worst_wanted_over_bbox']:11.3f} "
                f"{r['worst_plan_over_bbox']:9.3f}"
            )
        lines.append(
            "wanted: the boxes the layer asked for; plan: what their read plans fetch (gaps"
            " between close runs read through); bbox: the layer voxels (trilinear neighbours)"
            " under the shown plane, from the affines; read-bbox: the same for the window the"
            " base reads (shown + pan margin); wanted/bbox, plan/bbox: the worst frame's ratio"
        )
    return "\n".join(lines)


def run(args) -> dict:
    t0 = time.perf_counter()
    anat, stat = make_pair(args.data, args.size)
    for p in (anat, stat):  # warm: every run starts from the page cache (unless --cold)
        with open(p, "rb") as f:
            while f.read(64 * MIB):
                pass
    info = {
        "size": args.size,
        "reps": args.reps,
        "cold": args.cold,
        "threshold": args.threshold,
        "anat": anat,
        "stat": stat,
        "cpus": os.cpu_count(),
        "peak": "ru_maxrss of the child (RUSAGE_SELF at its end)",
    }
    first = first_images(anat, stat, args)
    frames = None
    if args.steps:
        try:
            res = child("frames", args.nlv_path, anat, stat, args.threshold, args.steps)
            frames = summarize_frames(res)
            info["layer_is_proxy_after_frames"] = res["layer_is_proxy"]
        except RuntimeError as exc:
            info["frames_error"] = str(exc).strip().splitlines()[-1]
    info["seconds"] = round(time.perf_counter() - t0, 1)
    return {"info": info, "first_image": first, "frames": frames}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=384, help="anatomical edge in voxels (1 mm)")
    ap.add_argument("--reps", type=int, default=3, help="fresh processes per tool")
    ap.add_argument("--steps", type=int, default=8, help="frames per kind (0: no frames)")
    ap.add_argument("--threshold", type=float, default=THRESHOLD)
    ap.add_argument("--data", default=os.path.join(HERE, "results", "data"))
    ap.add_argument("--cold", action="store_true", help="evict both files before each run")
    ap.add_argument("--no-nilearn", action="store_true", help="nilazyview only")
    ap.add_argument("--nlv-path", default=ROOT, help="checkout whose nilazyview to measure")
    ap.add_argument("--json", help="also write the results here")
    return ap


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    out = run(args)
    print(table(out["first_image"], out["frames"], out["info"]))
    for key in ("frames_error", "layer_is_proxy_after_frames"):
        if key in out["info"]:
            print(f"{key}: {out['info'][key]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return out


if __name__ == "__main__":
    main()
