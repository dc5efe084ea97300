"""Overdue work: an assessor is reminded before their due date, and after it the case goes to
someone else; the sweep runs this whenever something waits or is due."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lti_tool import jobs
from lti_tool.assessment.assignment import deadline_work, process_deadlines
from lti_tool.assessment.models import FIRST, REASSIGNED, SECOND, Assignment
from lti_tool.db import transaction, utcnow
from tests.support import assessment as seed


@pytest.fixture
def case(services):
    seed.import_catalog(services)
    for n in (1, 2, 3):
        seed.add_assessor(services, f"a{n}@inst-{n}.example", f"Institute {n}")
    attempt_id = seed.submit_attempt(services, seed.add_learner(services))
    return seed.case_of(services, attempt_id)


def live(case) -> dict[str, Assignment]:
    return {a.role: a for a in case.assignments if a.state in ("assigned", "started")}


def test_the_review_is_due_some_business_days_after_assignment(services, case):
    from lti_tool.business_days import calendar_from_settings

    first = live(case)[FIRST]
    calendar = calendar_from_settings(services.settings)
    assert calendar.between(first.assigned_at, first.due_at) == (
        services.settings.assessment_review_business_days
    )


def test_a_reminder_comes_before_the_due_date_once(services, case):
    first = live(case)[FIRST]
    nothing = process_deadlines_at(services, first.assigned_at + timedelta(hours=1))
    assert nothing.reminded == 0
    just_before = first.due_at - timedelta(hours=2)
    assert process_deadlines_at(services, just_before).reminded == 2  # both assessors
    assert process_deadlines_at(services, just_before).reminded == 0  # once
    reminded = live(seed.case_of(services, case.attempt_id))[FIRST]
    assert reminded.reminded_at == just_before


def test_an_overdue_review_is_taken_away_and_given_to_someone_else(services, case):
    before = live(case)
    after_due = before[FIRST].due_at + timedelta(minutes=1)
    run = process_deadlines_at(services, after_due)
    assert run.reassigned == 2
    now = seed.case_of(services, case.attempt_id)
    states = {a.assessor_id: a.state for a in now.assignments if a.state == REASSIGNED}
    assert set(states) == {before[FIRST].assessor_id, before[SECOND].assessor_id}
    # Only one assessor is left who never had the case: the other role waits, visibly.
    assert [a.role for a in now.assignments if a.state == "assigned"] == [FIRST]
    assert now.status == "waiting_for_assessor" and now.staffing_needed


def test_the_sweep_counts_waiting_and_due_work_and_runs_the_job(services, case):
    with services.session_factory() as session:
        assert deadline_work(session, services.settings) == 0
    with transaction(services.session_factory) as session:
        assignment = session.get(Assignment, live(case)[FIRST].id)
        assignment.due_at = utcnow() - timedelta(minutes=5)
    assert jobs.sweep_assessment(services) == 1  # runs the deadlines job in-process
    again = seed.case_of(services, case.attempt_id)
    assert any(a.state == REASSIGNED for a in again.assignments)
    assert set(live(again)) == {FIRST, SECOND}


def process_deadlines_at(services, when):
    with transaction(services.session_factory) as session:
        return process_deadlines(session, services.settings, now=when)
