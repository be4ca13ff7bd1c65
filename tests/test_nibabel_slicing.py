"""from_nibabel slicing on every nibabel-backed format in nibabel's test data.

The oracle is numpy indexing of nibabel's full array (``np.asanyarray(dataobj)``),
never nibabel's proxy slicing, which mishandles some negative-step slices.
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nibabel.testing import data_path

import nilazyview as nlv

#: Every reader nibabel has, from its test data (PAR/REC, AFNI, ECAT, MINC1/2 with
#: per-slice scaling, NIfTI-1/2, CIFTI-2, MGH); headers without data are left out.
FILES = (
    "phantom_EPI_asc_CLEAR_2_1.PAR",
    "phantom_varscale.PAR",
    "example4d+orig.HEAD",
    "scaled+tlrc.HEAD",
    "tinypet.v",
    "minc1_4d.mnc",
    "minc1_1_scale.mnc",
    "small.mnc",
    "minc2_4d.mnc",
    "minc2_1_scale.mnc",
    "example4d.nii.gz",
    "functional.nii",
    "anatomical.nii",
    "example_nifti2.nii.gz",
    "row_major.dconn.nii",
    "test.mgz",
)

_CACHE: dict[str, tuple] = {}


def _case(name):
    if name not in _CACHE:
        path = os.path.join(data_path, name)
        ref = nib.ecat.load(path) if name.endswith(".v") else nib.load(path)
        _CACHE[name] = (nlv.from_nibabel(ref), np.asanyarray(ref.dataobj))
    return _CACHE[name]


@st.composite
def basic_index(draw, shape):
    """Random numpy basic indices for ``shape``: ints, any slices, ``...``, ``None``."""
    items = []
    for n in shape:
        if draw(st.booleans()) and n:
            items.append(draw(st.integers(-n, n - 1)))
            continue
        bound = st.none() | st.integers(-3 * n - 3, 3 * n + 3)
        step = draw(st.none() | st.integers(-5, 5).filter(bool))
        items.append(slice(draw(bound), draw(bound), step))
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(items)))
        end = draw(st.integers(cut, len(items)))
        items[cut:end] = [Ellipsis]
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    return tuple(items)


@pytest.mark.parametrize("name", FILES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_from_nibabel_slices_equal_numpy(name, data):
    img, full = _case(name)
    index = data.draw(basic_index(full.shape))
    got = img.slicecopy[index]
    want = full[index]
    assert got.shape == want.shape
    assert got.dtype == want.dtype.newbyteorder("=")  # always native order
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("name", "index"),
    [("example4d.nii.gz", np.s_[-2:-200:-3]), ("tinypet.v", np.s_[:, -1:-100:-2])],
)
def test_negative_step_past_the_start(name, index):
    """The issue's cases: a negative step whose stop is below -n."""
    img, full = _case(name)
    np.testing.assert_array_equal(img.slicecopy[index], full[index])
    if hasattr(img.proxy.dataobj, "_get_unscaled"):
        raw = np.asanyarray(img.proxy.dataobj.get_unscaled())
        np.testing.assert_array_equal(img.slicecopy.raw[index], raw[index])
