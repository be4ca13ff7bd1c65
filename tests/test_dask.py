"""Issue 3: ``Image.to_dask`` reads blocks through the proxy, on threads and on a real cluster."""

from __future__ import annotations

import os
import pickle

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv
from nilazyview.image import default_chunks

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

MiB = 2**20
SHAPE = (7, 6, 5, 9)


def _array(dtype=np.float32):
    rng = np.random.default_rng(3)
    return rng.normal(size=SHAPE).astype(dtype)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dask")
    arr = _array()
    out = {}
    for suffix in (".nii", ".nii.gz"):
        path = str(d / f"small{suffix}")
        nib.save(nib.Nifti1Image(arr, np.eye(4)), path)
        out[suffix] = path
    # scaled int16 on disk: the blocks must come back scaled
    scaled = nib.Nifti1Image(np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE), np.eye(4))
    scaled.header.set_slope_inter(0.5, 10.0)
    out["scaled"] = str(d / "scaled.nii")
    nib.save(scaled, out["scaled"])
    out["big"] = _big_sparse(str(d / "big.nii"))
    return out


BIG_SHAPE = (256, 256, 128, 64)  # int16: 1 GiB, but sparse on disk


def _big_sparse(path):
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape(BIG_SHAPE)
    hdr.set_sform(np.eye(4), 1)
    hdr["vox_offset"] = 352
    with open(path, "wb") as f:
        f.write(hdr.binaryblock + b"\x00" * 4)
    os.truncate(path, 352 + int(np.prod(BIG_SHAPE)) * 2)
    with open(path, "r+b") as f:  # a few non-zero voxels in the last volume
        f.seek(352 + int(np.prod(BIG_SHAPE[:3])) * 2 * 63)
        f.write(np.array([1, 2, 3], np.int16).tobytes())
    return path


# --- chunks --------------------------------------------------------------------------


def test_default_chunks_function():
    assert default_chunks((10, 20, 30), 4) == (10, 20, 30)
    # 256*256*128*2 bytes = 16 MiB per volume: eight volumes make 128 MiB
    assert default_chunks(BIG_SHAPE, 2) == (256, 256, 128, 8)
    # a plane bigger than the target: one slice per chunk
    assert default_chunks((4096, 4096, 10), 8) == (4096, 4096, 1)
    assert default_chunks((), 4) == ()
    assert default_chunks((100,), 1, target=16) == (16,)


def test_default_chunks_of_4d_suit_reductions_over_time_and_volumes():
    """Issue 14: never one volume per chunk when the image has more (measured in README)."""
    # 64 MiB float32 volumes: whole volumes, four at a time (256 MiB), not one
    assert default_chunks((256, 256, 256, 32), 4) == (256, 256, 256, 4)
    # small volumes: whole volumes up to 128 MiB
    assert default_chunks((128, 128, 64, 512), 4) == (128, 128, 64, 32)
    # fewer time points than the minimum: all of them
    assert default_chunks((256, 256, 256, 3), 4) == (256, 256, 256, 3)
    # volumes over 128 MiB: slabs of the third axis, 16 time points (x, y whole: long runs)
    assert default_chunks((512, 512, 300, 40), 4) == (512, 512, 8, 16)
    assert default_chunks((512, 512, 300, 10), 4) == (512, 512, 12, 10)
    assert default_chunks((4, 5, 6, 7, 8), 4) == (4, 5, 6, 1, 8)


def test_default_chunks_whole_except_last(files):
    img = nlv.load(files["big"])
    arr = img.to_dask()
    assert arr.shape == BIG_SHAPE and arr.dtype == np.int16
    for axis in range(3):
        assert arr.chunks[axis] == (BIG_SHAPE[axis],)
    sizes = {c * np.prod(BIG_SHAPE[:3]) * 2 for c in arr.chunks[3]}
    assert sizes == {128 * MiB}
    assert arr.npartitions == 8


def test_graph_one_task_per_chunk_and_small(files):
    img = nlv.load(files["big"])
    arr = img.to_dask()
    graph = dict(arr.__dask_graph__())
    keys = [k for k in graph if isinstance(k, tuple) and k[0] == arr.name]
    assert len(keys) == arr.npartitions
    assert len(graph) <= arr.npartitions + 1  # the tasks and at most the proxy itself
    size = len(pickle.dumps(graph))
    assert size < 50_000, size
    small = len(pickle.dumps(dict(nlv.load(files[".nii"]).to_dask().__dask_graph__())))
    assert size < small + 50_000  # grows with chunk count, not with voxels


def test_to_dask_reads_nothing_until_compute(files):
    img = nlv.load(files["big"])
    img.to_dask()
    assert img.is_proxy and not img.dirty


@pytest.mark.parametrize("key", [".nii", ".nii.gz", "scaled"])
def test_values_equal_numpy(files, key):
    img = nlv.load(files[key])
    expected = nib.load(files[key]).get_fdata(dtype=np.float64)
    arr = img.to_dask()
    got = arr.compute(scheduler="threads")
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    for chunks in [(3, 2, 5, 2), (7, 6, 5, 1), "auto"]:
        got = img.to_dask(chunks=chunks).compute(scheduler="threads")
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(arr[2:5, ..., 3:7].compute(), expected[2:5, ..., 3:7], rtol=1e-6)


def test_different_chunks_do_not_clash(files):
    img = nlv.load(files[".nii"])
    a = img.to_dask(chunks=(7, 6, 5, 2))
    b = img.to_dask(chunks=(7, 6, 5, 3))
    assert a.name != b.name
    np.testing.assert_allclose((a + b).compute(), 2 * _array(), rtol=1e-6)
    # the same chunks from the same file share a name (dask can merge them)
    assert img.to_dask(chunks=(7, 6, 5, 2)).name == a.name


def test_dirty_image_gives_its_array(files):
    img = nlv.load(files[".nii"])
    img.get_data()[0, 0, 0, 0] = 1234.0
    got = img.to_dask().compute()
    assert got[0, 0, 0, 0] == 1234.0


def test_in_memory_image(files):
    arr = np.arange(60.0).reshape(3, 4, 5)
    np.testing.assert_array_equal(nlv.Image(arr).to_dask(chunks=(3, 4, 2)).compute(), arr)


def test_big_slab_values(files):
    img = nlv.load(files["big"])
    arr = img.to_dask()
    last = arr[..., 63].compute(scheduler="threads")
    assert last.shape == BIG_SHAPE[:3]
    assert last.sum() == 6 and last[0, 0, 0] == 1 and last[2, 0, 0] == 3


# --- a real cluster --------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        dashboard_address=None,
        silence_logs=40,
    )
    cl = distributed.Client(cluster)
    try:
        yield cl
    finally:
        cl.close()
        cluster.close()


def test_cluster_sum_and_slab(client, files):
    img = nlv.load(files[".nii.gz"])
    expected = nib.load(files[".nii.gz"]).get_fdata(dtype=np.float64)
    arr = img.to_dask(chunks=(7, 6, 5, 2))
    total = client.compute(arr.astype(np.float64).sum()).result()
    np.testing.assert_allclose(total, expected.sum(), rtol=1e-9)
    slab = client.compute(arr[:, 1:4, :, 5]).result()
    np.testing.assert_allclose(slab, expected[:, 1:4, :, 5], rtol=1e-6)
    assert img.is_proxy  # nothing was read in this process


def test_cluster_scaled(client, files):
    img = nlv.load(files["scaled"])
    expected = nib.load(files["scaled"]).get_fdata()
    got = client.compute(img.to_dask(chunks=(7, 6, 5, 4))).result()
    np.testing.assert_allclose(got, expected)


def test_cluster_big_sparse(client, files):
    img = nlv.load(files["big"])
    arr = img.to_dask()
    assert client.compute(arr[..., 60:64].sum()).result() == 6


def test_cluster_images_travel_as_proxies(client, files):
    img = nlv.load(files[".nii"])

    def mean_of(image):
        return float(image.slicecopy[..., 4].mean()), image.is_proxy

    mean, was_proxy = client.submit(mean_of, img).result()
    assert was_proxy
    np.testing.assert_allclose(mean, _array()[..., 4].mean(), rtol=1e-6)

    dirty = nlv.load(files[".nii"])
    dirty.get_data()[..., 4] = 5.0
    mean, was_proxy = client.submit(mean_of, dirty).result()
    assert not was_proxy and mean == 5.0
