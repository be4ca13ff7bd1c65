"""The core needs numpy only: load, slice, save and hand off with every extra hidden."""

from __future__ import annotations

import subprocess
import sys
import textwrap

HIDDEN = [
    "scipy", "dask", "distributed", "ipywidgets", "matplotlib", "nibabel", "indexed_gzip",
    "isal", "rapidgzip", "h5py", "tqdm", "ipyevents", "PIL", "fsspec", "aiohttp", "s3fs",
]  # fmt: skip

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, os, sys, tempfile
    HIDDEN = set(sys.argv[1].split(","))

    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HIDDEN:
                raise ImportError(f"{name} hidden for this test")
            return None

    sys.meta_path.insert(0, Hide())
    import numpy as np
    import nilazyview as nlv

    a = np.arange(5 * 6 * 7, dtype="<i2").reshape(5, 6, 7)
    d = tempfile.mkdtemp()
    for ext in (".nii", ".nii.gz", ".hdr"):
        path = os.path.join(d, "x" + ext)
        nlv.save(nlv.Image(a, np.diag([2.0, 2.0, 2.0, 1.0])), path)
        img = nlv.load(path)
        assert np.array_equal(img.slicecopy[:, 2, ::-2], a[:, 2, ::-2]), ext
        assert np.array_equal(img.get_data(), a), ext
        assert nlv.as_file(img).is_temporary, ext  # dirty after get_data
    try:  # a URL fsspec serves: the error names the extra
        nlv.load("s3://bucket/x.nii")
        raise AssertionError("s3:// loaded without fsspec")
    except ImportError as exc:
        assert 'pip install "nilazyview[remote]"' in str(exc), exc
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)
    assert not loaded, loaded
    print("core ok")
    """
)


def test_core_runs_with_numpy_only():
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(HIDDEN)], capture_output=True, text=True
    )
    assert res.returncode == 0 and "core ok" in res.stdout, res.stderr[-3000:]
