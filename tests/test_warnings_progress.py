"""Package warnings point at the user's line; progress bars; missing extras; cache folder."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import nilazyview as nlv
from nilazyview.fs import progress
from nilazyview.sources import gzindex


def _caught(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [w for w in caught if issubclass(w.category, nlv.NilazyviewWarning)]


def test_spm_mat_warning_is_a_malformed_file_warning_at_the_callers_line(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    nib = pytest.importorskip("nibabel")
    nib.save(nib.Spm2AnalyzeImage(np.zeros((2, 3, 4), np.int16), np.eye(4)), tmp_path / "a.img")
    scipy_io.savemat(str(tmp_path / "a.mat"), {"other": np.eye(4)}, format="4")
    img, ours = _caught(lambda: nlv.load(tmp_path / "a.hdr"))  # the line the warning names
    line = sys._getframe().f_lineno - 1
    assert img.shape == (2, 3, 4)
    assert len(ours) == 1
    assert issubclass(ours[0].category, nlv.MalformedFileWarning)
    assert (ours[0].filename, ours[0].lineno) == (__file__, line)


def test_cache_warning_names_the_users_line(tmp_path, monkeypatch):
    pytest.importorskip("rapidgzip")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("NILAZYVIEW_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setenv("NILAZYVIEW_GZINDEX_SPACING", str(64 * 2**10))
    gzindex.reset_state()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 2**15, (64, 64, 96), dtype=np.int16)
    path = nlv.save(nlv.Image(data), tmp_path / "v.nii.gz")
    img = nlv.load(path)
    try:
        got, ours = _caught(lambda: (img.slicecopy[:, :, 90], img.proxy.source.close()))
    finally:
        gzindex.reset_state()
    np.testing.assert_array_equal(got[0], data[:, :, 90])
    assert [w.category for w in ours] == [nlv.CacheWarning]
    assert issubclass(nlv.CacheWarning, RuntimeWarning)  # as before: filters keep working
    assert ours[0].filename == __file__


def test_warn_walks_out_of_the_package():
    def inner():
        nlv.errors.warn("hello", nlv.SaveWarning)

    _, ours = _caught(inner)
    assert ours[0].filename == __file__ and ours[0].category is nlv.SaveWarning


def test_missing_extra_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails as if not installed
    with pytest.raises(nlv.MissingExtraError, match=r'pip install "nilazyview\[viewer\]"'):
        nlv.view(np.zeros((2, 3, 4)))
    assert issubclass(nlv.MissingExtraError, ImportError)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r'to_dask\(\) needs dask.* "nilazyview\[dask\]"'):
        nlv.Image(np.zeros(3)).to_dask()
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(nlv.MissingExtraError, match=r'"nilazyview\[nibabel\]"'):
        nlv.Image(np.zeros((2, 2, 2))).to_nibabel()


@pytest.fixture
def shown_at_once(monkeypatch):
    """Bars appear at once (the 1 s delay would need a slow operation)."""
    pytest.importorskip("tqdm")
    monkeypatch.setattr(progress, "DELAY_S", 0)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def test_save_shows_progress_and_tqdm_disable_hides_it(tmp_path, capsys, shown_at_once):
    img = nlv.Image(np.zeros((32, 32, 32), np.float32))
    nlv.save(img, tmp_path / "out.nii.gz")
    err = capsys.readouterr().err
    assert "saving out.nii.gz" in err and "128k" in err.lower()
    nlv.save(img, tmp_path / "quiet.nii.gz")
    assert "saving quiet.nii.gz" in capsys.readouterr().err
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TQDM_DISABLE", "1")
        nlv.save(img, tmp_path / "hidden.nii.gz")
    assert capsys.readouterr().err == ""


def test_bar_waits_a_second_by_default(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    with progress.bar(10, "x") as shown:
        assert shown.delay == 1.0  # tqdm's delay: short operations print nothing


def test_bar_is_a_no_op_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with progress.bar(10, "x") as shown:
        shown.update(5)
    assert isinstance(shown, progress.NoBar)


def test_as_file_copy_shows_progress(tmp_path, capsys, shown_at_once):
    img = nlv.Image(np.ones((16, 16, 16), np.int16))
    with nlv.as_file(img, ext=".nii") as path:
        assert path.is_temporary
    assert "saving" in capsys.readouterr().err


def test_first_deep_gzip_read_shows_progress(tmp_path, capsys, monkeypatch, shown_at_once):
    pytest.importorskip("rapidgzip")
    monkeypatch.setenv("NILAZYVIEW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(gzindex, "PROGRESS_STEP", 2**20)
    # a small spacing keeps one slice a seek (at 4 MiB this 4 MiB file goes whole-stream)
    monkeypatch.setenv("NILAZYVIEW_GZINDEX_SPACING", str(64 * 2**10))
    data = np.arange(64 * 64 * 256, dtype=np.int32).reshape(64, 64, 256)
    path = nlv.save(nlv.Image(data), tmp_path / "deep.nii.gz")
    capsys.readouterr()
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[:, :, 250], data[:, :, 250])
    assert "indexing deep.nii.gz" in capsys.readouterr().err
    np.testing.assert_array_equal(img.slicecopy[:, :, 251], data[:, :, 251])
    assert "indexing" not in capsys.readouterr().err  # decompressed already: no bar


def test_cache_folder_comes_from_platformdirs(monkeypatch, tmp_path):
    platformdirs = pytest.importorskip("platformdirs")
    monkeypatch.delenv("NILAZYVIEW_CACHE_DIR", raising=False)
    seen = {}

    def user_cache_dir(appname, appauthor=None, **kw):
        seen["args"] = (appname, appauthor)
        return str(tmp_path / "platform-cache")

    monkeypatch.setattr(platformdirs, "user_cache_dir", user_cache_dir)
    assert gzindex.cache_dir() == tmp_path / "platform-cache" / "gzindex"
    assert seen["args"] == ("nilazyview", False)
    monkeypatch.setenv("NILAZYVIEW_CACHE_DIR", str(tmp_path / "mine"))
    assert gzindex.cache_dir() == tmp_path / "mine" / "gzindex"


def test_spm_without_scipy_names_the_extra(tmp_path, monkeypatch):
    nib = pytest.importorskip("nibabel")
    nib.save(nib.Spm2AnalyzeImage(np.zeros((2, 3, 4), np.int16), np.eye(4)), tmp_path / "s.img")
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    _, ours = _caught(lambda: nlv.load(tmp_path / "s.hdr"))
    assert [w.category for w in ours] == [nlv.NilazyviewWarning]
    assert 'pip install "nilazyview[spm]"' in str(ours[0].message)
    assert ours[0].filename == __file__
