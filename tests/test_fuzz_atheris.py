"""A bounded run of the coverage-guided harness fuzz/fuzz_load.py (skipped without atheris).

The long run and its figures are in RELIABILITY.md; ``NLV_ATHERIS_RUNS`` sets the count.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

HARNESS = os.path.join(os.path.dirname(__file__), os.pardir, "fuzz", "fuzz_load.py")
RUNS = int(os.environ.get("NLV_ATHERIS_RUNS", "20000"))


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_bounded_atheris_run(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    res = subprocess.run(
        [
            sys.executable,
            HARNESS,
            str(corpus),
            f"-runs={RUNS}",
            "-timeout=20",
            "-rss_limit_mb=4096",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = res.stderr[-4000:]
    crashes = [f for f in os.listdir(tmp_path) if f.startswith(("crash-", "timeout-", "oom-"))]
    assert res.returncode == 0 and not crashes, f"escapes {crashes}:\n{log}"
    assert f"stat::number_of_executed_units: {RUNS}" in res.stderr, log
    assert len(os.listdir(corpus)) > 20  # the seeds, plus inputs that found coverage
