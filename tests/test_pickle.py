"""Pickling: a proxy travels as file name + header + layout; in-memory data travels whole."""

from __future__ import annotations

import pickle
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from conftest import make_data, write_image

import nilazyview as nlv


@pytest.fixture(params=["a.nii", "a.nii.gz", "a.hdr", "a.img.gz"])
def image_file(tmp_path, request):
    name = request.param
    data = make_data(np.dtype(">i2"), (20, 18, 16, 3), seed=11)
    single = ".nii" in name
    hclass = nib.Nifti1Header if single else nib.nifti1.Nifti1PairHeader
    path = str(tmp_path / name)
    write_image(path, hclass, data, endian=">", slope_inter=(0.5, 2.0), single=single)
    return path, np.asanyarray(nib.load(path).dataobj)


def test_proxy_pickles_small_and_reopens(image_file):
    path, full = image_file
    img = nlv.load(path)
    img.slicecopy[..., 1]  # opened handles and (for gzip) an index must not travel
    blob = pickle.dumps(img)
    assert len(blob) < 4096, len(blob)
    back = pickle.loads(blob)
    assert back.is_proxy and not back.dirty
    assert back.shape == full.shape
    np.testing.assert_array_equal(back.affine, img.affine)
    np.testing.assert_allclose(back.slicecopy[:, 3, ::-1], full[:, 3, ::-1], rtol=1e-6)
    assert back.is_proxy


def test_proxy_unpickles_in_another_process(image_file, tmp_path):
    path, full = image_file
    blob = tmp_path / "img.pkl"
    blob.write_bytes(pickle.dumps(nlv.load(path)))
    code = (
        "import pickle, sys, numpy as np\n"
        f"img = pickle.loads(open({str(blob)!r}, 'rb').read())\n"
        "assert img.is_proxy\n"
        "np.save(sys.stdout.buffer, img.slicecopy[..., 2])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    import io

    got = np.load(io.BytesIO(out.stdout))
    np.testing.assert_allclose(got, full[..., 2], rtol=1e-6)


def test_dirty_image_pickles_its_data(image_file):
    path, full = image_file
    img = nlv.load(path)
    arr = img.get_data()
    arr[1, 2, 3, 0] = -999.0
    back = pickle.loads(pickle.dumps(img))
    assert not back.is_proxy and back.dirty
    assert back.get_data()[1, 2, 3, 0] == -999.0
    want = full.copy()
    want[1, 2, 3, 0] = -999.0
    np.testing.assert_allclose(back.get_data(), want, rtol=1e-6)


def test_in_memory_image_pickles_its_array():
    data = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    img = nlv.Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    back = pickle.loads(pickle.dumps(img))
    np.testing.assert_array_equal(back.get_data(), data)
    np.testing.assert_array_equal(back.affine, img.affine)


def test_header_edits_travel(image_file):
    path, _ = image_file
    img = nlv.load(path)
    img.header["descrip"] = b"edited"
    back = pickle.loads(pickle.dumps(img))
    assert back.header["descrip"] == b"edited"
