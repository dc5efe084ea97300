"""Assessors' e-mail through a real `lti-tool worker` on Redis and PostgreSQL, to a real SMTP
server on loopback: the worker mails the new-case notices of the case it assigns, and the
reminders a deadline run (in another process) posted once that run has committed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lti_tool.assessment.assignment import process_deadlines
from lti_tool.db import transaction
from tests.integration.test_worker_and_health import JOB_TIMEOUT, wait_for
from tests.integration.test_worker_and_health import worker as worker  # noqa: F401 - fixture
from tests.support import assessment as seed
from tests.support.smtp import LoopbackSmtp


@pytest.fixture
def smtp():
    server = LoopbackSmtp()
    yield server
    server.stop()


@pytest.fixture
def settings(settings, tmp_path, monkeypatch, smtp):
    """Mail on, and the worker's instance folder (worker_env) is the test's: they share files."""
    shared = str(tmp_path / "worker-instance")
    monkeypatch.setenv("LTI_TOOL_INSTANCE_PATH", shared)
    return settings.replace(
        instance_path=shared, smtp_url=smtp.url, mail_from="Tool <no-reply@tool.test>"
    )


def test_the_worker_mails_new_cases_and_reminders(worker, services, smtp):  # noqa: F811
    seed.import_catalog(services)
    seed.add_assessor(services, "one@one.example", "One")
    seed.add_assessor(services, "two@two.example", "Two")
    attempt_id = seed.submit_attempt(services, seed.add_learner(services))
    wait_for(
        lambda: len(smtp.messages) == 2,
        JOB_TIMEOUT,
        "the worker to mail both assessors their new case",
        worker.process,
        worker.log,
    )
    case = seed.case_of(services, attempt_id)
    assert sorted(to for to, _ in smtp.messages) == [["one@one.example"], ["two@two.example"]]
    assert {m["Subject"] for _, m in smtp.messages} == {f"New case to assess: {case.code}"}
    due = min(a.due_at for a in case.assignments)
    with transaction(services.session_factory) as session:
        assert process_deadlines(session, services.settings, now=due - timedelta(hours=1)).reminded
    wait_for(
        lambda: len(smtp.messages) == 4,
        JOB_TIMEOUT,
        "the worker to mail both reminders",
        worker.process,
        worker.log,
    )
    reminders = [m for _, m in smtp.messages[2:]]
    assert all(m["Subject"].startswith(f"Reminder: case {case.code}") for m in reminders)
    assert "Zelda" not in "".join(m.as_string() for m in reminders)
