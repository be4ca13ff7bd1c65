"""How documented objects show themselves: read plans, image states, headers."""

from __future__ import annotations

import numpy as np
import pytest

import nilazyview as nlv


@pytest.fixture
def plan():
    layout = nlv.DiskLayout((10, 12, 80), np.dtype("<i2"), offset=352)
    return nlv.plan_read(layout, (..., 40))


def test_plan_str_and_ipython_display_are_describe(plan):
    pretty = pytest.importorskip("IPython.lib.pretty")
    text = plan.describe()
    assert text.startswith("pread: 1 run(s)")
    assert str(plan) == text
    assert pretty.pretty(plan) == text
    assert repr(plan).startswith("ReadPlan(")  # the dataclass repr stays for repr()


def test_image_repr_uses_the_viewer_badge_labels():
    mem = nlv.Image(np.zeros((2, 3, 4), np.float32))
    assert mem.dirty and repr(mem).endswith("(in memory)>")  # no file to differ from


def test_header_repr_shows_plain_values(tmp_path):
    path = nlv.save(nlv.Image(np.zeros((2, 3, 4), np.int16)), tmp_path / "a.nii")
    img = nlv.load(path)
    text = repr(img.header)
    assert "  sizeof_hdr      348\n" in text
    assert "  magic           b'n+1'" in text
    assert "  dim             [3, 2, 3, 4, 1, 1, 1, 1]\n" in text
    assert "np." not in text and "array(" not in text
    assert repr(img).endswith("(proxy)>")
    img.get_data()
    assert repr(img).endswith("(dirty)>")  # in memory and maybe changed: differs from the file
