"""Viewer layers: resampling through the affines (scipy is the oracle), reads bounded by
the shown plane's bounding box, stat/label drawing, LUTs, readout, widgets, export."""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

import nilazyview as nlv
from nilazyview.errors import ImageFileError
from nilazyview.slicecopy import SliceCopy
from nilazyview.viewer import Layer
from nilazyview.viewer import orientation as ori
from nilazyview.viewer.export import shown_rgb
from nilazyview.viewer.lut import FREESURFER, as_lut

ndimage = pytest.importorskip("scipy.ndimage")

BASE_SHAPE = (40, 44, 36)
BASE_AFFINE = np.array([[1.0, 0, 0, -20], [0, 1, 0, -24], [0, 0, 1, -16], [0, 0, 0, 1]])


def rotation(deg_x: float, deg_z: float) -> np.ndarray:
    ax, az = np.radians(deg_x), np.radians(deg_z)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ rx


def oblique_affine() -> np.ndarray:
    """2 mm voxels, rotated 20 degrees about x and about z, another origin."""
    a = np.eye(4)
    a[:3, :3] = rotation(20, 20) * 2.0
    a[:3, 3] = [-14.0, -30.0, -12.0]
    return a


LAYER_SHAPE = (22, 25, 18)
# axis-aligned but permuted, flipped and rescaled: layer i -> world y, j -> -x, k -> z
PERMUTED = np.array([[0.0, -2, 0, 20], [2, 0, 0, -30], [0, 0, 2.5, -10], [0, 0, 0, 1]])
PERMUTED_SHAPE = (18, 16, 16)


def smooth(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = np.meshgrid(*[np.linspace(0, 3, n) for n in shape], indexing="ij")
    return (np.sin(g[0] * 2) * np.cos(g[1]) * 4 + g[2] + rng.normal(0, 0.3, shape)).astype(
        np.float32
    )


def labels_array(shape, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([0, 2, 17, 53, 1035, 2035], np.int16), size=shape)


@pytest.fixture
def files(tmp_path):
    base = np.random.default_rng(5).normal(100, 10, BASE_SHAPE).astype(np.float32)
    stat, lab = smooth(LAYER_SHAPE), labels_array(LAYER_SHAPE)
    paths = {}
    for name, arr, aff in (("base", base, BASE_AFFINE), ("stat", stat, oblique_affine()),
                           ("labels", lab, oblique_affine()),
                           ("pstat", smooth(PERMUTED_SHAPE, 4), PERMUTED),
                           ("plabels", labels_array(PERMUTED_SHAPE, 5), PERMUTED)):  # fmt: skip
        paths[name] = str(tmp_path / f"{name}.nii")
        nib.save(nib.Nifti1Image(arr, aff), paths[name])
    return paths, base, stat, lab


def slab_coords(axis: int, index: int, layer_affine: np.ndarray) -> np.ndarray:
    """Layer voxel coordinates (3, n_a, n_b) of the base slab's voxel centres (the oracle's)."""
    grids = np.indices(BASE_SHAPE).astype(np.float64)
    vox = np.take(grids, index, axis=axis + 1)  # (3, n_a, n_b)
    homo = np.concatenate([vox, np.ones((1, *vox.shape[1:]))])
    world = np.einsum("ij,j...->i...", BASE_AFFINE, homo)
    return np.einsum("ij,j...->i...", np.linalg.inv(layer_affine), world)[:3]


def oracle(full: np.ndarray, coords: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """scipy's values at ``coords``, NaN outside; the field of view from the documented rule."""
    n = np.array(full.shape, float).reshape(3, 1, 1)
    if order == 1:
        mask = np.all((coords >= -1e-6) & (coords <= n - 1 + 1e-6), axis=0)
    else:
        mask = np.all((coords >= -0.5) & (coords < n - 0.5), axis=0)
    values = ndimage.map_coordinates(full.astype(np.float64), coords, order=order, mode="nearest")
    return np.where(mask, values, np.nan), mask


@pytest.mark.parametrize("grid", ["oblique", "permuted"])
@pytest.mark.parametrize("kind", ["stat", "labels"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_sample_slab_equals_map_coordinates(files, kind, axis, grid):
    """Oblique: the general (gathering) path; permuted: the axis-by-axis path."""
    paths, _, stat, lab = files
    v = nlv.view(paths["base"])
    name = kind if grid == "oblique" else "p" + kind
    layer = v.add_layer(paths[name], kind=kind)
    if grid == "oblique":
        full, affine = (stat if kind == "stat" else lab), oblique_affine()
    else:
        full, affine = np.asarray(nib.load(paths[name]).dataobj), PERMUTED
    for index in (BASE_SHAPE[axis] // 3, BASE_SHAPE[axis] // 2, BASE_SHAPE[axis] - 1):
        got = layer.sample_slab(axis, index)
        want, mask = oracle(full, slab_coords(axis, index, affine), int(kind == "stat"))
        assert got.dtype == np.float64
        assert got.shape == tuple(n for a, n in enumerate(BASE_SHAPE) if a != axis)
        if index != BASE_SHAPE[axis] - 1:
            assert 0 < mask.sum() < mask.size  # both inside and outside points are tested
        np.testing.assert_allclose(got[mask], want[mask], rtol=1e-5, atol=1e-5)
        assert np.isnan(got[~mask]).all()
    assert layer.img.is_proxy


def test_sources_array_affine_nibabel_and_image_agree(files):
    paths, _, stat, _ = files
    v = nlv.view(paths["base"])
    from_path = v.add_layer(paths["stat"])
    from_pair = v.add_layer((stat, oblique_affine()))
    from_nib = v.add_layer(nib.load(paths["stat"]))
    from_img = v.add_layer(nlv.load(paths["stat"]))
    want = from_path.sample_slab(2, 18)
    for layer in (from_pair, from_nib, from_img):  # the file's affine is float32
        np.testing.assert_allclose(layer.sample_slab(2, 18), want, atol=1e-4)
    assert isinstance(from_path, nlv.Layer) and nlv.Layer is Layer
    assert v.layers == [from_path, from_pair, from_nib, from_img]


def test_voxel_and_value_at_world(files):
    paths, _, _, lab = files
    v = nlv.view(paths["base"])
    layer = v.add_layer(paths["labels"], kind="labels")
    inv = np.linalg.inv(oblique_affine())
    rng = np.random.default_rng(3)
    hits = 0
    for xyz in rng.uniform(-40, 40, (60, 3)):
        c = inv[:3, :3] @ xyz + inv[:3, 3]
        want = tuple(int(np.floor(x + 0.5)) for x in c)
        inside = all(0 <= w < n for w, n in zip(want, LAYER_SHAPE, strict=True))
        got = layer.voxel_at_world(xyz)
        assert got == (want if inside else None)
        value = layer.value_at_world(xyz)
        if inside:
            hits += 1
            assert value == lab[want]
        else:
            assert np.isnan(value)
    assert hits > 5


def _count_reads(monkeypatch) -> list:
    """Every read through any image's slicecopy: (image, number of values)."""
    reads = []
    original = SliceCopy.__getitem__

    def counting(self, index):
        out = original(self, index)
        reads.append((self, np.asarray(out).size))
        return out

    monkeypatch.setattr(SliceCopy, "__getitem__", counting)
    return reads


def test_layer_reads_only_the_bounding_box_and_stays_a_proxy(tmp_path, monkeypatch):
    """An axis-aligned 2 mm layer over a 1 mm base: a plane needs 2 layer slices."""
    base = np.zeros((64, 64, 48), np.float32)
    bpath, lpath = str(tmp_path / "b.nii"), str(tmp_path / "l.nii")
    nib.save(nib.Nifti1Image(base, np.eye(4)), bpath)
    laff = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(smooth((32, 32, 24)), laff), lpath)
    v = nlv.view(bpath, axis=2, display_size=256, prefetch=0)
    layer = v.add_layer(lpath)
    reads = _count_reads(monkeypatch)
    per_plane = 2 * 32 * 32  # two layer slices bracket any base slice
    for index in (5, 6, 7, 30):
        v.index = index
    layer_reads = _layer_reads(reads, layer)
    assert 1 <= len(layer_reads) <= 4 and max(layer_reads) <= per_plane
    reads.clear()
    v.zoom = 4
    v.center = (10.0, 10.0)
    v.center = (40.0, 40.0)
    zoomed = _layer_reads(reads, layer)
    assert zoomed and max(zoomed) < per_plane / 4  # only the window in view
    assert layer.img.is_proxy


def _layer_reads(reads, layer) -> list[int]:
    return [n for sc, n in reads if _image_of(sc) is layer.img]


def _image_of(slicecopy):
    return next(v for v in vars(slicecopy).values() if isinstance(v, nlv.Image))


def test_threshold_and_opacity_redraw_without_reading(files, monkeypatch):
    paths, *_ = files
    v = nlv.view(paths["base"], prefetch=0)
    layer = v.add_layer(paths["stat"])
    before = v.image.value
    reads = _count_reads(monkeypatch)
    layer.threshold = 2.5
    after_threshold = v.image.value
    layer.opacity = 0.2
    assert before != after_threshold != v.image.value
    assert _layer_reads(reads, layer) == []


def same_grid_viewer(values: np.ndarray, **layer_options):
    """A black base (window 0-1) and a layer on the very same grid, frame = voxels."""
    base = np.zeros(values.shape, np.float32)
    v = nlv.view(base, window=(0.0, 1.0), axis=2, index=1, display_size=max(values.shape[:2]))
    layer = v.add_layer((values, np.eye(4)), **layer_options)
    dmap = ori.display_map(np.eye(4), 2)
    return v, layer, dmap.apply(values[:, :, 1])


def test_stat_threshold_hides_small_values_and_positive_only_the_negatives():
    values = np.linspace(-6, 6, 30 * 24 * 3).reshape(30, 24, 3)
    v, layer, screen = same_grid_viewer(values, threshold=2.0, opacity=1.0)
    drawn = shown_rgb(v).any(axis=-1)  # the base is black: any colour is the layer
    assert v.last_step["steps"] == (1, 1)
    np.testing.assert_array_equal(drawn, np.abs(screen) >= 2.0)
    layer.positive_only = True
    np.testing.assert_array_equal(shown_rgb(v).any(axis=-1), screen >= 2.0)
    layer.opacity = 0.0
    assert not shown_rgb(v).any()
    layer.opacity, layer.visible = 1.0, False
    assert not shown_rgb(v).any()


def test_stat_colours_follow_the_colormap():
    import matplotlib

    values = np.linspace(-4, 4, 20 * 20 * 3).reshape(20, 20, 3)
    v, _, screen = same_grid_viewer(values, opacity=1.0, vmin=-4, vmax=4, cmap="coolwarm")
    t = np.clip((screen + 4) / 8, 0, 1)
    want = matplotlib.colormaps["coolwarm"].resampled(256)(t)[..., :3] * 255
    got = shown_rgb(v).astype(float)
    assert np.abs(got - want).max() <= 1  # a 256-entry table, as matplotlib's own


def test_label_colours_opacity_and_names(tmp_path):
    values = np.zeros((16, 12, 3), np.int16)
    values[2:8, 2:6] = 7
    values[9:14, 6:11] = 9
    lut = {7: ("seven", (200, 100, 50, 255)), 9: ("nine", (0.0, 0.5, 1.0))}
    v, layer, screen = same_grid_viewer(values, kind="labels", lut=lut, opacity=0.5)
    got = shown_rgb(v).astype(int)
    for value, colour in ((7, (200, 100, 50)), (9, (0, 128, 255))):
        region = got[screen == value]
        np.testing.assert_allclose(region, np.tile(np.array(colour) * 0.5, (len(region), 1)),
                                   atol=1)  # fmt: skip
    assert not got[screen == 0].any()  # 0 is the background: not drawn
    assert layer.label_name(7) == "seven" and layer.label_name(8) is None
    v.crosshair = (3, 3, 1)
    assert "seven" in v.readout.value and layer.name in v.readout.value


def test_freesurfer_lut_builtin_and_file(tmp_path):
    assert FREESURFER[17][0] == "Left-Hippocampus"
    assert FREESURFER[1035][0] == "ctx-lh-insula" and FREESURFER[2035][0] == "ctx-rh-insula"
    assert FREESURFER[1035][1] == FREESURFER[2035][1]
    path = tmp_path / "MyColorLUT.txt"
    path.write_text("# my table\n\n  0 Unknown 0 0 0 0\n5 Thing 10 20 30 0  # a comment\n"
                    "6 Faint 1 2 3 200\n")  # fmt: skip
    lut = as_lut(path)
    assert lut == {0: ("Unknown", (0, 0, 0, 255)), 5: ("Thing", (10, 20, 30, 255)),
                   6: ("Faint", (1, 2, 3, 55))}  # fmt: skip
    path.write_text("5 Thing 10 20 300 0\n")
    with pytest.raises(ImageFileError, match="line 1"):
        as_lut(path)


def test_builtin_lut_names_in_the_readout(files):
    paths, _, _, lab = files
    v = nlv.view(paths["base"])
    layer = v.add_layer(paths["labels"], kind="labels")
    inv = np.linalg.inv(BASE_AFFINE)
    for vox in np.ndindex(*LAYER_SHAPE):
        if lab[vox] == 17:
            world = oblique_affine()[:3, :3] @ np.array(vox) + oblique_affine()[:3, 3]
            base_vox = np.floor(inv[:3, :3] @ world + inv[:3, 3] + 0.5).astype(int)
            if all(0 <= b < n for b, n in zip(base_vox, BASE_SHAPE, strict=True)):
                break
    v.crosshair = tuple(base_vox)
    name = layer.label_name(layer.value_at_world(v._session.world(v.crosshair)))
    assert name is not None and name in v.readout.value
    assert name in {entry[0] for entry in FREESURFER.values()}


def test_readout_lists_every_layer(files):
    paths, *_ = files
    v = nlv.view(paths["base"], layers=[{"src": paths["stat"], "name": "zmap"},
                                        {"src": paths["labels"], "kind": "labels"}])  # fmt: skip
    assert [layer.name for layer in v.layers] == ["zmap", "labels.nii"]
    v.crosshair = (20, 22, 18)
    text = v.readout.value
    world = BASE_AFFINE[:3, :3] @ np.array([20, 22, 18]) + BASE_AFFINE[:3, 3]
    value = v.layers[0].value_at_world(world)
    assert "zmap" in text and "labels.nii" in text and f"{value:.6g}" in text


def test_widgets_follow_the_layer_and_the_layer_follows_the_widgets(files):
    paths, *_ = files
    v = nlv.view(paths["base"])
    layer = v.add_layer(paths["stat"])
    _, controls = v._layer_panel.rows[id(layer)]
    layer.opacity = 0.3
    assert controls["opacity"].value == pytest.approx(0.3)
    before = v.image.value
    controls["threshold"].value = 1.5
    assert layer.threshold == pytest.approx(1.5) and v.image.value != before
    controls["cmap"].value = "hot"
    assert layer.cmap == "hot"
    controls["positive_only"].value = True
    assert layer.positive_only is True
    layer.positive_only = False
    assert controls["positive_only"].value is False
    controls["visible"].value = False
    assert layer.visible is False


def test_colorbars_and_save_png(files, tmp_path):
    paths, *_ = files
    v = nlv.view(paths["base"], ortho=True)
    assert len(v._layer_panel.bars.children) == 1  # the base's
    stat = v.add_layer(paths["stat"])
    v.add_layer(paths["labels"], kind="labels")
    assert len(v._layer_panel.bars.children) == 2  # labels have names, not a colorbar
    stat.threshold = 1.0
    out = v.save_png(tmp_path / "shot.png")
    im = PILImage.open(out)
    main = PILImage.open(io.BytesIO(v.image.value))
    assert im.format == "PNG" and im.height > main.height
    stat.visible = False
    assert len(v._layer_panel.bars.children) == 1


def test_remove_layer_restores_the_base_image(files):
    paths, *_ = files
    v = nlv.view(paths["base"], prefetch=0)
    plain = v.image.value
    layer = v.add_layer(paths["stat"])
    assert v.image.value != plain
    v.remove_layer(layer)
    assert v.layers == [] and v.image.value == plain
    with pytest.raises(ValueError, match="not a layer"):
        v.remove_layer(layer)


def test_4d_layer_follows_the_viewer_volume_clipped(tmp_path):
    base = np.random.default_rng(0).normal(size=(12, 10, 8, 5)).astype(np.float32)
    layer_arr = np.stack([np.full((12, 10, 8), k + 1.0, np.float32) for k in range(3)], -1)
    v = nlv.view((base), axis=2)
    layer = v.add_layer((layer_arr, np.eye(4)), kind="image", vmin=0, vmax=4)
    v.volume = 4  # the layer has 3: its last is shown
    key = (v.volume, v.axis, v.index)
    grid = v._session.settings()[6]
    got = layer.frame_values(*key, grid, v._session.shape3)
    assert np.all(got == 3.0)
    assert np.all(layer.sample_slab(2, 3, volume=1) == 2.0)


def test_a_longer_4d_layer_sets_the_volume_range_and_its_time_course(tmp_path):
    base3 = np.random.default_rng(1).normal(size=(12, 10, 8)).astype(np.float32)
    series = np.random.default_rng(2).normal(size=(6, 5, 4, 7)).astype(np.float32)
    aff = np.diag([2.0, 2.0, 2.0, 1.0])  # the layer's voxel (i, j, k) = base's (2i, 2j, 2k)
    path = str(tmp_path / "series.nii")
    nib.save(nib.Nifti1Image(series, aff), path)
    v = nlv.view(base3, axis=2)
    assert v.volume_slider.max == 0
    layer = v.add_layer(path, kind="image")
    assert v.volume_slider.max == 6  # the layer's 7 volumes
    v.crosshair = (4, 6, 2)  # world (4, 6, 2) mm: the layer's voxel (2, 3, 1)
    v.volume = 5
    assert layer.voxel_at_world(np.array([4.0, 6.0, 2.0])) == (2, 3, 1)
    np.testing.assert_array_equal(v.timecourse, series[2, 3, 1, :])
    key = (v.volume, v.axis, v.index)
    grid = v._session.settings()[6]
    shown = layer.frame_values(*key, grid, v._session.shape3)
    np.testing.assert_allclose(shown, layer.sample_slab(2, v.index, volume=5), equal_nan=True)
    assert not np.allclose(shown, layer.sample_slab(2, v.index, volume=0), equal_nan=True)
    assert layer.img.is_proxy
    # a 4D base shorter than the layer shows its last volume past its end
    base4 = np.random.default_rng(3).normal(size=(12, 10, 8, 3)).astype(np.float32)
    w = nlv.view(base4, axis=2, index=4)
    w.add_layer(path, kind="image")
    assert w.volume_slider.max == 6
    w.volume = 6
    for voxel in [(1, 2, 4), (11, 9, 4), (6, 0, 4)]:  # the frame shows base volume 2
        assert w._session.value_at(voxel, 2, 4, 6) == base4[(*voxel, 2)]
    v.remove_layer(layer)
    assert v.volume_slider.max == 0


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"kind": "bogus"}, ValueError),
        ({"opacity": 2}, ValueError),
        ({"cmap": "no-such-map"}, ValueError),
        ({"vmin": 3, "vmax": 1}, ValueError),
        ({"threshold": -1}, ValueError),
        ({"kind": "labels", "lut": {1: "just a name"}}, ValueError),
        ({"kind": "labels", "lut": 12}, TypeError),
    ],
)
def test_bad_layer_options_raise_clear_errors(files, options, error):
    paths, *_ = files
    v = nlv.view(paths["base"])
    with pytest.raises(error):
        v.add_layer(paths["stat"], **options)
    assert v.layers == []


def test_bad_layer_sources(files):
    paths, *_ = files
    v = nlv.view(paths["base"])
    with pytest.raises(TypeError):
        v.add_layer(np.zeros((4, 4)))
    with pytest.raises(TypeError):
        v.add_layer(object())
    layer = v.add_layer(paths["stat"])
    with pytest.raises(ValueError):
        layer.sample_slab(3, 0)
    with pytest.raises(IndexError):
        layer.sample_slab(0, BASE_SHAPE[0])
    for affine in (np.zeros((4, 4)), np.full((4, 4), np.nan)):
        with pytest.raises(ValueError, match="affine"):
            v.add_layer((np.zeros((4, 4, 4)), affine))
    empty = nlv.view(object())
    with pytest.raises(ValueError, match="no image"):
        empty.add_layer(paths["stat"])


def test_zoomed_out_frames_read_a_strided_box_and_stay_exact_on_a_linear_field(
    tmp_path, monkeypatch
):
    """Base and layer 1 mm, 128 x 128 in plane, shown on 32 px: every 4th layer voxel
    is read; trilinear interpolation is exact for a linear field on any grid."""
    n = 128
    g = np.indices((n, n, 8)).astype(np.float32)
    field = 0.5 * g[0] - 0.25 * g[1] + 2.0 * g[2] + 3.0
    lpath, bpath = str(tmp_path / "lin.nii"), str(tmp_path / "base.nii")
    nib.save(nib.Nifti1Image(field, np.eye(4)), lpath)
    nib.save(nib.Nifti1Image(np.zeros((n, n, 8), np.float32), np.eye(4)), bpath)
    v = nlv.view(bpath, axis=2, index=3, display_size=32, prefetch=0)
    reads = _count_reads(monkeypatch)
    layer = v.add_layer(lpath, kind="image")
    reads.clear()
    v.index = 4
    assert v.last_step["steps"] == (4, 4)
    voxels = _layer_reads(reads, layer)
    assert voxels and max(voxels) <= 2 * (n // 4) ** 2  # not 2 * n * n
    grid = v._session.settings()[6]
    got = layer.frame_values(0, 2, 4, grid, v._session.shape3)
    centres = np.arange(n // 4) * 4 + 1.5  # the 4-voxel blocks' centres
    # past the last voxel read (124) the layer's edge value holds (documented)
    c = np.minimum(centres, n - 4)
    want = 0.5 * c[:, None] - 0.25 * c[None, :] + 2.0 * 4 + 3.0
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_ortho_panels_show_the_layers(files):
    paths, *_ = files
    v = nlv.view(paths["base"], ortho=True, prefetch=0)
    v.crosshair = (20, 22, 18)
    before = [im.value for im in v.ortho_images]
    layer = v.add_layer(paths["stat"], opacity=1.0)
    after = [im.value for im in v.ortho_images]
    assert all(a != b for a, b in zip(before, after, strict=True))
    layer.visible = False
    assert [im.value for im in v.ortho_images] == before


def test_a_bad_layer_in_view_raises_and_refresh_rereads_layers(files, monkeypatch):
    paths, *_ = files
    with pytest.raises(ValueError, match="kind"):
        nlv.view(paths["base"], layers=[{"src": paths["stat"], "kind": "nope"}])
    v = nlv.view(paths["base"], prefetch=0)
    layer = v.add_layer(paths["stat"])
    reads = _count_reads(monkeypatch)
    v.refresh()
    assert _layer_reads(reads, layer)  # the layer's values were read again


def test_a_layer_on_the_base_grid_shows_what_a_strided_base_shows(tmp_path):
    """A base read through nibabel (no byte plan: strided reduction) and the same array
    as a layer: zoomed out, the layer's frame values are the base's own pixels."""
    arr = np.random.default_rng(2).normal(size=(96, 80, 6)).astype(np.float32)
    path = str(tmp_path / "same.nii")
    nib.save(nib.Nifti1Image(arr, np.eye(4)), path)
    v = nlv.view(nib.load(path), axis=2, index=2, display_size=24, prefetch=0)
    layer = v.add_layer(path, kind="image")
    step = v.last_step
    assert step["method"] == "stride" and min(step["steps"]) > 1
    s = v._session
    got = layer.frame_values(0, 2, 2, s.settings()[6], s.shape3, "stride")
    np.testing.assert_allclose(s.dmap.apply(got), s.screen, rtol=1e-6)


def test_frame_values_of_a_zoomed_panned_view_are_the_oracle_at_the_shown_voxels(files):
    paths, _, stat, _ = files
    v = nlv.view(paths["base"], axis=2, index=17, prefetch=0)
    layer = v.add_layer(paths["stat"])
    v.zoom = 2
    v.center = (12.0, 30.0)
    s = v._session
    (r0, r1), (c0, c1) = v.last_step["shown"]
    assert v.last_step["steps"] == (1, 1) and (r1 - r0) < BASE_SHAPE[0]
    got = layer.frame_values(0, 2, 17, s.settings()[6], s.shape3)
    want, mask = oracle(stat, slab_coords(2, 17, oblique_affine()), 1)
    np.testing.assert_allclose(got, want[r0:r1, c0:c1], rtol=1e-4, atol=1e-4, equal_nan=True)
    assert mask[r0:r1, c0:c1].any()


def test_settings_from_code_move_the_widgets_and_redraw(files):
    paths, *_ = files
    v = nlv.view(paths["base"], prefetch=0)
    stat = v.add_layer(paths["stat"])
    labels = v.add_layer(paths["labels"], kind="labels")
    _, c = v._layer_panel.rows[id(stat)]
    before = v.image.value
    stat.cmap, stat.name = "viridis", "renamed"
    assert c["cmap"].value == "viridis" and "renamed" in c["name"].value
    stat.vmax = 50.0  # beyond the threshold slider's range: the slider grows
    stat.threshold = 40.0
    assert c["threshold"].max >= 50.0 and c["threshold"].value == pytest.approx(40.0)
    assert v.image.value != before
    before = v.image.value
    labels.lut = {17: ("hippo", (255, 0, 0, 255))}
    assert v.image.value != before and labels.label_name(17) == "hippo"
    assert labels.label_name(53) is None  # the built-in table is replaced


def test_a_bare_array_layer_is_on_the_base_grid_or_refused(files, tmp_path):
    paths, *_ = files
    v = nlv.view(paths["base"], axis=2)
    arr = np.random.default_rng(9).normal(size=BASE_SHAPE).astype(np.float32)
    layer = v.add_layer(arr, kind="image")
    np.testing.assert_array_equal(layer.img.affine, BASE_AFFINE)  # not the identity
    np.testing.assert_allclose(layer.sample_slab(2, 7), arr[:, :, 7], rtol=1e-6)
    with pytest.raises(ValueError, match="pass \\(array, affine\\)"):
        v.add_layer(np.ones((8, 8, 8), np.float32))
    with pytest.raises(TypeError, match="3D or 4D"):
        v.add_layer((np.ones((4, 4, 4, 2, 2), np.float32), np.eye(4)))
    with pytest.raises(ValueError, match="PNG"):
        v.save_png(tmp_path / "shown.jpg")
    v.close()
    with pytest.raises(ValueError, match="closed"):
        v.add_layer(arr)
    with pytest.raises(ValueError, match="closed"):
        v.save_png(tmp_path / "shown.png")
