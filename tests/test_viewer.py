"""Python-level tests of the slice viewer (nilazyview.viewer); no browser."""

from __future__ import annotations

import io
import os
import threading

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

import nilazyview as nlv
from nilazyview.viewer import SlabCache, SliceViewer, render, view
from nilazyview.viewer import orientation as ori
from nilazyview.viewer.fetch import Prefetcher, fetch

# x to the Left (flipped), 2 mm; y Anterior 1 mm; z Superior 3 mm
LAS = np.array([[-2.0, 0, 0, 40], [0, 1, 0, -20], [0, 0, 3, -30], [0, 0, 0, 1]])


def phantom(shape, seed=0) -> np.ndarray:
    """Distinct, structured values: every slab differs from its neighbours."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    base = sum((k + 1) * 37 * g for k, g in enumerate(grids))
    return (base % 1000 + rng.integers(0, 5, shape)).astype(np.int16)


@pytest.fixture
def volume_file(tmp_path):
    arr = phantom((20, 24, 16))
    path = tmp_path / "vol.nii"
    nib.save(nib.Nifti1Image(arr, LAS), path)
    return str(path), arr


def levels_of(png: bytes) -> np.ndarray:
    im = PILImage.open(io.BytesIO(png))
    assert im.mode == "P"
    return np.asarray(im)


def expected_levels(v: SliceViewer, arr: np.ndarray, axis: int, index: int) -> np.ndarray:
    """What the viewer must show: the numpy slice, oriented, windowed, quantised."""
    idx = [slice(None)] * 3
    idx[axis] = index
    screen = ori.display_map(LAS, axis).apply(arr[tuple(idx)])
    return render.to_levels(screen, *v.window)


# --- orientation ---------------------------------------------------------------------
def test_planes_and_labels_from_affine():
    assert ori.axcodes(LAS) == "LAS"
    assert ori.plane_names(LAS) == {0: "sagittal", 1: "coronal", 2: "axial"}
    ax = ori.display_map(LAS, 2)
    assert ax.plane == "axial"
    assert ax.labels == {"left": "L", "right": "R", "top": "A", "bottom": "P"}
    # voxel x points Left, so screen columns (left to right = L to R) run against it
    assert (ax.col_axis, ax.flip_cols) == (0, True)
    assert (ax.row_axis, ax.flip_rows) == (1, True)
    assert ax.aspect == pytest.approx(1 / 2)
    sag = ori.display_map(LAS, 0)
    assert sag.labels == {"left": "P", "right": "A", "top": "S", "bottom": "I"}
    assert sag.aspect == pytest.approx(3.0)


def test_permuted_axes_pick_anatomical_planes():
    # voxel axis 0 runs along z, axis 1 along x, axis 2 along y (e.g. a sagittal acquisition)
    aff = np.array([[0, 1.0, 0, 0], [0, 0, 1.0, 0], [-1.0, 0, 0, 0], [0, 0, 0, 1]])
    assert ori.axcodes(aff) == "IRA"
    assert ori.plane_names(aff) == {0: "axial", 1: "sagittal", 2: "coronal"}
    cor = ori.display_map(aff, 2)
    assert (cor.row_axis, cor.col_axis, cor.flip_rows) == (0, 1, False)


def test_display_map_round_trips_voxels():
    shape = (5, 6, 7)
    vol = np.arange(np.prod(shape)).reshape(shape)
    for axis in range(3):
        dm = ori.display_map(LAS, axis)
        idx = [slice(None)] * 3
        idx[axis] = 2
        screen = dm.apply(vol[tuple(idx)])
        for row, col in [(0, 0), (screen.shape[0] - 1, 1), (1, screen.shape[1] - 1)]:
            vox = dm.to_voxel(row, col, 2, shape)
            assert screen[row, col] == vol[vox]
            assert dm.to_screen(vox, shape) == (row, col)


def test_world_coords():
    assert np.allclose(ori.world_coords(LAS, (1, 2, 3)), [38, -18, -21])


# --- cache ---------------------------------------------------------------------------
def test_cache_lru_budget_and_counters():
    c = SlabCache(max_bytes=300)
    a, b, d = (np.zeros(100, np.uint8) + i for i in range(3))
    c.put("a", a)
    c.put("b", b)
    assert c.get("a") is a  # a is now most recent
    c.put("d", d)
    c.put("e", np.zeros(100, np.uint8))  # evicts b, the least recently used
    assert c.get("b") is None
    assert c.peek("a") and c.peek("d") and c.peek("e")
    assert (c.hits, c.misses, c.nbytes, len(c)) == (1, 1, 300, 3)
    c.put("huge", np.zeros(301, np.uint8))
    assert not c.peek("huge") and c.nbytes == 300
    with pytest.raises(ValueError):
        a[0] = 1  # cached slabs are read-only


def test_cache_is_thread_safe():
    c = SlabCache(max_bytes=50 * 1000)

    def work(t):
        for i in range(2000):
            c.put((t, i % 120), np.zeros(1000, np.uint8))
            c.get((t, (i * 7) % 120))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.nbytes == 1000 * len(c) <= c.max_bytes
    assert c.hits + c.misses == 8000


# --- rendering -----------------------------------------------------------------------
def test_robust_window_and_levels():
    slab = np.arange(10000, dtype=np.float32).reshape(100, 100)
    slab[0, :5] = [np.nan, np.inf, -np.inf, 1e9, -1e9]
    vmin, vmax = render.robust_window(slab)
    assert 0 < vmin < 300 and 9800 < vmax < 10000
    assert render.robust_window(np.full((4, 4), 7.0)) == (7.0, 8.0)
    lv = render.to_levels(np.array([[0.0, 5.0, 10.0, np.nan, 99.0]]), 0.0, 10.0)
    assert lv.tolist() == [[0, 127, 254, 0, 254]]


def test_encode_is_exact_palette_png():
    lv = np.random.default_rng(1).integers(0, 255, (30, 40)).astype(np.uint8)
    png = render.encode(lv, "viridis")
    assert np.array_equal(levels_of(png), lv)
    pal = np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB"))
    import matplotlib

    ref = matplotlib.colormaps["viridis"](np.linspace(0, 1, 255), bytes=True)[:, :3]
    assert np.array_equal(pal, ref[lv])
    jpg = render.encode(lv, "gray", fmt="jpeg")
    assert PILImage.open(io.BytesIO(jpg)).format == "JPEG"


# --- prefetcher ----------------------------------------------------------------------
def test_newer_request_wins_over_stale_ones():
    cache = SlabCache()
    started, release, order = threading.Event(), threading.Event(), []

    def slow_read(key):
        order.append(key)
        if key == 1:
            started.set()
            assert release.wait(5)
        cache.put(key, np.zeros(4))

    pf = Prefetcher(slow_read, cache.peek)
    pf.want([1, 2, 3, 4, 5])
    assert started.wait(5)
    pf.want([10, 11])  # the user moved on: 2..5 are stale
    assert not pf.wait_for(10, 0.01)  # not in progress: no wait
    threading.Timer(0.05, release.set).start()
    assert pf.wait_for(1, 5) and cache.peek(1)  # waits for the read in progress
    assert pf.idle(5)
    pf.want([11, 12])  # done work is skipped
    assert pf.idle(5)
    pf.close()
    assert order == [1, 10, 11, 12]
    assert all(cache.peek(k) for k in (1, 10, 11))


def test_fetch_counts_hit_and_miss():
    cache, calls = SlabCache(), []
    read = lambda k: calls.append(k) or np.ones(3)  # noqa: E731
    assert not fetch("k", read, cache).hit
    assert fetch("k", read, cache).hit
    assert calls == ["k"] and (cache.hits, cache.misses) == (1, 1)


# --- the widget ----------------------------------------------------------------------
def test_view_path_shows_proxied_slices(volume_file):
    path, arr = volume_file
    v = view(path, prefetch=0)
    assert isinstance(v, SliceViewer) and v.error.value == ""
    assert "proxy" in v.badge.value
    assert v.axis == 2 and v.index == 8 and v.slider.max == 15
    assert v.img.is_proxy
    for cls, w in [
        ("nlv-slider", v.slider),
        ("nlv-image", v.image),
        ("nlv-badge", v.badge),
        ("nlv-handoff", v.handoff_button),
        ("nlv-handoff-path", v.handoff_path),
        ("nlv-plane", v.plane),
        ("nlv-volume", v.volume_slider),
        ("nlv-io", v.io),
        ("nlv-error", v.error),
    ]:
        assert cls in w._dom_classes
    first = v.image.value
    assert np.array_equal(levels_of(first), expected_levels(v, arr, 2, 8))
    v.index = 3
    assert v.image.value != first
    assert np.array_equal(levels_of(v.image.value), expected_levels(v, arr, 2, 3))
    assert v.img.is_proxy  # only slabs were read
    assert "pread" in v.io.value and "cache miss" in v.io.value
    assert [e.value for e in (v.edges["left"], v.edges["top"])] == ["L", "A"]


def test_axis_and_index_settable(volume_file):
    path, arr = volume_file
    v = view(path, prefetch=0)
    v.axis = 0
    assert v.slider.max == 19 and v.index == 10
    assert np.array_equal(levels_of(v.image.value), expected_levels(v, arr, 0, 10))
    v.index = 19
    assert np.array_equal(levels_of(v.image.value), expected_levels(v, arr, 0, 19))
    # sagittal: y (1 mm) across, z (3 mm) up -> taller than the pixel count says
    assert int(v.image.height) > int(v.image.width) * 16 / 24
    with pytest.raises(ValueError):
        v.axis = 3


def test_cache_counters_and_prefetch(volume_file):
    path, arr = volume_file
    v = view(path, prefetch=2)
    assert (v.cache.hits, v.cache.misses) == (0, 1)
    assert v._prefetcher.idle(5)
    v.index = 9  # read and rendered ahead in the default (upward) direction
    assert v.cache.hits == 1 and v.cache.misses == 1
    assert "cache hit" in v.io.value and v.last_step["render_hit"]
    assert v.rendered.peek(((0, 2, 9), v._settings()))
    assert np.array_equal(levels_of(v.image.value), expected_levels(v, arr, 2, 9))
    v.index = 2  # not prefetched
    assert v.cache.misses == 2
    assert v.cache.nbytes == len(v.cache) * 20 * 24 * 2 <= v.cache.max_bytes
    v.close()


def test_volume_slider_4d(tmp_path):
    arr = phantom((6, 7, 5, 3))
    path = tmp_path / "four.nii"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), path)
    v = view(path, prefetch=0, window=(0, 1000))
    assert v.volume_slider.max == 2 and v.volume_slider.layout.display is None
    before = v.image.value
    v.volume = 2
    want = render.to_levels(arr[:, :, 2, 2].T[::-1], 0, 1000)
    assert v.image.value != before
    assert np.array_equal(levels_of(v.image.value), want)
    assert view(arr[..., 0]).volume_slider.layout.display == "none"


def test_badge_transitions_and_redraw(volume_file):
    path, _ = volume_file
    v = view(path, prefetch=0)
    assert "proxy" in v.badge.value
    data = v.img.get_data()  # in another cell
    assert v.poll() == "dirty" and "dirty" in v.badge.value
    v.img.dirty = False
    assert v.poll() == "in memory" and "in memory" in v.badge.value
    shown = v.image.value
    data[:] = 0
    v.img.dirty = True
    assert v.poll() == "dirty"
    assert v.image.value != shown  # the state change redrew the (now zero) slab
    assert np.all(levels_of(v.image.value) == levels_of(v.image.value)[0, 0])
    v.index = 1
    assert "no disk read" in v.io.value


def test_edits_in_place_of_a_dirty_array_redraw_on_poll(volume_file):
    path, arr = volume_file
    v = view(path, prefetch=0, window=(0, 1000))
    data = v.img.get_data()
    assert v.poll() == "dirty"
    shown, step = v.image.value, v.last_step
    assert v.poll() == "dirty"
    assert v.last_step is step  # nothing changed: no redraw
    data[..., v.index] = 500.0  # edit the slab shown, in place, state stays dirty
    assert v.poll() == "dirty"
    assert v.image.value != shown
    edited = arr.copy()
    edited[..., v.index] = 500.0
    assert np.array_equal(levels_of(v.image.value), expected_levels(v, edited, v.axis, v.index))
    step = v.last_step
    data[..., v.index + 1] = 7.0  # another slab: the one shown is unchanged
    assert v.poll() == "dirty" and v.last_step is step


def test_handoff_original_then_temporary(volume_file):
    path, arr = volume_file
    v = view(path)
    got = v.handoff()
    assert os.path.samefile(got, path)
    assert v.handoff_path.value == got and v.handoff_note.value == "original file"
    v.img.get_data()[0, 0, 0] = 999
    tmp = v.handoff()
    assert not os.path.samefile(tmp, path) and v.handoff_note.value == "temporary copy"
    back = np.asarray(nib.load(tmp).dataobj)
    assert back[0, 0, 0] == 999 and np.array_equal(back[1:], arr[1:])


@pytest.mark.parametrize("bad", ["text", "missing", "object", "1d", "void"])
def test_bad_input_shows_error_not_traceback(tmp_path, bad):
    if bad == "text":
        obj = tmp_path / "notes.nii"
        obj.write_text("this is not an image\n" * 40)
    else:
        obj = {
            "missing": tmp_path / "nope.nii",
            "object": {"a": 1},
            "1d": np.arange(5),
            "void": np.zeros((3, 3), "V4"),
        }[bad]
    v = view(obj)
    assert v.img is None and v.image.value == b""
    assert "Cannot view" in v.error.value and v.error.layout.display is None
    assert "Traceback" not in v.error.value
    v.index = 3  # still a widget that does not raise


def test_deleted_file_shows_error_and_keeps_working(volume_file, tmp_path):
    path, arr = volume_file
    v = view(path, prefetch=0)
    shown = v.image.value
    os.remove(path)
    v.index = 2
    assert "removed" in v.error.value and v.image.value == shown
    v.axis = 1  # more interaction: still no exception
    v.cmap.value = "viridis"
    assert "removed" in v.error.value
    # a file rewritten in place is caught too, and recovery clears the error
    nib.save(nib.Nifti1Image(arr + 1, LAS), path)
    v.index = 3
    assert "changed" in v.error.value
    v2 = view(path, prefetch=0)
    assert v2.error.value == ""


def test_nibabel_image_and_numpy_array(volume_file):
    path, arr = volume_file
    ref = view(path, prefetch=0)
    nv = view(nib.load(path), prefetch=0)
    assert nv.error.value == "" and "proxy" in nv.badge.value
    assert nv.image.value == ref.image.value
    assert "read plan" not in nv.io.value
    assert nv.handoff() == path  # an unchanged nibabel image hands off its own file
    nv.img.get_data()
    assert nv.poll() == "dirty"
    av = view(arr, window=ref.window)
    assert "in memory" in av.badge.value
    # an array has an identity affine: RAS, so columns are not flipped as in LAS
    assert np.array_equal(levels_of(av.image.value)[:, ::-1], levels_of(ref.image.value))
    flat = view(np.arange(12.0).reshape(3, 4))
    assert flat.error.value == "" and levels_of(flat.image.value).shape == (4, 3)


def test_click_sets_crosshair_and_readout(volume_file):
    path, arr = volume_file
    v = view(path, prefetch=0)
    before = v.image.value
    v._on_click({"dataX": 5, "dataY": 3, "type": "click"})
    vox = v.crosshair
    assert vox == ori.display_map(LAS, 2).to_voxel(3, 5, v.index, arr.shape)
    assert f"value <b>{arr[vox]}</b>" in v.readout.value
    mm = LAS[:3, :3] @ np.array(vox) + LAS[:3, 3]
    assert f"({mm[0]:.1f}, {mm[1]:.1f}, {mm[2]:.1f}) mm" in v.readout.value
    lv = levels_of(v.image.value)
    assert v.image.value != before and np.all(lv[3, ::2] == render.MARK)
    v.axis = 0
    assert v.index == vox[0]  # the new plane goes through the crosshair


def test_window_and_colormap_change_the_image(volume_file):
    path, _ = volume_file
    v = view(path, prefetch=0)
    a = v.image.value
    v.window = (100, 200)
    assert (v.vmin.value, v.vmax.value) == (100, 200) and v.image.value != a
    b = v.image.value
    v.cmap.value = "viridis"
    assert v.image.value != b and np.array_equal(levels_of(v.image.value), levels_of(b))


def test_never_loads_a_proxy(volume_file, monkeypatch):
    path, _ = volume_file
    img = nlv.load(path)

    def boom(*a, **k):
        raise AssertionError("get_data called on a proxy")

    monkeypatch.setattr(img, "get_data", boom)
    v = view(img, prefetch=2)
    for i in range(16):
        v.index = i
    v.axis = 1
    v.handoff()
    assert v.error.value == "" and img.is_proxy
    v.close()


def test_orthogonal_view_shows_three_planes_through_the_crosshair(volume_file):
    path, arr = volume_file
    v = view(path, prefetch=0, ortho=True)
    assert "nlv-ortho" in v.ortho_images[0]._dom_classes
    centre = [n // 2 for n in arr.shape[:3]]
    centre[v.axis] = v.index
    for axis in range(3):  # before any click: the planes through the centre
        lv = levels_of(v.ortho_images[axis].value)
        exp = expected_levels(v, arr, axis, centre[axis])
        r, c = ori.display_map(LAS, axis).to_screen(tuple(centre), arr.shape)
        keep = np.ones(exp.shape, bool)  # the crosshair marks replace some pixels
        keep[r, :] = keep[:, c] = False
        assert lv.shape == exp.shape and np.array_equal(lv[keep], exp[keep])
    v.crosshair = (2, 3, 1)
    for axis in range(3):
        lv = levels_of(v.ortho_images[axis].value)
        exp = expected_levels(v, arr, axis, (2, 3, 1)[axis])
        r, c = ori.display_map(LAS, axis).to_screen((2, 3, 1), arr.shape)
        keep = np.ones(exp.shape, bool)
        keep[r, :] = keep[:, c] = False
        assert np.array_equal(lv[keep], exp[keep])
        assert np.all(lv[r, ::2] == render.MARK)
    assert view(path, prefetch=0).ortho_images[0].value == b""  # off by default
