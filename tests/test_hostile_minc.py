"""Hostile and damaged MINC2 files (issue 16, items 4, 6 and 8).

* External or virtual data is refused unless trusted (``NILAZYVIEW_MINC_EXTERNAL=1``):
  a 9 KB ``.mnc`` naming ``/etc/passwd`` read it as voxels on main, and a FIFO
  named there hung the reader.
* Byte-flipped files raise only ``ImageFileError`` (main: ``RuntimeError`` from the
  format probe for 294 of 12,000), and ``nilazyview info`` exits 2 on them.
* A chunked or compressed image is re-checked on every read: truncated or
  rewritten, it raises ``StaleFileError`` (main: zeros or the new values).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nilazyview as nlv

h5py = pytest.importorskip("h5py")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(nlv.__file__)))
SLOW = bool(os.environ.get("NLV_SLOW"))
FLIPS = 12000 if SLOW else 600


def _write(path, data, external=None, chunked=False, virtual_from=None):
    names = ["zspace", "yspace", "xspace"]
    with h5py.File(path, "w") as f:
        dims = f.create_group("minc-2.0/dimensions")
        for i, name in enumerate(names):
            d = dims.create_dataset(name, data=0)
            d.attrs["spacing"] = np.bytes_(b"regular__")
            d.attrs["step"] = np.float64(1.0 + i)
            d.attrs["start"] = np.float64(0.0)
        grp = f.create_group("minc-2.0/image/0")
        if external is not None:
            img = grp.create_dataset(
                "image", shape=data.shape, dtype=data.dtype, external=[(external, 0, 2**20)]
            )
        elif virtual_from is not None:
            layout = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
            layout[:] = h5py.VirtualSource(virtual_from, "minc-2.0/image/0/image", data.shape)
            img = grp.create_virtual_dataset("image", layout)
        else:
            kw = {"chunks": (2, 4, 4), "compression": "gzip"} if chunked else {}
            img = grp.create_dataset("image", data=data, **kw)
        img.attrs["dimorder"] = np.bytes_(",".join(names).encode())
        grp.create_dataset("image-min", data=0.0)
        grp.create_dataset("image-max", data=1.0)


def _data():
    return np.arange(6 * 8 * 10, dtype=np.float32).reshape(6, 8, 10)


@pytest.fixture(autouse=True)
def _untrusted(monkeypatch):
    monkeypatch.delenv("NILAZYVIEW_MINC_EXTERNAL", raising=False)


def test_external_data_naming_a_host_file_is_refused(tmp_path, monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 100)
    path = str(tmp_path / "ext.mnc")
    _write(path, _data().astype(np.uint8), external=str(secret))
    with pytest.raises(nlv.ImageFileError, match=r"external file.*NILAZYVIEW_MINC_EXTERNAL=1"):
        nlv.load(path)
    monkeypatch.setenv("NILAZYVIEW_MINC_EXTERNAL", "1")  # trusted: read
    img = nlv.load(path)
    assert bytes(np.asarray(img.slicecopy.raw[0], np.uint8).ravel()[:4]) == b"root"


def test_external_fifo_is_refused_without_hanging(tmp_path):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    path = str(tmp_path / "fifo.mnc")
    _write(path, _data(), external=fifo)
    code = textwrap.dedent(
        """
        import sys, nilazyview as nlv
        try:
            nlv.load(sys.argv[1]).slicecopy[0]
        except nlv.ImageFileError as exc:
            print(type(exc).__name__, exc)
        """
    )
    for trusted in ("", "1"):
        env = dict(os.environ, PYTHONPATH=REPO, NILAZYVIEW_MINC_EXTERNAL=trusted)
        res = subprocess.run(
            [sys.executable, "-c", code, path], capture_output=True, text=True, env=env, timeout=60
        )
        assert res.returncode == 0, res.stderr
        assert "Error" in res.stdout
        assert ("not a regular file" in res.stdout) == bool(trusted)


def test_virtual_dataset_is_refused(tmp_path):
    src = str(tmp_path / "src.mnc")
    _write(src, _data())
    path = str(tmp_path / "virtual.mnc")
    _write(path, _data(), virtual_from=src)
    with pytest.raises(nlv.ImageFileError, match="virtual dataset"):
        nlv.load(path)


@pytest.mark.parametrize("change", ["truncate", "rewrite"])
def test_chunked_image_is_rechecked_on_every_read(tmp_path, change):
    path = str(tmp_path / "chunked.mnc")
    data = _data()
    _write(path, data, chunked=True)
    img = nlv.load(path)
    np.testing.assert_allclose(img.slicecopy[2], nlv.load(path).slicecopy[2])
    before = np.asarray(img.slicecopy[3])
    if change == "truncate":
        os.truncate(path, os.path.getsize(path) // 2)
    else:
        other = str(tmp_path / "other.mnc")
        _write(other, data + 100, chunked=True)
        with open(other, "rb") as f, open(path, "r+b") as g:
            g.write(f.read())  # in place, as a tool re-run over its output
        os.utime(path, ns=(0, 0))  # whatever the clock's granularity: a new mtime
    with pytest.raises(nlv.StaleFileError):
        img.slicecopy[3]
    assert before.shape == (8, 10)


FLIP_CHILD = textwrap.dedent(
    """
    import json, os, random, sys, tempfile
    import nilazyview as nlv
    src, n, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    blob = open(src, "rb").read()
    rng = random.Random(16)
    counts = {}
    escapes = []
    path = os.path.join(folder, "flip.mnc")
    for i in range(n):
        b = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        with open(path, "wb") as f:
            f.write(b)
        try:
            img = nlv.load(path)
            img.slicecopy[1]
            img.get_data()
            kind = "read"
        except nlv.ImageFileError as exc:
            kind = type(exc).__name__
        except Exception as exc:
            kind = "escape:" + type(exc).__name__
            if len(escapes) < 3:
                escapes.append(bytes(b).hex())
        counts[kind] = counts.get(kind, 0) + 1
    print(json.dumps({"counts": counts, "escapes": escapes}))
    """
)


def test_byte_flipped_files_raise_only_image_file_errors(tmp_path):
    src = str(tmp_path / "src.mnc")
    _write(src, _data(), chunked=False)
    env = dict(os.environ, PYTHONPATH=REPO)
    res = subprocess.run(
        [sys.executable, "-c", FLIP_CHILD, src, str(FLIPS), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    print(got["counts"])
    escapes = {k: n for k, n in got["counts"].items() if k.startswith("escape")}
    assert not escapes, got
    assert sum(got["counts"].values()) == FLIPS


def _flipped_file_h5py_opens_with_runtime_error(tmp_path):
    """A byte-flipped MINC2 file on which ``h5py.File`` raises ``RuntimeError``."""
    import random

    src = str(tmp_path / "src.mnc")
    _write(src, _data())
    blob = open(src, "rb").read()
    rng = random.Random(16)
    bad = str(tmp_path / "bad.mnc")
    for _ in range(5000):
        b = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        with open(bad, "wb") as f:
            f.write(b)
        try:
            with h5py.File(bad, "r") as f:
                "minc-2.0" in f  # noqa: B015
        except RuntimeError:
            return bad
        except Exception:
            continue
    pytest.skip("no flip made h5py raise RuntimeError")


def test_info_on_a_damaged_hdf5_file_exits_2(tmp_path):
    bad = _flipped_file_h5py_opens_with_runtime_error(tmp_path)
    with pytest.raises(nlv.ImageFileError):
        nlv.load(bad)
    env = dict(os.environ, PYTHONPATH=REPO)
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from nilazyview import cli; sys.exit(cli.main())",
            "info",
            bad,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode == 2, (res.returncode, res.stderr[-1500:])
    assert "Traceback" not in res.stderr
