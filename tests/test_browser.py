"""The demo notebook in a real JupyterLab, driven by Debian's chromium through Playwright.

Starts its own JupyterLab on 127.0.0.1 (free port, own state folders) on a copy of the
demo notebook with a small generated sample, runs all cells, steps the slice slider with
the keyboard, and checks what a person sees: the image changes, the badge says "proxy",
the hand-off button fills in the path. Screenshots go to tests/artifacts/.
Recipe: shared/docs/browser-testing.md (in particular: wait on the kernel session).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import make_sample_module

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("NLV_CHROMIUM", "/usr/bin/chromium")
DEMO = "notebooks/huge_volume.ipynb"
SAMPLE_GIB = 0.2  # axial slab 429 x 529: about the 512 x 512 of the latency target
PRESSES = 10

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"chromium not found at {CHROMIUM} (scripts/install-chromium.sh installs it)",
    ),
]

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# The one real trap: the toolbar says idle while the kernel is still starting, and
# "Run All" then does nothing. Wait on the session itself.
WAIT_SESSION = """async (path) => {
  const app = window.jupyterapp; await app.restored;
  let w;
  for (let i = 0; i < 600 && !w; i++) {
    w = [...app.shell.widgets('main')].find(x => x.context && x.context.path === path);
    if (!w) await new Promise(r => setTimeout(r, 100));
  }
  if (!w) return 'no notebook widget';
  await w.context.ready; await w.sessionContext.ready;
  for (let i = 0; i < 600 && w.sessionContext.session?.kernel?.status !== 'idle'; i++)
    await new Promise(r => setTimeout(r, 100));
  app.shell.activateById(w.id);
  return w.sessionContext.session.kernel.status;
}"""

# True once every code cell has run and the kernel is idle again.
ALL_RUN = """(path) => {
  const app = window.jupyterapp;
  const w = [...app.shell.widgets('main')].find(x => x.context && x.context.path === path);
  if (!w || w.sessionContext.session?.kernel?.status !== 'idle') return false;
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  return cells.length > 0 && cells.every(c => c.model.executionCount !== null);
}"""

IMAGE_SHA = """async () => {
  const img = document.querySelector('.jp-OutputArea-output img.nlv-image');
  if (!img || !img.src) return null;
  const buf = await (await fetch(img.src)).arrayBuffer();
  const h = await crypto.subtle.digest('SHA-256', buf);
  return {w: img.naturalWidth, h: img.naturalHeight, n: buf.byteLength,
          sha: [...new Uint8Array(h)].map(b => b.toString(16).padStart(2, '0')).join('')};
}"""

# Key-press and image-load times (performance.now()), for the latency medians.
TIMING_HOOKS = """() => {
  const t = window.__nlv = {keys: [], loads: []};
  document.addEventListener('keydown', e => {
    if (e.key === 'ArrowRight') t.keys.push(performance.now());
  }, true);
  const hook = img => {
    if (img.__nlvHooked) return;
    img.__nlvHooked = true;
    img.addEventListener('load', () => t.loads.push(performance.now()));
  };
  document.querySelectorAll('img.nlv-image').forEach(hook);
  new MutationObserver(muts => {
    for (const m of muts) {
      if (m.target.matches && m.target.matches('img.nlv-image')) hook(m.target);
      m.addedNodes.forEach(n => {
        if (!n.querySelectorAll) return;
        if (n.matches('img.nlv-image')) hook(n);
        n.querySelectorAll('img.nlv-image').forEach(hook);
      });
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true,
                              attributeFilter: ['src']});
}"""

IMAGE_CHANGED = """async (old) => {
  const img = document.querySelector('.jp-OutputArea-output img.nlv-image');
  if (!img || !img.src || !img.complete) return false;
  const buf = await (await fetch(img.src)).arrayBuffer();
  const h = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return [...h].map(b => b.toString(16).padStart(2, '0')).join('') !== old;
}"""

BAD_OUTPUT = ("VBox(children=", "Error displaying widget", "model not found", "Traceback")

WIDGET_OR_ERROR = """(bad) => {
  if (document.querySelector('.jp-OutputArea-output img.nlv-image')) return true;
  return [...document.querySelectorAll('.jp-OutputArea-output')]
    .some(e => bad.some(b => e.innerText.includes(b)));
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A throw-away JupyterLab on a copy of the demo notebook; yields its base URL."""
    pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    tmp = tmp_path_factory.mktemp("nlv-lab")
    root, state, data = tmp / "root", tmp / "state", tmp / "data"
    (root / "notebooks").mkdir(parents=True)
    (root / "scripts").mkdir()
    shutil.copy(ROOT / DEMO, root / DEMO)
    shutil.copy(ROOT / "scripts/make_sample.py", root / "scripts/make_sample.py")
    make_sample_module().ensure_samples(data, gib=SAMPLE_GIB)

    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(state / "cfg"),
        JUPYTER_RUNTIME_DIR=str(state / "rt"),
        JUPYTERLAB_SETTINGS_DIR=str(state / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(state / "ws"),
        NLV_DATA_DIR=str(data),
        NLV_SAMPLE_GIB=str(SAMPLE_GIB),
        MPLBACKEND="agg",
    )
    note = state / "settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    note.parent.mkdir(parents=True)
    note.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))

    port = _free_port()
    log = open(tmp / "jupyterlab.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--ServerApp.root_dir={root}",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited: {(tmp / 'jupyterlab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("JupyterLab did not answer /api/status within 90 s")
            time.sleep(0.25)
        yield {"base": base, "data": data, "log": tmp / "jupyterlab.log"}
    finally:
        proc.send_signal(signal.SIGTERM)  # a backgrounded server ignores SIGINT
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@pytest.fixture()
def page(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            pg = context.new_page()
            pg.set_default_timeout(60_000)
            pg.nlv_errors = []
            pg.on("pageerror", lambda exc: pg.nlv_errors.append(str(exc)))
            yield pg
        finally:
            browser.close()


def _shot(page, name: str) -> Path:
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=False)
    return path


def _check_outputs(page) -> None:
    texts = page.eval_on_selector_all(".jp-OutputArea-output", "els => els.map(e => e.innerText)")
    for text in texts:
        for bad in BAD_OUTPUT:
            assert bad not in text, f"an output shows {bad!r}:\n{text[:2000]}"
    assert not page.nlv_errors, f"errors in the page: {page.nlv_errors}"


READOUT = ".jp-OutputArea-output .nlv-slider .widget-readout"
HANDLE = ".jp-OutputArea-output .nlv-slider .noUi-handle"

# The first viewer's slider and image as the page shows them now.
SLIDER_STATE = """() => {
  const h = document.querySelector('.jp-OutputArea-output .nlv-slider .noUi-handle');
  const r = document.querySelector('.jp-OutputArea-output .nlv-slider .widget-readout');
  const i = document.querySelector('.jp-OutputArea-output img.nlv-image');
  return {max: h && Number(h.getAttribute('aria-valuemax')),
          now: h && Number(h.getAttribute('aria-valuenow')),
          readout: r && r.innerText.trim(), focused: document.activeElement === h,
          img: i && i.complete ? [i.naturalWidth, i.naturalHeight] : null};
}"""

SAGITTAL_READY = (
    "([max, px]) => { const s = (" + SLIDER_STATE + ")();"
    " return s.max === max && s.readout === String(s.now) && s.img"
    " && (s.img[0] !== px[0] || s.img[1] !== px[1]); }"
)


def _diagnose(page) -> str:
    """What the page shows now, for a failure message."""
    state = page.evaluate(SLIDER_STATE)
    io = page.locator(".jp-OutputArea-output .nlv-io").first.inner_text()
    return f"slider/image now: {state}; I/O panel: {io!r}"


def _press_keys(page, n: int) -> dict:
    """Press ArrowRight on the focused slider ``n`` times, each after the last image came.

    Checks the slider value and the shown image change on every press; returns the
    key-to-image latencies (ms), the image hashes and what the I/O panel said.
    """
    readout = page.locator(READOUT).first
    handle = page.locator(HANDLE).first
    first = page.evaluate(IMAGE_SHA)
    shas, ms, io = [first["sha"]], [], []
    start = int(readout.inner_text())
    for i in range(n):
        before = int(readout.inner_text())
        assert before == start + i, f"press {i}: slider at {before}, not {start + i}"
        handle.focus()
        page.wait_for_function(
            f"() => document.activeElement === document.querySelector('{HANDLE}')"
        )
        loads = page.evaluate("() => window.__nlv.loads.length")
        page.keyboard.press("ArrowRight")
        try:
            page.wait_for_function(
                "([sel, n]) => document.querySelector(sel).innerText.trim() === String(n)",
                arg=[READOUT, before + 1],
                timeout=15_000,
            )
            page.wait_for_function(
                "(n) => window.__nlv.loads.length > n", arg=loads, timeout=30_000, polling="raf"
            )
        except Exception as exc:
            raise AssertionError(f"press {i} from {before}: {exc}\n{_diagnose(page)}") from exc
        page.wait_for_timeout(30)  # anything later for this value would show up here
        t = page.evaluate("() => window.__nlv")
        key = t["keys"][-1]
        ms.append(min(x for x in t["loads"] if x >= key) - key)
        shas.append(page.evaluate(IMAGE_SHA)["sha"])
        text = page.locator(".jp-OutputArea-output .nlv-io").first.inner_text()
        io.append("hit" if "cache hit" in text else "miss" if "cache miss" in text else "?")
    assert int(readout.inner_text()) == start + n
    changed = sum(a != b for a, b in itertools.pairwise(shas))
    assert changed == n, f"the image changed on {changed} of {n} key presses"
    assert len(set(shas)) == n + 1
    return {"ms": ms, "shas": shas, "io": io, "px": [first["w"], first["h"]]}


def nib_shape(path: Path) -> tuple[int, ...]:
    import nibabel as nib

    return nib.load(path).shape


def _sagittal_axis(path: Path) -> int:
    """The voxel axis that runs left-right (nibabel's axis codes: an independent oracle)."""
    import nibabel as nib

    codes = nib.aff2axcodes(nib.load(path).affine)
    return next(a for a, c in enumerate(codes) if c in "LR")


def test_demo_notebook_in_jupyterlab(lab, page):
    try:
        _run_demo(lab, page)
    except BaseException:
        _shot(page, "browser_failure.png")
        print("JupyterLab log tail:\n" + lab["log"].read_text(errors="replace")[-3000:])
        raise


def _run_demo(lab, page) -> None:
    page.goto(f"{lab['base']}/lab/tree/{DEMO}?reset")
    page.wait_for_function("() => window.jupyterapp !== undefined")
    status = page.evaluate(WAIT_SESSION, DEMO)
    assert status == "idle", f"kernel not ready: {status}"
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

    # the widget renders (or an output shows an error: fail fast), and every cell runs
    # to the end with the kernel idle again
    page.wait_for_function(WIDGET_OR_ERROR, arg=list(BAD_OUTPUT), timeout=120_000, polling=200)
    _check_outputs(page)
    page.wait_for_function(ALL_RUN, arg=DEMO, timeout=180_000, polling=200)
    _check_outputs(page)
    viewer = page.locator(".jp-OutputArea-output .nlv-viewer").first
    viewer.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const i = document.querySelector('.jp-OutputArea-output img.nlv-image');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    _shot(page, "browser_01_rendered.png")

    badge = page.locator(".jp-OutputArea-output .nlv-badge").first.inner_text()
    assert "proxy" in badge, f"badge says {badge!r}"

    # step the slider with the keyboard, one press at a time, timing each in the page
    page.evaluate(TIMING_HOOKS)
    before = page.evaluate(IMAGE_SHA)
    assert before and before["w"] > 0, f"no image shown: {before}"
    axial = _press_keys(page, PRESSES)
    _shot(page, "browser_02_after_keys.png")

    # the same in the sagittal plane (the slowest read: one 2-byte run per voxel)
    # wait until the slider has the sagittal range and the sagittal image has come
    # (the slider and image models update separately: the image may come first)
    sag = _sagittal_axis(lab["data"] / "huge_head.nii")
    n_sag = nib_shape(lab["data"] / "huge_head.nii")[sag]
    page.locator(".jp-OutputArea-output .nlv-plane button", has_text="sagittal").first.click()
    page.wait_for_function(IMAGE_CHANGED, arg=axial["shas"][-1], timeout=30_000, polling=100)
    try:
        page.wait_for_function(
            SAGITTAL_READY,
            arg=[n_sag - 1, axial["px"]],
            timeout=30_000,
            polling=100,
        )
    except Exception as exc:
        raise AssertionError(f"no sagittal view: {exc}\n{_diagnose(page)}") from exc
    page.wait_for_timeout(300)  # and nothing else is on its way
    sagittal = _press_keys(page, PRESSES // 2)
    _shot(page, "browser_02b_sagittal.png")

    # the hand-off button shows the path of the original file (the image is a proxy)
    field = page.locator(".jp-OutputArea-output .nlv-handoff-path input").first
    page.locator(".jp-OutputArea-output .nlv-handoff").first.click()
    page.wait_for_function(
        "() => { const f = document.querySelector("
        "'.jp-OutputArea-output .nlv-handoff-path input'); return f && f.value.length > 0; }",
        timeout=30_000,
    )
    path = field.input_value()
    assert Path(path).name == "huge_head.nii", path
    assert os.path.samefile(path, lab["data"] / "huge_head.nii")
    _shot(page, "browser_03_handoff.png")
    _check_outputs(page)

    report = {}
    for name, run in (("axial", axial), ("sagittal", sagittal)):
        lat = run["ms"]
        report[name] = {
            "image_px": run["px"],
            "key_to_image_ms": [round(x, 1) for x in lat],
            "median_ms": round(statistics.median(lat), 1),
            "io_panel_said": run["io"],
        }
        print(
            f"\n{name}: key press -> new image ({run['px'][0]}x{run['px'][1]} px): "
            f"median {statistics.median(lat):.1f} ms over {len(lat)} presses "
            f"{report[name]['key_to_image_ms']}; I/O panel: {run['io']}"
        )
    (ARTIFACTS / "browser_latency.json").write_text(json.dumps(report, indent=2))
