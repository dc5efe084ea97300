"""Run every benchmark in tests/bench (each `bench_*.py`), one after the other.

    .venv/bin/python tests/bench/run_all.py [--quick]

Arguments are passed on to each script. Installs the `bench` extra first if the reference app's
dependency (Flask-Caching) is missing. Exits non-zero if any benchmark did.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parents[1]


def ensure_bench_extra() -> None:
    if importlib.util.find_spec("flask_caching") is None:
        print("installing the bench extra (Flask-Caching) into this environment", flush=True)
        subprocess.run(  # noqa: S603 - pip of this interpreter, this project
            [sys.executable, "-m", "pip", "install", "--quiet", "-e", f"{REPO}[bench]"],
            check=True,
        )


def main(argv: list[str]) -> int:
    ensure_bench_extra()
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if not scripts:
        print("no benchmark found in tests/bench")
        return 1
    failed = []
    for script in scripts:
        print(f"=== {script.relative_to(REPO)} {' '.join(argv)}", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(script), *argv], cwd=REPO)  # noqa: S603
        print(
            f"=== {script.name}: exit {result.returncode} in {time.monotonic() - started:.0f}s\n",
            flush=True,
        )
        if result.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    print(f"all {len(scripts)} benchmark(s) ran")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
