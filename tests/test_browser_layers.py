"""Layers in a real JupyterLab (chromium through Playwright): a stat layer on another
(oblique, 2 mm) grid and a label layer over a generated head; moving a layer's
threshold and opacity sliders changes the image shown; a click's readout lists both
layers. The screenshot goes to tests/artifacts/browser_layers.png.
Shares the JupyterLab fixture (and its recipe) with ``test_browser.py``.
"""

from __future__ import annotations

import json

import test_browser as tb

pytestmark = tb.pytestmark
lab, page = tb.lab, tb.page  # the JupyterLab and browser fixtures, shared

NOTEBOOK = "layers_browser.ipynb"
SETUP = """\
import numpy as np, nibabel as nib, nilazyview as nlv
g = np.indices((96, 96, 72)).astype(np.float32)
r = np.sqrt(((g[0] - 48) / 40) ** 2 + ((g[1] - 48) / 44) ** 2 + ((g[2] - 36) / 32) ** 2)
head = np.where(r < 1, 400 + 200 * np.cos(g[0] / 5) * (r > 0.6), 0).astype(np.float32)
nib.save(nib.Nifti1Image(head, np.diag([1.0, 1.0, 1.0, 1.0])), "head.nii")
c, s = np.cos(0.35), np.sin(0.35)
aff = np.array([[2 * c, -2 * s, 0, 6], [2 * s, 2 * c, 0, -10], [0, 0, 2, 0], [0, 0, 0, 1.0]])
h = np.indices((48, 48, 36)).astype(np.float32)
blob = 6 * np.exp(-((h[0] - 24) ** 2 + (h[1] - 20) ** 2 + (h[2] - 18) ** 2) / 60)
zmap = (blob - 4 * np.exp(-((h[0] - 14) ** 2 + (h[1] - 30) ** 2 + (h[2] - 18) ** 2) / 40))
nib.save(nib.Nifti1Image(zmap.astype(np.float32), aff), "zmap.nii")
lab = np.zeros((48, 48, 36), np.int16)
lab[8:22, 8:22, 10:26], lab[26:40, 26:40, 10:26] = 17, 53
nib.save(nib.Nifti1Image(lab, aff), "aseg.nii")
"""
VIEW = """\
v = nlv.view("head.nii", display_size=384, prefetch=0)
stat = v.add_layer("zmap.nii", name="zmap", threshold=0.5)
labels = v.add_layer("aseg.nii", kind="labels", opacity=0.6)
v
"""


def _notebook() -> str:
    cells = [
        {"cell_type": "code", "metadata": {}, "source": src, "outputs": [],
         "execution_count": None}
        for src in (SETUP, VIEW)
    ]  # fmt: skip
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return json.dumps({"cells": cells, "metadata": {"kernelspec": kernel},
                       "nbformat": 4, "nbformat_minor": 5})  # fmt: skip


def _press(page, selector: str, key: str, times: int) -> None:
    handle = page.locator(selector).first
    for _ in range(times):
        handle.focus()
        page.keyboard.press(key)


def test_layers_threshold_and_opacity_in_jupyterlab(lab, page):
    (lab["root"] / NOTEBOOK).write_text(_notebook())
    try:
        _run(lab, page)
    except BaseException:
        tb._shot(page, "browser_layers_failure.png")
        print("JupyterLab log tail:\n" + lab["log"].read_text(errors="replace")[-3000:])
        raise


def _wait_changed(page, old: str, what: str) -> str:
    try:
        page.wait_for_function(tb.IMAGE_CHANGED, arg=old, timeout=30_000, polling=100)
    except Exception as exc:
        raise AssertionError(f"the image did not change after {what}: {exc}") from exc
    page.wait_for_timeout(300)  # later frames for the same change come now
    return page.evaluate(tb.IMAGE_SHA)["sha"]


def _run(lab, page) -> None:
    page.goto(f"{lab['base']}/lab/tree/{NOTEBOOK}?reset")
    page.wait_for_function("() => window.jupyterapp !== undefined")
    assert page.evaluate(tb.WAIT_SESSION, NOTEBOOK) == "idle"
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    bad = list(tb.BAD_OUTPUT)
    page.wait_for_function(tb.WIDGET_OR_ERROR, arg=bad, timeout=120_000, polling=200)
    page.wait_for_function(tb.ALL_RUN, arg=NOTEBOOK, timeout=180_000, polling=200)
    tb._check_outputs(page)
    out = ".jp-OutputArea-output"
    page.locator(f"{out} .nlv-viewer").first.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const i = document.querySelector('.jp-OutputArea-output img.nlv-image');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    rows = page.locator(f"{out} .nlv-layer")
    assert rows.count() == 2, f"{rows.count()} layer rows"
    bars = page.locator(f"{out} .nlv-colorbar").count()
    assert bars == 2, f"{bars} colorbars (the base's and the stat layer's)"
    first = page.evaluate(tb.IMAGE_SHA)["sha"]

    # the stat layer's threshold up: fewer voxels drawn
    thr = f"{out} .nlv-layer >> nth=0 >> .nlv-layer-threshold .noUi-handle"
    _press(page, thr, "ArrowRight", 25)
    after_threshold = _wait_changed(page, first, "moving the threshold")
    # the label layer's opacity down
    opa = f"{out} .nlv-layer >> nth=1 >> .nlv-layer-opacity .noUi-handle"
    _press(page, opa, "ArrowLeft", 6)
    after_opacity = _wait_changed(page, after_threshold, "moving the opacity")
    assert len({first, after_threshold, after_opacity}) == 3

    # a click sets the crosshair; the readout lists both layers
    image = page.locator(f"{out} img.nlv-image").first
    box = image.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.wait_for_function(
        "() => { const r = document.querySelector('.jp-OutputArea-output .nlv-readout');"
        " return r && r.innerText.includes('zmap:') && r.innerText.includes('aseg.nii:'); }",
        timeout=30_000,
    )
    page.wait_for_timeout(300)
    tb._shot(page, "browser_layers.png")
    tb._check_outputs(page)
