"""The slice viewer under abuse: 1,000 programmatic slider changes in about 2 s.

Checked: no exception (nothing shown in the error panel, no failed prefetch),
no thread leak (at most the one prefetch thread while open, back to the
starting count after ``close``), the image at rest is the final slider value's
slab, and both caches stay within their byte budgets throughout.
The keyboard version runs in the browser test (tests/test_browser.py).
"""

from __future__ import annotations

import io
import os
import random
import threading
import time

import numpy as np
import pytest
from PIL import Image as PILImage

import nilazyview as nlv
from nilazyview.viewer import SliceViewer, render
from nilazyview.viewer import orientation as ori

SHAPE = (48, 56, 40, 3)
AFFINE = np.array([[-2.0, 0, 0, 40], [0, 1, 0, -20], [0, 0, 3, -30], [0, 0, 0, 1]])
WINDOW = (0.0, 1000.0)
CACHE_BYTES = 40 * 1024  # a few slabs: scrubbing evicts all the time
RENDER_BYTES = 24 * 1024


def phantom(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    base = sum((k + 1) * 37 * g for k, g in enumerate(grids))
    return (base % 1000 + rng.integers(0, 5, shape)).astype(np.int16)


@pytest.fixture(scope="module", autouse=True)
def _lease_thread():
    """The one idle thread lease-break signals go to (sources/lease.py) lives for the
    process once a gather ran; start it before threads are counted."""
    from nilazyview.sources import lease

    lease.sink_tid()


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    arr = phantom(SHAPE)
    path = str(tmp_path_factory.mktemp("abuse") / "vol.nii")
    nlv.save(nlv.Image(arr, AFFINE), path)
    return path, arr


def shown_levels(v: SliceViewer) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(v.image.value)))


def expected_levels(v: SliceViewer, arr: np.ndarray) -> np.ndarray:
    idx = [slice(None)] * 3 + [v.volume]
    idx[v.axis] = v.index
    screen = ori.display_map(AFFINE, v.axis).apply(arr[tuple(idx)])
    return render.to_levels(screen, *WINDOW)


def _settle(target: int, timeout: float = 5.0) -> int:
    end = time.monotonic() + timeout
    while threading.active_count() > target and time.monotonic() < end:
        time.sleep(0.02)
    return threading.active_count()


def scrub(v: SliceViewer, n: int, seconds: float, seed: int) -> dict:
    """``n`` slider changes paced over ``seconds``: walks, jumps, planes, volumes, clamps."""
    rng = random.Random(seed)
    start_threads = threading.active_count()
    stats = {"max_threads": start_threads, "max_cache": 0, "max_rendered": 0, "errors": []}
    t0 = time.perf_counter()
    for k in range(n):
        r = rng.random()
        if k % 97 == 0:
            v.axis = rng.randrange(3)
        elif k % 131 == 0:
            v.volume = rng.randrange(SHAPE[3])
        elif r < 0.7:  # drag: small steps, mostly one way
            v.index = v.index + rng.choice([1, 1, 1, 2, -1])
        elif r < 0.95:  # jump
            v.index = rng.randrange(v.slider.max + 1)
        else:  # off the ends: the slider clamps
            v.index = rng.choice([-5, v.slider.max + 7])
        if v.error.value:
            stats["errors"].append(v.error.value)
        stats["max_threads"] = max(stats["max_threads"], threading.active_count())
        stats["max_cache"] = max(stats["max_cache"], v.cache.nbytes)
        stats["max_rendered"] = max(stats["max_rendered"], v.rendered.nbytes)
        lag = t0 + (k + 1) * seconds / n - time.perf_counter()
        if lag > 0:
            time.sleep(lag)
    stats["seconds"] = time.perf_counter() - t0
    return stats


@pytest.mark.parametrize("prefetch", [3, 0])
def test_thousand_slider_changes(volume, prefetch):
    path, arr = volume
    before = threading.active_count()
    v = SliceViewer(
        nlv.load(path),
        window=WINDOW,
        prefetch=prefetch,
        cache_bytes=CACHE_BYTES,
        render_cache_bytes=RENDER_BYTES,
        poll_interval=0,
    )
    stats = scrub(v, 1000, 2.0, seed=prefetch)
    assert stats["errors"] == []
    assert v._prefetcher.errors == 0
    assert v.cache.misses > 200  # the scrubbing really read slabs (the budget evicts them)
    assert stats["seconds"] < 8.0, stats  # ~2 s when the machine keeps up
    assert stats["max_threads"] <= before + (1 if prefetch else 0), stats
    assert stats["max_cache"] <= CACHE_BYTES and stats["max_rendered"] <= RENDER_BYTES
    # at rest: the final slider value's slab is shown, nothing else
    assert v._prefetcher.idle(5)
    assert v.last_step["key"] == (v.volume, v.axis, v.index)
    np.testing.assert_array_equal(shown_levels(v), expected_levels(v, arr))
    assert v.img.is_proxy
    v.close()
    assert _settle(before) == before


def test_scrubbing_while_the_file_changes(volume, tmp_path):
    """The file replaced under the viewer: errors are shown, never raised; no thread leak."""
    _, arr = volume
    path = str(tmp_path / "vol.nii")
    nlv.save(nlv.Image(arr, AFFINE), path)
    before = threading.active_count()
    v = SliceViewer(path, window=WINDOW, prefetch=2, cache_bytes=CACHE_BYTES, poll_interval=0)
    scrub(v, 100, 0.2, seed=5)
    with open(path, "r+b") as f:  # rewritten in place: reads must stop, not mix
        f.seek(-100, 2)
        f.write(b"\1" * 100)
    later = time.time_ns() + 10**9  # timestamps are coarse: make the change visible
    os.utime(path, ns=(later, later))
    stats = scrub(v, 200, 0.4, seed=6)
    assert stats["errors"], "the change went unnoticed"
    assert all("StaleFileError" in e or "changed" in e for e in stats["errors"])
    assert stats["max_threads"] <= before + 1
    v.close()
    assert _settle(before) == before


def test_many_viewers_opened_and_closed(volume):
    """Opening and closing viewers repeatedly leaks no threads."""
    path, _ = volume
    before = threading.active_count()
    for k in range(20):
        v = SliceViewer(path, window=WINDOW, prefetch=2, poll_interval=0)
        v.index = k % SHAPE[2]
        v.index = (k + 5) % SHAPE[2]
        v.close()
    assert _settle(before) == before


@pytest.mark.parametrize(
    "bad",
    [
        {"pixel_ratio": 0},
        {"pixel_ratio": -1.0},
        {"pixel_ratio": float("nan")},
        {"fmt": "gif"},
        {"fmt": "PNG"},
        {"display_size": 0},
    ],
)
def test_bad_options_raise_at_construction_and_leave_no_error_behind(volume, bad):
    """A bad option is a ValueError from the constructor (not a blank viewer with an error
    on every frame), and the half-built widget's garbage collection reports nothing."""
    import gc
    import sys

    caught = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = caught.append
    try:
        with pytest.raises(ValueError):
            SliceViewer(volume[0], poll_interval=0, **bad)
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert [str(c.exc_value) for c in caught] == []
