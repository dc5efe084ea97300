"""What assessment may do to an attempt: start the review (no withdrawal after), record one
decision (a retried job is harmless, a contradicting second decision is refused), and the
learner's progress moves with the attempt."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from lti_tool.catalog.models import MicroCredential
from lti_tool.db import transaction, utcnow
from lti_tool.evidence import outcomes
from lti_tool.evidence.models import EARNED, IN_REVIEW, REVISE, WITHDRAWN, Attempt
from lti_tool.lti.models import Platform
from lti_tool.progress.service import set_state, state_of
from lti_tool.roster.models import LmsUser
from tests.unit.catalog_support import SAMPLE, import_paths


@pytest.fixture
def attempt_id(services, canvas) -> int:
    import_paths(services, SAMPLE)
    with transaction(services.session_factory) as session:
        credential = session.scalar(
            select(MicroCredential).where(MicroCredential.key == "active-listening")
        )
        version = credential.versions[-1]
        platform_id = session.scalar(select(Platform.id))
        learner = LmsUser(platform_id=platform_id, subject="learner-1", name="Lee Learner")
        session.add(learner)
        session.flush()
        set_state(session, learner.id, credential.id, "submitted", version_id=version.id)
        attempt = Attempt(
            user_id=learner.id,
            micro_credential_id=credential.id,
            version_id=version.id,
            number=1,
            snapshot={"answers": {}},
            decision_due_at=utcnow() + timedelta(days=20),
        )
        session.add(attempt)
        session.flush()
        return attempt.id


def load(services, attempt_id: int) -> Attempt:
    with services.session_factory() as session:
        return session.get(Attempt, attempt_id)


def progress(services, attempt: Attempt) -> str:
    with services.session_factory() as session:
        return state_of(session, attempt.user_id, attempt.micro_credential_id)


def test_review_then_earned_moves_attempt_and_progress(services, attempt_id):
    with transaction(services.session_factory) as session:
        assert outcomes.mark_in_review(session, attempt_id) is True
        assert outcomes.mark_in_review(session, attempt_id) is False  # a retried job
    attempt = load(services, attempt_id)
    assert attempt.status == IN_REVIEW and progress(services, attempt) == "in_review"
    feedback: list[dict] = []
    with transaction(services.session_factory) as session:
        assert outcomes.record_decision(session, attempt_id, EARNED, feedback, utcnow())
        assert not outcomes.record_decision(session, attempt_id, EARNED, feedback, utcnow())
    attempt = load(services, attempt_id)
    assert (attempt.status, attempt.decision) == (EARNED, EARNED)
    assert progress(services, attempt) == "earned"


def test_a_contradicting_second_decision_is_refused(services, attempt_id):
    feedback = [{"part": "overview", "criterion_key": "c1", "criterion": "Clear",
                 "comments": [{"assessor": "Assessor 1", "text": "Say more."}]}]  # fmt: skip
    with transaction(services.session_factory) as session:
        outcomes.record_decision(session, attempt_id, REVISE, feedback, utcnow())
    with pytest.raises(outcomes.AttemptStateError, match="decided revise already"), transaction(
        services.session_factory
    ) as session:
        outcomes.record_decision(session, attempt_id, EARNED, [], utcnow())
    attempt = load(services, attempt_id)
    assert attempt.decision == REVISE and attempt.feedback == feedback
    assert progress(services, attempt) == "revise"


def test_a_withdrawn_attempt_cannot_be_reviewed_or_decided(services, attempt_id):
    with transaction(services.session_factory) as session:
        session.get(Attempt, attempt_id).status = WITHDRAWN
    with pytest.raises(outcomes.AttemptStateError, match="withdrawn"), transaction(
        services.session_factory
    ) as session:
        outcomes.mark_in_review(session, attempt_id)
    with pytest.raises(outcomes.AttemptStateError, match="cannot be decided"), transaction(
        services.session_factory
    ) as session:
        outcomes.record_decision(session, attempt_id, EARNED, [], utcnow())
    with pytest.raises(outcomes.AttemptStateError, match="a decision is one of"), transaction(
        services.session_factory
    ) as session:
        outcomes.record_decision(session, attempt_id, "maybe", [], utcnow())
