"""MINC2 against nibabel: shipped files, generated files with 2-D scaling, C-order plans."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv
from nilazyview.errors import UnsupportedFormatError

h5py = pytest.importorskip("h5py")

DATA = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
SHIPPED = ("minc2_4d.mnc", "minc2_1_scale.mnc", "small.mnc", "minc2-4d-d.mnc", "minc2-no-att.mnc")


def _indexes(shape):
    out = [(...,)]
    for ax, n in enumerate(shape):
        for item in (0, n - 1, slice(None, None, -2), slice(1, n - 1, 3)):
            idx = [slice(None)] * len(shape)
            idx[ax] = item
            out.append(tuple(idx))
    out.append((None, -1, ..., slice(None, None, -3), None))
    return out


def _check(path: str) -> nlv.Image:
    ours, ref = nlv.load(path), nib.load(path)
    full = np.asanyarray(ref.dataobj)
    assert ours.header.kind == "minc2"
    assert ours.shape == full.shape == ref.shape
    assert ours.dtype == full.dtype.newbyteorder("=")  # nilazyview: native order
    np.testing.assert_array_equal(ours.affine, ref.affine)
    for idx in _indexes(ours.shape):
        got = ours.slicecopy[idx]
        assert got.shape == full[idx].shape
        np.testing.assert_allclose(got, full[idx], rtol=1e-12, atol=0)
    assert ours.is_proxy
    return ours


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_match_nibabel(name):
    _check(os.path.join(DATA, name))


def test_small_mnc_is_minc2_and_contiguous():
    with open(os.path.join(DATA, "small.mnc"), "rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"
    img = nlv.load(os.path.join(DATA, "small.mnc"))
    assert img.proxy.raw.layout.order == "C"


def test_slowest_axis_slice_is_one_contiguous_read():
    img = nlv.load(os.path.join(DATA, "small.mnc"))  # (z, y, x), C order: z is slowest
    plan = img.slicecopy.plan[0]
    assert plan.n_runs == 1
    assert plan.nbytes == 28 * 29 * 2
    assert img.slicecopy.plan[:, 0].n_runs == 18  # a middle-axis slice: one row per z
    assert img.slicecopy.plan[..., 0].nbytes >= 18 * 28 * 2  # fastest axis: gathered


def test_chunked_dataset_has_no_byte_plan():
    img = nlv.load(os.path.join(DATA, "minc2_4d.mnc"))  # gzip-filtered chunks
    with pytest.raises(TypeError, match="chunked or compressed"):
        img.slicecopy.plan[0]


def _write_minc2(path, data, imin, imax, scale_dims, valid=None, chunked=False):
    """A minimal MINC2 file: dims (time, zspace, yspace, xspace), oblique cosines."""
    names = ["time", "zspace", "yspace", "xspace"]
    cos = {"xspace": [0.9, 0.1, 0.0], "yspace": [-0.1, 0.9, 0.2], "zspace": [0.0, -0.2, 1.0]}
    with h5py.File(path, "w") as f:
        dims = f.create_group("minc-2.0/dimensions")
        for i, name in enumerate(names):
            d = dims.create_dataset(name, data=0)
            d.attrs["spacing"] = np.bytes_(b"regular__")
            d.attrs["step"] = np.float64(1.5 + i)
            d.attrs["start"] = np.float64(-10.0 * i)
            if name in cos:
                d.attrs["direction_cosines"] = np.array(cos[name])
        grp = f.create_group("minc-2.0/image/0")
        kw = {"chunks": (1, 2, 3, 4), "compression": "gzip"} if chunked else {}
        img = grp.create_dataset("image", data=data, **kw)
        img.attrs["dimorder"] = np.bytes_(",".join(names).encode())
        if valid is not None:
            img.attrs["valid_range"] = np.array(valid, dtype=np.float64)
        for key, val in (("image-min", imin), ("image-max", imax)):
            ds = grp.create_dataset(key, data=val)
            if scale_dims:
                ds.attrs["dimorder"] = np.bytes_(",".join(names[:scale_dims]).encode())


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("dtype", ["<i2", ">u2", ">i4", "u1"])
def test_generated_two_scale_dims(tmp_path, dtype, chunked):
    rng = np.random.default_rng(1)
    shape = (3, 4, 5, 6)
    info = np.iinfo(np.dtype(dtype))
    data = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    imin = rng.uniform(-100, 0, size=shape[:2])
    imax = rng.uniform(1, 500, size=shape[:2])
    path = str(tmp_path / "gen.mnc")
    _write_minc2(path, data, imin, imax, 2, valid=[info.min + 3, info.max - 5], chunked=chunked)
    img = _check(path)
    assert (img.slicecopy.plan[1].n_runs == 1) if not chunked else True


def test_float_data_and_scalar_scaling(tmp_path):
    data = np.random.default_rng(2).normal(size=(2, 3, 4, 5)).astype(">f4")
    path = str(tmp_path / "float.mnc")
    _write_minc2(path, data, 0.0, 1.0, 0)
    img = _check(path)
    assert img.dtype == np.float32


def test_non_minc_hdf5_and_saving_as_nifti(tmp_path):
    plain = str(tmp_path / "plain.mnc")
    with h5py.File(plain, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(UnsupportedFormatError, match="HDF5"):
        nlv.load(plain)
    src = os.path.join(DATA, "small.mnc")
    out = str(tmp_path / "small.nii")
    nlv.save(nlv.load(src), out)  # C-order, scaled: written from values, not bytes
    back = nib.load(out)
    np.testing.assert_allclose(back.get_fdata(), np.asanyarray(nib.load(src).dataobj))
    np.testing.assert_allclose(back.affine, nib.load(src).affine)
