"""What the evidence benchmarks share: a tool served by gunicorn on a fresh database, with the
sample catalog, a course mapped to its stack, learners, and each learner's `lt` token.

Not a benchmark itself (run_all.py runs bench_*.py only). The backends are chosen as
bench_launch chooses them: PostgreSQL and Redis when they answer, else SQLite.
"""

from __future__ import annotations

import os
import secrets
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parents[1]
for path in (str(REPO), str(BENCH_DIR)):
    if path not in sys.path:
        sys.path.insert(0, path)

import bench_launch  # noqa: E402
from bench_launch import Server, free_port, lti_tool_bin, start_server, wait_ready  # noqa: E402

KEY = "active-listening"


@dataclass
class Tool:
    base_url: str
    server: Server
    tokens: list[str]  # one per learner
    backends: bench_launch.Backends

    def worker_pid(self) -> int:
        return self.server.worker_pids()[0]


def _seed(env: dict[str, str], learners: int) -> list[str]:
    """Migrate, import the catalog, enrol learners, and sign their tokens (in this process,
    with the server's settings)."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        from lti_tool import migrate
        from lti_tool.app import create_app
        from lti_tool.catalog import mapping
        from lti_tool.db import transaction
        from lti_tool.roster.models import LEARNER, LmsUser
        from lti_tool.services import Services
        from lti_tool.settings import load_settings
        from lti_tool.web.identity import Identity, token_of
        from tests.unit.catalog_support import SAMPLE, import_paths
        from tests.unit.evidence_support import make_course

        settings = load_settings()
        services = Services(settings)
        migrate.upgrade(services.engine)
        import_paths(services, SAMPLE)
        course_id = make_course(services, "BENCH")
        with transaction(services.session_factory) as session:
            mapping.map_course_to_stack(session, course_id, "collaboration")
            from lti_tool.roster.models import Course

            platform_id = session.get(Course, course_id).platform_id
            users = [
                LmsUser(platform_id=platform_id, subject=f"bench-{i}", name=f"Learner {i}")
                for i in range(learners)
            ]
            session.add_all(users)
            session.flush()
            ids = [user.id for user in users]
        app = create_app(settings, services)
        tokens = []
        with app.test_request_context():
            for user_id in ids:
                identity = Identity(
                    platform_id=platform_id, user_id=user_id, course_id=course_id,
                    resource_link_id=None, role=LEARNER, launch_id=uuid.uuid4().hex,
                    message_type="LtiResourceLinkRequest",
                )  # fmt: skip
                tokens.append(token_of(identity))
        services.engine.dispose()
        return tokens
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def served_tool(workdir: Path, *, learners: int, workers: int, sqlite: bool = False,
                max_upload_mb: int = 200) -> Iterator[Tool]:  # fmt: skip
    backends = bench_launch.probe_backends(sqlite)
    owner = f"bench-evidence-{uuid.uuid4().hex[:8]}"
    if backends.postgres:
        backends.database_name = f"bench_evidence_{uuid.uuid4().hex[:8]}"
        bench_launch.create_database(backends.database_name)
    if backends.redis:
        backends.redis_db = bench_launch.claim_redis_db(owner)
        backends.redis = backends.redis_db is not None
    port = free_port()
    env = bench_launch.base_env()
    env.update(
        LTI_TOOL_BASE_URL=f"http://127.0.0.1:{port}",
        LTI_TOOL_INSTANCE_PATH=str(workdir / "instance"),
        LTI_TOOL_SECRET_KEY=secrets.token_urlsafe(48),
        LTI_TOOL_EVIDENCE_MAX_UPLOAD_MB=str(max_upload_mb),
        LTI_TOOL_ENV="production" if backends.postgres else "development",
    )
    if backends.postgres:
        env["LTI_TOOL_DATABASE_URL"] = bench_launch.PG_SQLALCHEMY_BASE + backends.database_name
    if backends.redis:
        env["LTI_TOOL_REDIS_URL"] = backends.redis_url
    server = None
    try:
        tokens = _seed(env, learners)
        server = start_server(
            "tool",
            [lti_tool_bin(), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers)],
            env, workdir / "tool.log", REPO,
        )  # fmt: skip
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(server, base_url + "/health", workers)
        yield Tool(base_url, server, tokens, backends)
    finally:
        if server is not None:
            server.stop()
        if backends.postgres and backends.database_name:
            bench_launch.drop_database(backends.database_name)
        if backends.redis and backends.redis_db is not None:
            bench_launch.release_redis_db(backends.redis_db, owner)


def describe(tool: Tool) -> str:
    return tool.backends.describe_tool()
