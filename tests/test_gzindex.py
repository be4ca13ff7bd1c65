"""Persisted gzip seek-point indexes (nilazyview.gzindex).

Small files with a small seek-point spacing (64 KiB) stand in for big ones:
the code paths are the same. Reuse across processes is checked in real
subprocesses, which report nilazyview's counters (``gzindex.stats``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv
from nilazyview.sources import gzindex

pytest.importorskip("rapidgzip")

SPACING = 64 * 1024
SHAPE = (64, 64, 96)  # 1.5 MiB of float32: ~24 seek points


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder and spacing; counters and the failure latch reset."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NILAZYVIEW_CACHE_DIR", str(folder))
    monkeypatch.setenv("NILAZYVIEW_GZINDEX_SPACING", str(SPACING))
    monkeypatch.delenv("NILAZYVIEW_GZINDEX_MAX_BYTES", raising=False)
    gzindex.reset_state()
    yield folder / "gzindex"
    gzindex.reset_state()


def write_gz(path, seed=0, shape=SHAPE) -> np.ndarray:
    data = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return data


CHILD = r"""
import json, sys
import numpy as np
import nilazyview as nlv
from nilazyview.sources import gzindex
path, k = sys.argv[1], int(sys.argv[2])
img = nlv.load(path)
a = img.slicecopy[:, :, k]
src = img.proxy.source
handle = src._handle
np.save(sys.argv[3], a)
points = handle.npoints if handle is not None else 0
img.proxy.source.close()
print(json.dumps({"stats": gzindex.stats, "npoints": points}))
"""


def run_child(path, k, tmp_path):
    out = tmp_path / f"slice{k}.npy"
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(k), str(out)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout.strip().splitlines()[-1])
    return np.load(out), info


def test_index_persisted_and_imported_by_another_process(cache, tmp_path):
    path = tmp_path / "vol.nii.gz"
    data = write_gz(path)
    a, first = run_child(path, 90, tmp_path)
    np.testing.assert_array_equal(a, data[:, :, 90])
    assert first["stats"]["imports"] == 0
    assert first["stats"]["exports"] >= 1
    files = list(cache.glob("*.gzidx"))
    assert len(files) == 1
    assert oct(files[0].stat().st_mode & 0o777) == oct(0o600)
    # the user's folder holds nothing new
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "slice90.npy",
        "vol.nii.gz",
    ]
    b, second = run_child(path, 85, tmp_path)  # inside what the index covers
    np.testing.assert_array_equal(b, data[:, :, 85])
    assert second["stats"]["imports"] == 1
    assert second["stats"]["exports"] == 0  # nothing new to save: not rebuilt
    assert second["npoints"] >= first["npoints"] - 1


def test_deep_read_in_process_saves_and_reuses(cache, tmp_path):
    path = tmp_path / "vol.nii.gz"
    data = write_gz(path)
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[:, :, 80], data[:, :, 80])
    assert gzindex.stats["exports"] == 1
    img.proxy.source.close()
    img2 = nlv.load(path)
    np.testing.assert_array_equal(img2.slicecopy[:, :, 70], data[:, :, 70])
    np.testing.assert_array_equal(img2.slicecopy[:, :, 95], data[:, :, 95])
    assert gzindex.stats["imports"] == 1


def test_stale_index_is_rebuilt(cache, tmp_path):
    path = tmp_path / "vol.nii.gz"
    write_gz(path, seed=0)
    run_child(path, 90, tmp_path)
    (index_file,) = cache.glob("*.gzidx")
    old_key = gzindex.read_meta(index_file)["key"]
    data = write_gz(path, seed=1)  # same path, new content
    a, info = run_child(path, 91, tmp_path)
    np.testing.assert_array_equal(a, data[:, :, 91])
    assert info["stats"]["stale"] == 1
    assert info["stats"]["imports"] == 0
    assert info["stats"]["exports"] >= 1
    new_key = gzindex.read_meta(index_file)["key"]
    assert new_key != old_key


def test_same_size_and_mtime_but_new_content_is_stale(cache, tmp_path):
    path = tmp_path / "vol.nii.gz"
    write_gz(path, seed=0)
    img = nlv.load(path)
    img.slicecopy[:, :, 90]
    img.proxy.source.close()
    st = path.stat()
    raw = bytearray(path.read_bytes())
    raw[200] ^= 0xFF  # new content in the first 64 KiB, size and mtime kept
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    key = gzindex.IndexKey.of(path)
    assert not gzindex.has_index(key)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_corrupt_index_is_rebuilt(cache, tmp_path, damage):
    path = tmp_path / "vol.nii.gz"
    data = write_gz(path)
    run_child(path, 90, tmp_path)
    (index_file,) = cache.glob("*.gzidx")
    blob = bytearray(index_file.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x55  # inside a seek point's window: import would succeed
    elif damage == "truncate":
        blob = blob[: len(blob) // 3]
    else:
        blob = bytearray(b"not an index at all" * 10)
    index_file.write_bytes(bytes(blob))
    a, info = run_child(path, 92, tmp_path)
    np.testing.assert_array_equal(a, data[:, :, 92])
    assert info["stats"]["corrupt"] == 1
    assert info["stats"]["imports"] == 0
    assert info["stats"]["exports"] >= 1
    b, again = run_child(path, 94, tmp_path)
    np.testing.assert_array_equal(b, data[:, :, 94])
    assert again["stats"]["imports"] == 1


def test_unwritable_cache_warns_once_and_reads_correctly(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("NILAZYVIEW_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setenv("NILAZYVIEW_GZINDEX_SPACING", str(SPACING))
    gzindex.reset_state()
    paths = [tmp_path / f"v{i}.nii.gz" for i in range(2)]
    datas = [write_gz(p, seed=i) for i, p in enumerate(paths)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for p, d in zip(paths, datas, strict=True):
            img = nlv.load(p)
            for k in (90, 60, 95):
                np.testing.assert_array_equal(img.slicecopy[:, :, k], d[:, :, k])
            img.proxy.source.close()
    ours = [w for w in caught if "gzip indexes" in str(w.message)]
    assert len(ours) == 1
    assert issubclass(ours[0].category, RuntimeWarning)
    assert not gzindex.persisting()
    gzindex.reset_state()


def test_full_cache_folder_warns_once(cache, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gzindex.tempfile, "mkstemp", full)
    path = tmp_path / "vol.nii.gz"
    data = write_gz(path)
    with pytest.warns(RuntimeWarning, match="No space left") as rec:
        img = nlv.load(path)
        np.testing.assert_array_equal(img.slicecopy[:, :, 90], data[:, :, 90])
        np.testing.assert_array_equal(img.slicecopy[:, :, 10], data[:, :, 10])
        img.proxy.source.close()
    assert len([w for w in rec if "gzip indexes" in str(w.message)]) == 1
    assert not list(cache.glob("*"))


def test_missing_cache_folder_is_created_private(cache, tmp_path):
    assert not cache.exists()
    path = tmp_path / "vol.nii.gz"
    write_gz(path)
    img = nlv.load(path)
    img.slicecopy[:, :, 90]
    assert cache.is_dir()
    assert cache.stat().st_mode & 0o077 == 0


def test_lru_bound_respected(cache, tmp_path, monkeypatch):
    paths = [tmp_path / f"v{i}.nii.gz" for i in range(4)]
    for i, p in enumerate(paths):
        write_gz(p, seed=i)
    img = nlv.load(paths[0])
    img.slicecopy[:, :, 90]
    one = gzindex.cached_bytes()
    assert one > 0
    monkeypatch.setenv("NILAZYVIEW_GZINDEX_MAX_BYTES", str(int(2.5 * one)))
    for p in paths[1:]:
        img = nlv.load(p)
        img.slicecopy[:, :, 90]
        assert gzindex.cached_bytes() <= 2.5 * one
    assert gzindex.stats["evictions"] >= 1
    kept = {f.name for f in cache.glob("*.gzidx")}
    assert gzindex.IndexKey.of(paths[-1]).filename in kept
    assert gzindex.IndexKey.of(paths[0]).filename not in kept


def test_recently_used_index_survives_eviction(cache, tmp_path, monkeypatch):
    paths = [tmp_path / f"v{i}.nii.gz" for i in range(3)]
    for i, p in enumerate(paths):
        write_gz(p, seed=i)
    for p in paths[:2]:
        nlv.load(p).slicecopy[:, :, 90]
    one = gzindex.cached_bytes() // 2
    # use the oldest again: its mtime is bumped, so the other one goes
    old = os.path.getmtime(cache / gzindex.IndexKey.of(paths[0]).filename)
    os.utime(cache / gzindex.IndexKey.of(paths[1]).filename, (old - 10, old - 10))
    nlv.load(paths[0]).slicecopy[:, :, 91]
    monkeypatch.setenv("NILAZYVIEW_GZINDEX_MAX_BYTES", str(int(2.5 * one)))
    nlv.load(paths[2]).slicecopy[:, :, 90]
    kept = {f.name for f in cache.glob("*.gzidx")}
    assert gzindex.IndexKey.of(paths[0]).filename in kept
    assert gzindex.IndexKey.of(paths[1]).filename not in kept


def test_zero_bound_persists_nothing(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("NILAZYVIEW_GZINDEX_MAX_BYTES", "0")
    path = tmp_path / "vol.nii.gz"
    data = write_gz(path)
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[:, :, 90], data[:, :, 90])
    img.proxy.source.close()
    assert not cache.exists()


def test_small_files_are_not_persisted(cache, tmp_path):
    path = tmp_path / "small.nii.gz"
    data = write_gz(path, shape=(16, 16, 20))
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[:, :, 19], data[:, :, 19])
    img.proxy.source.close()
    assert not list(cache.glob("*.gzidx")) if cache.exists() else True


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("NILAZYVIEW_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert gzindex.cache_dir() == tmp_path / "nilazyview" / "gzindex"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert gzindex.cache_dir().parts[-3:] == (".cache", "nilazyview", "gzindex")
    monkeypatch.setenv("NILAZYVIEW_CACHE_DIR", str(tmp_path / "x"))
    assert gzindex.cache_dir() == tmp_path / "x" / "gzindex"


def test_partial_index_of_a_killed_process_is_removed_by_the_next_save(cache, tmp_path):
    """A save killed before its rename leaves an owner-tagged partial file; the next
    save in the folder removes it once its process is gone, and never a live one's."""
    from nilazyview.fs import leftovers

    cache.mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    old = time.time() - 60
    killed = cache / f".gzidx.abc123.{leftovers.HOST_TAG}-{dead_pid}{leftovers.PARTIAL_SUFFIX}"
    live = cache / f".gzidx.def456.{leftovers.HOST_TAG}-{os.getpid()}{leftovers.PARTIAL_SUFFIX}"
    other = cache / "notes.txt"
    for f in (killed, live, other):
        f.write_bytes(b"x" * 100)
        os.utime(f, (old, old))
    path = tmp_path / "vol.nii.gz"
    data = write_gz(path)
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[:, :, 80], data[:, :, 80])
    assert gzindex.stats["exports"] == 1
    assert not killed.exists()
    assert live.exists() and other.exists()
    assert len(list(cache.glob("*.gzidx"))) == 1
    img.proxy.source.close()
