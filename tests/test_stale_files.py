"""Stale files: reading after the file changed on disk raises StaleFileError, never mixes.

Covered: in-place rewrites (size or mtime differ) on the pread and the mmap
path, gzip, both members of a pair, removal, replacement before the first read,
a swap between the identity check and the open, and saves of a proxied image
whose file changed. Documented and tested: a plain file replaced by rename (or
removed) after its first read keeps reading the loaded version consistently
through the open handle; a gzip file then raises.
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

import nilazyview as nlv
from nilazyview import sources

SHAPE = (64, 72, 40)  # big enough that a first-axis plane is an mmap gather


@pytest.fixture
def arr():
    return np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)


def _bump_mtime(path: str, seconds: float = 5.0) -> None:
    st = os.stat(path)
    ns = st.st_mtime_ns + int(seconds * 1e9)
    os.utime(path, ns=(ns, ns))


def _rewrite_in_place(path: str, data: bytes | None = None) -> None:
    """Overwrite the file's bytes through the same inode (same size unless ``data``)."""
    with open(path, "r+b") as f:
        if data is None:
            f.seek(-64, os.SEEK_END)
            f.write(b"\x7f" * 64)
        else:
            f.write(data)
            f.truncate()
    _bump_mtime(path)  # timestamps are coarse: make the change visible deterministically


def _assert_stale(exc_info, path: str, *words: str) -> None:
    msg = str(exc_info.value)
    assert path in msg
    assert "nilazyview.load(" in msg, msg
    for w in words:
        assert w in msg, msg


def _index_for(img, strategy: str):
    """An index the planner reads with ``strategy`` (the heuristics may be tuned)."""
    for index in [(..., 3), (slice(None), 5), (5, slice(None), 3), (5,), (slice(None, None, 3),)]:
        if img.slicecopy.plan[index].strategy == strategy:
            return index
    raise AssertionError(f"no index read by {strategy}")


@pytest.mark.parametrize("strategy", ["pread", "mmap"])
def test_in_place_rewrite_same_size(tmp_path, arr, strategy):
    path = str(tmp_path / "a.nii")
    nlv.save(nlv.Image(arr), path)
    img = nlv.load(path)
    index = _index_for(img, strategy)
    np.testing.assert_array_equal(img.slicecopy[index], arr[index])  # opens (and maps)
    _rewrite_in_place(path)
    with pytest.raises(nlv.StaleFileError) as info:
        img.slicecopy[index]
    _assert_stale(info, path, "mtime now")
    assert "size" not in str(info.value).split("(")[1].split(")")[0]  # only mtime changed
    with pytest.raises(nlv.StaleFileError):
        img.get_data()
    assert img.is_proxy


def test_size_change_is_named(tmp_path, arr):
    path = str(tmp_path / "a.nii")
    nlv.save(nlv.Image(arr), path)
    size = os.path.getsize(path)
    img = nlv.load(path)
    img.slicecopy[0]
    with open(path, "ab") as f:
        f.write(b"\0" * 100)
    with pytest.raises(nlv.StaleFileError) as info:
        img.slicecopy[0]
    _assert_stale(info, path, f"size {size} -> {size + 100} bytes")
    with open(path, "r+b") as f:
        f.truncate(size - 100)  # truncated under a mapping: caught before touching it
    with pytest.raises(nlv.StaleFileError):
        img.slicecopy[_index_for(img, "mmap")]


def test_gzip_in_place_rewrite(tmp_path, arr):
    path = str(tmp_path / "a.nii.gz")
    nlv.save(nlv.Image(arr), path)
    img = nlv.load(path)
    img.slicecopy[..., 1]
    data = open(path, "rb").read()
    other = gzip.compress(gzip.decompress(data)[:-64] + b"\x7f" * 64)
    _rewrite_in_place(path, other)
    with pytest.raises(nlv.StaleFileError) as info:
        img.slicecopy[..., 1]
    _assert_stale(info, path)


def test_gzip_replaced_or_removed_after_first_read(tmp_path, arr):
    path = str(tmp_path / "a.nii.gz")
    nlv.save(nlv.Image(arr), path)
    img = nlv.load(path)
    img.slicecopy[..., 1]
    nlv.save(nlv.Image(arr + 1), str(tmp_path / "b.nii.gz"))
    os.replace(tmp_path / "b.nii.gz", path)
    with pytest.raises(nlv.StaleFileError) as info:
        img.slicecopy[..., 1]
    _assert_stale(info, path)
    os.remove(path)
    with pytest.raises(nlv.StaleFileError) as info:
        img.slicecopy[..., 1]
    _assert_stale(info, path, "removed")


def test_plain_file_replaced_by_rename_after_first_read_reads_old_version(tmp_path, arr):
    """Documented: the open handle keeps the loaded inode; data and header stay consistent."""
    path = str(tmp_path / "a.nii")
    nlv.save(nlv.Image(arr), path)
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[..., 2], arr[..., 2])
    nlv.save(nlv.Image(arr * 2), str(tmp_path / "b.nii"))
    os.replace(tmp_path / "b.nii", path)  # e.g. nlv.save(...) over it by another program
    np.testing.assert_array_equal(img.slicecopy[..., 3], arr[..., 3])  # the loaded version
    mm = _index_for(img, "mmap")
    np.testing.assert_array_equal(img.slicecopy[mm], arr[mm])  # the mmap path too
    os.remove(path)
    np.testing.assert_array_equal(img.get_data(), arr)
    # but the hand-off sees the file is not the one loaded any more
    img.dirty = False
    assert nlv.as_file(img).is_temporary


def test_replaced_before_first_read(tmp_path, arr):
    path = str(tmp_path / "a.nii")
    nlv.save(nlv.Image(arr), path)
    img = nlv.load(path)
    img.proxy.source.close()  # loading read the header: start from a closed handle
    nlv.save(nlv.Image(arr * 2), str(tmp_path / "b.nii"))
    os.replace(tmp_path / "b.nii", path)
    with pytest.raises(nlv.StaleFileError) as info:
        img.slicecopy[0]
    _assert_stale(info, path, "replaced by another file")


def test_removed_before_first_read(tmp_path, arr):
    path = str(tmp_path / "a.nii")
    nlv.save(nlv.Image(arr), path)
    img = nlv.load(path)
    img.proxy.source.close()
    os.remove(path)
    with pytest.raises(nlv.StaleFileError) as info:
        img.slicecopy[0]
    _assert_stale(info, path, "removed")


def test_swap_between_check_and_open(tmp_path, arr, monkeypatch):
    """The opened file itself is checked (fstat), closing the stat-then-open race."""
    path = str(tmp_path / "a.nii")
    nlv.save(nlv.Image(arr), path)
    img = nlv.load(path)
    src = img.proxy.source
    src.close()
    nlv.save(nlv.Image(arr * 2), str(tmp_path / "b.nii"))
    real_open = sources.FileSource._open

    def swap_then_open(self):
        os.replace(tmp_path / "b.nii", path)  # after check_identity, before os.open
        return real_open(self)

    monkeypatch.setattr(sources.FileSource, "_open", swap_then_open)
    with pytest.raises(nlv.StaleFileError, match="new inode"):
        img.slicecopy[0]
    assert src._handle is None  # the wrong file was closed again


@pytest.mark.parametrize("member", ["header", "image"])
@pytest.mark.parametrize("ext", [".hdr", ".hdr.gz"])
def test_pair_member_changed(tmp_path, arr, member, ext):
    path = str(tmp_path / ("p" + ext))
    nlv.save(nlv.Image(arr), path)
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[..., 1], arr[..., 1])
    changed = img.files[member]
    if member == "header":  # e.g. another tool edited the datatype or the dims
        other = nlv.load(path)
        other.header["descrip"] = b"edited elsewhere"
        nlv.save(other, str(tmp_path / ("q" + ext)))
        os.replace(other_header(tmp_path, ext), changed)
        _bump_mtime(changed)
    else:
        _rewrite_in_place(
            changed, gzip.compress(b"\0" * arr.nbytes) if ext.endswith("gz") else None
        )
    with pytest.raises(nlv.StaleFileError) as info:
        img.slicecopy[..., 1]
    _assert_stale(info, changed, "header file" if member == "header" else "file changed")


def other_header(tmp_path, ext: str) -> str:
    return str(tmp_path / ("q" + ext))


def test_save_of_changed_proxy_fails_and_keeps_target(tmp_path, arr):
    path = str(tmp_path / "a.nii")
    out = str(tmp_path / "out.nii")
    nlv.save(nlv.Image(arr), path)
    nlv.save(nlv.Image(arr), out)
    before = open(out, "rb").read()
    img = nlv.load(path)
    img.slicecopy[0]
    _rewrite_in_place(path)
    with pytest.raises(nlv.StaleFileError):
        nlv.save(img, out)
    assert open(out, "rb").read() == before
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".nlv-partial")]


def test_pickled_proxy_of_pair_checks_header(tmp_path, arr):
    import pickle

    path = str(tmp_path / "p.hdr")
    nlv.save(nlv.Image(arr), path)
    img = nlv.load(path)
    img.header["descrip"] = b"edited"  # not clean: the proxy itself travels
    clone = pickle.loads(pickle.dumps(img))
    np.testing.assert_array_equal(clone.slicecopy[..., 0], arr[..., 0])
    _bump_mtime(path)
    with pytest.raises(nlv.StaleFileError, match="header file"):
        clone.slicecopy[..., 0]
