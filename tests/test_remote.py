"""Remote volumes over HTTP: a range server on 127.0.0.1 (tests/rangeserver.py) counts bytes.

Acceptance numbers of issue 13 (load, axial and middle-axis slabs, gzip first and
fresh reads) and the faults: dropped bodies, 503s, a file changed between reads,
a wrong Content-Range, 403/404.
"""

from __future__ import annotations

import gzip
import pickle
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv
from nilazyview.errors import RemoteAccessError, RemoteError, RemoteNotFoundError
from nilazyview.sources import URL, gzindex

sys.path.insert(0, str(Path(__file__).parent))
from rangeserver import RangeServer

N = 256
FAST = {"backoff": 0.01, "timeout": 5}


def _nii(a: np.ndarray) -> bytes:
    return nib.Nifti1Image(a, np.diag([2.0, 2.0, 2.0, 1.0])).to_bytes()


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return np.arange(N**3, dtype=np.float32).reshape((N,) * 3, order="F")


@pytest.fixture(scope="module")
def gz_volume() -> np.ndarray:
    x = np.linspace(0, 50, N**3, dtype=np.float32).reshape((N,) * 3, order="F")
    noise = np.random.default_rng(0).integers(0, 64, x.shape, dtype=np.int16)
    return (np.sin(x) * 1000).astype(np.int16) + noise


@pytest.fixture(scope="module")
def files(volume, gz_volume) -> dict[str, bytes]:
    small = np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8)
    return {
        "big.nii": _nii(volume),
        "big.nii.gz": gzip.compress(_nii(gz_volume), compresslevel=1),
        "small.nii": _nii(small),
    }


@pytest.fixture
def server(files, monkeypatch, tmp_path):
    monkeypatch.setenv("NILAZYVIEW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NILAZYVIEW_REMOTE_TIMEOUT", "5")
    gzindex.reset_state()
    with RangeServer(files) as srv:
        yield srv


def test_load_reads_the_header_in_few_requests(server, volume):
    img = nlv.load(server.url("big.nii"))
    assert server.requests <= 4 and server.bytes <= 2**20
    assert img.shape == volume.shape and img.dtype == np.float32
    assert np.allclose(img.affine, np.diag([2.0, 2.0, 2.0, 1.0]))
    assert img.is_proxy and isinstance(img.filename, URL)


def test_axial_slab_reads_about_its_bytes(server, volume):
    img = nlv.load(server.url("big.nii"))
    server.reset()
    out = img.slicecopy[:, :, 137]
    assert np.array_equal(out, volume[:, :, 137])
    slab = N * N * 4
    assert server.bytes <= 1.25 * slab + 128 * 1024


def test_middle_axis_slab_goes_out_concurrently(server, volume):
    img = nlv.load(server.url("big.nii"))
    plan = img.read_plan((slice(None), 77, slice(None)))
    assert "request" in plan.describe() and plan.requests == N
    server.reset()
    server.latency = 0.02
    t0 = time.perf_counter()
    out = img.slicecopy[:, 77, :]
    took = time.perf_counter() - t0
    assert np.array_equal(out, volume[:, 77, :])
    assert server.bytes <= 4 * N * N * 4
    assert took < 1.5, f"{server.requests} requests took {took:.2f} s"


def test_block_cache_serves_a_second_read(server, volume):
    img = nlv.load(server.url("big.nii"))
    img.slicecopy[:, :, 10:12]
    server.reset()
    assert np.array_equal(img.slicecopy[:, :, 11], volume[:, :, 11])
    assert server.requests == 0
    stats = img.proxy.source.stats
    assert stats["requests"] >= 2 and stats["bytes"] >= 2 * N * N * 4


def test_gzip_streams_once_then_a_fresh_reader_fetches_a_span(server, gz_volume):
    size = len(server.files["big.nii.gz"])
    img = nlv.load(server.url("big.nii.gz"))
    assert server.requests <= 4 and server.bytes <= 2**20
    server.reset()
    assert np.array_equal(img.slicecopy[:, :, 230], gz_volume[:, :, 230])
    # rapidgzip re-reads ~13% of the compressed bytes at its chunk boundaries (1.13x on
    # local files); the block cache serves those again (1.17x before it chained
    # consecutive cached extents, 1.01x after)
    assert server.bytes <= 1.15 * size
    img.proxy.source.close()  # saves the index (also done when it grows)
    assert gzindex.stats["exports"] >= 1
    server.reset()
    again = nlv.load(server.url("big.nii.gz"))
    assert np.array_equal(again.slicecopy[:, :, 240], gz_volume[:, :, 240])
    assert gzindex.stats["imports"] == 1
    assert server.bytes <= 0.25 * size


def test_gzip_index_in_a_fresh_process(server, gz_volume, tmp_path):
    import os
    import subprocess

    size = len(server.files["big.nii.gz"])
    nlv.load(server.url("big.nii.gz")).slicecopy[:, :, 230]  # builds and saves the index
    server.reset()
    code = (
        "import sys, numpy as np, nilazyview as nlv; "
        "print(float(nlv.load(sys.argv[1]).slicecopy[:, :, 240].sum()))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, server.url("big.nii.gz")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(nlv.__file__).parents[1])},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert float(res.stdout) == float(gz_volume[:, :, 240].sum(dtype=np.float64))
    assert server.bytes <= 0.25 * size


def test_gzip_index_of_an_old_version_is_never_used(server, gz_volume):
    img = nlv.load(server.url("big.nii.gz"))
    img.slicecopy[:, :, 200]
    img.proxy.source.close()
    server.files["big.nii.gz"] = gzip.compress(_nii(gz_volume[::-1]), compresslevel=1)
    fresh = nlv.load(server.url("big.nii.gz"))
    assert np.array_equal(fresh.slicecopy[:, :, 200], gz_volume[::-1][:, :, 200])
    assert gzindex.stats["imports"] == 0


def test_changed_file_between_two_reads_is_stale(server, volume):
    img = nlv.load(server.url("big.nii"))
    img.slicecopy[:, :, 0]
    server.files["big.nii"] = _nii(volume + 1)
    with pytest.raises(nlv.StaleFileError, match="changed"):
        img.slicecopy[:, :, 99]
    with pytest.raises(nlv.StaleFileError):  # and stays so, without a request
        img.slicecopy[:, :, 0]


def test_dropped_body_and_503s_are_retried(server, volume):
    img = nlv.load(server.url("big.nii"), storage_options=FAST)
    server.faults[:] = ["drop", "503", "503"]
    assert np.array_equal(img.slicecopy[:, :, 5], volume[:, :, 5])
    server.faults[:] = ["bad-range"]
    assert np.array_equal(img.slicecopy[:, :, 6], volume[:, :, 6])


def test_a_stalled_answer_times_out_and_is_retried(server, volume):
    img = nlv.load(server.url("big.nii"), storage_options={"backoff": 0.01, "timeout": 0.3})
    server.faults[:] = ["stall"]
    t0 = time.perf_counter()
    assert np.array_equal(img.slicecopy[:, :, 9], volume[:, :, 9])
    assert time.perf_counter() - t0 < 3


def test_persistent_failures_raise_naming_the_url(server):
    img = nlv.load(server.url("big.nii"), storage_options={**FAST, "retries": 2})
    server.faults[:] = ["503"] * 10
    t0 = time.perf_counter()
    with pytest.raises(RemoteError, match=r"127\.0\.0\.1.*big\.nii.*3 attempts.*503"):
        img.slicecopy[:, :, 7]
    assert time.perf_counter() - t0 < 5
    server.faults[:] = ["bad-range"] * 10
    with pytest.raises(RemoteError, match="Content-Range"):
        img.slicecopy[:, :, 8]


def test_404_and_403_say_so(server):
    with pytest.raises(RemoteNotFoundError, match="404") as info:
        nlv.load(server.url("missing.nii"))
    assert isinstance(info.value, FileNotFoundError)
    server.forbidden.add("small.nii")
    with pytest.raises(RemoteAccessError, match="403"):
        nlv.load(server.url("small.nii"))


def test_a_server_without_ranges_serves_small_files_only(server):
    server.ignore_range = True
    img = nlv.load(server.url("small.nii"))
    assert img.slicecopy[1, 2, 3] == np.arange(336).reshape(6, 7, 8)[1, 2, 3]
    with pytest.raises(RemoteError, match="ignores Range"):
        nlv.load(server.url("big.nii"))


def test_pickles_small_and_without_credentials(server, volume):
    secret = "Bearer s3cr3t-t0ken"
    opts = {"headers": {"Authorization": secret}, **FAST}
    img = nlv.load(server.url("big.nii") + "?sig=abc", storage_options=opts)
    blob = pickle.dumps(img)
    assert len(blob) < 4096 and b"s3cr3t" not in blob
    back = pickle.loads(blob)
    assert np.array_equal(back.slicecopy[:, :, 3], volume[:, :, 3])
    proxy = pickle.loads(pickle.dumps(img.proxy))
    assert np.array_equal(proxy[:, :, 4], volume[:, :, 4])
    assert "sig=abc" not in str(img.filename) and "sig=abc" not in repr(img)


def test_credentials_in_the_url_are_refused():
    with pytest.raises(ValueError, match="storage_options"):
        nlv.load("https://user:pw@example.invalid/a.nii")


def test_get_data_and_dask(server, volume):
    img = nlv.load(server.url("big.nii"))
    pytest.importorskip("dask")
    d = img.to_dask()
    assert np.array_equal(d[:, :, 100:102].compute(scheduler="threads"), volume[:, :, 100:102])
    assert np.array_equal(img.get_data(), volume)


def test_viewer_prefetch_hides_the_latency(server):
    pytest.importorskip("ipywidgets")
    server.latency = 0.02
    v = nlv.view(server.url("big.nii"), prefetch=2)
    assert v._prefetcher.idle(10)
    server.reset()
    t0 = time.perf_counter()
    v.index = v.index + 1  # prefetched: no request, no round trip
    took = time.perf_counter() - t0
    assert server.requests == 0 and "cache hit" in v.io.value
    assert took < 0.5
    v.close()


def test_viewer_on_a_url(server, volume):
    pytest.importorskip("ipywidgets")
    viewer = nlv.view(server.url("big.nii"))
    assert viewer.img.shape == volume.shape and viewer.img.is_proxy
    viewer.index = 40  # a new slab: read through the source
    assert "requests" in viewer.io.value and "transferred" in viewer.io.value
    small = nlv.load(server.url("small.nii"))
    copy = nlv.as_file(small)  # downloaded once into a private temporary file
    assert copy.is_temporary and np.array_equal(nlv.load(copy).get_data(), small.get_data())


def test_cli_info_and_view_on_a_url(server, capsys, tmp_path):
    import json

    from nilazyview import cli

    assert cli.main(["info", "--json", server.url("big.nii.gz")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d[0]["shape"] == [N, N, N] if isinstance(d, list) else d["shape"] == [N, N, N]
    assert cli.main(["info", server.url("missing.nii")]) == 2
    assert "404" in capsys.readouterr().err
    assert cli.main(["view", "--print-only", "--dir", str(tmp_path), server.url("small.nii")]) == 0
    nb = capsys.readouterr().out.strip()
    assert server.url("small.nii") in open(nb).read()


def test_mgz_and_a_local_pair_name_over_http(server, tmp_path):
    a = np.arange(20 * 21 * 22, dtype=np.float32).reshape(20, 21, 22)
    nlv.save(nlv.Image(a), tmp_path / "x.mgz")
    server.files["x.mgz"] = (tmp_path / "x.mgz").read_bytes()
    img = nlv.load(server.url("x.mgz"))
    assert img.proxy.source.compressed
    assert np.array_equal(img.slicecopy[:, 3, :], a[:, 3, :])
    with pytest.raises(nlv.UnsupportedFormatError, match="pairs"):
        nlv.load(server.url("x.hdr"))


def test_extent_cache_is_bounded_lru():
    from nilazyview.sources.remote import ExtentCache

    c = ExtentCache(max_bytes=4000)
    for i in range(10):
        c.put(i * 1000, bytes([i]) * 1000)
    assert c.nbytes <= 4000
    assert c.covered(0, 10) is None and bytes(c.covered(9500, 10)) == bytes([9]) * 10
    assert c.covered(9990, 100).nbytes == 10  # a prefix, when the extent ends first
    c.put(0, b"x" * 2000)  # larger than a quarter of the bound: not kept
    assert c.covered(0, 1) is None


def test_url_shows_no_query_and_pickles_no_secrets():
    u = URL("https://h.example/a.nii.gz?X-Amz-Signature=zz", {"key": "K", "client_kwargs": {}})
    assert str(u) == "https://h.example/a.nii.gz" and "zz" not in repr(u)
    back = pickle.loads(pickle.dumps(u))
    assert back.url == u.url and back.storage_options == {"client_kwargs": {}}


def test_gzip_changed_on_the_server_is_stale(server, gz_volume):
    img = nlv.load(server.url("big.nii.gz"))
    img.slicecopy[:, :, 1]
    server.files["big.nii.gz"] = gzip.compress(_nii(gz_volume + 1), compresslevel=1)
    with pytest.raises(nlv.StaleFileError, match="changed"):
        img.slicecopy[:, :, 250]


def test_disk_block_cache_serves_a_new_reader_and_is_bounded(server, volume, monkeypatch):
    from nilazyview.sources import blockcache

    monkeypatch.setenv("NILAZYVIEW_REMOTE_DISK_CACHE_BYTES", str(4 * 2**20))
    nlv.load(server.url("big.nii")).slicecopy[:, :, 60]
    server.reset()
    again = nlv.load(server.url("big.nii"))
    start = server.requests
    assert np.array_equal(again.slicecopy[:, :, 60], volume[:, :, 60])
    assert server.requests == start  # the slab came from disk
    for k in range(100, 140):  # 10 MiB of slabs through a 4 MiB cache
        again.slicecopy[:, :, k]
    files = [p for d in blockcache.root().iterdir() for p in d.iterdir()]
    assert sum(p.stat().st_size for p in files) <= 4 * 2**20
    server.files["big.nii"] = _nii(volume + 1)  # a new version: its own folder, none reused
    fresh = nlv.load(server.url("big.nii"))
    assert np.array_equal(fresh.slicecopy[:, :, 60], volume[:, :, 60] + 1)
