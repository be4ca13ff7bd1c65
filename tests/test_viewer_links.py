"""Time course, linked viewers and clickable orthogonal panels (no browser).

Oracles: numpy indexing of the full array and ``img.slicecopy`` for series; the
affines alone (``rint(inv(A2) @ A1 @ v)``, clipped) for linked crosshairs; the
affine's axis codes for the voxel under a click on a panel; the pixels drawn
(the marker column, the crosshair lines) for where a click lands.
"""

from __future__ import annotations

import io
import math

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

import nilazyview as nlv
from nilazyview.viewer import SliceViewer, render, timecourse, view

LAS = np.array([[-1.0, 0, 0, 60], [0, 1, 0, -40], [0, 0, 2, -10], [0, 0, 0, 1]])
SHAPE4 = (12, 10, 8, 30)


def rotated(deg: float, sizes, offset) -> np.ndarray:
    """An affine with voxel ``sizes`` (mm), rotated ``deg`` about z then x, shifted."""
    a, b = math.radians(deg), math.radians(deg / 2)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    aff = np.eye(4)
    aff[:3, :3] = rx @ rz @ np.diag(sizes)
    aff[:3, 3] = offset
    return aff


@pytest.fixture
def series_file(tmp_path):
    rng = np.random.default_rng(5)
    arr = rng.normal(100, 20, SHAPE4).astype(np.float32)
    path = tmp_path / "bold.nii"
    nib.save(nib.Nifti1Image(arr, LAS), path)
    return str(path), arr


def rgb_of(png: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB"))


# --- time course ----------------------------------------------------------------------
def test_timecourse_is_the_voxels_series_read_as_one_run_and_cached(series_file):
    path, arr = series_file
    v = view(path, prefetch=0)
    assert v.timecourse is None and v._timecourse.box.layout.display == "none"
    img = nlv.load(path)
    for voxel in [(0, 0, 0), (11, 9, 7), (5, 3, 2), (7, 8, 1)]:
        v.crosshair = voxel
        got = v.timecourse
        assert got.shape == (SHAPE4[3],)
        np.testing.assert_array_equal(got, arr[voxel])
        np.testing.assert_array_equal(got, img.slicecopy[(*voxel, slice(None))])
        assert v._timecourse.box.layout.display is None and v._timecourse.image.value
    # what is read: one item per volume, nothing else
    plan = img.read_plan(timecourse.series_index(img.shape, (5, 3, 2)))
    assert plan.nbytes == SHAPE4[3] * 4 and plan.n_runs == SHAPE4[3]
    # stepping slices and volumes reads no series again; the image stays a proxy
    reads = v._timecourse.cache.reads
    for k in range(SHAPE4[2]):
        v.index = k
    v.volume = 7
    assert v._timecourse.cache.reads == reads and v.img.is_proxy
    v.close()


def test_timecourse_of_an_in_memory_5d_array_follows_edits():
    arr = np.arange(4 * 5 * 6 * 3 * 2, dtype=np.float64).reshape(4, 5, 6, 3, 2)
    v = view(arr, prefetch=0)
    v.crosshair = (1, 2, 3)
    np.testing.assert_array_equal(v.timecourse, arr[1, 2, 3].reshape(-1))
    arr[1, 2, 3, 0, 1] = -7
    assert v.timecourse[1] == -7
    with pytest.raises(IndexError):
        timecourse.series_index(arr.shape, (4, 0, 0))
    v.close()


def test_no_timecourse_for_a_3d_image(tmp_path):
    path = tmp_path / "t1.nii"
    nib.save(nib.Nifti1Image(np.ones((6, 7, 8), np.int16), LAS), path)
    v = view(str(path), prefetch=0)
    v.crosshair = (1, 2, 3)
    assert v.timecourse is None and v._timecourse.box.layout.display == "none"
    v.close()


def _marker_column(png: bytes) -> int:
    rgb = rgb_of(png).astype(int)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 100) & (rgb[..., 2] < 100)
    return int(np.bincount(np.nonzero(red)[1]).argmax())


def test_clicking_the_plot_sets_the_volume_at_the_marked_column(series_file):
    path, _ = series_file
    v = view(path, prefetch=0, display_size=300)
    v.crosshair = (3, 4, 5)
    width = int(v._timecourse.image.width)
    columns = {}
    for t in [0, 1, 13, 28, 29]:
        v.volume = t
        columns[t] = _marker_column(v._timecourse.image.value)
        assert f"volume <b>{t}</b> of 30" in v._timecourse.caption.value
    assert sorted(columns.values()) == [columns[t] for t in sorted(columns)]  # left to right
    for t, col in columns.items():
        v.volume = 15
        v._timecourse.on_click({"type": "click", "relativeX": col + 0.5,
                                "boundingRectWidth": width, "boundingRectHeight": 96})  # fmt: skip
        assert v.volume == t
    v._timecourse.on_click({"type": "click", "relativeX": -20.0, "boundingRectWidth": width})
    assert v.volume == 0
    v.close()


class StandInLayer:
    """Exactly the layer attributes the contract promises: img, visible, name, voxel_at_world."""

    def __init__(self, img, visible=True, name="bold"):
        self.img, self.visible, self.name = img, visible, name

    def voxel_at_world(self, xyz):
        ijk = np.rint(np.linalg.inv(self.img.affine) @ [*xyz, 1.0])[:3].astype(int)
        inside = all(0 <= i < n for i, n in zip(ijk, self.img.shape[:3], strict=True))
        return tuple(int(i) for i in ijk) if inside else None


def test_timecourse_of_the_topmost_visible_4d_layer_under_a_3d_base(
    tmp_path, series_file, monkeypatch
):
    path, arr = series_file
    base_aff = rotated(20, (0.5, 0.5, 1.0), (52, -44, -12))
    base = tmp_path / "t1.nii"
    nib.save(nib.Nifti1Image(np.zeros((40, 40, 20), np.int16), base_aff), base)
    v = view(str(base), prefetch=0)
    bold = StandInLayer(nlv.load(path))
    stack = [StandInLayer(nlv.load(path), name="lower"), bold, StandInLayer(bold.img, False)]
    monkeypatch.setattr(SliceViewer, "layers", property(lambda self: stack), raising=False)
    rng = np.random.default_rng(1)
    found = 0
    for _ in range(40):
        voxel = tuple(int(rng.integers(0, n)) for n in (40, 40, 20))
        v.crosshair = voxel
        world = base_aff @ [*voxel, 1.0]
        ijk = np.rint(np.linalg.solve(LAS, world))[:3].astype(int)
        if all(0 <= i < n for i, n in zip(ijk, SHAPE4[:3], strict=True)):
            np.testing.assert_array_equal(v.timecourse, arr[tuple(ijk)])
            assert "time course of bold" in v._timecourse.caption.value
            found += 1
        else:
            assert v.timecourse is None
    assert 5 <= found < 40  # inside and outside the layer
    assert bold.img.is_proxy
    bold.visible = False
    stack[0].visible = False
    assert v.timecourse is None
    v.close()


# --- linked viewers -------------------------------------------------------------------
A2 = rotated(25, (2.0, 1.5, 2.5), (48.0, -30.0, 5.0))


@pytest.fixture
def two_grids(tmp_path):
    p1, p2 = tmp_path / "a.nii", tmp_path / "b.nii"
    nib.save(nib.Nifti1Image(np.zeros((60, 48, 20), np.int16), LAS), p1)
    nib.save(nib.Nifti1Image(np.zeros((30, 36, 16), np.int16), A2), p2)
    return str(p1), str(p2)


def nearest(a1, a2, shape2, voxel) -> tuple[int, ...]:
    ijk = np.rint(np.linalg.inv(a2) @ a1 @ [*voxel, 1.0])[:3]
    return tuple(int(x) for x in np.clip(ijk, 0, np.array(shape2) - 1))


def test_link_moves_the_other_crosshair_to_its_nearest_voxel(two_grids):
    v1, v2 = (view(p, prefetch=0) for p in two_grids)
    lk = nlv.link(v1, v2)
    rng = np.random.default_rng(2)
    for _ in range(15):
        voxel = tuple(int(rng.integers(0, n)) for n in (60, 48, 20))
        v1.crosshair = voxel
        want = nearest(LAS, A2, (30, 36, 16), voxel)
        assert v2.crosshair == want and v2.index == want[v2.axis]
        assert v1.crosshair == voxel  # no echo back from v2's coarser grid
    # and the other way round
    v2.crosshair = (10, 20, 5)
    assert v1.crosshair == nearest(A2, LAS, (60, 48, 20), (10, 20, 5))
    assert v2.crosshair == (10, 20, 5)
    lk.unlink()
    before = v2.crosshair
    v1.crosshair = (1, 1, 1)
    assert v2.crosshair == before
    v1.close()
    v2.close()


def test_a_cycle_of_links_ends_and_every_viewer_follows_the_first_point(two_grids):
    p1, p2 = two_grids
    v1, v2, v3 = view(p1, prefetch=0), view(p2, prefetch=0), view(p1, prefetch=0)
    links = [nlv.link(v1, v2), nlv.link(v2, v3), nlv.link(v3, v1)]
    v1.crosshair = (40, 7, 13)
    assert v3.crosshair == (40, 7, 13)  # from v1's world point, not through v2's grid
    assert v2.crosshair == nearest(LAS, A2, (30, 36, 16), (40, 7, 13))
    assert v1.crosshair == (40, 7, 13)
    for lk in links:
        lk.unlink()


def test_link_follows_zoom_and_plane_only_when_asked(two_grids):
    v1, v2 = (view(p, prefetch=0, display_size=64) for p in two_grids)  # zoom 4 fits
    v3 = view(two_grids[1], prefetch=0, display_size=64)
    nlv.link(v1, v2, zoom=True, plane=True)
    nlv.link(v1, v3)
    v1.zoom = 4
    assert v2.zoom == 4 and v3.zoom == 1
    # plane: the axis of v2 whose direction is most A-P (coronal), by the affine alone
    v1.axis = 1  # LAS: voxel axis 1 is A
    codes = nib.aff2axcodes(A2)
    assert v2.axis == next(a for a in range(3) if codes[a] in "AP") and v3.axis == 2
    for v in (v1, v2, v3):
        v.close()


def test_a_closed_viewer_drops_out_and_bad_arguments_are_refused(two_grids):
    v1, v2 = (view(p, prefetch=0) for p in two_grids)
    v1.crosshair = (5, 5, 5)
    lk = nlv.link(v1, v2)
    assert v2.crosshair == nearest(LAS, A2, (30, 36, 16), (5, 5, 5))  # joins at once
    v2.close()
    v1.crosshair = (6, 6, 6)
    assert lk.viewers == [v1]
    with pytest.raises(TypeError):
        nlv.link(v1, "not a viewer")
    with pytest.raises(ValueError):
        nlv.link(v1, v1)
    v1.close()


# --- clickable orthogonal panels -----------------------------------------------------
def _panel_event(v, axis: int, fy: float, fx: float) -> dict:
    im = v.ortho_images[axis]
    w, h = int(im.width), int(im.height)
    return {"type": "click", "relativeX": fx * w, "relativeY": fy * h,
            "boundingRectWidth": w, "boundingRectHeight": h}  # fmt: skip


def _voxel_by_axcodes(axis: int, point, shape, fy: float, fx: float) -> tuple[int, ...]:
    """At zoom 1 a panel shows the whole plane, R to the right and A (or S) up."""
    codes = nib.aff2axcodes(LAS)
    others = [a for a in range(3) if a != axis]
    horiz_world = "R" if axis != 0 else "A"
    col = next(a for a in others if codes[a] in (horiz_world + {"R": "L", "A": "P"}[horiz_world]))
    row = next(a for a in others if a != col)
    out = list(point)
    c = int(fx * shape[col])
    out[col] = c if codes[col] in "RA" else shape[col] - 1 - c
    r = int(fy * shape[row])
    out[row] = shape[row] - 1 - r if codes[row] in "AS" else r
    return tuple(out)


def test_a_click_on_each_panel_moves_the_crosshair_and_the_slice(tmp_path):
    shape = (60, 48, 10)
    path = tmp_path / "vol.nii"
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), LAS), path)
    v = view(str(path), prefetch=0, display_size=240, ortho=True)
    v.crosshair = (30, 20, 4)
    rng = np.random.default_rng(4)
    for axis in (0, 1, 2, 2, 1, 0):
        fy, fx = rng.uniform(0.02, 0.98, 2)
        point = v.crosshair
        want = _voxel_by_axcodes(axis, point, shape, fy, fx)
        v._ortho_events[axis]._dom_handlers(_panel_event(v, axis, fy, fx))  # as ipyevents does
        assert v.crosshair == want and want[axis] == point[axis]
        assert v.index == want[v.axis]
        for a in range(3):  # every panel is redrawn through the new point
            assert f" {want[a]}</small>" in v.ortho_labels[a].value
    v.close()


def test_a_click_on_a_zoomed_panels_crosshair_lines_hits_the_crosshair(tmp_path):
    shape = (60, 48, 10)
    path = tmp_path / "vol.nii"
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), LAS), path)
    v = view(str(path), prefetch=0, display_size=240, ortho=True)
    v.crosshair = (33, 17, 6)
    v.zoom = 3
    for axis in range(3):
        lv = np.asarray(PILImage.open(io.BytesIO(v.ortho_images[axis].value)))
        rows, cols = np.nonzero(lv == render.MARK)
        r, c = np.bincount(rows).argmax(), np.bincount(cols).argmax()
        ev = {"type": "click", "dataX": int(c), "dataY": int(r)}  # the pixel itself
        v._ortho_events[axis]._dom_handlers(ev)
        assert v.crosshair == (33, 17, 6), axis
    assert v._ortho_events[0]._dom_handlers({"type": "click"}) is None  # no position
    v._ortho_events[0]._dom_handlers({**_panel_event(v, 0, 1.5, 0.5)})  # off the panel
    assert v.crosshair == (33, 17, 6)
    v.close()


def test_a_panel_click_moves_linked_viewers(two_grids):
    p1, p2 = two_grids
    v1, v2 = view(p1, prefetch=0, ortho=True), view(p2, prefetch=0)
    nlv.link(v1, v2)
    v1.crosshair = (30, 20, 10)
    v1._ortho_events[2]._dom_handlers(_panel_event(v1, 2, 0.25, 0.75))
    assert v1.crosshair != (30, 20, 10)
    assert v2.crosshair == nearest(LAS, A2, (30, 36, 16), v1.crosshair)
    v1.close()
    v2.close()


def test_a_series_that_cannot_be_read_is_said_not_raised(series_file, monkeypatch):
    path, _ = series_file
    v = view(path, prefetch=0)

    def broken(img, voxel):
        raise OSError("disk gone")

    monkeypatch.setattr(timecourse, "series_at", broken)
    v.crosshair = (1, 2, 3)
    assert "disk gone" in v._timecourse.caption.value
    assert v._timecourse.image.layout.display == "none"
    v.close()
