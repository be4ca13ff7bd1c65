"""A click on an orthogonal panel and on the time-course plot, in a real JupyterLab.

Uses the JupyterLab of ``test_browser.py`` (its fixtures) on a notebook written here:
a small generated 4D series (identity affine: RAS, 1 mm) viewed with ``ortho=True``.
Checks that a click on the coronal panel puts the crosshair on the voxel under the
pointer (from the affine: x to the right, z up) and that a click on the plot marks
the volume clicked (the red marker column of the plot drawn after the click).
Screenshot: tests/artifacts/browser_links.png.
"""

# ruff: noqa: F811 (the fixtures lab and page come from test_browser.py by import)
from __future__ import annotations

import base64
import io
import re

import nbformat
import numpy as np
from test_browser import (  # noqa: F401
    ALL_RUN,
    ARTIFACTS,
    WAIT_SESSION,
    _check_outputs,
    _shot,
    lab,
    page,
    pytestmark,
)

NB = "notebooks/links.ipynb"
SHAPE = (40, 48, 36, 60)
SETUP = f"""\
import numpy as np, nibabel as nib, nilazyview as nlv
g = np.meshgrid(*[np.arange(n) for n in {SHAPE[:3]}], indexing="ij")
t = np.arange({SHAPE[3]})
arr = (g[0] * 3 + g[1] * 5 + g[2] * 7)[..., None] + 40 * np.sin(t / 6 + g[0][..., None] / 9)
nib.save(nib.Nifti1Image(arr.astype(np.float32), np.eye(4)), "bold.nii")
v = nlv.view("bold.nii", ortho=True, prefetch=0, display_size=320, poll_interval=0)
v"""

PANEL = ".jp-OutputArea-output img.nlv-ortho"
PLOT = ".jp-OutputArea-output img.nlv-timecourse"
READ = ".jp-OutputArea-output .nlv-readout"
VOLUME = ".jp-OutputArea-output .nlv-volume .widget-readout"
CLICK_SPY = """(el) => {
  window.__nlvAt = null;
  el.addEventListener('click', e => {
    const r = el.getBoundingClientRect();
    window.__nlvAt = {x: e.clientX - r.left, y: e.clientY - r.top, w: r.width, h: r.height};
  }, {once: true});
}"""
PNG_OF = """async (el) => {
  const b = new Uint8Array(await (await fetch(el.src)).arrayBuffer());
  let s = ''; for (const x of b) s += String.fromCharCode(x); return btoa(s);
}"""


def _click(page, sel: str, nth: int, fy: float, fx: float) -> dict:
    """Click element ``nth`` of ``sel`` at fractions; where the browser says it was."""
    el = page.locator(sel).nth(nth)
    el.scroll_into_view_if_needed()
    box = el.bounding_box()
    el.evaluate(CLICK_SPY)
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    page.wait_for_function("() => window.__nlvAt !== null", timeout=10_000)
    return page.evaluate("() => window.__nlvAt")


def _png(page, sel: str) -> np.ndarray:
    from PIL import Image as PILImage

    data = base64.b64decode(page.locator(sel).first.evaluate(PNG_OF))
    return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB")).astype(int)


def test_panel_and_time_course_clicks_in_jupyterlab(lab, page):
    root = lab["log"].parent / "root"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }  # fmt: skip (no kernel dialog)
    nbformat.write(nb, root / NB)
    try:
        _run(lab, page)
    except BaseException:
        _shot(page, "browser_links_failure.png")
        raise


def _run(lab, page) -> None:
    page.goto(f"{lab['base']}/lab/tree/{NB}?reset")
    page.wait_for_function("() => window.jupyterapp !== undefined")
    assert page.evaluate(WAIT_SESSION, NB) == "idle"
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(ALL_RUN, arg=NB, timeout=180_000, polling=200)
    page.wait_for_function(
        "(sel) => [...document.querySelectorAll(sel)].length === 3 &&"
        " [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)",
        arg=PANEL,
        timeout=60_000,
    )
    _check_outputs(page)
    assert not page.locator(PLOT).first.is_visible()  # no crosshair yet: no plot

    # the coronal panel (voxel axis 1 of an RAS image): x grows to the right, z up
    before = page.locator(READ).first.inner_text()
    at = _click(page, PANEL, 1, 0.3, 0.6)
    page.wait_for_function(
        "([s, old]) => document.querySelector(s).innerText !== old", arg=[READ, before]
    )
    text = page.locator(READ).first.inner_text()
    m = re.search(r"voxel \((\d+), (\d+), (\d+)\)", text)
    assert m, text
    got = tuple(int(g) for g in m.groups())
    fy, fx = at["y"] / at["h"], at["x"] / at["w"]
    want_x, want_z = int(fx * SHAPE[0]), SHAPE[2] - 1 - int(fy * SHAPE[2])
    assert (got[0], got[1], got[2]) == (want_x, SHAPE[1] // 2, want_z), (text, at)

    # the time course shows; a click on it marks (and shows) the volume clicked
    page.wait_for_function(
        "(s) => { const i = document.querySelector(s);"
        " return i && i.complete && i.naturalWidth > 0 && i.offsetParent !== null; }",
        arg=PLOT,
    )
    old = page.locator(VOLUME).first.inner_text()
    at = _click(page, PLOT, 0, 0.5, 0.7)
    page.wait_for_function(
        "([s, old]) => document.querySelector(s).innerText.trim() !== old", arg=[VOLUME, old]
    )
    volume = int(page.locator(VOLUME).first.inner_text())
    page.wait_for_timeout(300)  # the plot's new image
    rgb = _png(page, PLOT)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 100) & (rgb[..., 2] < 100)
    column = np.bincount(np.nonzero(red)[1]).argmax() * at["w"] / rgb.shape[1]
    spacing = at["w"] / (SHAPE[3] - 1)
    assert abs(column - at["x"]) <= spacing, (column, at, volume)
    assert 0 < volume < SHAPE[3] - 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _shot(page, "browser_links.png")
    _check_outputs(page)
