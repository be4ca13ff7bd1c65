"""Load the generated corpus and nibabel's own test files; compare with nibabel.

Oracle: ``nibabel.load(path)``: its ``affine``, its full array
``np.asanyarray(img.dataobj)`` and numpy indexing of that array.
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from conftest import SAMPLE_INDICES, assert_scaled_close, expected_dtype

import nilazyview as nlv
from nilazyview import sources
from nilazyview.sources import gzfile

NIB_DATA = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
REAL_FILES = [
    "anatomical.nii",
    "functional.nii",
    "example4d.nii.gz",
    "example_nifti2.nii.gz",
    "standard.nii.gz",
    "reoriented_anat_moved.nii",
    "resampled_anat_moved.nii",
]


def _compare(got: np.ndarray, cf, index=Ellipsis):
    """``got`` against nibabel's full array ``[index]`` of corpus file ``cf``."""
    ref = cf.full[index]
    assert got.shape == ref.shape
    assert got.dtype.isnative or got.dtype.fields is not None
    # the scaling nibabel applies (its loaded header has scl fields reset)
    slope, inter = float(cf.nib_img.dataobj.slope), float(cf.nib_img.dataobj.inter)
    scaled = cf.case.slope_inter is not None
    assert got.dtype == expected_dtype(cf.unscaled.dtype, (slope, inter) if scaled else None)
    if not scaled:
        assert ref.dtype.newbyteorder("=") == got.dtype or ref.dtype == got.dtype
        np.testing.assert_array_equal(got, ref, strict=False)
        assert np.array_equal(got, ref, equal_nan=got.dtype.kind in "fc")
    else:
        assert_scaled_close(got, ref, cf.unscaled[index], slope, inter)


def test_header_facts(corpus_file):
    cf = corpus_file
    img = nlv.load(cf.path)
    assert img.is_proxy and not img.dirty
    assert img.shape == cf.nib_img.shape
    assert img.ndim == len(cf.case.shape)
    np.testing.assert_allclose(img.affine, cf.nib_img.affine, rtol=1e-6, atol=1e-5)
    assert img.filename == cf.path


def test_get_data(corpus_file):
    cf = corpus_file
    img = nlv.load(cf.path)
    got = img.get_data()
    _compare(got, cf)
    assert img.dtype == got.dtype


def test_slicecopy(corpus_file):
    cf = corpus_file
    img = nlv.load(cf.path)
    for index in SAMPLE_INDICES:
        try:
            cf.full[index]
        except IndexError:
            with pytest.raises(IndexError):
                img.slicecopy[index]
            continue
        got = img.slicecopy[index]
        _compare(got, cf, index)
    assert img.is_proxy


def test_raw_is_stored_values(corpus_file):
    cf = corpus_file
    img = nlv.load(cf.path)
    got = img.slicecopy.raw[...]
    want = cf.unscaled
    assert got.shape == want.shape
    assert got.dtype == (want.dtype if want.dtype.fields else want.dtype.newbyteorder("="))
    assert np.array_equal(got, want, equal_nan=want.dtype.kind in "fc")


@pytest.mark.parametrize("name", REAL_FILES)
def test_nibabel_shipped_files(name):
    path = os.path.join(NIB_DATA, name)
    ref_img = nib.load(path)
    ref = np.asanyarray(ref_img.dataobj)
    img = nlv.load(path)
    assert img.shape == ref.shape
    np.testing.assert_allclose(img.affine, ref_img.affine, rtol=1e-6, atol=1e-6)
    got = img.get_data()
    assert got.shape == ref.shape
    assert got.dtype.isnative
    if got.dtype == ref.dtype.newbyteorder("="):
        assert np.array_equal(got, ref, equal_nan=True)
    else:  # scaled: our float32 may differ from nibabel's float64 by rounding
        np.testing.assert_allclose(got, ref, rtol=4 * np.finfo(got.dtype).eps, atol=0)
    # the same through slicecopy of a fresh proxy, last axis and middle axis
    img2 = nlv.load(path)
    for index in [(Ellipsis, -1), (slice(None), 3), (slice(None, None, -3), Ellipsis, 0)]:
        np.testing.assert_array_equal(img2.slicecopy[index], got[index])
    assert img2.is_proxy


def test_nibabel_shipped_analyze_header_pair(tmp_path):
    """nibabel's analyze.hdr has no .img: loading must say which file is missing."""
    src = os.path.join(NIB_DATA, "analyze.hdr")
    with pytest.raises(FileNotFoundError) as exc:
        nlv.load(src)
    assert "analyze.img" in str(exc.value)


@pytest.mark.parametrize("use_rapidgzip", [True, False], ids=["rapidgzip", "gzip"])
def test_gzip_paths(corpus, use_rapidgzip, monkeypatch):
    """Both gzip back ends (rapidgzip and the stdlib fallback) read correctly."""
    from conftest import CASES

    if not use_rapidgzip:
        monkeypatch.setattr(gzfile, "_have_rapidgzip", lambda: False)
    cases = [c for c in CASES if c.fmt in ("n1-niigz", "n1-pairgz") and c.dtype == "int16"]
    for case in cases:
        cf = corpus.get(case)
        img = nlv.load(cf.path)
        assert isinstance(img.proxy.source, sources.GzipSource)
        for index in SAMPLE_INDICES[:10]:
            try:
                cf.full[index]
            except IndexError:
                continue
            _compare(img.slicecopy[index], cf, index)
        _compare(img.get_data(), cf)
