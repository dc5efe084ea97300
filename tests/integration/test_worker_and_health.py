"""A real `lti-tool worker` process runs the tool's jobs from Redis; /health reports on it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Worker
from rq.job import Job, JobStatus

from lti_tool import jobs
from lti_tool.app import create_app
from lti_tool.services import Services
from lti_tool.settings import REPO_ROOT
from tests.integration import worker_jobs
from tests.integration.test_launch_postgresql_redis import https_client
from tests.support.servers import lti_tool_command, stop_gracefully

STARTUP_TIMEOUT = 30
JOB_TIMEOUT = 30


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            code = process.returncode
            pytest.fail(f"the worker exited ({code}) before {what}:\n{log.read_text()}")
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; worker log:\n{log.read_text()}")


def worker_env(settings, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTI_TOOL_")}
    env.update(
        LTI_TOOL_REDIS_URL=settings.redis_url,
        LTI_TOOL_DATABASE_URL=settings.database_url,
        LTI_TOOL_INSTANCE_PATH=str(tmp_path / "worker-instance"),
        PYTHONUNBUFFERED="1",
        # So that the worker can import the test-only jobs of tests/integration/worker_jobs.py.
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    )
    if settings.smtp_url:  # a test's loopback mail server (tests/support/smtp.py)
        env.update(LTI_TOOL_SMTP_URL=settings.smtp_url, LTI_TOOL_MAIL_FROM=settings.mail_from)
    return env


class RunningWorker:
    def __init__(self, process: subprocess.Popen, log: Path, redis: Redis) -> None:
        self.process = process
        self.log = log
        self.redis = redis


@pytest.fixture
def worker(settings, tmp_path) -> Iterator[RunningWorker]:
    """`lti-tool worker` in its own process, on this test's Redis database and PostgreSQL."""
    env = worker_env(settings, tmp_path)
    log = tmp_path / "worker.log"
    redis = Redis.from_url(settings.redis_url)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*lti_tool_command(), "worker"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: a stuck worker is killed with its children
        )
    running = RunningWorker(process, log, redis)
    try:
        wait_for(
            lambda: Worker.all(connection=redis),
            STARTUP_TIMEOUT,
            "it registered with Redis",
            process,
            log,
        )
        yield running
    finally:
        if not stop_gracefully(process):  # SIGTERM: RQ's warm shutdown
            pytest.fail(f"the worker did not stop on SIGTERM:\n{log.read_text()}")
        redis.close()


def test_worker_process_runs_the_health_probe_job(worker, settings):
    services = Services(settings)
    token = uuid.uuid4().hex
    job_id = "probe-" + token
    jobs.enqueue(services, jobs.health_probe, token, job_id=job_id)

    job = Job.fetch(job_id, connection=worker.redis)
    assert job.origin == jobs.QUEUE_NAME
    wait_for(
        lambda: job.get_status(refresh=True) in (JobStatus.FINISHED, JobStatus.FAILED),
        JOB_TIMEOUT,
        "the job to finish",
        worker.process,
        worker.log,
    )
    assert job.get_status() == JobStatus.FINISHED, job.latest_result()
    echoed, pid = job.return_value().rsplit(":", 1)
    assert echoed == token
    assert int(pid) != os.getpid()  # ran in the worker (or its work horse), not in the test

    # A clean stop: SIGTERM is a warm shutdown, the worker deregisters and exits 0.
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=20) == 0, worker.log.read_text()
    assert Worker.all(connection=worker.redis) == []
    services.redis.close()


# A worker whose parent process used the database before forking its work horses, as a
# sweeper does at start; run in burst mode, it stops by itself once the queue is empty.
SWEEPING_WORKER = """
from sqlalchemy import text
from lti_tool import jobs
from lti_tool.services import Services
from lti_tool.settings import load_settings

def sweeper(services):
    with services.engine.connect() as connection:
        print("parent-backend", connection.execute(text("SELECT pg_backend_pid()")).scalar())
    return 0

jobs.SWEEPERS.append(sweeper)
jobs.run_worker(Services(load_settings()), burst=True)
"""


def test_work_horses_do_not_share_the_parents_database_connection(settings, services, tmp_path):
    job_ids = [f"backend-{index}-{uuid.uuid4().hex[:6]}" for index in range(3)]
    for job_id in job_ids:
        jobs.enqueue(services, worker_jobs.database_backend_pid, job_id=job_id)
    result = subprocess.run(
        [sys.executable, "-c", SWEEPING_WORKER],
        env=worker_env(settings, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    parent_backend = result.stdout.split("parent-backend", 1)[1].split()[0]
    outcomes = [Job.fetch(job_id, connection=services.redis) for job_id in job_ids]
    assert [job.get_status() for job in outcomes] == [JobStatus.FINISHED] * 3, result.stderr
    backends = [job.return_value().split(":")[1] for job in outcomes]
    assert parent_backend not in backends, result.stderr
    assert len(set(backends)) == 3  # each horse opened its own connection


def test_health_reports_redis_and_the_worker_count(worker, app):
    response = https_client(app).get("/health")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "backend": "postgresql"}
    assert body["redis"]["ok"] is True
    assert body["redis"]["configured"] is True
    assert body["redis"]["workers"] == 1


def test_health_is_503_with_a_reason_when_redis_is_unreachable(settings, services):
    with socket.socket() as probe:  # a port nothing listens on once this socket is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(settings.replace(redis_url=f"redis://127.0.0.1:{port}/0"))
    try:
        started = time.monotonic()
        response = https_client(app).get("/health")
        assert time.monotonic() - started < 10
        assert response.status_code == 503
        body = response.get_json()
        assert body["status"] == "unavailable"
        assert body["database"]["ok"] is True
        assert body["redis"]["ok"] is False
        assert body["redis"]["configured"] is True
        assert str(port) in body["redis"]["error"] or "refused" in body["redis"]["error"].lower()
    finally:
        app.extensions["lti_tool"].engine.dispose()
