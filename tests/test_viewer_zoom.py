"""Frames at display resolution, zoom and pan, and the I/O panel's bytes (no browser).

Oracles are independent of the viewer's code: numpy on the full array for frames,
the affine for the voxel under the pointer, a Python set of pages for pages touched.
"""

from __future__ import annotations

import io
import os

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

import nilazyview as nlv
from nilazyview.core.plan import run_offsets
from nilazyview.viewer import render, view
from nilazyview.viewer import view_window as vw
from nilazyview.viewer.reduce import block_mean, choose, pages_touched

# x to the Left (flipped on screen), 1 mm; y Anterior 1 mm; z Superior 2 mm
LAS = np.array([[-1.0, 0, 0, 60], [0, 1, 0, -40], [0, 0, 2, -10], [0, 0, 0, 1]])
SHAPE = (120, 96, 10)
MIB = 2**20


@pytest.fixture
def vol(tmp_path):
    rng = np.random.default_rng(3)
    g = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    arr = ((g[0] * 7 + g[1] * 13 + g[2] * 101) % 900 + rng.integers(0, 90, SHAPE)).astype(np.int16)
    path = tmp_path / "vol.nii"
    nib.save(nib.Nifti1Image(arr, LAS), path)
    return str(path), arr


@pytest.fixture(scope="module")
def sparse4096(tmp_path_factory):
    """A 4096 x 4096 x 24 uint8 NIfTI (384 MiB) as a sparse file: no disk used."""
    path = tmp_path_factory.mktemp("big") / "big.nii"
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((4096, 4096, 24))
    hdr.set_data_dtype(np.uint8)
    hdr["vox_offset"] = 352
    with open(path, "wb") as f:
        f.write(hdr.binaryblock + b"\0" * 4)
    os.truncate(path, 352 + 4096 * 4096 * 24)
    return str(path)


def levels_of(png: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(png)))


def oracle(arr: np.ndarray, axis: int, index: int, shown, steps, method: str) -> np.ndarray:
    """The frame's values by plain numpy: block means (or every step-th voxel) of the window."""
    idx = [slice(None)] * 3
    idx[axis] = index
    slab = arr[tuple(idx)].astype(np.float64)
    (a0, a1), (b0, b1) = shown
    sa, sb = steps
    if method == "stride":
        return slab[a0:a1:sa, b0:b1:sb]
    out = np.empty((-(-(a1 - a0) // sa), -(-(b1 - b0) // sb)))
    for i, r in enumerate(range(a0, a1, sa)):
        for j, c in enumerate(range(b0, b1, sb)):
            out[i, j] = slab[r : min(r + sa, a1), c : min(c + sb, b1)].mean()
    return out.astype(np.float32)


def on_screen(axis: int, values: np.ndarray) -> np.ndarray:
    """Voxel-order frame -> screen, from the affine alone (RAS: L->R across, S/A up)."""
    others = [a for a in range(3) if a != axis]
    codes = nib.aff2axcodes(LAS)
    # the row axis is the one pointing S (or A for axial); it runs up: flip when positive
    vert = next(a for a in others if codes[a] in "SI") if axis != 2 else 1
    horiz = next(a for a in others if a != vert)
    out = values if others.index(vert) == 0 else values.T
    if codes[vert] in "SA":
        out = out[::-1]
    if codes[horiz] in "LPI":
        out = out[:, ::-1]
    return out


# --- pure maths ------------------------------------------------------------------------
def test_axis_windows_of_a_4096_slab_on_512_pixels():
    w = vw.axis_window(4096, 2047.5, 1, 512)
    assert (w.step, w.npix, w.start, w.stop) == (8, 512, 0, 4096)
    w = vw.axis_window(4096, 2047.5, 8, 512)
    assert (w.step, w.start, w.stop, w.npix) == (1, 1792, 2304, 512)
    assert w.read_range() == (1664, 2432, 1)  # a quarter of the view more on each side
    w = vw.axis_window(4096, 2047.5, 16, 512)
    assert (w.step, w.npix) == (1, 256)  # each voxel 2 display pixels
    w = vw.axis_window(4096, 2047.5, 4, 512)
    assert (w.step, w.npix) == (2, 512)
    # the grid is the volume's: blocks start at multiples of the step
    w = vw.axis_window(4096, 1000.3, 2.7, 512)
    assert w.start % w.step == 0 and w.read_range()[0] % w.step == 0


def test_frames_are_at_most_twice_the_display_and_show_every_voxel():
    rng = np.random.default_rng(0)
    for _ in range(500):
        n, px = int(rng.integers(1, 5000)), int(rng.integers(16, 1200))
        zoom = float(rng.uniform(1, vw.max_zoom(n, px)))
        w = vw.axis_window(n, float(rng.uniform(-10, n + 10)), zoom, px)
        assert w.npix <= 2 * px + 2 and 0 <= w.start < w.stop <= n
        assert w.read_lo <= w.lo < w.hi <= w.read_hi
        if w.step > 1:
            assert w.npix >= min(px, -(-n // w.step))  # reduced: the display is filled
        assert w.visible_voxels() >= min(n, n / zoom) - 1e-6


def test_block_mean_matches_numpy_with_partial_blocks():
    rng = np.random.default_rng(1)
    a = rng.integers(-500, 500, (37, 29)).astype(np.int16)
    got = block_mean(a, (4, 3))
    ref = oracle(a[:, :, None], 2, 0, ((0, 37), (0, 29)), (4, 3), "mean")
    assert got.dtype == np.float32 and np.array_equal(got, ref)
    assert block_mean(a, (1, 1)) is a


def test_pages_touched_counts_each_page_once():
    img = nlv.load(_tiny(np.arange(64 * 50 * 7, dtype=np.uint8).reshape(64, 50, 7)))
    for idx in [np.s_[:, :, 3], np.s_[5, :, :], np.s_[:, 7, :], np.s_[3:40:4, 2:30:3, 2]]:
        plan = img.read_plan(idx)
        offs, n = run_offsets(plan.layout, plan.box)
        pages = {p for o in offs.tolist() for p in range(o // 4096, (o + n - 1) // 4096 + 1)}
        assert pages_touched(plan) == len(pages)


def _tiny(arr):
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "t.nii")
    nib.save(nib.Nifti1Image(arr, np.eye(4)), path)
    return path


# --- frames against numpy ------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_frame_at_each_zoom_equals_numpy_reduction_of_the_window(vol, axis):
    path, arr = vol
    v = view(path, prefetch=0, display_size=40, axis=axis)
    index = v.index
    for zoom, shift in [(1, (0, 0)), (1.5, (7, -5)), (2, (-30, 20)), (4, (13, 9)), (8, (0, 0))]:
        v.zoom = zoom
        centre = [c + d for c, d in zip(v.center, shift, strict=True)]
        v.center = centre
        step = v.last_step
        assert v.error.value == "" and v.zoom == zoom
        exp = on_screen(
            axis, oracle(arr, axis, index, step["shown"], step["steps"], step["method"])
        )
        got = levels_of(v.image.value)
        assert got.shape == exp.shape == step["frame_px"]
        assert np.array_equal(got, render.to_levels(exp, *v.window)), (zoom, step)
        # the shown window is n / zoom voxels (whole blocks) about the clamped centre
        axes = [a for a in range(3) if a != axis]
        for (lo, hi), c, a, s in zip(step["shown"], v.center, axes, step["steps"], strict=True):
            assert SHAPE[a] / zoom - 1e-9 <= hi - lo < SHAPE[a] / zoom + 2 * s
            assert lo <= c <= hi
    # frames are never larger than twice the display
    assert max(v.last_step["frame_px"]) <= 80


def test_a_gathered_plane_is_read_strided_and_a_contiguous_one_averaged(sparse4096):
    v = view(sparse4096, prefetch=0, display_size=512)
    assert v.axis == 2 and v.last_step["method"] == "mean"  # x-y planes: contiguous
    assert v.last_step["steps"] == (8, 8) and v.last_step["frame_px"] == (512, 512)
    v.axis = 0  # y-z planes: one 1-byte run per voxel: strided
    assert v.last_step["method"] == "stride"
    assert v.last_step["bytes"] <= 4096 * 24 // 8
    img = nlv.load(sparse4096)
    full = img.read_plan(np.s_[5, :, :])
    strided = img.read_plan(np.s_[5, ::8, ::8])
    assert choose(full, strided, (8, 8)) == "stride"


# --- reads at zoom ---------------------------------------------------------------------
def test_zoom_8_reads_at_most_a_mebibyte_and_panning_stays_bounded(sparse4096):
    v = view(sparse4096, prefetch=0, display_size=512)
    s = v.last_step
    assert s["frame_px"] == (512, 512) and s["bytes"] == 4096 * 4096
    v.zoom = 8
    s = v.last_step
    assert s["steps"] == (1, 1) and s["frame_px"] == (512, 512)  # every voxel a pixel
    assert 0 < s["bytes"] <= MIB and s["wanted_bytes"] <= MIB
    assert s["touched_bytes"] >= s["bytes"]  # a gather faults in whole pages
    assert "touched" in v.io.value and "wanted" in v.io.value
    reads = []
    for dy, dx in [(100, 0), (0, 300), (-700, -700), (1500, 1500), (-3000, 0)]:
        c = v.center
        v.center = (c[0] + dy, c[1] + dx)
        reads.append(v.last_step["bytes"])
        assert v.last_step["frame_px"] == (512, 512)
    assert all(b <= MIB for b in reads) and reads[0] == 0  # a small pan: the margin
    assert max(reads) > 0
    v.zoom = 16
    assert v.last_step["frame_px"] == (256, 256) and v.last_step["bytes"] <= MIB
    assert v.last_step["frame_bytes"] <= 1_000_000
    v.close()


# --- readout and gestures ----------------------------------------------------------------
def _pointer(v, fy: float, fx: float, kind: str = "click", **extra) -> dict:
    w, h = int(v.image.width), int(v.image.height)
    return {"type": kind, "relativeX": fx * w, "relativeY": fy * h,
            "boundingRectWidth": w, "boundingRectHeight": h, **extra}  # fmt: skip


def _voxel_by_affine(v, axis: int, fy: float, fx: float) -> tuple[int, ...]:
    """The voxel under the pointer from the affine alone: the picture's edges in world mm."""
    shown = dict(zip([a for a in range(3) if a != axis], v.last_step["shown"], strict=True))
    corner = np.zeros(3)
    corner[axis] = v.index
    edges = []
    for a in range(3):
        lo, hi = shown.get(a, (v.index, v.index + 1))
        edges.append((lo - 0.5, hi - 0.5))
    # world box of the shown voxels; screen: x (R) across, the other axis up
    lo = LAS[:3, :3] @ np.array([e[0] for e in edges]) + LAS[:3, 3]
    hi = LAS[:3, :3] @ np.array([e[1] for e in edges]) + LAS[:3, 3]
    wlo, whi = np.minimum(lo, hi), np.maximum(lo, hi)
    world = LAS[:3, :3] @ np.array([float(v.index)] * 3) + LAS[:3, 3]  # the slice's plane
    normal = int(np.argmax(np.abs(LAS[:3, axis])))
    horiz, vert = {2: (0, 1), 1: (0, 2), 0: (1, 2)}[normal]
    world[horiz] = wlo[horiz] + fx * (whi[horiz] - wlo[horiz])
    world[vert] = whi[vert] - fy * (whi[vert] - wlo[vert])
    ijk = np.linalg.solve(LAS[:3, :3], world - LAS[:3, 3])
    ijk[axis] = v.index
    return tuple(int(np.floor(x + 0.5)) for x in ijk)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_readout_names_the_voxel_under_the_pointer_at_any_zoom_and_pan(vol, axis):
    path, arr = vol
    v = view(path, prefetch=0, display_size=120, axis=axis)
    rng = np.random.default_rng(axis)
    for zoom, shift in [(1, (0, 0)), (3, (10, -8)), (6, (-25, 30)), (6, (40, 40))]:
        v.zoom = zoom
        v.center = [c + d for c, d in zip(v.center, shift, strict=True)]
        for _ in range(6):
            fy, fx = rng.uniform(0.02, 0.98, 2)
            v._on_pointer(_pointer(v, fy, fx))
            vox = v.crosshair
            assert vox == _voxel_by_affine(v, axis, fy, fx), (zoom, fy, fx)
            mm = LAS[:3, :3] @ np.array(vox) + LAS[:3, 3]
            assert f"({mm[0]:.1f}, {mm[1]:.1f}, {mm[2]:.1f}) mm" in v.readout.value
            assert f"value <b>{arr[vox]}</b>" in v.readout.value
    v.close()


def test_wheel_zooms_about_the_pointer_drag_pans_double_click_resets(vol):
    path, _ = vol
    v = view(path, prefetch=0, display_size=120)
    at = (0.3, 0.7)
    v._on_pointer(_pointer(v, *at))
    before = v.crosshair
    for _ in range(4):
        v._on_pointer(_pointer(v, *at, kind="wheel", deltaY=-100))
    assert v.zoom == pytest.approx(4)
    v._on_pointer(_pointer(v, *at))  # the same point is still under the pointer
    assert max(abs(a - b) for a, b in zip(v.crosshair, before, strict=True)) <= 1
    image, centre = v.image.value, v.center
    w = int(v.image.width)
    down = _pointer(v, 0.5, 0.5, kind="mousedown", button=0, clientX=300, clientY=300)
    v._on_pointer(down)
    v._on_pointer({**down, "type": "mousemove", "clientX": 300 + w // 4, "buttons": 1})
    v._on_pointer({**down, "type": "mouseup", "clientX": 300 + w // 4, "buttons": 0})
    cross = v.crosshair
    v._on_pointer({**down, "type": "click", "clientX": 300 + w // 4})  # ends the drag
    assert v.crosshair == cross  # not a click
    # LAS: voxel x grows to screen-left, so dragging right shows higher x
    assert v.center[0] == pytest.approx(centre[0] + 120 / 4 / 4, abs=1) and v.center[1] == centre[1]
    assert v.image.value != image and v.last_step["zoom"] == 4
    v._on_pointer(_pointer(v, 0.5, 0.5, kind="dblclick"))
    assert v.zoom == 1 and v.center == ((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2)
    v.zoom = 1000
    assert v.zoom == v._session.max_zoom() and v.last_step["frame_px"][0] >= 1
    v.reset()
    assert v.zoom == 1


def test_prefetch_follows_the_pan(sparse4096):
    v = view(sparse4096, prefetch=2, display_size=512)
    v.zoom = 8
    assert v._prefetcher.idle(10)
    c = v.center
    v.center = (c[0] + 200, c[1])  # leaves the margin: a read, and the next one ahead
    assert v._prefetcher.idle(10)
    v.center = (c[0] + 500, c[1])
    assert v.last_step["hit"] and v.last_step["bytes"] == 0
    v.close()


def test_slab_cache_keys_hold_the_window_and_level(vol):
    path, _ = vol
    v = view(path, prefetch=0, display_size=40)
    v.zoom = 4
    v.index = 3
    keys = list(v.cache._items)
    assert all(len(k) == 5 for k in keys)
    volume, axis, index, ranges, method = keys[-1]
    assert (volume, axis, index) == (0, 2, 3) and method in ("mean", "stride")
    assert ranges == v._session.view.read_ranges()


def test_orthogonal_planes_zoom_about_the_crosshair(vol):
    path, _ = vol
    v = view(path, prefetch=0, display_size=120, ortho=True)
    v.crosshair = (30, 60, 4)
    small = [levels_of(im.value).shape for im in v.ortho_images]
    v.zoom = 4
    for axis, im in enumerate(v.ortho_images):
        lv = levels_of(im.value)
        assert lv.size < np.prod(small[axis]) or min(small[axis]) < 8
        rows, cols = np.nonzero(lv == render.MARK)
        assert rows.size and cols.size  # the crosshair is in view
        # it is near the middle: the panel is centred on it
        r = np.bincount(rows).argmax() / lv.shape[0]
        c = np.bincount(cols).argmax() / lv.shape[1]
        assert 0.3 < r < 0.7 or lv.shape[0] < 6
        assert 0.3 < c < 0.7 or lv.shape[1] < 6


def test_block_mean_of_a_fortran_order_slab_is_the_same():
    a = np.random.default_rng(2).integers(0, 255, (64, 50), dtype=np.uint8)
    f = np.asfortranarray(a)
    assert np.array_equal(block_mean(f, (4, 3)), block_mean(a, (4, 3)))


def test_pages_of_huge_gathers_are_counted_on_a_part_and_scaled(sparse4096, monkeypatch):
    from nilazyview.viewer import reduce as red

    img = nlv.load(sparse4096)
    plan = img.read_plan(np.s_[5, :, :])  # 98304 one-byte runs, one page each
    assert red.pages_counted(plan) == (98304, True)
    monkeypatch.setattr(red, "EXACT_RUNS", 5000)
    pages, exact = red.pages_counted(plan)
    assert not exact and abs(pages - 98304) <= 98304 * 0.01
    assert red.io_counts(plan, 1, (4096, 24))["pages_exact"] is False


def test_display_size_box_pixel_ratio_and_setter(vol):
    path, _ = vol
    v = view(path, prefetch=0, display_size=(60, 30))  # axial: 120 x 96 voxels
    assert (int(v.image.width), int(v.image.height)) == (38, 30)
    assert v.last_step["steps"] == (3, 3) and v.last_step["frame_px"] == (32, 40)
    hi = view(path, prefetch=0, display_size=(60, 30), pixel_ratio=2)
    assert hi.last_step["steps"] == (1, 1) and hi.last_step["frame_px"] == (96, 120)
    v.display_size = 240
    assert (int(v.image.width), int(v.image.height)) == (240, 192)
    assert v.last_step["steps"] == (1, 1)
    with pytest.raises(ValueError):
        v.display_size = 0


def test_in_memory_and_2d_images_zoom(vol):
    _, arr = vol
    v = view(arr.astype(np.float32), display_size=40)  # identity affine: RAS
    v.zoom = 2
    v.center = (30, 70)
    st = v.last_step
    assert not st["cached"] and st["bytes"] == 0 and st["method"] == "mean"
    ref = oracle(arr, 2, v.index, st["shown"], st["steps"], "mean")
    exp = ref.T[::-1]  # RAS: x across, y up
    assert np.array_equal(levels_of(v.image.value), render.to_levels(exp, *v.window))
    flat = view(np.arange(60 * 40, dtype=np.float64).reshape(60, 40), display_size=30)
    flat.zoom = 3
    assert flat.error.value == "" and flat.last_step["frame_px"][0] >= 1
    flat.axis = 0
    assert flat.error.value == ""


def test_neighbouring_slices_share_one_reduction_grid(vol):
    path, _ = vol
    v = view(path, prefetch=2, display_size=40)
    v.zoom = 1.5
    v.center = (50.3, 41.7)
    first = v.last_step
    for i in range(SHAPE[2]):
        v.index = i
        st = v.last_step
        assert (st["shown"], st["steps"], st["method"]) == (
            first["shown"], first["steps"], first["method"]
        )  # fmt: skip
    for (lo, _), s in zip(first["shown"], first["steps"], strict=True):
        assert lo % s == 0  # blocks start on the volume's grid
    v.close()
