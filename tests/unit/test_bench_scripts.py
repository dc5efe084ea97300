"""`tests/bench/run_all.py --quick` passes --quick to every benchmark: each one must accept it
(and start: its imports and argument parsing work), or the run stops at the first that does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(BENCH_DIR.glob("bench_*.py"))


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_every_benchmark_takes_the_quick_option(script):
    shown = subprocess.run(  # noqa: S603 - this interpreter, a script of this repository
        [sys.executable, str(script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BENCH_DIR.parents[1],
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "--quick" in shown.stdout
