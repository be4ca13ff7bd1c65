"""Every notebook in notebooks/ runs headless (nbclient) on a small generated sample.

Also checks the sample generator (scripts/make_sample.py): sizes, idempotence, and
that what it writes reads back the same through nilazyview and nibabel.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_sample_module

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
SMALL_GIB = "0.05"

# What each notebook prints when it reached its end with the right results.
EXPECTED = {
    "huge_volume.ipynb": "still a proxy: True",
    "proxy_vs_array.ipynb": "the copy has the change: True",
    "visual_qa.ipynb": "identical",
    "layers.ipynb": "layers stayed proxies: True",
}


make_sample = make_sample_module()


@pytest.fixture(scope="module")
def data_env(tmp_path_factory):
    """A small sample data folder, handed to the kernels through the environment."""
    data = tmp_path_factory.mktemp("nlv-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLV_SAMPLE_GIB", SMALL_GIB)
        mp.setenv("NLV_DATA_DIR", str(data))
        mp.setenv("MPLBACKEND", "agg")
        yield data


def _text_outputs(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif out.get("output_type") == "error":
                parts.append("\n".join(out.get("traceback", [])))
            else:
                parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_the_notebooks_are_there():
    names = {p.name for p in NOTEBOOKS}
    assert set(EXPECTED) <= names, f"missing notebooks: {set(EXPECTED) - names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_saved_without_outputs(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a cell was saved with outputs"
            assert cell.execution_count is None, f"{path.name}: a cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, data_env):
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NB_DIR)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
    text = _text_outputs(nb)
    assert "Traceback" not in text
    # the data came from the test's folder, at the small size
    assert str(data_env) in text
    huge = data_env / make_sample.HUGE_NAME
    assert huge.stat().st_size == make_sample.expected_size(
        make_sample.huge_shape(float(SMALL_GIB))
    )
    want = EXPECTED.get(path.name)
    if want is not None:
        assert want in text, f"{path.name} did not print {want!r}:\n{text[-2000:]}"


def test_make_sample_sizes_and_idempotence(tmp_path):
    import nilazyview as nlv

    paths = make_sample.ensure_samples(tmp_path, gib=0.01)
    shape = make_sample.huge_shape(0.01)
    assert paths["huge"].stat().st_size == make_sample.expected_size(shape)
    assert abs(np.prod(shape) * 2 / 2**30 - 0.01) < 0.001
    stamps = {k: p.stat().st_mtime_ns for k, p in paths.items()}
    again = make_sample.ensure_samples(tmp_path, gib=0.01)  # kept: right size already
    assert {k: p.stat().st_mtime_ns for k, p in again.items()} == stamps
    assert not list(tmp_path.glob("*.part"))

    img = nlv.load(paths["huge"])
    assert img.is_proxy and img.shape == shape
    assert img.proxy.layout.dtype == np.dtype("<i2")
    assert float(img.header["scl_slope"]) == make_sample.SLOPE
    mid = img.slicecopy[:, :, shape[2] // 2]
    # real structure: background, several tissue levels, not noise
    assert mid.min() == 0 and mid.max() > 700
    assert len(np.unique(np.round(mid / 50))) > 10
    assert (mid == 0).mean() > 0.1

    four = nlv.load(paths["4d"])
    assert four.shape == make_sample.FOURD_SHAPE
    a, b = four.slicecopy[..., 0], four.slicecopy[..., 3]
    assert not np.array_equal(a, b)  # the series changes over time


def test_make_sample_matches_nibabel_and_resizes(tmp_path, monkeypatch):
    nib = pytest.importorskip("nibabel")
    import nilazyview as nlv

    monkeypatch.setenv("NLV_SAMPLE_GIB", "0.004")
    path = make_sample.make_huge(tmp_path)  # size from the environment
    shape = make_sample.huge_shape(0.004)
    ref = nib.load(path)
    assert ref.shape == shape
    np.testing.assert_allclose(ref.affine, nlv.load(path).affine)
    np.testing.assert_array_equal(np.asarray(ref.dataobj), nlv.load(path).get_data())

    # a file of the wrong size is rewritten, atomically
    make_sample.make_huge(tmp_path, gib=0.002)
    assert path.stat().st_size == make_sample.expected_size(make_sample.huge_shape(0.002))


def test_make_sample_layers(tmp_path):
    """The layer samples: what nibabel reads back, on the grids they claim, with the values."""
    nib = pytest.importorskip("nibabel")
    import nilazyview as nlv

    paths = make_sample.ensure_layer_samples(tmp_path)
    stamps = {k: p.stat().st_mtime_ns for k, p in paths.items()}
    assert make_sample.ensure_layer_samples(tmp_path) == paths  # reused, not rewritten
    assert {k: p.stat().st_mtime_ns for k, p in paths.items()} == stamps

    stat = nib.load(paths["stat"])
    assert stat.shape == (91, 109, 91) and stat.get_data_dtype() == np.float32
    rot = stat.affine[:3, :3] / 2.0  # 2 mm voxels, rotated: not along the world axes
    np.testing.assert_allclose(np.linalg.norm(stat.affine[:3, :3], axis=0), 2.0)
    assert np.abs(rot).max(axis=0).min() < np.cos(np.radians(10))
    data = np.asarray(stat.dataobj)
    np.testing.assert_array_equal(data, nlv.load(paths["stat"]).get_data())
    assert data.max() > 6 and data.min() < -4 and (data == 0).mean() > 0.3  # +/- blobs, a mask
    ijk = np.linalg.inv(stat.affine) @ [-34.0, -22.0, 44.0, 1.0]  # the first blob's centre
    assert data[tuple(np.round(ijk[:3]).astype(int))] > 6

    labels = nib.load(paths["labels"])
    assert nib.aff2axcodes(labels.affine) == ("L", "I", "A")  # FreeSurfer's conformed order
    values = set(np.unique(np.asarray(labels.dataobj)).tolist())
    assert values == {0, 2, 3, 4, 8, 10, 12, 14, 16, 41, 42, 43, 47, 49, 51}
    ijk = np.linalg.inv(labels.affine) @ [-10.0, -14.0, 8.0, 1.0]  # left thalamus
    assert np.asarray(labels.dataobj)[tuple(np.round(ijk[:3]).astype(int))] == 10


def test_make_sample_cli(tmp_path):
    import subprocess

    env = dict(os.environ, NLV_SAMPLE_GIB="0.003")
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts/make_sample.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert str((tmp_path / make_sample.HUGE_NAME).resolve()) in run.stdout
    assert str((tmp_path / make_sample.FOURD_NAME).resolve()) in run.stdout
