"""The nilazyview command: info (text, --json), view --print-only, bench, errors, --help."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

import nilazyview as nlv
from nilazyview import cli
from nilazyview.sources import gzindex

DATA = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
MGZ = os.path.join(DATA, "test.mgz")


@pytest.fixture
def nifti(tmp_path):
    aff = np.diag([-2.0, 2.0, 3.0, 1.0])
    img = nib.Nifti1Image(np.zeros((4, 5, 6, 2), np.int16), aff)
    img.header.set_data_dtype(np.int16)
    raw = bytearray(img.header.binaryblock)
    raw[108:120] = np.array([352.0, 0.5, 1.0], "<f4").tobytes()  # vox_offset, slope, inter
    path = str(tmp_path / "x.nii.gz")
    with gzip.open(path, "wb") as f:
        f.write(bytes(raw[:344]) + b"n+1\x00" + b"\x00" * 4 + bytes(4 * 5 * 6 * 2 * 2))
    assert nib.load(path).dataobj.slope == 0.5
    return path


@pytest.fixture
def garbage(tmp_path):
    path = tmp_path / "bad.nii"
    path.write_bytes(b"this is not an image" * 40)
    return str(path)


def test_info_text(nifti, capsys):
    assert cli.main(["info", nifti, MGZ]) == 0
    out = capsys.readouterr().out
    assert "NIfTI-1, gzip-compressed" in out and "MGH, gzip-compressed" in out
    assert "4 x 5 x 6 x 2" in out and "LAS" in out
    assert "value = stored * 0.5 + 1.0" in out and "gzip index   no" in out


def test_info_json(nifti, capsys):
    assert cli.main(["info", "--json", nifti, os.path.join(DATA, "small.mnc")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["shape"] for r in rows] == [[4, 5, 6, 2], [18, 28, 29]]
    first, minc = rows
    assert first["dtype"] == "float32" and first["stored_dtype"] == "<i2"
    assert first["voxel_sizes"][:3] == [2.0, 2.0, 3.0] and first["orientation"] == "LAS"
    assert first["affine"][0][0] == -2.0 and first["gzip"] is True
    assert first["gzip_index_cached"] is False
    assert first["size_bytes"] == os.path.getsize(nifti)
    assert minc["format"] == "MINC2 (HDF5)" and minc["order"] == "C"
    np.testing.assert_array_equal(minc["affine"], nib.load(os.path.join(DATA, "small.mnc")).affine)


def test_info_bad_and_missing_files(garbage, tmp_path, capsys):
    assert cli.main(["info", garbage, str(tmp_path / "nope.nii"), MGZ]) == 2
    cap = capsys.readouterr()
    assert "bad.nii" in cap.err and "no such file" in cap.err
    assert "Traceback" not in cap.err
    assert "MGH" in cap.out  # the good file is still reported
    minc1 = os.path.join(DATA, "tiny.mnc")
    assert cli.main(["info", "--json", minc1]) == 2
    cap = capsys.readouterr()
    assert "MINC1 (NetCDF)" in cap.err and json.loads(cap.out) == []


def test_bad_file_in_a_subprocess_has_no_traceback(garbage):
    res = subprocess.run(
        [sys.executable, "-m", "nilazyview.cli", "info", garbage],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert res.stderr.startswith("nilazyview info: error:") and "bad.nii" in res.stderr
    assert "Traceback" not in res.stderr


def test_view_print_only_writes_notebook(nifti, tmp_path, capsys):
    assert cli.main(["view", nifti, "--print-only", "--dir", str(tmp_path / "nb")]) == 0
    nb_path = capsys.readouterr().out.strip()
    assert os.path.dirname(nb_path) == str(tmp_path / "nb")
    with open(nb_path) as f:
        nb = json.load(f)
    assert nb["nbformat"] == 4
    code = "\n".join(c["source"] for c in nb["cells"] if c["cell_type"] == "code")
    assert repr(os.path.abspath(nifti)) in code and "nlv.view(img)" in code
    compile(code, nb_path, "exec")


def test_view_bad_file_and_no_jupyterlab(garbage, nifti, monkeypatch, capsys, tmp_path):
    assert cli.main(["view", garbage, "--print-only"]) == 2
    assert "bad.nii" in capsys.readouterr().err
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None)
    nb_dir = tmp_path / "nb"
    assert cli.main(["view", nifti, "--dir", str(nb_dir)]) == 2
    assert "JupyterLab is not installed" in capsys.readouterr().err
    assert not nb_dir.exists() or not any(nb_dir.iterdir())  # nothing left behind


def test_bench_runs_the_script(tmp_path, monkeypatch, capsys):
    script = tmp_path / "benchmarks" / "bench_slices.py"
    script.parent.mkdir()
    script.write_text("import sys\nprint('bench', sys.argv[1:])\nsys.exit(3)\n")
    monkeypatch.setattr(cli, "find_bench", lambda: script)
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd: calls.append(cmd) or 3)
    assert cli.main(["bench", "--", "--size", "8"]) == 3
    assert calls == [[sys.executable, str(script), "--size", "8"]]
    monkeypatch.setattr(cli, "find_bench", lambda: None)
    assert cli.main(["bench"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nilazyview bench: error: ") and err.count("\n") == 1
    assert "bench_slices.py not found" in err
    assert "source repository, not the installed package" in err and "source checkout" in err


def test_bench_outside_a_checkout_in_a_subprocess(tmp_path):
    """An installed copy (no benchmarks/ beside the package) run from an unrelated folder."""
    import shutil

    pkg = os.path.dirname(os.path.abspath(cli.__file__))
    shutil.copytree(pkg, tmp_path / "site" / "nilazyview")  # as pip installs it
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    res = subprocess.run(
        [sys.executable, "-m", "nilazyview.cli", "bench"],
        capture_output=True, text=True, timeout=60, cwd=work, env=env,
    )  # fmt: skip
    assert res.returncode == 2 and res.stdout == ""
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1
    assert "source repository, not the installed package" in res.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "nilazyview.cli", "bench", "--help"],
        capture_output=True, text=True, timeout=60, cwd=work, env=env,
    )  # fmt: skip
    assert helped.returncode == 0
    assert "source repository, not the installed package" in " ".join(helped.stdout.split())


def test_find_bench_in_checkout():
    found = cli.find_bench()
    assert found is None or found.name == "bench_slices.py"


@pytest.mark.parametrize("argv", [[], ["info"], ["view"], ["info", "--bogus", MGZ]])
def test_usage_errors_exit_2(argv, capsys):
    if not argv:
        assert cli.main(argv) == 2
    else:
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
    assert "usage: nilazyview" in capsys.readouterr().err


def test_subcommand_errors_show_the_subcommand_usage(capsys):
    for argv in (["info", "--bogus", MGZ], ["info", MGZ, "--bogus"], ["view", MGZ, "--bogus"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"usage: nilazyview {argv[0]} "), err
        assert f"nilazyview {argv[0]}: error: unrecognized arguments: --bogus" in err
    with pytest.raises(SystemExit):  # an unknown option before the command is the top level's
        cli.main(["--bogus", "info", MGZ])
    err = capsys.readouterr().err
    assert err.startswith("usage: nilazyview [-h]") and "unrecognized arguments: --bogus" in err


def test_bench_help_says_it_needs_a_checkout(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "source repository, not the installed package" in text


def _quiet(stderr: str) -> None:
    for word in ("Traceback", "BrokenPipeError", "Exception ignored"):
        assert word not in stderr, stderr


def test_info_into_a_pipe_closed_early():
    """``info ... | head -c 10``: output larger than the pipe buffer, reader gone."""
    files = [MGZ] * 300  # ~200 KB of JSON, more than a 64 KiB pipe holds
    cmd = [sys.executable, "-m", "nilazyview.cli", "info", "--json", *files]
    res = subprocess.run(
        ["sh", "-c", '"$@" | head -c 10', "sh", *cmd], capture_output=True, timeout=120
    )
    assert len(res.stdout) == 10 and res.stdout.startswith(b"[")  # head's 10 bytes
    _quiet(res.stderr.decode())
    # the exit status, which sh does not pass on: read a little, then close the pipe
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(10).startswith(b"[")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, 128 + signal.SIGPIPE)
    _quiet(err)


@pytest.mark.parametrize("as_json", [False, True])
def test_info_into_a_pipe_closed_at_once(as_json):
    """Small output goes out in Python's final flush: a closed pipe must not show there."""
    cmd = [sys.executable, "-m", "nilazyview.cli", "info", MGZ] + (["--json"] if as_json else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, 128 + signal.SIGPIPE)
    _quiet(err)


@pytest.mark.parametrize(
    "argv", [["--help"], ["info", "--help"], ["view", "--help"], ["bench", "--help"]]
)
def test_help_on_every_command(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 0
    assert "usage: nilazyview" in capsys.readouterr().out


def test_console_script_declared():
    import tomllib

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        meta = tomllib.load(f)
    assert meta["project"]["scripts"]["nilazyview"] == "nilazyview.cli:run"
    assert "h5py" in " ".join(meta["project"]["optional-dependencies"]["minc"])


def test_info_reports_a_cached_gzip_index(tmp_path, monkeypatch, capsys):
    """After a deep read has persisted the seek-point index, ``info`` says so."""
    monkeypatch.setenv("NILAZYVIEW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NILAZYVIEW_GZINDEX_SPACING", str(64 * 1024))
    gzindex.reset_state()
    path = str(tmp_path / "deep.nii.gz")
    data = np.arange(64 * 64 * 200, dtype=np.float32).reshape(64, 64, 200)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    assert cli.main(["info", "--json", path]) == 0
    assert json.loads(capsys.readouterr().out)[0]["gzip_index_cached"] is False
    img = nlv.load(path)
    np.testing.assert_array_equal(img.slicecopy[..., 199], data[..., 199])
    img.proxy.source.close()  # the index is saved on close at the latest
    assert cli.main(["info", "--json", path]) == 0
    assert json.loads(capsys.readouterr().out)[0]["gzip_index_cached"] is True
