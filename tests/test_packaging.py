"""Packaging: the wheel alone (numpy only) names missing extras, is typed, runs ``-m``.

The fresh-venv test builds the wheel offline (``pip wheel --no-deps
--no-build-isolation`` on a copy of the sources), makes a venv without pip,
links only numpy into it and installs the wheel with the test venv's pip
(``--python``): no download, bounded by timeouts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nilazyview as nlv

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """A copy of what the build reads (the repository stays untouched)."""
    src = tmp_path_factory.mktemp("src") / "nilazyview-src"
    skip = ("__pycache__", ".git", ".venv", "build", "*.egg-info", ".*cache", "data", "results")
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*skip))
    return src


@pytest.fixture(scope="module")
def wheel(sources, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    res = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                "--no-build-isolation", "--no-index", "-w", str(out), str(sources)])  # fmt: skip
    assert res.returncode == 0, res.stderr
    (whl,) = out.glob("nilazyview-*.whl")
    return whl


@pytest.fixture(scope="module")
def bare_venv(wheel, tmp_path_factory) -> Path:
    """A new venv holding only numpy (linked from this one) and the wheel."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    res = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert res.returncode == 0, res.stderr
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                .stdout.strip())  # fmt: skip
    here = Path(np.__file__).parent.parent
    for entry in here.iterdir():
        if entry.name == "numpy" or entry.name.startswith(("numpy-", "numpy.libs")):
            (site / entry.name).symlink_to(entry)
    res = _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                "--no-deps", "--no-index", str(wheel)])  # fmt: skip
    assert res.returncode == 0, res.stderr
    return venv


def test_wheel_holds_py_typed_and_main(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "nilazyview/py.typed" in names
    assert "nilazyview/__main__.py" in names
    assert not any(n.startswith("tests/") for n in names)


MISSING = textwrap.dedent(
    """
    import sys, json
    import numpy as np
    import nilazyview as nlv
    out = {}
    for extra in ("ipywidgets", "dask", "nibabel", "tqdm", "rapidgzip", "scipy", "h5py"):
        try:
            __import__(extra)
            out[extra] = "importable"
        except ImportError:
            pass
    img = nlv.Image(np.zeros((2, 3, 4), np.int16))
    cases = {
        "view": lambda: nlv.view(img),
        "to_dask": img.to_dask,
        "to_nibabel": img.to_nibabel,
        "from_nibabel": lambda: nlv.from_nibabel(object()),
    }
    for name, call in cases.items():
        try:
            call()
            out[name] = "no error"
        except nlv.MissingExtraError as exc:
            out[name] = str(exc)
    path = nlv.save(img, sys.argv[1])  # gzip without tqdm or rapidgzip: no progress bar
    out["saved"] = nlv.load(path).slicecopy[1, 2, 3].tolist()
    print(json.dumps(out))
    """
)


def test_bare_install_names_the_missing_extras(bare_venv, tmp_path):
    import json

    script = tmp_path / "user.py"
    script.write_text(MISSING)
    py = bare_venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    res = _run([str(py), str(script), str(tmp_path / "out.nii.gz")], cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    for dep in ("ipywidgets", "dask", "nibabel", "tqdm", "rapidgzip", "scipy", "h5py"):
        assert dep not in out, f"{dep} should not be installed in the bare venv"
    assert out["view"].endswith('pip install "nilazyview[viewer]"'), out["view"]
    assert "ipywidgets" in out["view"]
    assert out["to_dask"].endswith('pip install "nilazyview[dask]"'), out["to_dask"]
    assert out["to_nibabel"].endswith('pip install "nilazyview[nibabel]"'), out["to_nibabel"]
    assert out["from_nibabel"].endswith('pip install "nilazyview[nibabel]"')
    assert out["saved"] == 0

    res = _run([str(py), "-m", "nilazyview", "info", str(tmp_path / "out.nii.gz")], env=env)
    assert res.returncode == 0, res.stderr
    assert "(2, 3, 4)" in res.stdout or "2 x 3 x 4" in res.stdout or "2, 3, 4" in res.stdout


SNIPPET = textwrap.dedent(
    """
    import numpy as np
    import nilazyview as nlv

    img = nlv.load("x.nii.gz")
    reveal_type(img)
    reveal_type(img.shape)
    reveal_type(img.ndim)
    reveal_type(img.get_fdata())
    reveal_type(img.get_data_dtype())
    reveal_type(img.get_filename())
    reveal_type(nlv.save(img, "y.nii"))
    """
)


def test_mypy_sees_the_types_of_the_installed_wheel(bare_venv, tmp_path):
    """mypy on a user's snippet, against the installed wheel (needs its ``py.typed``)."""
    pytest.importorskip("mypy")
    (tmp_path / "snippet.py").write_text(SNIPPET)
    py = bare_venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    cmd = [sys.executable, "-m", "mypy", "--python-executable", str(py), "--no-incremental",
           "--cache-dir", os.devnull, "snippet.py"]  # fmt: skip
    res = _run(cmd, timeout=120, cwd=tmp_path, env=env)
    text = res.stdout
    assert "missing library stubs or py.typed" not in text, text
    assert res.returncode == 0, text
    revealed = [
        line.split('Revealed type is "', 1)[1].rstrip('"').replace("builtins.", "")
        for line in text.splitlines()
        if "Revealed type is" in line
    ]
    assert revealed[:3] == ["nilazyview.image.Image", "tuple[int, ...]", "int"], text
    assert revealed[3].startswith("numpy.ndarray["), text
    assert revealed[4:] == ["numpy.dtype[Any]", "str | None", "str"], text


def test_python_dash_m_runs_the_command():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = _run([sys.executable, "-m", "nilazyview", "--version"], env=env)
    assert res.returncode == 0, res.stderr
    assert nlv.__version__ in res.stdout


def test_metadata_groups_extras_classifiers_and_urls():
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    assert not {"test", "fuzz", "bench", "dev"} & set(extras), "development sets are not extras"
    assert {"test", "fuzz", "bench", "dev"} <= set(PYPROJECT["dependency-groups"])
    assert any(r.lower().startswith("pillow") for r in extras["viewer"])  # imported by render
    assert any(r.startswith("nibabel") for r in extras["nibabel"])
    assert any(r.startswith("platformdirs") for r in extras["gz"])
    assert project["dependencies"] == ["numpy>=1.24"]
    assert project["dynamic"] == ["version"] and "version" not in project
    assert set(project["urls"]) >= {"Homepage", "Source", "Issues"}
    oses = [c for c in project["classifiers"] if c.startswith("Operating System")]
    assert oses == ["Operating System :: POSIX :: Linux"]  # os.pread/preadv: no Windows
    assert hasattr(os, "pread") and hasattr(os, "preadv")
    assert "Typing :: Typed" in project["classifiers"]


def test_the_sdist_ships_no_tests(sources, tmp_path):
    code = f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))"
    res = _run([sys.executable, "-c", code], cwd=sources)
    assert res.returncode == 0, res.stderr
    with tarfile.open(tmp_path / res.stdout.split()[-1]) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    assert "nilazyview/image.py" in names and "nilazyview/py.typed" in names
    assert not [n for n in names if n.startswith(("tests", "benchmarks", "fuzz", "notebooks"))]


def test_make_installs_every_extra_and_the_test_group():
    make = (ROOT / "Makefile").read_text()
    assert '-e ".[all]" --group test' in make
    assert "--upgrade pip" in make  # --group needs pip >= 25.1
    allx = PYPROJECT["project"]["optional-dependencies"]["all"][0]
    for extra in ("gz", "viewer", "dask", "spm", "minc", "nibabel", "notebook"):
        assert extra in allx
