"""Benchmark: deliver 10,000 scores to a loopback AGS server: scores per second and token
requests made. Goal: at least 500 scores/s, one token request.

Run by hand from the repository root (not collected by pytest):

    .venv/bin/python tests/bench/bench_scores.py [--quick] [--sqlite] [--count N] [--threads N]

What it does:

1. Uses PostgreSQL (a fresh database on 127.0.0.1:5432, dropped afterwards) and Redis
   (127.0.0.1:6379, database 7, for the shared token cache) when they answer, as production
   runs; otherwise SQLite in a temporary folder and the database cache, and says so.
2. Migrates, registers a Canvas-like platform whose token and AGS score endpoints are the fake
   LMS of tests/support/advantage.py (token requests checked against the tool's JWKS, scores
   kept as Canvas keeps them), served by gunicorn (threads, kept-alive connections) in a child
   process so that it does not share the interpreter lock with the tool.
3. Writes N learners and their pending score rows in bulk, then times one delivery run
   (`gradebook.delivery.deliver_due`, as the `deliver_scores` job runs it): claims in batches of
   500, posts from the configured threads over kept-alive connections, records outcomes in two
   statements per batch.
4. Prints scores per second, token requests, posts the LMS received and results it holds; exits
   1 when a score was not delivered, the LMS holds another count, more than one token was asked
   for, or the rate is under the goal. The whole run is bounded (a watchdog ends it after
   BOUND seconds).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import resource
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import requests  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from lti_tool import migrate  # noqa: E402
from lti_tool.db import transaction, utcnow  # noqa: E402
from lti_tool.gradebook import delivery  # noqa: E402
from lti_tool.gradebook.models import DELIVERED, PENDING, Score  # noqa: E402
from lti_tool.lti import keys  # noqa: E402
from lti_tool.lti.platforms import PlatformSpec, add_platform  # noqa: E402
from lti_tool.roster.models import LmsUser  # noqa: E402
from lti_tool.services import Services  # noqa: E402
from lti_tool.settings import load_settings  # noqa: E402

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_SQLALCHEMY_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"
REDIS_URL = "redis://127.0.0.1:6379/7"
GOAL = 500.0
BOUND = 300  # seconds: the whole run, set-up included
INSERT_BATCH = 5_000
CLIENT_ID = "bench-scores"
CONTEXT = "bench-course"


def answers(what: str) -> str | None:
    """None when the service answers, else why not."""
    try:
        if what == "postgresql":
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
                return None
        from redis import Redis

        Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
        return None
    except Exception as exc:  # any failure: fall back, and say why
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


# -- the fake LMS, in its own process ------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_lms(database_url: str, issuer: str, port: int) -> None:
    """Child process: the fake LMS under gunicorn (one process, threads, kept-alive connections:
    the werkzeug test server closes every connection), verifying the tool's assertions against
    its JWKS read from the database. GET /bench-stats reports what it received."""
    from gunicorn.app.base import BaseApplication

    from tests.support.advantage import FakeAdvantagePlatform

    services = Services(load_settings(database_url=database_url))

    def tool_jwks() -> dict:
        with services.session_factory() as session:
            return keys.jwks(session)

    url = f"http://127.0.0.1:{port}"
    fake = FakeAdvantagePlatform(tool_jwks, client_id=CLIENT_ID, issuer=issuer)
    fake.audience = f"{url}/token"  # the token URL the tool was given (not the test server's)

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/bench-stats":
            with fake.lock:
                usage = resource.getrusage(resource.RUSAGE_SELF)
                stats = {
                    "cpu_seconds": usage.ru_utime + usage.ru_stime,
                    "token_requests": fake.total_token_requests(),
                    "posts": len(fake.score_posts),
                    "results": len(fake.results),
                }
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(stats).encode()]
        return fake.wsgi(environ, start_response)

    class Server(BaseApplication):
        def load_config(self) -> None:
            for name, value in {
                "bind": f"127.0.0.1:{port}",
                "workers": 1,  # one process: the fake keeps its results in memory
                "worker_class": "gthread",
                "threads": 16,
                "keepalive": 75,
                "loglevel": "warning",
                "accesslog": None,
            }.items():
                self.cfg.set(name, value)

        def load(self):
            return app

    Server().run()


def lms_stats(url: str) -> dict:
    return requests.get(f"{url}/bench-stats", timeout=10).json()


def wait_for_lms(url: str, process) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not process.is_alive():
            raise RuntimeError("the fake LMS did not start")
        try:
            lms_stats(url)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("the fake LMS did not answer within 60 s")


# -- the run ---------------------------------------------------------------------------------------
def seed(services: Services, lms_url: str, issuer: str, count: int) -> None:
    """The platform (its token URL on the fake LMS), N learners and their pending scores."""
    with transaction(services.session_factory) as session:
        keys.active_key(session)
        platform = add_platform(
            session,
            PlatformSpec(
                issuer=issuer,
                client_id=CLIENT_ID,
                auth_login_url=f"{lms_url}/auth",
                auth_token_url=f"{lms_url}/token",
                key_set_url=f"{lms_url}/jwks",
                deployment_ids=["1"],
                name="Bench LMS",
                product="canvas",
            ),
        )
        platform_id = platform.id
    lineitem = f"{lms_url}/ags/{CONTEXT}/line_items/1"
    now = utcnow()
    for start in range(0, count, INSERT_BATCH):
        size = min(INSERT_BATCH, count - start)
        with transaction(services.session_factory) as session:
            user_ids = session.scalars(
                insert(LmsUser).returning(LmsUser.id),
                [
                    {"platform_id": platform_id, "subject": f"learner-{start + n}", "name": ""}
                    for n in range(size)
                ],
            ).all()
            session.execute(
                insert(Score),
                [
                    {
                        "user_id": user_id,
                        "platform_id": platform_id,
                        "lineitem_url": lineitem,
                        "source": "attempt",
                        "rank": 14,
                        "activity_progress": "Completed",
                        "grading_progress": "FullyGraded",
                        "score_given": 100.0,
                        "score_maximum": 100.0,
                        "comment": f"Earned. Your badge: https://tool.test/badges/{user_id}",
                        "submission": {
                            "submission_type": "online_url",
                            "submission_data": f"https://tool.test/badges/{user_id}",
                        },
                        "timestamp": now,
                        "version": 1,
                        "status": PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for user_id in user_ids
                ],
            )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 scores instead of 10,000")
    parser.add_argument("--sqlite", action="store_true", help="SQLite even if PostgreSQL answers")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="delivery threads (setting)")
    args = parser.parse_args(argv)
    count = args.count or (1_000 if args.quick else 10_000)
    watchdog = threading.Timer(BOUND, lambda: (print(f"bound of {BOUND}s reached"), os._exit(2)))
    watchdog.daemon = True
    watchdog.start()
    logging.basicConfig(level=logging.WARNING)

    pg_note = "--sqlite given" if args.sqlite else answers("postgresql")
    redis_note = "--sqlite given" if args.sqlite else answers("redis")
    temp = Path(tempfile.mkdtemp(prefix="bench-scores-"))
    db_name = f"bench_scores_{uuid.uuid4().hex[:8]}"
    if pg_note is None:
        _admin(f'CREATE DATABASE "{db_name}"')
        database_url = PG_SQLALCHEMY_BASE + db_name
    else:
        database_url = f"sqlite:///{temp / 'bench.sqlite3'}"
    overrides = {"database_url": database_url, "instance_path": str(temp)}
    if redis_note is None:
        overrides["redis_url"] = REDIS_URL
    if args.threads:
        overrides["grade_delivery_threads"] = args.threads
    settings = load_settings(**overrides)
    services = Services(settings)
    issuer = f"https://bench-{uuid.uuid4().hex[:8]}.example"  # its own token cache key
    context = multiprocessing.get_context("spawn")
    child = None
    try:
        migrate.upgrade(services.engine)
        port = free_port()
        lms_url = f"http://127.0.0.1:{port}"
        child = context.Process(target=serve_lms, args=(database_url, issuer, port))
        child.start()
        wait_for_lms(lms_url, child)
        seed(services, lms_url, issuer, count)
        print(
            f"database: {services.engine.dialect.name}"
            + (f" (PostgreSQL: {pg_note})" if pg_note else "")
            + f"; token cache: {'Redis' if redis_note is None else 'database'}"
            + (f" (Redis: {redis_note})" if redis_note else "")
            + f"; delivery threads: {settings.grade_delivery_threads}; scores: {count:,}",
            flush=True,
        )
        lms_cpu = lms_stats(lms_url)["cpu_seconds"]
        started, cpu = time.perf_counter(), time.process_time()
        run = delivery.deliver_due(services)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        lms = lms_stats(lms_url)
        lms_cpu = lms["cpu_seconds"] - lms_cpu
        with services.session_factory() as session:
            delivered = session.scalar(
                select(func.count()).select_from(Score).where(Score.status == DELIVERED)
            )
        rate = count / elapsed
        print(
            f"delivered {delivered:,} of {count:,} scores in {elapsed:.2f} s: {rate:,.0f} scores/s"
        )
        print(
            f"the tool's CPU: {cpu:.2f} s, {1000 * cpu / count:.2f} ms per score "
            f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); "
            f"the fake LMS's CPU: {lms_cpu:.2f} s, {1000 * lms_cpu / count:.2f} ms per score"
        )
        print(
            f"token requests: {lms['token_requests']}; posts received: {lms['posts']:,}; "
            f"results held: {lms['results']:,}; run: {run.to_dict()}"
        )
        problems = []
        if delivered != count or lms["results"] != count or lms["posts"] != count:
            problems.append("not every score delivered exactly once")
        if lms["token_requests"] != 1:
            problems.append(f"{lms['token_requests']} token requests, goal 1")
        if rate < GOAL:
            problems.append(f"{rate:,.0f} scores/s, goal {GOAL:,.0f}")
        print("goal met" if not problems else "goal NOT met: " + "; ".join(problems))
        return 1 if problems else 0
    finally:
        if child is not None and child.is_alive():
            child.terminate()  # gunicorn's graceful stop
            child.join(timeout=15)
            if child.is_alive():
                child.kill()
        services.engine.dispose()
        if services.redis is not None:
            services.redis.close()
        if pg_note is None:
            _admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
