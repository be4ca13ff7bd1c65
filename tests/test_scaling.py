"""scl_slope / scl_inter: values as nibabel computes them, in the type the issue specifies."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from conftest import RGB24, assert_scaled_close, expected_dtype, make_data, write_image
from nibabel.nifti2 import Nifti2Header
from nibabel.spm2analyze import Spm2AnalyzeHeader

import nilazyview as nlv


def _write(tmp_path, dtype, slope_inter, header=nib.Nifti1Header, name="s.nii", seed=12):
    data = make_data(np.dtype(dtype), (6, 5, 4), seed=seed)
    path = str(tmp_path / name)
    write_image(path, header, data, slope_inter=slope_inter, single=name.endswith(".nii"))
    ref = nib.load(path)
    return path, np.asanyarray(ref.dataobj), np.asanyarray(ref.dataobj.get_unscaled())


def _poke_f32(path, offset, value):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(np.float32(value).tobytes())


@pytest.mark.parametrize("slope", [0.0, np.nan, np.inf])
def test_slope_zero_nan_inf_means_unscaled(tmp_path, slope):
    path, _, unscaled = _write(tmp_path, "int16", None)
    _poke_f32(path, 112, slope)  # scl_slope
    _poke_f32(path, 116, 5.0)  # scl_inter ignored too
    img = nlv.load(path)
    got = img.get_data()
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, np.asanyarray(nib.load(path).dataobj))
    np.testing.assert_array_equal(got, unscaled)


def test_identity_scaling_keeps_the_stored_type(tmp_path):
    path, full, _ = _write(tmp_path, "uint16", (1.0, 0.0))
    got = nlv.load(path).get_data()
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, full)


@pytest.mark.parametrize(
    "dtype,slope_inter,header",
    [
        ("int8", (0.25, 1.0), nib.Nifti1Header),
        ("uint8", (3.0, -128.0), nib.Nifti1Header),
        ("int16", (1.0, 7.0), nib.Nifti1Header),
        ("uint16", (2.0**-10, 0.0), nib.Nifti1Header),
        ("int16", (1e38, 0.0), nib.Nifti1Header),  # overflows float32: needs float64
        ("int32", (0.5, 0.0), nib.Nifti1Header),
        ("uint64", (2.0, 1.0), nib.Nifti1Header),
        ("float64", (0.5, 0.0), nib.Nifti1Header),
        ("complex64", (0.5, 1.0), nib.Nifti1Header),
        ("int16", (0.1, 1.0 / 3.0), Nifti2Header),  # not float32 values: float64
        ("float32", (0.1, 0.0), Nifti2Header),
        ("complex64", (0.1, 0.0), Nifti2Header),
    ],
    ids=lambda v: str(v) if not isinstance(v, type) else v.__name__,
)
def test_scaled_values_and_type(tmp_path, dtype, slope_inter, header):
    path, full, unscaled = _write(tmp_path, dtype, slope_inter, header)
    ref = nib.load(path).dataobj
    slope, inter = float(ref.slope), float(ref.inter)
    img = nlv.load(path)
    assert img.dtype == expected_dtype(unscaled.dtype, (slope, inter))
    got = img.get_data()
    assert got.dtype == img.dtype
    assert_scaled_close(got, full, unscaled, slope, inter)
    assert_scaled_close(img.slicecopy[..., 2], full[..., 2], unscaled[..., 2], slope, inter)


def test_scaled_float32_within_range(tmp_path):
    data = np.linspace(-1e30, 1e30, 120, dtype=np.float32).reshape(6, 5, 4)
    path = str(tmp_path / "f.nii")
    write_image(path, nib.Nifti1Header, data, slope_inter=(0.5, -1.0), single=True)
    ref = nib.load(path)
    full = np.asanyarray(ref.dataobj)
    got = nlv.load(path).get_data()
    assert got.dtype == np.float32
    assert_scaled_close(got, full, data, 0.5, -1.0)


def test_scaled_float32_near_max_stays_finite(tmp_path):
    """A slope > 1 on float32 data near its maximum must not overflow to inf."""
    data = np.array([-3e38, -1.0, 0.0, 1.0, 3e38] * 3, dtype=np.float32).reshape(5, 3, 1)
    path = str(tmp_path / "big.nii")
    write_image(path, nib.Nifti1Header, data, slope_inter=(4.0, 0.0), single=True)
    got = nlv.load(path).get_data()
    assert got.dtype == np.float64
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, data.astype(np.float64) * 4.0)


def test_rgb_ignores_scaling(tmp_path):
    """NIfTI: scl_slope does not apply to RGB; nibabel fails to read such files."""
    data = make_data(RGB24, (4, 3, 2), seed=13)
    path = str(tmp_path / "rgb.nii")
    write_image(path, nib.Nifti1Header, data, slope_inter=(2.0, 1.0), single=True)
    unscaled = np.asanyarray(nib.load(path).dataobj.get_unscaled())
    got = nlv.load(path).get_data()
    assert got.dtype == unscaled.dtype
    np.testing.assert_array_equal(got, unscaled)
    np.testing.assert_array_equal(got, data)


def test_spm2_scaling_from_cal_and_gl_ranges(tmp_path):
    """SPM2 Analyze with no slope: nibabel derives one from glmax/glmin and cal_max/cal_min."""
    data = make_data(np.dtype("int16"), (6, 5, 4), seed=14)
    path = str(tmp_path / "spm.img")
    hdr_path = str(tmp_path / "spm.hdr")
    write_image(path, Spm2AnalyzeHeader, data, single=False)
    hdr = Spm2AnalyzeHeader.from_fileobj(open(hdr_path, "rb"))
    hdr["scl_slope"] = 0
    hdr["glmin"], hdr["glmax"] = -100, 300
    hdr["cal_min"], hdr["cal_max"] = 0.0, 2.0
    with open(hdr_path, "wb") as f:
        hdr.write_to(f)
    ref = nib.load(path).dataobj
    slope, inter = float(ref.slope), float(ref.inter)
    assert slope != 1.0  # nibabel did derive a scaling
    full = np.asanyarray(ref)
    got = nlv.load(path).get_data()
    assert_scaled_close(got, full, data, slope, inter)


def test_get_data_of_scaled_file_matches_raw_times_slope(tmp_path):
    path, _, unscaled = _write(tmp_path, "int16", (0.5, -3.0))
    img = nlv.load(path)
    raw = img.slicecopy.raw[...]
    np.testing.assert_array_equal(raw, unscaled)
    np.testing.assert_array_equal(img.get_data(), raw.astype(np.float32) * np.float32(0.5) - 3)
