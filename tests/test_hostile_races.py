"""Readers racing a writer: no read may kill, hang or lie (issue 16, items 1-3).

Child processes, two threads each sharing one image (and so one lease), slice it
in a tight loop (last-, middle- and first-axis planes, so the ``pread`` run, the
memory-map gather and the general paths all run) while this process rewrites,
truncates or replaces the file underneath.
Every version stores ``raw = base + 7 v`` with ``scl_inter = 1000 v``, so a
slice is right exactly when ``values - base`` is one multiple of 1007 over the
whole slice: new bytes under the old header, a torn read, or another file's
voxels all fail that. Each child reports counts; the parent counts deaths
(a signal, e.g. ``SIGBUS``), hangs (past the timeout) and wrong arrays.

Default run: >= 50 rewrites per case. ``NLV_SLOW=1`` runs 500 per case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import nibabel as nib
import numpy as np
import pytest

import nilazyview

REPO = os.path.dirname(os.path.dirname(os.path.abspath(nilazyview.__file__)))
SLOW = bool(os.environ.get("NLV_SLOW"))
REWRITES = 500 if SLOW else 50
N = 96  # 96^3 int16: 1.7 MiB, a first-axis plane is 9,216 runs of 2 bytes

CHILD = textwrap.dedent(
    """
    import json, os, sys, threading, time
    import numpy as np
    import nilazyview as nlv
    path, seconds, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    x, y, z = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    base = ((x + 3 * y + 5 * z) % 997).astype(np.float64)
    counts = {"ok": 0, "stale": 0, "truncated": 0, "other_error": 0, "wrong": 0, "loads": 0}
    lock = threading.Lock()
    indices = [(n // 2, slice(None), slice(None)), (slice(None), n // 3, slice(None)),
               (slice(None), slice(None), n // 4), (slice(3, 90, 2), slice(None), 7),
               (5, slice(None), slice(None)), (slice(None), 11, slice(None))]
    shared = {"img": None}
    end = time.monotonic() + seconds

    def add(key):
        with lock:
            counts[key] += 1

    def reader(i):
        # two threads share one image (and so one lease) until it goes stale
        while time.monotonic() < end:
            img = shared["img"]
            try:
                if img is None:
                    img = shared["img"] = nlv.load(path)
                    add("loads")
                index = indices[i % len(indices)]
                i += 1
                got = np.asarray(img.slicecopy[index], dtype=np.float64)
            except nlv.StaleFileError:
                add("stale")
                shared["img"] = None
                continue
            except nlv.TruncatedDataError:
                add("truncated")
                shared["img"] = None
                continue
            except nlv.ImageFileError:
                add("other_error")
                shared["img"] = None
                continue
            diff = got - base[index]
            v = diff.flat[0] / 1007
            add("wrong" if v != int(v) or not np.all(diff == diff.flat[0]) else "ok")

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(counts), flush=True)
    """
)


def _version_bytes(folder: str, ext: str, v: int) -> bytes:
    x, y, z = np.meshgrid(np.arange(N), np.arange(N), np.arange(N), indexing="ij")
    raw = ((x + 3 * y + 5 * z) % 997 + 7 * v).astype(np.int16)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(1.0, 1000.0 * v)
    out = os.path.join(folder, f"v{v}{ext}")
    nib.save(img, out)
    with open(out, "rb") as f:
        return f.read()


def _rewrite(path: str, data: bytes, how: str, step: int) -> None:
    if how == "rewrite":  # what cp, nibabel and most tools do: truncate, then write
        with open(path, "wb") as f:
            for pos in range(0, len(data), 256 * 1024):
                f.write(data[pos : pos + 256 * 1024])
                f.flush()
    elif how == "truncate":  # cut, let readers meet the short file, then write it whole
        os.truncate(path, len(data) // (2 + step % 3))
        time.sleep(0.01)
        with open(path, "r+b") as f:
            f.write(data)
    elif how == "replace":  # a new file renamed over the old one
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    else:
        raise ValueError(how)


def race(tmp_path, ext: str, how: str, readers: int = 2, rewrites: int = REWRITES) -> dict:
    """Run ``readers`` children while rewriting the file ``rewrites`` times; the counts."""
    folder = str(tmp_path)
    versions = [_version_bytes(folder, ext, v) for v in range(4)]
    path = os.path.join(folder, "img" + ext)
    with open(path, "wb") as f:
        f.write(versions[0])
    interval = 0.03
    seconds = 1.0 + rewrites * (interval + 0.01)
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("NLV_FUZZ_STRICT", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, path, str(seconds), str(N)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(readers)
    ]
    time.sleep(0.8)  # let them import and start reading
    for k in range(rewrites):
        _rewrite(path, versions[1 + k % 3], how, k)
        time.sleep(interval)
    totals = {"deaths": 0, "hangs": 0, "rewrites": rewrites, "readers": readers}
    for p in procs:
        try:
            out, err = p.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            totals["hangs"] += 1
            continue
        if p.returncode != 0:
            totals["deaths"] += 1
            totals.setdefault("errors", []).append((p.returncode, err[-400:]))
            continue
        for key, n in json.loads(out.strip().splitlines()[-1]).items():
            totals[key] = totals.get(key, 0) + n
    return totals


CASES = [(ext, how) for ext in (".nii", ".nii.gz") for how in ("rewrite", "truncate", "replace")]


@pytest.mark.parametrize(("ext", "how"), CASES)
def test_readers_survive_a_rewriting_writer(tmp_path, ext, how):
    got = race(tmp_path, ext, how)
    print(ext, how, got)
    assert got["deaths"] == 0, got
    assert got["hangs"] == 0, got
    assert got["wrong"] == 0, got
    assert got["ok"] > 0, got


GZ_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import nilazyview as nlv
    path, seconds = sys.argv[1], float(sys.argv[2])
    img = nlv.load(path)
    counts = {"ok": 0, "stale": 0, "truncated": 0, "other_error": 0}
    end = time.monotonic() + seconds
    t = 0
    print("go", flush=True)
    while time.monotonic() < end:
        t = (t + 7) % 40
        try:
            if img is None:
                img = nlv.load(path)
            img.slicecopy[:, :, :, t]
            counts["ok"] += 1
        except nlv.StaleFileError:
            counts["stale"] += 1
            img = None
        except nlv.TruncatedDataError:
            counts["truncated"] += 1
            img = None
        except nlv.ImageFileError:
            counts["other_error"] += 1
            img = None
    print(json.dumps(counts), flush=True)
    """
)


@pytest.mark.parametrize("how", ["truncate", "rewrite"])
def test_gzip_cut_during_indexed_reads_never_spins(tmp_path, how):
    """Item 2: a ``.nii.gz`` cut while indexed_gzip reads it ends in an error, not a spin.

    Volumes of 512 KiB read through the seek-point index (no whole-stream pass:
    its budget is 0 and spilling is off), while the file is cut to a fraction
    of its size (or rewritten from scratch) several times.
    """
    pytest.importorskip("rapidgzip")
    rng = np.random.default_rng(1)
    data = rng.integers(0, 4000, size=(64, 64, 64, 40), dtype=np.int16)
    path = str(tmp_path / "cut.nii.gz")
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    with open(path, "rb") as f:
        whole = f.read()
    env = dict(
        os.environ,
        PYTHONPATH=REPO,
        NILAZYVIEW_GZ_MEMORY_BYTES="0",
        NILAZYVIEW_TMPDIR=str(tmp_path / "missing"),  # no spill file either
        NILAZYVIEW_CACHE_DIR=str(tmp_path / "cache"),
    )
    p = subprocess.Popen(
        [sys.executable, "-c", GZ_CHILD, path, "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert p.stdout.readline().strip() == "go"
    for k in range(20):
        time.sleep(0.1 + 0.05 * (k % 3))
        if how == "truncate":
            os.truncate(path, len(whole) // (2 + k % 3))
            time.sleep(0.05)
            with open(path, "r+b") as f:
                f.write(whole)
        else:
            with open(path, "wb") as f:
                f.write(whole[: len(whole) // 3])
                time.sleep(0.05)
                f.write(whole[len(whole) // 3 :])
    try:
        out, err = p.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("the reader hung (a spin inside indexed_gzip)")
    assert p.returncode == 0, err[-2000:]
    counts = json.loads(out.strip().splitlines()[-1])
    print(how, counts)
    assert counts["ok"] > 0


VIEWER_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from nilazyview.viewer import SliceViewer
    path, seconds = sys.argv[1], float(sys.argv[2])
    counts = {"opened": 0, "steps": 0, "stale": 0, "truncated": 0, "other": [], "open_error": 0}
    v = None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if v is None:
            try:
                v = SliceViewer(path, window=(0.0, 8000.0), prefetch=3, poll_interval=0)
                v.axis = 1  # coronal: memory-map gathers, and the prefetch thread reads ahead
                counts["opened"] += 1
            except Exception:  # the file is being written: not loadable yet
                counts["open_error"] += 1
                time.sleep(0.005)
                continue
        v.index = (v.index + 1) % (v.slider.max + 1)
        counts["steps"] += 1
        time.sleep(0.002)
        msg = v.error.value
        if msg:
            if "Cannot view" in msg:  # opened while the file was being written
                counts["open_error"] += 1
            elif "StaleFileError" in msg or "changed on disk" in msg:
                counts["stale"] += 1
            elif "Truncated" in msg or "truncated" in msg:
                counts["truncated"] += 1
            elif len(counts["other"]) < 5:
                counts["other"].append(msg[:300])
            v.close()
            v = None
    if v is not None:
        v.close()
    print(json.dumps(counts), flush=True)
    """
)


def test_viewer_with_prefetch_survives_a_rewriting_writer(tmp_path):
    """The viewer scrubbing a coronal view, prefetching, while the file is rewritten."""
    pytest.importorskip("ipywidgets")
    folder = str(tmp_path)
    versions = [_version_bytes(folder, ".nii", v) for v in range(3)]
    path = os.path.join(folder, "view.nii")
    with open(path, "wb") as f:
        f.write(versions[0])
    rewrites = REWRITES
    seconds = 1.5 + rewrites * 0.05
    env = dict(os.environ, PYTHONPATH=REPO)
    p = subprocess.Popen(
        [sys.executable, "-c", VIEWER_CHILD, path, str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(1.5)
    for k in range(rewrites):
        _rewrite(path, versions[1 + k % 2], "rewrite", k)
        time.sleep(0.03)
    try:
        out, err = p.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("the viewer hung")
    assert p.returncode == 0, (p.returncode, err[-2000:])
    counts = json.loads(out.strip().splitlines()[-1])
    print("viewer", counts)
    assert counts["other"] == [], counts
    assert counts["steps"] > 0 and counts["opened"] > 1, counts
