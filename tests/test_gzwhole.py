"""Whole-stream gzip reads (nilazyview.gzwhole): strided planes, spill files, bad streams.

numpy indexing of the array written is the oracle.
"""

from __future__ import annotations

import gzip
import os
import stat
import threading

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv
from nilazyview.errors import ImageFileError, TruncatedDataError
from nilazyview.sources import gzindex, gzstream, gzwhole

SHAPE = (40, 36, 50)


@pytest.fixture(autouse=True)
def private_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("NILAZYVIEW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NILAZYVIEW_TMPDIR", str(tmp_path / "spill"))
    monkeypatch.setenv("NILAZYVIEW_GZINDEX_SPACING", str(64 * 1024))
    monkeypatch.delenv("NILAZYVIEW_GZ_MEMORY_BYTES", raising=False)
    (tmp_path / "spill").mkdir()
    gzindex.reset_state()
    yield
    gzindex.reset_state()


def write_gz(path, shape=SHAPE, dtype=np.float32, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = (rng.standard_normal(shape) * 100).astype(dtype)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return data


STRIDED = [
    (20, slice(None), slice(None)),
    (slice(None), 17, slice(None)),
    (0, slice(None), slice(None)),
    (-1, slice(None, None, -2), slice(3, 40, 5)),
    (slice(None), -1, slice(None)),
    (slice(None, None, 3), slice(None), 7),
]


@pytest.mark.parametrize("budget", [None, "0"])
def test_strided_planes_match_numpy(tmp_path, monkeypatch, budget):
    if budget is not None:
        monkeypatch.setenv("NILAZYVIEW_GZ_MEMORY_BYTES", budget)
    path = tmp_path / "vol.nii.gz"
    data = write_gz(path)
    img = nlv.load(path)
    for idx in STRIDED:
        got = img.slicecopy[idx]
        np.testing.assert_array_equal(got, data[idx])
        assert got.shape == data[idx].shape
    whole = img.proxy.source.whole
    assert whole is not None
    assert whole.kind == ("memory" if budget is None else "spill")
    # deep and contiguous reads keep working from the kept stream
    np.testing.assert_array_equal(img.slicecopy[..., 44], data[..., 44])
    np.testing.assert_array_equal(img.get_data(), data)


def test_spill_file_is_private_and_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("NILAZYVIEW_GZ_MEMORY_BYTES", "0")
    path = tmp_path / "vol.nii.gz"
    data = write_gz(path)
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[5, :, :], data[5, :, :])
    whole = img.proxy.source.whole
    assert whole.kind == "spill"
    st = os.fstat(whole.fd)
    assert stat.S_IMODE(st.st_mode) & 0o077 == 0
    assert st.st_nlink == 0  # unlinked right away: nothing can be left behind
    assert st.st_size == img.proxy.layout.offset + img.proxy.layout.nbytes
    assert os.listdir(tmp_path / "spill") == []
    fd = whole.fd
    img.proxy.source.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    # reading again after close decompresses again, correctly
    np.testing.assert_array_equal(img.slicecopy[6, :, :], data[6, :, :])


def test_memory_budget_is_per_process(tmp_path, monkeypatch):
    a_path, b_path = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    a, b = write_gz(a_path, seed=1), write_gz(b_path, seed=2)
    size = 352 + a.nbytes
    monkeypatch.setenv("NILAZYVIEW_GZ_MEMORY_BYTES", str(int(1.5 * size)))
    before = gzwhole.BUDGET.used
    ia, ib = nlv.load(a_path), nlv.load(b_path)
    np.testing.assert_array_equal(ia.slicecopy[3], a[3])
    np.testing.assert_array_equal(ib.slicecopy[3], b[3])
    assert ia.proxy.source.whole.kind == "memory"
    assert ib.proxy.source.whole.kind == "spill"
    ia.proxy.source.close()
    ib.proxy.source.close()
    assert gzwhole.BUDGET.used == before


def test_full_read_streams_without_keeping(tmp_path):
    path = tmp_path / "vol.nii.gz"
    data = write_gz(path, dtype=np.int16)
    img = nlv.load(path)
    n = gzwhole.stats["forward"]
    np.testing.assert_array_equal(img.get_data(), data)
    assert gzwhole.stats["forward"] == n + 1
    assert img.proxy.source.whole is None
    np.testing.assert_array_equal(img.slicecopy[..., 10:45], data[..., 10:45])


def test_scaled_strided_plane(tmp_path):
    data = np.random.default_rng(3).integers(-500, 500, SHAPE).astype(np.int16)
    im = nib.Nifti1Image(data, np.eye(4))
    im.header.set_slope_inter(0.5, -3.0)
    path = tmp_path / "scaled.nii.gz"
    nib.save(im, str(path))
    full = np.asanyarray(nib.load(str(path)).dataobj)
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[7, :, :], full[7, :, :])
    np.testing.assert_array_equal(img.slicecopy[:, 9, :], full[:, 9, :])
    np.testing.assert_array_equal(img.slicecopy.raw[:, 9, :], data[:, 9, :])


def test_concatenated_members(tmp_path):
    data = write_gz(tmp_path / "src.nii.gz")
    raw = gzip.decompress((tmp_path / "src.nii.gz").read_bytes())
    cut = len(raw) // 3
    path = tmp_path / "multi.nii.gz"
    path.write_bytes(gzip.compress(raw[:cut]) + gzip.compress(raw[cut:]))
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[11, :, :], data[11, :, :])
    np.testing.assert_array_equal(img.get_data(), data)


def test_zlib_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(gzstream, "available", lambda: False)  # a core install
    path = tmp_path / "vol.nii.gz"
    data = write_gz(path)
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[:, 3, :], data[:, 3, :])


def _damaged(tmp_path, how: str):
    path = tmp_path / "bad.nii.gz"
    write_gz(path)
    blob = bytearray(path.read_bytes())
    if how == "truncated":
        blob = blob[: len(blob) // 2]
    else:
        mid = len(blob) // 2
        blob[mid : mid + 4096] = b"\xff" * 4096
    path.write_bytes(bytes(blob))
    return path


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
@pytest.mark.parametrize(
    "idx",
    [(20, slice(None), slice(None)), (slice(None), slice(None), 45), Ellipsis],
    ids=["strided", "deep", "full"],
)
def test_bad_stream_names_file_and_offset(tmp_path, how, idx):
    path = _damaged(tmp_path, how)
    img = nlv.load(path)
    with pytest.raises(ImageFileError) as err:
        img.slicecopy[idx]
    msg = str(err.value)
    assert str(path) in msg
    assert "offset" in msg
    if how == "truncated" and idx != (slice(None), slice(None), 45):
        assert isinstance(err.value, TruncatedDataError)


def test_inflate_rejects_non_gzip(tmp_path):
    path = tmp_path / "plain.bin"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(ImageFileError, match="no gzip member"):
        list(gzwhole.inflate(str(path), 10, progress=False))


def test_background_index_build_after_strided_plane(tmp_path):
    path = tmp_path / "vol.nii.gz"
    data = write_gz(path, shape=(64, 64, 64))  # 1 MiB: 16 seek points at 64 KiB
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[30, :, :], data[30, :, :])
    for t in threading.enumerate():
        if t.name == "nilazyview-gzindex":
            t.join(30)
    key = gzindex.IndexKey.of(path)
    assert gzindex.has_index(key)
    # a new image of the file imports it for deep reads
    img2 = nlv.load(path)
    np.testing.assert_array_equal(img2.slicecopy[..., 60], data[..., 60])
    assert img2.proxy.source._handle.imported


def test_pickled_image_does_not_carry_the_stream(tmp_path):
    import pickle

    path = tmp_path / "vol.nii.gz"
    data = write_gz(path)
    img = nlv.load(path)
    img.slicecopy[3, :, :]
    blob = pickle.dumps(img)
    assert len(blob) < 4096
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.slicecopy[4, :, :], data[4, :, :])


def test_stale_file_detected_after_materializing(tmp_path):
    path = tmp_path / "vol.nii.gz"
    write_gz(path)
    img = nlv.load(path)
    img.slicecopy[3, :, :]
    write_gz(path, seed=9)
    with pytest.raises(nlv.StaleFileError):
        img.slicecopy[4, :, :]


def test_no_room_to_spill_falls_back_to_the_index(tmp_path, monkeypatch):
    monkeypatch.setenv("NILAZYVIEW_GZ_MEMORY_BYTES", "0")
    monkeypatch.setattr(gzwhole, "SPILL_RESERVE_BYTES", 2**62)
    monkeypatch.setattr(gzwhole, "_warned_spill", False)
    path = tmp_path / "vol.nii.gz"
    data = write_gz(path)
    img = nlv.load(path)
    with pytest.warns(RuntimeWarning, match="cannot spill"):
        np.testing.assert_array_equal(img.slicecopy[5, :, :], data[5, :, :])
    assert img.proxy.source.whole is None
    np.testing.assert_array_equal(img.slicecopy[:, 6, :], data[:, 6, :])
    assert os.listdir(tmp_path / "spill") == []


def test_forward_stream_restarts_on_backward_reads(tmp_path):
    path = tmp_path / "vol.nii.gz"
    write_gz(path)
    raw = gzip.decompress(path.read_bytes())
    fs = gzwhole.ForwardStream(str(path), len(raw))
    try:
        for off, n in [(1000, 50), (200_000, 3000), (10, 20), (len(raw) - 7, 7)]:
            assert fs.read_bytes(off, n) == raw[off : off + n]
        with pytest.raises(TruncatedDataError):
            fs.read_bytes(len(raw) - 3, 10)
    finally:
        fs.close()
