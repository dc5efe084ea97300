"""Assessment through a real `lti-tool worker` on Redis and PostgreSQL: a submission becomes a
blind case with two assessors; a case nobody could take is assigned once someone can."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lti_tool.assessment.models import FIRST, IN_REVIEW, SECOND, WAITING, Case
from tests.integration.test_worker_and_health import JOB_TIMEOUT, wait_for
from tests.integration.test_worker_and_health import worker as worker  # noqa: F401 - fixture
from tests.support import assessment as seed


@pytest.fixture
def settings(settings, tmp_path, monkeypatch):
    """The worker's instance folder (worker_env) is the test's: they share evidence files."""
    shared = str(tmp_path / "worker-instance")
    monkeypatch.setenv("LTI_TOOL_INSTANCE_PATH", shared)
    return settings.replace(instance_path=shared)


def case_state(services, attempt_id: int):
    with services.session_factory() as session:
        case = session.scalar(select(Case).where(Case.attempt_id == attempt_id))
        if case is None:
            return None
        live = {a.role for a in case.assignments if a.state == "assigned"}
        return case.status, live, [f.neutral_name for f in case.files]


def test_a_submission_becomes_an_assigned_blind_case_in_the_worker(worker, services):  # noqa: F811
    seed.import_catalog(services)
    seed.add_assessor(services, "one@one.example", "One")
    seed.add_assessor(services, "two@two.example", "Two")
    attempt_id = seed.submit_attempt(services, seed.add_learner(services))
    state = wait_for(
        lambda: (found := case_state(services, attempt_id)) and found[0] == IN_REVIEW and found,
        JOB_TIMEOUT,
        "the worker to make and assign the case",
        worker.process,
        worker.log,
    )
    assert state == (IN_REVIEW, {FIRST, SECOND}, ["tickets-1.pdf"])


def test_a_waiting_case_is_assigned_when_an_assessor_becomes_eligible(worker, services, cli):  # noqa: F811
    seed.import_catalog(services)
    seed.add_assessor(services, "one@one.example", "One")
    attempt_id = seed.submit_attempt(services, seed.add_learner(services))
    wait_for(
        lambda: (found := case_state(services, attempt_id)) and found[1] == {FIRST},
        JOB_TIMEOUT,
        "the case to get its one possible assessor",
        worker.process,
        worker.log,
    )
    assert case_state(services, attempt_id)[0] == WAITING
    result = cli(
        "assessor",
        "add",
        "--email",
        "two@two.example",
        "--name",
        "Two",
        "--institution",
        "Two",
        "--certify",
        seed.CREDENTIAL,
    )
    assert result.exit_code == 0, result.output
    wait_for(
        lambda: case_state(services, attempt_id)[0] == IN_REVIEW,
        JOB_TIMEOUT,
        "the worker to assign the waiting case",
        worker.process,
        worker.log,
    )
    assert case_state(services, attempt_id)[1] == {FIRST, SECOND}
