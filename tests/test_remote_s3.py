"""Remote volumes on S3: a moto server on 127.0.0.1 (a subprocess), read through s3fs."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import time
import urllib.request

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

import nilazyview as nlv

BUCKET = "openneuro-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    port = _free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.skip("moto server did not start")
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def bucket(s3, monkeypatch):
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    opts = {"client_kwargs": {"endpoint_url": s3}, "skip_instance_cache": True}
    fs = s3fs.S3FileSystem(**opts)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    return fs, opts


def _put(fs, name: str, a: np.ndarray) -> None:
    with fs.open(f"{BUCKET}/{name}", "wb") as f:
        f.write(nib.Nifti1Image(a, np.eye(4)).to_bytes())


def test_s3_slabs_read_through_s3fs(bucket):
    fs, opts = bucket
    a = np.arange(64 * 64 * 64, dtype=np.float32).reshape((64,) * 3, order="F")
    _put(fs, "sub-01/anat.nii", a)
    img = nlv.load(f"s3://{BUCKET}/sub-01/anat.nii", storage_options=opts)
    assert img.shape == a.shape
    assert np.array_equal(img.slicecopy[:, :, 10], a[:, :, 10])
    assert np.array_equal(img.slicecopy[:, 20, :], a[:, 20, :])
    src = img.proxy.source
    # runs 16 KiB apart coalesce (a gap costs less than a round trip): a few requests
    assert src.stats["requests"] <= 4 and src.stats["bytes"] <= a.nbytes + 64 * 1024
    blob = pickle.dumps(img)
    assert len(blob) < 4096 and b"testing" not in blob
    back = pickle.loads(blob)
    assert np.array_equal(back.slicecopy[:, :, 11], a[:, :, 11])


def test_s3_gzip(bucket):
    import gzip

    fs, opts = bucket
    a = np.arange(48**3, dtype=np.int16).reshape((48,) * 3)
    with fs.open(f"{BUCKET}/c.nii.gz", "wb") as f:
        f.write(gzip.compress(nib.Nifti1Image(a, np.eye(4)).to_bytes()))
    img = nlv.load(f"s3://{BUCKET}/c.nii.gz", storage_options=opts)
    assert img.proxy.source.compressed
    assert np.array_equal(img.slicecopy[:, 30, :], a[:, 30, :])


def test_s3_changed_object_is_stale_and_missing_is_clear(bucket):
    fs, opts = bucket
    a = np.arange(32**3, dtype=np.int16).reshape((32,) * 3)
    _put(fs, "b.nii", a)
    img = nlv.load(f"s3://{BUCKET}/b.nii", storage_options=opts)
    img.slicecopy[:, :, 0]
    _put(fs, "b.nii", a + 1)
    with pytest.raises(nlv.StaleFileError):
        img.slicecopy[:, :, 5]
    with pytest.raises(FileNotFoundError, match="no such file"):
        nlv.load(f"s3://{BUCKET}/nothing.nii", storage_options=opts)
