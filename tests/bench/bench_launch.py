"""Benchmark: the full LTI 1.3 login + launch round trip, the tool against a pylti1p3 reference.

Run by hand from the repository root (not collected by pytest):

    .venv/bin/python tests/bench/bench_launch.py [--quick]

What it does, in one run:

1. Picks the backends: PostgreSQL (127.0.0.1:5432, a fresh database dropped afterwards) and
   Redis (db 15, or the next database not claimed by a test run; emptied afterwards) when they
   answer, as in production; otherwise SQLite and no Redis (the embedded default), and says so.
2. Starts a test platform (tests/support/platform.py) whose JWKS is served on loopback, migrates
   the fresh database with `lti-tool db upgrade`, registers the platform with
   `lti-tool platform add`, and serves the tool with `lti-tool serve --workers N` (its default
   4 threads per worker).
3. Serves the reference app (tests/bench/reference_app.py: JSON-file tool configuration,
   Flask-Caching launch data storage, no database) under gunicorn with the same worker count and
   the same platform registration.
4. For 1, 16 and 64 concurrent clients (one BenchSession each, one thread each), drives a
   bounded number of full round trips against each app: POST the login, read state and nonce
   from the redirect to the platform, keep the state cookie, sign a Canvas-shaped id_token with
   that nonce, POST the launch with id_token, state and the cookie. The tool succeeds with a 303
   to its landing page, the reference with a 200 page; anything else is an error. Each cell runs
   in rounds of tool, reference, reference, tool (10 rounds at 1 and 16 clients, 8 at 64; short
   slices), so that a change in the machine's speed weighs on both alike.
5. Prints launches/s, p50 and p99 latency (login + launch requests, without the client's own
   token signing, which is reported apart), the gunicorn workers' CPU per launch, and the ratio
   tool/reference of launches per second at each concurrency: each round's, and their
   geometric mean with a 95 % confidence interval. The goal counts as shown only where the
   whole interval is at or above 1.0; an interval across 1.0 is a difference the run cannot
   tell from the machine's noise, and is reported so.

Exits 1 if any launch failed at 64 concurrent clients (or setup failed). Every loop is bounded in
count and in time; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(__file__).resolve().parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import jwt  # noqa: E402
import requests  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from tests.support.platform import PlatformHub, TestPlatform  # noqa: E402

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_SQLALCHEMY_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"
REDIS_SERVER = "redis://127.0.0.1:6379"
# Redis databases are claimed as tests/integration/conftest.py claims them (a key in db 0,
# set only if absent), db 15 first: a bench and a test run at the same time never share a
# database, and each may empty the one it holds.
REDIS_DBS = range(15, 7, -1)
REDIS_CLAIM_KEY = "lti-tool-tests:claimed-db:{}"
REDIS_CLAIM_TTL = 3600
REQUEST_TIMEOUT = 30
CONCURRENCY = (1, 16, 64)
# A cell (one target at one concurrency) is measured in slices of (launches, seconds at most),
# in rounds of A B B A (tool, reference, reference, tool): this machine's speed changes within
# seconds, by up to half, and short alternating slices let both targets see the same changes.
# Each round gives one ratio tool/reference; the spread of those ratios says how much of a
# difference is noise. A slice must stay long beside the clients' ramp-up and ramp-down.
SLICES = {1: (150, 6.0), 16: (150, 6.0), 64: (300, 10.0)}
ROUNDS = {1: 10, 16: 10, 64: 8}
QUICK_SLICES = {1: (20, 3.0), 16: (100, 4.0), 64: (160, 5.0)}
# Two-sided 95 % quantiles of Student's t by degrees of freedom (rounds - 1).
T_975 = {
    1: 12.71,
    2: 4.30,
    3: 3.18,
    4: 2.78,
    5: 2.57,
    6: 2.45,
    7: 2.36,
    8: 2.31,
    9: 2.26,
    10: 2.23,
    11: 2.20,
    12: 2.18,
    13: 2.16,
    14: 2.14,
    15: 2.13,
    19: 2.09,
    29: 2.05,
}
WARMUP_LAUNCHES = 8  # per worker and warm-up round
WARMUP_TRIES = 10
WARMUP_CPU_SECONDS = 0.05  # each worker's CPU in warm-up: it served a few launches
REASON = re.compile(r"Reason code: <code>(\w+)</code>")


# -- backends --------------------------------------------------------------------------------
@dataclass
class Backends:
    postgres: bool
    redis: bool
    database_name: str | None = None
    redis_db: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        return f"{REDIS_SERVER}/{self.redis_db}"

    def describe_tool(self) -> str:
        if self.postgres:
            db = f"PostgreSQL (database {self.database_name} on 127.0.0.1:5432, dropped afterwards)"
        else:
            db = "SQLite (a file in a temporary instance folder)"
        cache = "no Redis (cache table in the database)"
        if self.redis:
            cache = f"Redis {self.redis_url}"
        mode = "production mode" if self.postgres else "development mode"
        return f"{db} + {cache}, {mode}"

    def describe_reference(self, prefix: str) -> str:
        if self.redis:
            return f"Flask-Caching RedisCache {self.redis_url} (key prefix {prefix}), no database"
        return "Flask-Caching FileSystemCache (temporary folder), no database"


def probe_backends(force_sqlite: bool) -> Backends:
    if force_sqlite:
        return Backends(False, False, notes=["--sqlite given: SQLite and no Redis."])
    notes = []
    postgres = redis_ok = False
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            postgres = True
    except Exception as exc:  # any failure: fall back, and say why
        notes.append(f"PostgreSQL not reachable ({str(exc).splitlines()[0]}): using SQLite.")
    try:
        from redis import Redis

        Redis.from_url(REDIS_SERVER + "/0", socket_connect_timeout=3).ping()
        redis_ok = True
    except Exception as exc:
        notes.append(f"Redis not reachable ({exc}): the tool keeps its cache in the database.")
    if not postgres and redis_ok:
        # Production pairs PostgreSQL with Redis; SQLite runs the embedded default (no Redis).
        redis_ok = False
        notes.append("Without PostgreSQL the tool runs its embedded default: no Redis either.")
    return Backends(postgres, redis_ok, notes=notes)


def create_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def claim_redis_db(owner: str) -> int | None:
    """Claim a free Redis database number (15 first) and empty it; None if all are taken."""
    from redis import Redis

    control = Redis.from_url(REDIS_SERVER + "/0")
    for number in REDIS_DBS:
        if control.set(REDIS_CLAIM_KEY.format(number), owner, nx=True, ex=REDIS_CLAIM_TTL):
            Redis.from_url(f"{REDIS_SERVER}/{number}").flushdb()
            return number
    return None


def release_redis_db(number: int, owner: str) -> None:
    """Empty the claimed database (its keys are all this run's) and give it back."""
    from redis import Redis

    Redis.from_url(f"{REDIS_SERVER}/{number}").flushdb()
    control = Redis.from_url(REDIS_SERVER + "/0")
    key = REDIS_CLAIM_KEY.format(number)
    if control.get(key) == owner.encode():
        control.delete(key)


# -- servers ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    log_path: Path

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def worker_cpu_seconds(self) -> dict[int, float]:
        """User + system CPU of each gunicorn worker so far (Linux /proc), by pid."""
        tick = os.sysconf("SC_CLK_TCK")
        seconds = {}
        for pid in self.worker_pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seconds[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        return seconds

    def workers_cpu_seconds(self) -> float:
        return sum(self.worker_cpu_seconds().values())

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_server(name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path):
    log = log_path.open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own commands
        argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    return Server(name, process, log_path)


def wait_ready(server: Server, url: str, workers: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited at start:\n{server.log_tail()}")
        try:
            requests.get(url, timeout=2)
            if len(server.worker_pids()) >= workers:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"{server.name} did not answer {url} in {timeout:.0f}s:\n{server.log_tail()}"
    )


def run_cli(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(  # noqa: S603 - our own command
        [lti_tool_bin(), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"lti-tool {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def lti_tool_bin() -> str:
    candidate = Path(sys.executable).parent / "lti-tool"
    return str(candidate if candidate.exists() else REPO / ".venv" / "bin" / "lti-tool")


# -- the two targets -------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    base_url: str
    login_path: str
    launch_path: str
    success: Callable[[requests.Response], bool]
    server: Server
    login_extra: dict[str, str] = field(default_factory=dict)

    @property
    def launch_url(self) -> str:
        return self.base_url + self.launch_path


def tool_success(response: requests.Response) -> bool:
    return response.status_code == 303 and "/home" in response.headers.get("Location", "")


def reference_success(response: requests.Response) -> bool:
    return response.status_code == 200 and "Hello" in response.text


class Signer:
    """The platform's signing key, loaded once: the client signs each id_token in about a ms."""

    def __init__(self, platform: TestPlatform) -> None:
        self.platform = platform
        self.kid = platform.signer.kid
        self.key = serialization.load_pem_private_key(
            platform.signer.private_pem.encode(), password=None
        )

    def sign(self, claims: dict) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


class BenchSession(requests.Session):
    """A requests session that does not prepare the redirect it is told not to follow.

    With allow_redirects=False, requests still builds the next request of every 3xx answer
    (cookies merged, proxies and auth rebuilt from the environment: about 1.2 ms of CPU on this
    machine). The client shares the cores with both apps, so that work, which no browser does
    and which depends only on the answer's status, weighed on the target that answers a
    launch with a redirect (the tool: 303 to its landing page) and not on the one that answers
    with a page (the reference: 200). Both logins are redirects and benefit alike.
    """

    def get_redirect_target(self, resp):
        return None


@dataclass
class Outcome:
    ok: bool
    latency: float = 0.0  # seconds in the two requests
    signing: float = 0.0  # seconds the client spent making and signing the id_token
    error: str = ""


def describe_failure(stage: str, response: requests.Response) -> str:
    match = REASON.search(response.text or "")
    detail = match.group(1) if match else (response.text or "").strip()[:80].replace("\n", " ")
    return f"{stage} HTTP {response.status_code}: {detail}"


def round_trip(
    session: requests.Session, target: Target, platform: TestPlatform, signer: Signer, sub: str
) -> Outcome:
    session.cookies.clear()  # a fresh browser launch: only this login's state cookie goes back
    params = {
        "iss": platform.issuer,
        "login_hint": sub,
        "target_link_uri": target.launch_url,
        "client_id": platform.client_id,
        "lti_deployment_id": platform.deployment_id,
        **target.login_extra,
    }
    try:
        t0 = time.perf_counter()
        login = session.post(
            target.base_url + target.login_path,
            data=params,
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT,
        )
        t1 = time.perf_counter()
        if login.status_code not in (302, 303):
            return Outcome(False, error=describe_failure("login", login))
        query = parse_qs(urlsplit(login.headers.get("Location", "")).query)
        if "state" not in query or "nonce" not in query:
            return Outcome(False, error="login: redirect without state and nonce")
        state, nonce = query["state"][0], query["nonce"][0]
        claims = platform.canvas_claims(nonce, target.launch_url, sub=sub)
        token = signer.sign(claims)
        t2 = time.perf_counter()
        launch = session.post(
            target.launch_url,
            data={"id_token": token, "state": state},
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT,
        )
        t3 = time.perf_counter()
    except requests.RequestException as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {str(exc)[:100]}")
    if not target.success(launch):
        return Outcome(False, error=describe_failure("launch", launch))
    return Outcome(True, latency=(t1 - t0) + (t3 - t2), signing=t2 - t1)


@dataclass
class Cell:
    target: str
    clients: int
    launches: int
    errors: int
    seconds: float
    latencies: list[float]
    signing: list[float]
    server_cpu: float
    client_cpu: float
    error_samples: list[str]

    @property
    def rate(self) -> float:
        return self.launches / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
        return ordered[index] * 1000

    def per_launch_ms(self, seconds: float) -> float:
        done = self.launches + self.errors
        return seconds * 1000 / done if done else float("nan")

    def merge(self, other: Cell) -> Cell:
        return Cell(
            target=self.target,
            clients=self.clients,
            launches=self.launches + other.launches,
            errors=self.errors + other.errors,
            seconds=self.seconds + other.seconds,
            latencies=self.latencies + other.latencies,
            signing=self.signing + other.signing,
            server_cpu=self.server_cpu + other.server_cpu,
            client_cpu=self.client_cpu + other.client_cpu,
            error_samples=(self.error_samples + other.error_samples)[:5],
        )


def drive(
    target: Target,
    platform: TestPlatform,
    signer: Signer,
    clients: int,
    launches: int,
    budget: float,
    people: list[str] | None = None,
) -> Cell:
    """`clients` threads, one session each, share `launches` round trips (at most `budget` s).
    Client i launches as people[i] (one simulated person per client; new ones by default)."""
    lock = threading.Lock()
    issued = 0
    outcomes: list[Outcome] = []
    deadline = time.perf_counter() + budget

    def client(index: int) -> None:
        nonlocal issued
        sub = people[index] if people else f"bench-{index}-{uuid.uuid4().hex[:8]}"
        with BenchSession() as session:
            while True:
                with lock:
                    if issued >= launches or time.perf_counter() >= deadline:
                        return
                    issued += 1
                outcome = round_trip(session, target, platform, signer, sub)
                with lock:
                    outcomes.append(outcome)

    cpu_before = target.server.workers_cpu_seconds()
    client_before = time.process_time()
    start = time.perf_counter()
    deadline = start + budget
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(client, i) for i in range(clients)]:
            future.result()
    seconds = time.perf_counter() - start
    client_cpu = time.process_time() - client_before
    server_cpu = target.server.workers_cpu_seconds() - cpu_before
    good = [o for o in outcomes if o.ok]
    bad = [o for o in outcomes if not o.ok]
    samples: list[str] = []
    for outcome in bad:
        if outcome.error not in samples:
            samples.append(outcome.error)
    return Cell(
        target=target.name,
        clients=clients,
        launches=len(good),
        errors=len(bad),
        seconds=seconds,
        latencies=[o.latency for o in good],
        signing=[o.signing for o in good],
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        error_samples=samples[:5],
    )


def warm_up(target: Target, platform: TestPlatform, signer: Signer, workers: int) -> str:
    """Launch until every worker has served some: a worker's first requests load code, open
    its database and Redis connections and read the platform's keys (a tenth of a second or
    more), which must not fall into a measured cell. Kept-alive connections stay with the
    worker that accepted them, so a few clients may all land on one worker: repeat until each
    has used CPU. Returns what went wrong, or "" when every worker is warm."""
    before = target.server.worker_cpu_seconds()
    for _ in range(WARMUP_TRIES):
        warm = drive(target, platform, signer, 2 * workers, WARMUP_LAUNCHES * workers, 20.0)
        if warm.errors:
            return str(warm.error_samples)
        now = target.server.worker_cpu_seconds()
        if len(now) >= workers and all(
            now[pid] - before.get(pid, 0.0) >= WARMUP_CPU_SECONDS for pid in now
        ):
            return ""
    return f"not every worker answered within {WARMUP_TRIES} warm-up rounds"


# -- setup of both apps ----------------------------------------------------------------------
def reference_installed() -> bool:
    """Whether the reference app's dependency (the bench extra) is there; says how if not."""
    try:
        import flask_caching  # noqa: F401
    except ImportError:
        print("the reference app needs Flask-Caching: .venv/bin/pip install -e '.[bench]'")
        return False
    return True


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LTI_TOOL_", "BENCH_REF_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def tool_env(workdir: Path, backends: Backends, base_url: str) -> dict[str, str]:
    """The tool's settings for a run on these backends (production mode on PostgreSQL)."""
    env = base_env()
    env.update(
        LTI_TOOL_BASE_URL=base_url,
        LTI_TOOL_INSTANCE_PATH=str(workdir / "tool-instance"),
        LTI_TOOL_SECRET_KEY=secrets.token_urlsafe(48),
    )
    if backends.postgres:
        env["LTI_TOOL_ENV"] = "production"
        env["LTI_TOOL_DATABASE_URL"] = PG_SQLALCHEMY_BASE + str(backends.database_name)
    else:
        env["LTI_TOOL_ENV"] = "development"
    if backends.redis:
        env["LTI_TOOL_REDIS_URL"] = backends.redis_url
    return env


def prepare_tool(env: dict[str, str], platform: TestPlatform) -> None:
    """Migrate the fresh database and register the platform, as an administrator would."""
    run_cli(["db", "upgrade"], env)
    run_cli(
        ["platform", "add", *platform.register_args(), "--name", "Bench Canvas"],
        env,
    )


def setup_tool(
    workdir: Path, backends: Backends, platform: TestPlatform, workers: int, threads: int = 4
) -> tuple[Target, dict[str, str]]:
    port = free_port()
    env = tool_env(workdir, backends, f"http://127.0.0.1:{port}")
    prepare_tool(env, platform)
    server = start_server(
        "tool",
        [
            lti_tool_bin(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
        ],
        env,
        workdir / "tool.log",
        REPO,
    )
    target = Target(
        name="tool",
        base_url=f"http://127.0.0.1:{port}",
        login_path="/lti/login",
        launch_path="/lti/launch",
        success=tool_success,
        server=server,
    )
    wait_ready(server, target.base_url + "/health", workers)
    return target, env


def reference_env(
    ref_dir: Path, backends: Backends, platform: TestPlatform, prefix: str
) -> dict[str, str]:
    """Write the reference's JSON tool configuration and keys; its settings (environment)."""
    ref_dir.mkdir()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (ref_dir / "private.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    (ref_dir / "public.key").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    server_url = platform.jwks_server.url
    config = {
        platform.issuer: [
            {
                "default": True,
                "client_id": platform.client_id,
                "auth_login_url": f"{server_url}/auth",
                "auth_token_url": f"{server_url}/token",
                "auth_audience": None,
                "key_set_url": platform.jwks_url,
                "key_set": None,
                "private_key_file": "private.key",
                "public_key_file": "public.key",
                "deployment_ids": [platform.deployment_id],
            }
        ]
    }
    (ref_dir / "tool.json").write_text(json.dumps(config, indent=2))
    env = base_env()
    env.update(BENCH_REF_CONFIG=str(ref_dir / "tool.json"), BENCH_REF_SECRET=secrets.token_hex(16))
    if backends.redis:
        env.update(
            BENCH_REF_CACHE="RedisCache",
            BENCH_REF_REDIS_URL=backends.redis_url,
            BENCH_REF_CACHE_PREFIX=prefix,
        )
    else:
        (ref_dir / "cache").mkdir()
        env.update(BENCH_REF_CACHE="FileSystemCache", BENCH_REF_CACHE_DIR=str(ref_dir / "cache"))
    return env


def setup_reference(
    workdir: Path,
    backends: Backends,
    platform: TestPlatform,
    workers: int,
    prefix: str,
    threads: int = 1,
) -> Target:
    port = free_port()
    ref_dir = workdir / "reference"
    env = reference_env(ref_dir, backends, platform, prefix)
    gunicorn = Path(sys.executable).parent / "gunicorn"
    server = start_server(
        "reference",
        [
            str(gunicorn),
            "--workers",
            str(workers),
            *(["--worker-class", "gthread", "--threads", str(threads)] if threads > 1 else []),
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(BENCH_DIR),
            "reference_app:create_app()",
        ],
        env,
        workdir / "reference.log",
        BENCH_DIR,
    )
    target = Target(
        name="reference",
        base_url=f"http://127.0.0.1:{port}",
        login_path="/login/",
        launch_path="/launch/",
        success=reference_success,
        server=server,
        # What a browser sends once the example's cookie-check page has passed: with it the
        # reference answers the login with its redirect straight away (one request, like the
        # tool), so the check page's extra round trip is not counted against the reference.
        login_extra={"lti1p3_new_window": "1"},
    )
    wait_ready(server, target.base_url + "/jwks/", workers)
    return target


# -- report ----------------------------------------------------------------------------------
def print_table(cells: list[Cell]) -> None:
    header = (
        f"{'target':<10} {'clients':>7} {'launches':>8} {'errors':>6} {'launches/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'server CPU ms':>13} {'client CPU ms':>13} "
        f"{'sign ms':>7}"
    )
    print(header)
    print("-" * len(header))
    for cell in cells:
        sign = sorted(cell.signing)[len(cell.signing) // 2] * 1000 if cell.signing else 0.0
        print(
            f"{cell.target:<10} {cell.clients:>7} {cell.launches:>8} {cell.errors:>6} "
            f"{cell.rate:>10.1f} {cell.percentile(0.50):>8.1f} {cell.percentile(0.99):>8.1f} "
            f"{cell.per_launch_ms(cell.server_cpu):>13.2f} "
            f"{cell.per_launch_ms(cell.client_cpu):>13.2f} {sign:>7.2f}"
        )
    print(
        "latency: the login and launch requests of one round trip (not the client's signing); "
        "server CPU: the gunicorn workers' CPU per launch (PostgreSQL and Redis not included); "
        "client CPU: this process's CPU per launch; sign ms: p50 time the client took to make "
        "and sign one id_token."
    )
    print()
    print(f"{'clients':>7} {'ratio tool/reference (launches/s)':>34} {'p50 tool/reference':>19}")
    for clients in sorted({c.clients for c in cells}):
        tool = next((c for c in cells if c.target == "tool" and c.clients == clients), None)
        ref = next((c for c in cells if c.target == "reference" and c.clients == clients), None)
        if tool and ref and ref.rate:
            p50 = tool.percentile(0.5) / ref.percentile(0.5) if ref.latencies else float("nan")
            print(f"{clients:>7} {tool.rate / ref.rate:>34.2f} {p50:>19.2f}")
    for cell in cells:
        for sample in cell.error_samples:
            print(f"error sample ({cell.target}, {cell.clients} clients): {sample}")


def ratio_interval(ratios: list[float]) -> tuple[float, float, float]:
    """The geometric mean of the rounds' ratios and its 95 % confidence interval (Student's t
    on the logarithms; the interval is as wide as the rounds disagree)."""
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(mean), float("nan"), float("nan")
    df = len(logs) - 1
    t = T_975[max(k for k in T_975 if k <= df)]  # between two rows: the wider one
    half = t * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def print_ratios(round_ratios: dict[int, list[float]]) -> None:
    """Per concurrency: the ratio over the rounds, its 95 % interval, and the verdict."""
    print()
    print(
        f"{'clients':>7} {'rounds':>6} {'ratio tool/reference':>20} {'95% interval':>14}  verdict"
    )
    verdicts = []
    for clients, ratios in sorted(round_ratios.items()):
        mean, low, high = ratio_interval(ratios)
        if math.isnan(low):
            verdict = "one round: no interval (run more rounds)"
        elif low >= 1.0:
            verdict = "tool faster"
        elif high < 1.0:
            verdict = "tool slower"
        else:
            verdict = "no difference this run can tell from noise"
        verdicts.append(verdict)
        print(f"{clients:>7} {len(ratios):>6} {mean:>20.2f} {low:>6.2f} - {high:<5.2f}  {verdict}")
    met = all(v == "tool faster" for v in verdicts)
    print()
    print(
        "goal (tool at least as fast as the reference at every concurrency, beyond noise): "
        + ("met" if met else "NOT shown by this run")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per app")
    parser.add_argument(
        "--threads", type=int, default=4, help="threads per tool worker (1: sync workers)"
    )
    parser.add_argument(
        "--reference-threads",
        type=int,
        default=1,
        help="threads per reference worker (1: gunicorn's default sync workers, as documented)",
    )
    parser.add_argument("--sqlite", action="store_true", help="use SQLite and no Redis")
    parser.add_argument(
        "--clients", default=",".join(map(str, CONCURRENCY)), help="concurrencies, e.g. 1,16,64"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="rounds of A B B A per cell (default: 10 at 1 and 16 clients, 8 at 64)",
    )
    parser.add_argument("--only", choices=("tool", "reference"), help="drive one target only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = parser.parse_args(argv)
    if not reference_installed():
        return 2
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the JWKS server's access log
    plan = QUICK_SLICES if args.quick else SLICES

    def rounds_of(clients: int) -> int:
        return args.rounds or (1 if args.quick else ROUNDS.get(clients, 1))

    def slice_of(clients: int) -> tuple[int, float]:
        """(launches, seconds at most) of one slice; an unplanned concurrency as the largest."""
        return plan.get(clients, plan[max(plan)])

    concurrencies = [int(c) for c in args.clients.split(",") if c.strip()]

    backends = probe_backends(args.sqlite)
    run_id = uuid.uuid4().hex[:10]
    ref_prefix = f"bench-ref-{run_id}:"
    workdir = Path(tempfile.mkdtemp(prefix="bench-launch-"))
    hub = PlatformHub()
    servers: list[Server] = []
    owner = f"bench-launch-{run_id}"
    cells: list[Cell] = []
    try:
        if backends.postgres:
            backends.database_name = f"bench_launch_{run_id}"
            create_database(backends.database_name)
        if backends.redis:
            backends.redis_db = claim_redis_db(owner)
            if backends.redis_db is None:
                backends.redis = False
                backends.notes.append(
                    f"Redis databases {list(REDIS_DBS)} are all claimed (test runs?): "
                    "the tool keeps its cache in the database, the reference on disk."
                )
        platform = hub.add(
            "https://canvas.instructure.com",
            "10000000000" + str(uuid.uuid4().int)[:6],
            "42:" + uuid.uuid4().hex,
            "canvas",
        )
        signer = Signer(platform)
        targets: list[Target] = []
        if args.only != "reference":
            tool, _ = setup_tool(workdir, backends, platform, args.workers, args.threads)
            servers.append(tool.server)
            targets.append(tool)
        if args.only != "tool":
            reference = setup_reference(
                workdir, backends, platform, args.workers, ref_prefix, args.reference_threads
            )
            servers.append(reference.server)
            targets.append(reference)

        print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
        print(
            f"machine: {os.cpu_count()} cores; gunicorn workers per app: {args.workers} "
            f"(the tool: lti-tool serve --threads {args.threads}; the reference: "
            + (
                f"gunicorn's threaded workers, {args.reference_threads} threads each)"
                if args.reference_threads > 1
                else "gunicorn's default sync workers)"
            )
        )
        print(f"tool backends: {backends.describe_tool()}")
        print(f"reference backends: {backends.describe_reference(ref_prefix)}")
        for note in backends.notes:
            print(f"note: {note}")
        print(
            "plan: rounds of tool, reference, reference, tool; "
            + ", ".join(
                f"{c} clients: {rounds_of(c)} x {slice_of(c)[0]} launches "
                f"(or {slice_of(c)[1]:.0f}s) per slice"
                for c in concurrencies
            )
        )
        print()
        for target in targets:  # load code, open pools, cache the platform's keys
            failure = warm_up(target, platform, signer, args.workers)
            if failure:
                print(f"warm-up of {target.name} failed: {failure}")
                print(target.server.log_tail())
                return 1
        round_ratios: dict[int, list[float]] = {}
        for clients in concurrencies:
            launches, budget = slice_of(clients)
            parts: dict[str, Cell] = {}
            # The same people in every slice of the cell: each launches for the first time
            # (the tool records them) once per target, then relaunches, as a course's learners
            # do; new people in each short slice would make first launches a fifth of them.
            people = [f"bench-{clients}c-{i}-{uuid.uuid4().hex[:8]}" for i in range(clients)]
            for _ in range(rounds_of(clients)):
                this_round: dict[str, Cell] = {}
                for target in [*targets, *reversed(targets)]:
                    part = drive(target, platform, signer, clients, launches, budget, people)
                    done = this_round.get(target.name)
                    this_round[target.name] = done.merge(part) if done else part
                for name, part in this_round.items():
                    parts[name] = parts[name].merge(part) if name in parts else part
                if len(this_round) == 2 and this_round["reference"].rate:
                    round_ratios.setdefault(clients, []).append(
                        this_round["tool"].rate / this_round["reference"].rate
                    )
            for target in targets:
                cell = parts[target.name]
                cells.append(cell)
                print(
                    f"  {target.name:<10} {clients:>3} clients: {cell.launches} launches, "
                    f"{cell.errors} errors, {cell.rate:.1f}/s",
                    flush=True,
                )
            if clients in round_ratios:
                print(
                    "  ratio tool/reference in each round: "
                    + " ".join(f"{r:.2f}" for r in round_ratios[clients]),
                    flush=True,
                )
        print()
        print_table(cells)
        failed_at_64 = [c for c in cells if c.clients == 64 and c.errors]
        if round_ratios:
            print_ratios(round_ratios)
        if failed_at_64:
            print("FAIL: launch errors at 64 concurrent clients")
            return 1
        return 0
    except Exception as exc:
        print(f"bench setup failed: {exc}")
        for server in servers:
            print(f"--- {server.name} log ---\n{server.log_tail()}")
        return 1
    finally:
        for server in servers:
            server.stop()
        hub.stop()
        if backends.postgres and backends.database_name:
            try:
                drop_database(backends.database_name)
            except Exception as exc:
                print(f"note: could not drop database {backends.database_name}: {exc}")
        if backends.redis_db is not None:
            try:
                release_redis_db(backends.redis_db, owner)
            except Exception as exc:
                print(f"note: could not empty Redis db {backends.redis_db}: {exc}")
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
