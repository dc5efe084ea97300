"""Learners launched into a mapped link with an AGS line item on a fake LMS, and score rows for
them: what the gradebook tests (unit, integration, bench) start from."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from lti_tool.db import transaction
from lti_tool.gradebook import service
from lti_tool.gradebook.models import Score
from lti_tool.roster.models import LmsUser
from tests.conftest import BASE_URL
from tests.support.advantage import LINEITEM_SCOPE, SCORE_SCOPE, FakeAdvantagePlatform
from tests.support.platform import AGS, CLAIM, LEARNER, launch

CONTEXTS = {"canvas": "4dde05e8ca1973bcca9bffc13e1548820eee93a3", "moodle": "2"}
CREDENTIAL = "effective-leadership"


@dataclass(frozen=True)
class Learner:
    user_id: int
    subject: str
    platform_id: int
    lineitem_url: str


def launch_learner(
    client, platform, fake: FakeAdvantagePlatform, sub: str, shape: str = "canvas", item: int = 1
) -> Learner:
    """A learner's launch of a link mapped to CREDENTIAL whose line item lives on `fake`."""
    lineitem = fake.lineitem_url(CONTEXTS[shape], item, shape)
    claims = {
        CLAIM + "custom": {"micro_credential": CREDENTIAL, "stack": "collaboration"},
        AGS: {
            "scope": [LINEITEM_SCOPE, SCORE_SCOPE],
            "lineitems": fake.lineitems_url(CONTEXTS[shape], shape),
            "lineitem": lineitem,
        },
    }
    response = launch(client, platform, BASE_URL, shape, sub=sub, roles=[LEARNER], **claims)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return learner(client.application.extensions["lti_tool"], platform, sub, lineitem)


def learner(services, platform, sub: str, lineitem_url: str) -> Learner:
    with services.session_factory() as session:
        user = session.scalars(
            select(LmsUser).where(LmsUser.subject == sub).order_by(LmsUser.id.desc())
        ).first()
        assert user is not None, sub
        return Learner(user.id, sub, user.platform_id, lineitem_url)


def add_learners(services, template: Learner, count: int, prefix: str = "bulk") -> list[Learner]:
    """`count` more learners of the template's platform and line item, written directly (for
    volumes a launch per learner would make slow)."""
    with transaction(services.session_factory) as session:
        users = [
            LmsUser(platform_id=template.platform_id, subject=f"{prefix}-{n}") for n in range(count)
        ]
        session.add_all(users)
        session.flush()
        return [
            Learner(u.id, u.subject, template.platform_id, template.lineitem_url) for u in users
        ]


def enrolled_learners(
    services, template: Learner, count: int, prefix: str = "bulk"
) -> list[Learner]:
    """`count` more learners enrolled where the template learner is (written directly)."""
    from lti_tool.roster.models import Enrollment

    learners = add_learners(services, template, count, prefix)
    with transaction(services.session_factory) as session:
        enrolments = session.scalars(
            select(Enrollment).where(Enrollment.user_id == template.user_id)
        ).all()
        session.add_all(
            Enrollment(user_id=who.user_id, course_id=e.course_id, role=e.role, lti_roles=[])
            for who in learners
            for e in enrolments
        )
    return learners


def set_score(
    services, who: Learner, desired: service.DesiredScore, rank: int = 11, attempt_id=None
) -> bool:
    """Write a learner's desired score (as a handler does), without starting a delivery."""
    target = service.LineItemTarget(who.user_id, who.platform_id, who.lineitem_url)
    with transaction(services.session_factory) as session:
        return service.record_score(session, target, desired, rank=rank, attempt_id=attempt_id)


def score_row(services, who: Learner) -> Score:
    with services.session_factory() as session:
        return session.scalars(
            select(Score).where(
                Score.user_id == who.user_id, Score.lineitem_url == who.lineitem_url
            )
        ).one()


PENDING_STATE = service.DesiredScore("Submitted", "Pending", "Submitted for assessment.")
EARNED_STATE = service.DesiredScore(
    "Completed",
    "FullyGraded",
    "Earned. Your badge: https://tool.test/badges/1",
    100,
    100,
    {"submission_type": "online_url", "submission_data": "https://tool.test/badges/1"},
)


def submit_attempt(services, who: Learner, number: int = 1, credential: str = CREDENTIAL) -> int:
    """A learner's attempt, submitted as the evidence package does: the attempt and its
    `grade.submitted` message in one transaction."""
    from datetime import timedelta

    from lti_tool.catalog.models import MicroCredential, MicroCredentialVersion
    from lti_tool.db import utcnow
    from lti_tool.evidence.models import Attempt
    from lti_tool.outbox import service as outbox
    from lti_tool.progress import service as progress
    from lti_tool.progress.models import SUBMITTED

    with transaction(services.session_factory) as session:
        credential_id = session.scalar(
            select(MicroCredential.id).where(MicroCredential.key == credential)
        )
        version_id = session.scalar(
            select(MicroCredentialVersion.id)
            .where(MicroCredentialVersion.micro_credential_id == credential_id)
            .order_by(MicroCredentialVersion.number.desc())
        )
        now = utcnow()
        attempt = Attempt(
            user_id=who.user_id,
            micro_credential_id=credential_id,
            version_id=version_id,
            number=number,
            snapshot={},
            submitted_at=now,
            decision_due_at=now + timedelta(days=20),
        )
        session.add(attempt)
        session.flush()
        progress.set_state(session, who.user_id, credential_id, SUBMITTED, version_id=version_id)
        outbox.post(
            session, "grade.submitted", f"grade.submitted:{attempt.id}", {"attempt_id": attempt.id}
        )
        return attempt.id


def decide(services, attempt_id: int, decision: str, feedback: list | None = None) -> None:
    """A decision as assessment records it: earned asks for the badge (the credentials
    package then posts `grade.decided`), revise posts `grade.decided` itself."""
    from lti_tool.db import utcnow
    from lti_tool.evidence import outcomes
    from lti_tool.outbox import service as outbox

    kind = "badge.requested" if decision == "earned" else "grade.decided"
    with transaction(services.session_factory) as session:
        outcomes.record_decision(session, attempt_id, decision, feedback or [], utcnow())
        outbox.post(session, kind, f"{kind}:{attempt_id}", {"attempt_id": attempt_id})


def withdraw(services, attempt_id: int) -> None:
    """A learner's withdrawal, with its `grade.withdrawn` message."""
    from lti_tool.db import utcnow
    from lti_tool.evidence.models import WITHDRAWN, Attempt
    from lti_tool.outbox import service as outbox

    with transaction(services.session_factory) as session:
        attempt = session.get(Attempt, attempt_id)
        assert attempt is not None
        attempt.status = WITHDRAWN
        attempt.withdrawn_at = utcnow()
        outbox.post(
            session, "grade.withdrawn", f"grade.withdrawn:{attempt_id}", {"attempt_id": attempt_id}
        )
