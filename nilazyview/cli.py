"""The ``nilazyview`` command: ``info``, ``view`` and ``bench``.

User errors (missing or unreadable files, bad options) print one line to
stderr and exit with status 2, without a traceback. A reader that stops early
(``nilazyview info ... | head -1``) ends the command quietly with status 141
(128 + SIGPIPE, as for a command killed by SIGPIPE).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .core.orientation import axcodes_or_unknown
from .errors import ImageFileError
from .formats import registry
from .formats.detect import detect
from .fs.paths import names_for_reading
from .fs.private import unsafe_reason
from .fs.settings import temp_root
from .io.load import load
from .sources import URL, gzindex, is_url
from .version import __version__

EXIT_USAGE = 2
EXIT_PIPE = 128 + getattr(signal, "SIGPIPE", 13)
BENCH_NEEDS_CHECKOUT = (
    "the benchmark scripts ship with the source repository, not the installed package: "
    "get a source checkout of nilazyview (git clone) and run 'nilazyview bench' from its "
    "top folder"
)


class UserError(Exception):
    """A problem to report in one line (exit status 2)."""


def _zooms(img) -> list[float]:
    codec = registry.for_header(img.header)
    if codec is not None:
        return codec.zooms(img.header, img.ndim)
    sizes = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    return [float(s) for s in sizes[: min(3, img.ndim)]]


def _scaling(img) -> str:
    value_map = img.proxy.value_map
    return "unknown (read through nibabel)" if value_map is None else value_map.describe()


def info(path: str) -> dict:
    """Facts about the image file at ``path``; reads headers only, never the voxel data."""
    if is_url(path):
        return _remote_info(path)
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory")
    try:
        found = detect(names_for_reading(path).header)
        img = load(path)
    except (ImageFileError, OSError) as exc:
        raise UserError(str(exc) if str(exc).startswith(path) else f"{path}: {exc}") from None
    files = sorted(set(img.files.values()))
    size = sum(os.path.getsize(f) for f in files)
    cached = found.gzipped and _index_cached(img.files.get("image", path))
    return _facts(path, found, img, files, size, cached)


def _facts(name: str, found, img, files: list[str], size: int, index_cached: bool) -> dict:
    """The facts ``info`` reports, from the detected format and the loaded image."""
    return {
        "file": name,
        "format": found.description,
        "shape": list(img.shape),
        "dtype": str(img.dtype),
        "stored_dtype": img.proxy.stored_dtype.str,
        "order": img.proxy.order,
        "voxel_sizes": _zooms(img),
        "orientation": axcodes_or_unknown(img.affine),
        "affine": np.asarray(img.affine, float).round(6).tolist(),
        "scaling": _scaling(img),
        "files": files,
        "size_bytes": size,
        "gzip": found.gzipped,
        "gzip_index_cached": index_cached,
    }


def _remote_info(path: str) -> dict:
    """:func:`info` for a URL: a few range requests (credentials from the environment)."""
    try:
        url = URL(path)
        found = detect(url)
        img = load(url)
    except (ImageFileError, OSError, ValueError) as exc:
        raise UserError(str(exc) if str(exc).startswith(str(url)) else f"{url}: {exc}") from None
    src = img.proxy.source
    key = gzindex.IndexKey.remote(str(url), src.identity.size, src.identity.validator)
    cached = found.gzipped and gzindex.has_index(key)
    return _facts(str(url), found, img, [str(url)], src.stored_size(), cached)


def _index_cached(path: str) -> bool:
    """True when the persisted gzip index cache holds a current index for ``path``."""
    try:
        return gzindex.has_index(gzindex.IndexKey.of(path))
    except OSError:
        return False


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _print_info(d: dict) -> None:
    rows = [
        ("format", d["format"]),
        ("shape", " x ".join(map(str, d["shape"]))),
        ("dtype", f"{d['dtype']} (stored {d['stored_dtype']}, {d['order']} order)"),
        ("voxel sizes", ", ".join(f"{z:g}" for z in d["voxel_sizes"])),
        ("orientation", d["orientation"]),
        ("scaling", d["scaling"]),
        ("on disk", f"{_human(d['size_bytes'])} in {len(d['files'])} file(s)"),
        ("gzip index", "cached" if d["gzip_index_cached"] else "no"),
    ]
    print(d["file"])
    for k, v in rows:
        print(f"  {k:<12} {v}")
    print("  affine")
    for row in d["affine"]:
        print("    " + " ".join(f"{x:10.4f}" for x in row))


def cmd_info(args: argparse.Namespace) -> int:
    results, failed = [], False
    for path in args.files:
        try:
            results.append(info(path))
        except UserError as exc:
            print(f"nilazyview info: error: {exc}", file=sys.stderr)
            failed = True
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for i, d in enumerate(results):
            if i:
                print()
            _print_info(d)
    return EXIT_USAGE if failed else 0


NOTEBOOK_CODE = """\
import nilazyview as nlv

img = nlv.load({path!r})
img"""


def make_notebook(path: str) -> dict:
    """An nbformat-4 notebook that loads ``path`` and opens the slice viewer on it."""

    def code(src: str) -> dict:
        return {"cell_type": "code", "execution_count": None, "metadata": {},
                "outputs": [], "source": src}  # fmt: skip

    title = f"# {os.path.basename(path)}\n\nOpened by `nilazyview view`."
    return {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": title},
            code(NOTEBOOK_CODE.format(path=path if is_url(path) else os.path.abspath(path))),
            code("nlv.view(img)"),
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write_notebook(path: str, folder: str | None = None) -> str:
    """Write the viewing notebook for ``path`` into ``folder`` (a new temp folder by default).

    Written to a new file (``O_EXCL``, mode 0600) renamed over the notebook, so a
    symlink planted under its name is replaced, never followed, and a notebook
    planted by another user is replaced by ours, never written into. A folder
    others may write (without the sticky bit) is refused: they could swap the
    notebook after we wrote it.
    """
    folder = folder or tempfile.mkdtemp(prefix="nilazyview-view-", dir=temp_root())
    os.makedirs(folder, exist_ok=True)
    reason = unsafe_reason(folder, private=False)
    if reason is not None:
        raise UserError(f"{folder}: not a safe folder for the notebook: {reason}")
    stem = os.path.basename(str(URL(path)) if is_url(path) else path).split(".")[0] or "image"
    out = os.path.join(folder, f"view-{stem}.ipynb")
    fd, tmp = tempfile.mkstemp(prefix=".view-", suffix=".ipynb.partial", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(make_notebook(path), f, indent=1)
            f.write("\n")
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return out


def cmd_view(args: argparse.Namespace) -> int:
    info(args.file)  # fails early, in one line, on a missing or unreadable file
    if not args.print_only and importlib.util.find_spec("jupyterlab") is None:
        raise UserError("JupyterLab is not installed; pip install 'nilazyview[notebook]'")
    nb = write_notebook(args.file, args.dir)
    if args.print_only:
        print(nb)
        return 0
    cmd = [sys.executable, "-m", "jupyterlab", nb, f"--ServerApp.root_dir={os.path.dirname(nb)}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # JupyterLab refuses root without it
    if args.no_browser:
        cmd.append("--no-browser")
    if args.port:
        cmd.append(f"--port={args.port}")
    print(f"nilazyview view: opening {nb}", file=sys.stderr)
    try:
        return subprocess.call(cmd)
    finally:
        if args.dir is None:  # our own temporary folder: gone with JupyterLab
            shutil.rmtree(os.path.dirname(nb), ignore_errors=True)


def find_bench() -> Path | None:
    """``benchmarks/bench_slices.py`` of the current folder or of the source checkout."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        script = root / "benchmarks" / "bench_slices.py"
        if script.is_file():
            return script
    return None


def cmd_bench(args: argparse.Namespace) -> int:
    script = find_bench()
    if script is None:
        raise UserError(
            f"benchmarks/bench_slices.py not found in {Path.cwd()} or beside the package; "
            + BENCH_NEEDS_CHECKOUT
        )
    extra = list(args.bench_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    return subprocess.call([sys.executable, str(script), *extra])


class _CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: it reports unknown arguments itself, with its own usage.

    (argparse hands a sub-command's unknown arguments back to the top-level
    parser, whose error would show the top-level usage instead.)
    """

    def parse_known_args(self, args=None, namespace=None):
        ns, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return ns, extra


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="nilazyview",
        description="Lazy neuroimaging volumes: inspect files, view them in JupyterLab, benchmark.",
    )
    ap.add_argument("--version", action="version", version=f"nilazyview {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)

    p = sub.add_parser(
        "info",
        help="print format, shape, dtype, geometry and scaling (headers only)",
        description="Print facts about image files without reading their voxel data.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="image file(s)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "view",
        help="open JupyterLab on a generated notebook viewing FILE",
        description="Write a small notebook viewing FILE into a temporary folder and open "
        "JupyterLab on it.",
    )
    p.add_argument("file", metavar="FILE", help="image file")
    p.add_argument("--dir", help="folder for the notebook (default: a new temporary folder)")
    p.add_argument(
        "--print-only",
        action="store_true",
        help="write the notebook, print its path, start nothing",
    )
    p.add_argument("--no-browser", action="store_true", help="start JupyterLab without a browser")
    p.add_argument("--port", type=int, help="JupyterLab port")
    p.set_defaults(func=cmd_view)

    p = sub.add_parser(
        "bench",
        help="run the slice-read benchmark (needs a source checkout)",
        description="Run benchmarks/bench_slices.py of the current folder or of the source "
        "checkout this package runs from; arguments after 'bench' (or after '--') go to it, "
        "e.g. 'nilazyview bench -- --size 64'. Note: " + BENCH_NEEDS_CHECKOUT + ".",
    )
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    p.set_defaults(func=cmd_bench)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"nilazyview {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return _stdout_closed()
    except KeyboardInterrupt:
        return 130


def _stdout_closed() -> int:
    """Point stdout at /dev/null after its reader went away; returns 128 + SIGPIPE.

    Python flushes stdout again at exit: into /dev/null, that flush cannot fail
    and print "Exception ignored ... BrokenPipeError".
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    return EXIT_PIPE


def run() -> None:
    """Console-script entry point."""
    try:
        status = main()
        if sys.stdout is not None:  # None when started with stdout closed
            sys.stdout.flush()  # the last buffered output: a closed pipe shows here
    except BrokenPipeError:
        status = _stdout_closed()
    sys.exit(status)


if __name__ == "__main__":
    run()
