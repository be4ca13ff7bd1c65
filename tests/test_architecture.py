"""The house's layers run one way (docs/architecture.md), checked by import-linter and grimp.

Imports are counted at any depth, inside functions too; ``TYPE_CHECKING`` imports
are annotations only and not counted.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nilazyview"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_MODULE_LINES = 500


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter on the package under ``root`` with this checkout's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_contracts_are_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward", "broken"),
    [
        ("formats/mgh.py", "from ..image import Image", "Formats import nothing above them"),
        ("core/plan.py", "from ..sources import FileSource", "Layers run one way"),
        ("sources/gzwhole.py", "from ..array.bytes import ArrayProxy", "Layers run one way"),
        ("image.py", "from .io.load import load", "Layers run one way"),
    ],
)
def test_an_upward_import_breaks_a_contract(tmp_path, module, upward, broken):
    """A copy of the package with one upward import, inside a function, fails the check."""
    shutil.copytree(PACKAGE, tmp_path / "nilazyview", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "nilazyview" / module
    target.write_text(target.read_text() + f"\n\ndef _upward():\n    {upward}\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert broken in result.stdout and "BROKEN" in result.stdout


def _cycles(graph) -> list[list[str]]:
    """Every back edge of a depth-first walk over the package's import graph, as a cycle."""
    state: dict[str, int] = {}
    found: list[list[str]] = []

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        path.append(module)
        for nxt in sorted(graph.find_modules_directly_imported_by(module)):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, path)
        path.pop()
        state[module] = 2

    for module in sorted(graph.modules):
        if module not in state:
            walk(module, [])
    return found


def test_no_import_cycle_counting_imports_inside_functions():
    graph = grimp.build_graph("nilazyview", exclude_type_checking_imports=True)
    assert "nilazyview.viewer" in graph.find_modules_directly_imported_by("nilazyview")
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    """The check above can fail: a package whose modules import each other has a cycle."""
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyclepkg", cache_dir=None)
    assert ["cyclepkg.a", "cyclepkg.b", "cyclepkg.a"] in _cycles(graph)


def _function_imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    yield sub


def test_imports_inside_functions_only_at_optional_extras():
    """Inside functions: other packages only (optional extras), each line saying why;
    the package's own modules only in the facade (``nilazyview.view`` -> viewer)."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in _function_imports(path):
            name = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            own = getattr(node, "level", 0) > 0 or (name or "").startswith("nilazyview")
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if own and path != PACKAGE / "__init__.py":
                bad.append(f"{where}: imports its own package inside a function")
            if "#" not in lines[node.lineno - 1]:
                bad.append(f"{where}: no comment saying why the import is deferred")
    assert bad == []


def test_no_module_over_500_lines():
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > MAX_MODULE_LINES} == {}
