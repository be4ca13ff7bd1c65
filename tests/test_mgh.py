"""MGH/MGZ against nibabel: generated files of each MGH type (3D, 4D), the shipped test.mgz."""

from __future__ import annotations

import os
import pickle
import shutil

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv
from nilazyview.errors import UnsupportedFormatError

DATA = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
DTYPES = ("uint8", "int16", "uint16", "int32", "float32")
SHAPES = ((5, 6, 7), (4, 5, 6, 3))


def _affine(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    aff = np.eye(4)
    aff[:3, :3] = q * rng.uniform(0.5, 3.0, size=3)
    aff[:3, 3] = rng.uniform(-50, 50, size=3)
    return aff


def _data(shape, dtype, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -30000), min(info.max, 60000)
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)


def _indexes(shape):
    """Every axis: a middle slice, a reversed strided slab, and mixed indexes."""
    out = [(...,)]
    for ax, n in enumerate(shape):
        for item in (n // 2, slice(None, None, -2), slice(1, n - 1)):
            idx = [slice(None)] * len(shape)
            idx[ax] = item
            out.append(tuple(idx))
    out.append((None, 1, ..., slice(None, None, -3), None))
    return out


def _check_against_nibabel(path: str) -> None:
    ours, ref = nlv.load(path), nib.load(path)
    full = np.asanyarray(ref.dataobj)
    assert ours.header.kind == "mgh"
    assert ours.shape == full.shape == ref.shape
    assert ours.dtype == full.dtype.newbyteorder("=")
    np.testing.assert_array_equal(ours.affine, ref.affine)
    assert ours.is_proxy
    for idx in _indexes(ours.shape):
        got = ours.slicecopy[idx]
        np.testing.assert_array_equal(got, full[idx])
        assert got.dtype == ours.dtype
    assert ours.is_proxy


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mgh")
    files = []
    for i, (dtype, shape) in enumerate((d, s) for d in DTYPES for s in SHAPES):
        img = nib.MGHImage(_data(shape, dtype, i), _affine(i))
        for ext in (".mgh", ".mgz"):
            path = str(folder / f"img{i}_{dtype}_{len(shape)}d{ext}")
            nib.save(img, path)
            files.append(path)
    return files


def test_generated_files_match_nibabel(generated):
    assert len(generated) == 2 * len(DTYPES) * len(SHAPES)
    for path in generated:
        _check_against_nibabel(path)


def test_shipped_test_mgz():
    path = os.path.join(DATA, "test.mgz")
    _check_against_nibabel(path)
    img = nlv.load(path)
    assert img.proxy.source.heuristic.run_cost_bytes > 2**20  # the gzip source
    assert float(img.header["tr"]) == float(nib.load(path).header["tr"])


def test_bad_ras_flag_uses_nibabel_default(tmp_path):
    path = str(tmp_path / "flag.mgh")
    nib.save(nib.MGHImage(_data((4, 5, 6), "float32"), _affine(3)), path)
    with open(path, "r+b") as f:
        f.seek(28)
        f.write(b"\x00\x00")  # goodRASFlag = 0
    ref = nib.load(path)
    np.testing.assert_array_equal(nlv.load(path).affine, ref.affine)


@pytest.mark.parametrize("ext", [".mgz", ".mgh"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_save_reads_back_in_nibabel(tmp_path, generated, ext, dtype):
    src = next(p for p in generated if f"_{dtype}_4d" in p)
    out = str(tmp_path / f"copy{ext}")
    assert nlv.save(nlv.load(src), out) == out
    ref, back = nib.load(src), nib.load(out)
    assert back.get_data_dtype() == ref.get_data_dtype()
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), np.asanyarray(ref.dataobj))
    np.testing.assert_allclose(back.affine, ref.affine, atol=1e-4)
    assert float(back.header["tr"]) == float(ref.header["tr"])
    with open(out, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == (ext == ".mgz")


def test_save_in_memory_and_nifti_as_mgh(tmp_path):
    arr = np.arange(60, dtype=np.float64).reshape(3, 4, 5) / 7
    img = nlv.Image(arr, _affine(5))
    out = str(tmp_path / "mem.mgz")
    nlv.save(img, out)
    back = nib.load(out)
    assert back.get_data_dtype() == np.dtype(">f4")  # MGH has no float64
    np.testing.assert_allclose(back.get_fdata(), arr, rtol=1e-6)
    np.testing.assert_allclose(back.affine, img.affine, atol=1e-4)
    ours = nlv.load(out)
    np.testing.assert_allclose(ours.slicecopy[:, 2], arr[:, 2], rtol=1e-6)

    nii = str(tmp_path / "scaled.nii")
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_slope_inter(0.5, 3.0)
    nib.save(nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), _affine(6), hdr), nii)
    nlv.save(nlv.load(nii), str(tmp_path / "scaled.mgh"))
    back = nib.load(str(tmp_path / "scaled.mgh"))
    np.testing.assert_array_equal(back.get_fdata(), nib.load(nii).get_fdata())


def test_save_refuses_values_mgh_cannot_hold(tmp_path):
    big = nlv.Image(np.full((2, 2, 2), 2**40, dtype=np.int64))
    with pytest.raises(UnsupportedFormatError, match="int32"):
        nlv.save(big, str(tmp_path / "big.mgh"))
    assert not os.path.exists(tmp_path / "big.mgh")
    with pytest.raises(UnsupportedFormatError):
        nlv.save(nlv.Image(np.zeros((2, 2, 2, 2, 2), np.float32)), str(tmp_path / "5d.mgh"))
    small = nlv.Image(np.arange(8, dtype=np.int64).reshape(2, 2, 2))
    nlv.save(small, str(tmp_path / "small.mgh"))
    assert nib.load(str(tmp_path / "small.mgh")).get_data_dtype() == np.dtype(">i4")


def test_wrong_extension_still_loads(tmp_path, generated):
    src = next(p for p in generated if p.endswith(".mgz"))
    for name in ("renamed.nii.gz", "renamed.dat"):
        shutil.copy(src, tmp_path / name)
        img = nlv.load(str(tmp_path / name))
        assert img.header.kind == "mgh"
        np.testing.assert_array_equal(img.get_data(), np.asanyarray(nib.load(src).dataobj))


def test_mgh_to_nifti_and_pickle(tmp_path):
    src = os.path.join(DATA, "test.mgz")
    img = nlv.load(src)
    out = str(tmp_path / "x.nii.gz")
    nlv.save(img, out)
    ref = nib.load(src)
    back = nib.load(out)
    np.testing.assert_array_equal(back.get_fdata(), ref.get_fdata())
    np.testing.assert_allclose(back.affine, ref.affine, atol=1e-6)
    img.affine[0, 3] += 1.5  # changed metadata: pickles the header record, not a reload
    clone = pickle.loads(pickle.dumps(img))
    assert clone.header == img.header and clone.header.kind == "mgh"
    np.testing.assert_array_equal(clone.affine, img.affine)
    np.testing.assert_array_equal(clone.slicecopy[1], ref.get_fdata()[1])


def _mgh_4d(path, tr_ms):
    data = np.arange(4 * 5 * 3 * 2, dtype=np.float32).reshape(4, 5, 3, 2)
    img = nib.MGHImage(data, np.diag([2.0, 2.0, 3.0, 1.0]))
    img.header.set_zooms((2.0, 2.0, 3.0, tr_ms))
    nib.save(img, path)
    return data


@pytest.mark.parametrize("tr_ms", [2000.0, 2300.0, 735.5])
@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".hdr"])
def test_tr_carries_mgh_to_nifti_and_back(tmp_path, tr_ms, ext):
    """MGH's TR (ms) becomes NIfTI's pixdim[4] in seconds, units mm and s, and back."""
    src = str(tmp_path / "src.mgz")
    data = _mgh_4d(src, tr_ms)
    assert float(nib.load(src).header["tr"]) == tr_ms
    out = nlv.save(nlv.load(src), str(tmp_path / ("out" + ext)))
    ref = nib.load(out)
    assert ref.header.get_xyzt_units() == ("mm", "sec")
    assert np.float32(ref.header.get_zooms()[3] * 1000) == np.float32(tr_ms)
    np.testing.assert_array_equal(np.asanyarray(ref.dataobj), data)
    back = nlv.save(nlv.load(out), str(tmp_path / "back.mgh"))
    assert float(nib.load(back).header["tr"]) == tr_ms


@pytest.mark.parametrize(
    ("units", "step", "tr_ms"),
    [("sec", 2.5, 2500.0), ("msec", 735.0, 735.0), ("usec", 2e6, 2000.0), ("unknown", 1.5, 1500.0)],
)
def test_tr_carries_nifti_to_mgh(tmp_path, units, step, tr_ms):
    src = str(tmp_path / "src.nii")
    img = nib.Nifti1Image(np.zeros((3, 4, 5, 2), np.int16), np.diag([2.0, 2.0, 2.0, 1.0]))
    img.header.set_zooms((2.0, 2.0, 2.0, step))
    img.header.set_xyzt_units("mm", units)
    nib.save(img, src)
    out = nlv.save(nlv.load(src), str(tmp_path / "out.mgz"))
    assert float(nib.load(out).header["tr"]) == tr_ms
    assert nib.load(out).header.get_zooms()[3] == tr_ms  # nibabel: MGH zooms in ms


def test_3d_nifti_without_time_units_gives_no_tr(tmp_path):
    src = str(tmp_path / "src.nii")
    nib.save(nib.Nifti1Image(np.zeros((3, 4, 5), np.int16), np.eye(4)), src)
    out = nlv.save(nlv.load(src), str(tmp_path / "out.mgh"))
    assert float(nib.load(out).header["tr"]) == 0.0
