"""Concurrent readers: many threads slicing one proxy give exactly the serial results.

Plain files are read with ``os.preadv`` (no file position) or gathered from a
read-only memory map; neither takes the source's lock once the file is open.
gzip sources serialise their seek+read under a lock (one decompressor).
"""

from __future__ import annotations

import os
import random
import threading

import numpy as np
import pytest

import nilazyview as nlv

N_THREADS = 10
ROUNDS = 3
SHAPE = (64, 72, 40, 2)


def _indices(shape, n: int, seed: int) -> list:
    rng = random.Random(seed)
    out = [
        (..., 3, 1),  # a last-axes plane: one contiguous run (pread)
        (5,),  # a first-axis plane: thousands of 2-byte runs (mmap gather)
        (slice(None, None, -1), 7),
        (slice(3, 60, 5), slice(None), -1),
        (Ellipsis, slice(2, 30, 3), 0),
        (slice(None), slice(None), slice(None), slice(None)),
        (0, 0, 0, None),
    ]
    while len(out) < n:
        idx = []
        for size in shape:
            kind = rng.random()
            if kind < 0.3:
                idx.append(rng.randrange(-size, size))
            elif kind < 0.8:
                a, b = rng.randrange(-size - 2, size + 2), rng.randrange(-size - 2, size + 2)
                idx.append(slice(a, b, rng.choice([1, 1, 2, 3, -1, -2])))
            else:
                idx.append(slice(None))
        if rng.random() < 0.3:
            idx.insert(rng.randrange(len(idx) + 1), None)
        out.append(tuple(idx))
    return out


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(7)
    return rng.integers(-2000, 2000, SHAPE).astype(np.int16)


@pytest.fixture(scope="module", params=["nii", "nii.gz", "hdr", "scaled.nii"])
def image_file(request, volume, tmp_path_factory):
    folder = tmp_path_factory.mktemp("conc")
    kind = request.param
    path = str(folder / ("img." + kind.replace("scaled.", "")))
    nlv.save(nlv.Image(volume, np.eye(4)), path)
    expected = volume
    if kind == "scaled.nii":  # stored int16, read scaled to float32
        img = nlv.load(path)
        head = bytearray(open(path, "rb").read())
        np.frombuffer(head, "<f4", count=2, offset=112)[:] = (0.5, -3.0)  # scl_slope, inter
        open(path, "wb").write(bytes(head))
        expected = volume.astype(np.float32) * np.float32(0.5) - np.float32(3.0)
        del img
    return path, expected


class CountingLock:
    """Wraps a lock and counts acquisitions."""

    def __init__(self, lock):
        self._lock = lock
        self.count = 0

    def __enter__(self):
        self.count += 1
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    def acquire(self, *a, **k):
        self.count += 1
        return self._lock.acquire(*a, **k)

    def release(self):
        return self._lock.release()


def test_threads_match_serial(image_file):
    path, expected = image_file
    img = nlv.load(path)
    gz = path.endswith(".gz")
    # a gzip seek backwards decompresses from the start: fewer reads keep the test short
    indices = _indices(img.shape, 24 if gz else 60, seed=3)
    rounds = 1 if gz else ROUNDS
    serial = [img.slicecopy[idx] for idx in indices]  # also opens the file and the map
    for idx, got in zip(indices, serial, strict=True):
        np.testing.assert_array_equal(got, expected[idx])
        assert got.dtype == expected.dtype
    source = img.proxy.source
    strategies = {img.slicecopy.plan[idx].strategy for idx in indices}
    if path.endswith(".gz"):
        assert strategies >= {"pread"}
    else:  # both plain-file paths are exercised
        assert strategies >= {"pread", "mmap"}
        counter = CountingLock(source._lock)
        source._lock = counter

    barrier = threading.Barrier(N_THREADS)
    errors: list[BaseException] = []
    mismatches: list[tuple] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        order = list(range(len(indices)))
        try:
            barrier.wait()
            for _ in range(rounds):
                rng.shuffle(order)
                for k in order:
                    got = img.slicecopy[indices[k]]
                    if got.dtype != serial[k].dtype or got.tobytes() != serial[k].tobytes():
                        mismatches.append((seed, indices[k]))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert not mismatches, mismatches[:5]
    assert img.is_proxy and not img.dirty
    if not path.endswith(".gz"):
        # no shared file position: preadv never moves it, and nobody seeks
        assert os.lseek(source._handle, 0, os.SEEK_CUR) == 0
        # and no lock is taken per read once the file (and its map) are open
        assert counter.count == 0, f"{counter.count} lock acquisitions for reads"


def test_threads_first_read_races_the_open(image_file):
    """Threads that race to open the file (and its map) still agree with numpy."""
    path, expected = image_file
    for _ in range(3):
        img = nlv.load(path)
        barrier = threading.Barrier(N_THREADS)
        results: dict[int, np.ndarray] = {}

        def work(k: int, img=img, barrier=barrier, results=results) -> None:
            barrier.wait()
            results[k] = img.slicecopy[k % img.shape[0]] if k % 2 else img.slicecopy[..., 1]

        threads = [threading.Thread(target=work, args=(k,)) for k in range(N_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(results) == N_THREADS
        for k, got in results.items():
            want = expected[k % expected.shape[0]] if k % 2 else expected[..., 1]
            np.testing.assert_array_equal(got, want)


def test_threads_with_persisted_gzip_index(tmp_path, monkeypatch):
    """gzip with an index imported from the cache: threads agree with serial and numpy."""
    pytest.importorskip("rapidgzip")
    from nilazyview.sources import gzindex

    monkeypatch.setenv("NILAZYVIEW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NILAZYVIEW_GZINDEX_SPACING", str(64 * 1024))
    gzindex.reset_state()
    data = np.random.default_rng(2).standard_normal((64, 64, 96), dtype=np.float32)
    path = str(tmp_path / "vol.nii.gz")
    nlv.save(nlv.Image(data), path)
    first = nlv.load(path)
    first.slicecopy[..., 95]  # decompresses to the end: the index is built and saved
    first.proxy.source.close()
    assert gzindex.stats["exports"] >= 1
    img = nlv.load(path)
    # planes and lines: each touches little of the stream (no whole-stream decompression)
    indices = [(..., k) for k in range(0, 96, 7)] + [(k, slice(None), 50) for k in (3, 40)]
    serial = [img.slicecopy[idx] for idx in indices]
    assert img.proxy.source._handle.imported and img.proxy.source.whole is None
    for idx, got in zip(indices, serial, strict=True):
        np.testing.assert_array_equal(got, data[idx])
    errors: list[BaseException] = []
    mismatches: list = []
    barrier = threading.Barrier(N_THREADS)

    def work(seed: int) -> None:
        order = list(range(len(indices)))
        random.Random(seed).shuffle(order)
        try:
            barrier.wait()
            for k in order:
                if img.slicecopy[indices[k]].tobytes() != serial[k].tobytes():
                    mismatches.append(indices[k])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not mismatches, (errors[:3], mismatches[:3])
    assert gzindex.stats["imports"] == 1
    gzindex.reset_state()
