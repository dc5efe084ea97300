"""The assessment rules on PostgreSQL (the production database, where assignment uses its bulk
statements and row locks): assignment, decline, overdue reassignment, the decision and an
organisation's assessors. Jobs run in-process here; test_assessment_worker.py uses a worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from lti_tool.assessment import service
from lti_tool.assessment.assignment import process_deadlines
from lti_tool.assessment.models import ADJUDICATOR, FIRST, SECOND, Assessor, Decision
from lti_tool.db import transaction
from lti_tool.evidence.models import Attempt
from tests.support import assessment as seed


@pytest.fixture
def settings(settings, monkeypatch):
    monkeypatch.delenv("LTI_TOOL_REDIS_URL")
    return settings.replace(redis_url="")


def live(services, attempt_id):
    case = seed.case_of(services, attempt_id)
    return case, {
        a.role: a for a in case.assignments if a.state in ("assigned", "started", "submitted")
    }


def test_assessment_from_submission_to_an_adjudicated_decision(services, cli):
    seed.import_catalog(services)
    for n in range(1, 7):  # decline + 2 overdue + 2 reviewers + an adjudicator
        assert (
            cli(
                "assessor",
                "add",
                "--email",
                f"a{n}@inst{n}.example",
                "--name",
                f"A{n}",
                "--institution",
                f"Inst {n}",
                "--certify",
                seed.CREDENTIAL,
                "--org",
                "Assessors Ltd" if n < 3 else "Other Org",
            ).exit_code
            == 0
        )
    attempt_id = seed.submit_attempt(services, seed.add_learner(services))
    case, roles = live(services, attempt_id)
    assert set(roles) == {FIRST, SECOND}
    declined = roles[FIRST].assessor_id
    with transaction(services.session_factory) as session:
        service.decline(session, services.settings, session.get(Assessor, declined), case.code)
    case, roles = live(services, attempt_id)
    assert declined not in {a.assessor_id for a in roles.values()} and len(roles) == 2
    overdue = roles[SECOND]
    with transaction(services.session_factory) as session:
        run = process_deadlines(session, services.settings, now=overdue.due_at + timedelta(hours=1))
    assert run.reassigned == 2  # the first one (assigned at the same time) is overdue too
    case, roles = live(services, attempt_id)
    assert len(roles) == 2
    with transaction(services.session_factory) as session:
        people = {role: session.get(Assessor, a.assessor_id) for role, a in roles.items()}
        service.submit_review(
            session,
            services.settings,
            people[FIRST],
            case.code,
            seed.marks({("overview", "context"): False}),
        )
        service.submit_review(session, services.settings, people[SECOND], case.code, seed.marks())
    case, roles = live(services, attempt_id)
    assert ADJUDICATOR in roles
    with transaction(services.session_factory) as session:
        adjudicator = session.get(Assessor, roles[ADJUDICATOR].assessor_id)
        service.submit_review(
            session,
            services.settings,
            adjudicator,
            case.code,
            [{"part": "overview", "criterion_key": "context", "met": True}],
        )
    with services.session_factory() as session:
        assert session.get(Attempt, attempt_id).decision == "earned"
        decision = session.scalar(select(Decision).where(Decision.attempt_id == attempt_id))
        assert decision.path == "adjudicated"
        org = session.get(Assessor, declined).account.organisation_id
        members = service.assessors_of_organisation(session, org)
        assert len(members) == 2
        email = members[0].account.email
        assert service.assessor_of_organisation(session, org, email.upper()).id == members[0].id
        assert service.assessor_of_organisation(session, org + 999, email) is None


def test_a_run_over_several_batches_assigns_as_one_pass_would(services, monkeypatch):
    """The bulk path (INSERT from arrays, the next batch planned while this one is written)."""
    run, (a, b, c), pairs = seed.assign_in_batches(services, monkeypatch, cases=10, batch=4)
    assert (run.assigned, run.staffed, run.still_waiting) == (20, 10, 0)
    assert [person for pair in pairs for person in pair] == [a, b, c] * 6 + [a, b]
