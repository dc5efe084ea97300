"""Benchmark: what the login + launch round trip costs inside each app, without an HTTP server.

Run by hand from the repository root (not collected by pytest):

    .venv/bin/python tests/bench/bench_launch_app.py [--launches N] [--rounds R] [--quick]

bench_launch.py measures both apps as a browser meets them (gunicorn, loopback HTTP, a
`requests` client on the same cores), where the HTTP server and the client cost about as much
as the apps themselves. This one calls each app's WSGI entry point in this process (Flask's
test client), on the same backends as bench_launch.py (PostgreSQL and Redis when they answer),
and counts only the CPU time spent inside the app: the tool (which records the user, course,
link and enrolment) against the pylti1p3 reference (which records nothing). The same person
launches the same link over and over after one first launch, the usual case, in rounds of
tool, reference, reference, tool so that a change of the machine's speed weighs on both alike.

Prints, per app, the app's CPU per round trip (login + launch requests) and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parents[1]
for path in (str(REPO), str(BENCH_DIR)):
    if path not in sys.path:
        sys.path.insert(0, path)

import bench_launch as bench  # noqa: E402

from tests.support.platform import PlatformHub, TestPlatform  # noqa: E402

BASE_URL = "http://127.0.0.1:5999"


class MeteredApp:
    """A Flask app whose WSGI calls add the CPU time they take to `cpu`."""

    def __init__(self, app) -> None:
        self.cpu = 0.0
        inner = app.wsgi_app

        def metered(environ, start_response):
            started = time.thread_time()
            try:
                return inner(environ, start_response)
            finally:
                self.cpu += time.thread_time() - started

        app.wsgi_app = metered
        self.client = app.test_client()


def round_trip_of(
    metered: MeteredApp,
    platform: TestPlatform,
    signer: bench.Signer,
    login_path: str,
    launch_url: str,
    login_extra: dict[str, str],
    ok: Callable[[object], bool],
) -> Callable[[str], None]:
    def run(sub: str) -> None:
        client = metered.client
        client._cookies.clear()  # a fresh browser launch, as bench_launch does
        login = client.post(
            login_path,
            data={
                "iss": platform.issuer,
                "login_hint": sub,
                "target_link_uri": launch_url,
                "client_id": platform.client_id,
                "lti_deployment_id": platform.deployment_id,
                **login_extra,
            },
        )
        if login.status_code not in (302, 303):
            raise RuntimeError(f"login answered {login.status_code}: {login.data[:200]!r}")
        query = parse_qs(urlsplit(login.headers["Location"]).query)
        token = signer.sign(platform.canvas_claims(query["nonce"][0], launch_url, sub=sub))
        launch = client.post(
            urlsplit(launch_url).path, data={"id_token": token, "state": query["state"][0]}
        )
        if not ok(launch):
            raise RuntimeError(f"launch answered {launch.status_code}: {launch.data[:200]!r}")

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=1000, help="round trips per slice")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of A B B A")
    parser.add_argument("--sqlite", action="store_true", help="use SQLite and no Redis")
    parser.add_argument("--quick", action="store_true", help="1 round of 200 (run_all --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.launches, args.rounds = 200, 1
    if not bench.reference_installed():
        return 2

    backends = bench.probe_backends(args.sqlite)
    run_id = uuid.uuid4().hex[:10]
    owner = f"bench-launch-app-{run_id}"
    workdir = Path(tempfile.mkdtemp(prefix="bench-launch-app-"))
    hub = PlatformHub()
    try:
        if backends.postgres:
            backends.database_name = f"bench_launch_app_{run_id}"
            bench.create_database(backends.database_name)
        if backends.redis:
            backends.redis_db = bench.claim_redis_db(owner)
            backends.redis = backends.redis_db is not None
        platform = hub.add(
            "https://canvas.instructure.com",
            "10000000000" + str(uuid.uuid4().int)[:6],
            "42:" + uuid.uuid4().hex,
            "canvas",
        )
        signer = bench.Signer(platform)
        tool_env = bench.tool_env(workdir, backends, BASE_URL)
        bench.prepare_tool(tool_env, platform)
        ref_env = bench.reference_env(
            workdir / "reference", backends, platform, f"bench-ref-{run_id}:"
        )
        # Both apps read their settings from the environment when they are created.
        os.environ.update({k: v for k, v in tool_env.items() if k.startswith("LTI_TOOL_")})
        os.environ.update({k: v for k, v in ref_env.items() if k.startswith("BENCH_REF_")})
        import reference_app

        from lti_tool.app import create_app
        from lti_tool.settings import load_settings

        tool = MeteredApp(create_app(load_settings()))
        reference = MeteredApp(reference_app.create_app())
        runs = {
            "tool": round_trip_of(
                tool,
                platform,
                signer,
                "/lti/login",
                BASE_URL + "/lti/launch",
                {},
                lambda r: r.status_code == 303,
            ),
            "reference": round_trip_of(
                reference,
                platform,
                signer,
                "/login/",
                "http://localhost/launch/",
                {"lti1p3_new_window": "1"},
                lambda r: r.status_code == 200 and b"Hello" in r.data,
            ),
        }
        meters = {"tool": tool, "reference": reference}
        print(f"backends: {backends.describe_tool()}")
        print(
            f"plan: {args.rounds} rounds of tool, reference, reference, tool; "
            f"{args.launches} round trips per slice"
        )
        for run in runs.values():  # first launch, imports, pools, the platform's keys
            for _ in range(20):
                run("bench-person")
        for meter in meters.values():
            meter.cpu = 0.0
        counts = dict.fromkeys(runs, 0)
        for _ in range(args.rounds):
            for name in ["tool", "reference", "reference", "tool"]:
                for _ in range(args.launches):
                    runs[name]("bench-person")
                counts[name] += args.launches
        print()
        print(f"{'app':<10} {'round trips':>11} {'app CPU ms per round trip':>26}")
        per = {name: meters[name].cpu * 1000 / counts[name] for name in runs}
        for name in runs:
            print(f"{name:<10} {counts[name]:>11} {per[name]:>26.3f}")
        print(f"ratio of CPU per round trip, reference/tool: {per['reference'] / per['tool']:.2f}")
        return 0
    finally:
        hub.stop()
        if backends.database_name:
            bench.drop_database(backends.database_name)
        if backends.redis_db is not None:
            bench.release_redis_db(backends.redis_db, owner)


if __name__ == "__main__":
    sys.exit(main())
