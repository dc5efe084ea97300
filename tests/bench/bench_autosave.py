"""Benchmark: draft autosave under 50 concurrent learners.

Run by hand from the repository root (not collected by pytest):

    .venv/bin/python tests/bench/bench_autosave.py [--quick] [--sqlite] [--workers N]

Serves the tool with `lti-tool serve --workers 4` (gunicorn) on a fresh database (PostgreSQL
and Redis when they answer, else SQLite) with 50 learners of one course. Each learner (one
thread, one HTTP session) autosaves its draft as the page's script does: a POST of the typed
fields (three answers of about 250 words, growing a little each time) with the revision of its
last save, Accept: application/json. Every save must answer 200 with the next revision (a 409
would mean a lost update, and counts as an error). Prints saves per second, p50 / p95 / p99
latency, errors, and the gunicorn workers' CPU per save. Bounded: 30 saves per learner (10
with --quick) and 90 s at most. Exits 1 if any save failed or did not happen in time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from evidence_bench import KEY, describe, served_tool  # noqa: E402

LEARNERS = 50
TIME_LIMIT = 90.0
WORDS = ["listen", "pause", "paraphrase", "probe", "summarise", "colleague", "concern",
         "lesson", "students", "meeting", "plan", "question", "answer"]  # fmt: skip


def text(words: int, seed: int) -> str:
    return " ".join(WORDS[(seed + i) % len(WORDS)] for i in range(words))


def learner(base_url: str, token: str, saves: int, deadline: float, latencies: list[float],
            errors: list[str], start: threading.Barrier) -> None:  # fmt: skip
    session = requests.Session()
    revision = 0
    start.wait()
    for n in range(saves):
        if time.monotonic() > deadline:
            return
        data = {
            "lt": token,
            "revision": revision,
            "answer:overview:setting": text(250 + n, n),
            "answer:overview:listening-habit": text(160, n + 1),
            "answer:reflection:impact": text(220, n + 2),
        }
        began = time.perf_counter()
        try:
            response = session.post(f"{base_url}/evidence/{KEY}/save", data=data,
                                    headers={"Accept": "application/json"}, timeout=30)  # fmt: skip
        except requests.RequestException as exc:
            errors.append(type(exc).__name__)
            continue
        latencies.append(time.perf_counter() - began)
        if response.status_code != 200:
            errors.append(f"{response.status_code}: {response.text[:120]}")
            continue
        revision = response.json()["revision"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 saves per learner")
    parser.add_argument("--sqlite", action="store_true", help="SQLite, no Redis")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (4)")
    args = parser.parse_args(argv)
    saves = 10 if args.quick else 30
    with (
        tempfile.TemporaryDirectory(prefix="bench-autosave-") as workdir,
        served_tool(
            Path(workdir), learners=LEARNERS, workers=args.workers, sqlite=args.sqlite
        ) as tool,
    ):
        print(f"tool: gunicorn, {args.workers} workers, {describe(tool)}", flush=True)
        # Warm every worker up (imports, connections) before timing.
        warm = requests.Session()
        for token in tool.tokens[: args.workers * 2]:
            warm.get(f"{tool.base_url}/evidence/{KEY}", params={"lt": token}, timeout=30)
        latencies: list[float] = []
        errors: list[str] = []
        start = threading.Barrier(LEARNERS + 1)
        deadline = time.monotonic() + TIME_LIMIT
        threads = [
            threading.Thread(
                target=learner,
                args=(tool.base_url, token, saves, deadline, latencies, errors, start),
            )  # fmt: skip
            for token in tool.tokens
        ]
        for thread in threads:
            thread.start()
        cpu_before = tool.server.workers_cpu_seconds()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join(timeout=TIME_LIMIT + 30)
        seconds = time.perf_counter() - began
        cpu = tool.server.workers_cpu_seconds() - cpu_before
    done = len(latencies)
    print(f"\n{LEARNERS} learners autosaving concurrently, {saves} saves each "
          f"({LEARNERS * saves} planned), over loopback")  # fmt: skip
    print(f"{'saves':>6} {'seconds':>8} {'saves/s':>8} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p99 ms':>7} {'errors':>7} {'worker CPU ms/save':>19}")  # fmt: skip
    p50, p95, p99 = (percentile(latencies, q) * 1000 for q in (0.5, 0.95, 0.99))
    print(f"{done:>6} {seconds:>8.2f} {done / seconds:>8.1f} {p50:>7.1f} {p95:>7.1f} "
          f"{p99:>7.1f} {len(errors):>7} {cpu / max(done, 1) * 1000:>19.1f}")  # fmt: skip
    print(f"(load average of the machine: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    for error in sorted(set(errors))[:5]:
        print(f"  error: {error}")
    return 1 if errors or done < LEARNERS * saves else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
