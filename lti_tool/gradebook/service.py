"""What each learner's line items should show, written as score rows (models.Score).

The outbox handlers of `grade.submitted`, `grade.decided`, `grade.withdrawn` and
`grade.stack_earned` only write rows here, in the outbox's transaction; `delivery` posts them.

States (AGS activityProgress / gradingProgress):
- submitted, in review: Submitted / Pending, no score. Not PendingManual: on Canvas that asks
  the instructor to grade, and here two external assessors decide, not the instructor.
- earned: Completed / FullyGraded, full score, a comment with the badge link (and on Canvas the
  badge URL as the submission).
- revise: the configured score (LTI_TOOL_GRADE_REVISE_SCORE; default none, so Pending), with a
  comment naming the criteria to revise and pointing to the feedback in the tool.
- withdrawn: Initialized / NotReady, no score.

Every event for an attempt is handled from the attempt's *current* state, never the event's:
a late or repeated event changes nothing. A state never replaces one of higher rank (a newer
attempt, or a later stage of the same attempt), and an unchanged state writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lti_tool.catalog.mapping import SCORE_MAXIMUM
from lti_tool.catalog.models import LinkCredential, MicroCredentialVersion, Stack
from lti_tool.db import utcnow
from lti_tool.gradebook.models import (
    PENDING,
    SOURCE_ATTEMPT,
    SOURCE_STACK,
    Score,
)
from lti_tool.roster.models import ACTIVE, Course, Enrollment, LmsUser, ResourceLink
from lti_tool.services import Services

log = logging.getLogger(__name__)

# AGS vocabulary.
INITIALIZED, IN_PROGRESS, SUBMITTED, COMPLETED = (
    "Initialized",
    "InProgress",
    "Submitted",
    "Completed",
)
NOT_READY, PENDING_GRADING, FULLY_GRADED = "NotReady", "Pending", "FullyGraded"

# Stages of one attempt, in the order they may follow each other.
STAGE_SUBMITTED, STAGE_WITHDRAWN, STAGE_REVISE, STAGE_EARNED = 1, 2, 3, 4
STACK_RANK = 1
ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class DesiredScore:
    """A score as the gradebook should show it (the AGS Score fields the tool decides)."""

    activity_progress: str
    grading_progress: str
    comment: str
    score_given: float | None = None
    score_maximum: float | None = None
    # Canvas submission extension data (without new_submission), when there is a badge URL.
    submission: dict | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "activity_progress": self.activity_progress,
            "grading_progress": self.grading_progress,
            "comment": self.comment,
            "score_given": self.score_given,
            "score_maximum": self.score_maximum,
            "submission": self.submission,
        }


@dataclass(frozen=True)
class LineItemTarget:
    """One line item a learner's score goes to."""

    user_id: int
    platform_id: int
    lineitem_url: str
    resource_link_id: int | None = None


class AttemptLike(Protocol):
    """What the states need of an attempt (evidence.models.Attempt)."""

    id: int
    number: int
    status: str
    decision: str | None
    submitted_at: datetime | None
    decision_due_at: datetime | None
    feedback: Any


# -- the states --------------------------------------------------------------------------------
def revise_score(setting: str) -> float | None:
    """LTI_TOOL_GRADE_REVISE_SCORE as a score out of SCORE_MAXIMUM (empty: no score)."""
    text = (setting or "").strip()
    if not text:
        return None
    value = float(text)
    if not 0 <= value <= SCORE_MAXIMUM:
        raise ValueError(f"LTI_TOOL_GRADE_REVISE_SCORE must be between 0 and {SCORE_MAXIMUM}")
    return value


def _day(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d}" if value else ""


def _criteria_to_revise(feedback: Any) -> list[str]:
    """The criteria the assessors found not met (learner-facing feedback, no assessor names)."""
    names: list[str] = []
    for item in feedback if isinstance(feedback, list) else []:
        if isinstance(item, dict) and item.get("criterion"):
            name = str(item["criterion"]).strip()
            if name and name not in names:
                names.append(name)
    return names


def attempt_stage(attempt: AttemptLike) -> int:
    if attempt.status == "earned" or attempt.decision == "earned":
        return STAGE_EARNED
    if attempt.status == "revise" or attempt.decision == "revise":
        return STAGE_REVISE
    if attempt.status == "withdrawn":
        return STAGE_WITHDRAWN
    return STAGE_SUBMITTED


def attempt_score(
    attempt: AttemptLike, title: str, badge_url: str | None, revise: float | None = None
) -> DesiredScore:
    """The score an attempt's line items should show now."""
    stage = attempt_stage(attempt)
    if stage == STAGE_EARNED:
        comment = f"Earned: {title}."
        comment += f" Your badge: {badge_url}" if badge_url else " Your badge is in the tool."
        submission = None
        if badge_url:
            submission = {"submission_type": "online_url", "submission_data": badge_url}
            if attempt.submitted_at:
                submission["submitted_at"] = iso_timestamp(attempt.submitted_at)
        return DesiredScore(
            COMPLETED, FULLY_GRADED, comment, SCORE_MAXIMUM, SCORE_MAXIMUM, submission
        )
    if stage == STAGE_REVISE:
        criteria = _criteria_to_revise(attempt.feedback)
        comment = f"Not yet earned: {title}. Please revise and resubmit."
        if criteria:
            comment += " Criteria to revise: " + "; ".join(criteria) + "."
        comment += " Open the activity in your course to read the assessors' feedback."
        if revise is None:
            return DesiredScore(IN_PROGRESS, PENDING_GRADING, comment)
        return DesiredScore(IN_PROGRESS, FULLY_GRADED, comment, revise, SCORE_MAXIMUM)
    if stage == STAGE_WITHDRAWN:
        return DesiredScore(INITIALIZED, NOT_READY, f"Submission withdrawn: {title}.")
    comment = f"Submitted for assessment: {title}, reviewed by two independent assessors."
    if attempt.decision_due_at:
        comment += f" Decision due by {_day(attempt.decision_due_at)}."
    return DesiredScore(SUBMITTED, PENDING_GRADING, comment)


def stack_score(title: str, badge_url: str | None) -> DesiredScore:
    comment = f"Stack completed: {title}."
    comment += f" Your badge: {badge_url}" if badge_url else " Your badge is in the tool."
    submission = (
        {"submission_type": "online_url", "submission_data": badge_url} if badge_url else None
    )
    return DesiredScore(COMPLETED, FULLY_GRADED, comment, SCORE_MAXIMUM, SCORE_MAXIMUM, submission)


def iso_timestamp(value: datetime) -> str:
    """ISO 8601 with microseconds and the zone, as AGS asks (`2026-12-01T18:54:36.736123+00:00`)."""
    return value.isoformat(timespec="microseconds")


# -- which line items --------------------------------------------------------------------------
def attempt_line_items(
    session: Session, user_id: int, micro_credential_id: int
) -> list[LineItemTarget]:
    """Every line item of a link mapped to the micro-credential, in the courses where the learner
    is actively enrolled: the link's line item from the launch, else the one the tool created."""
    rows = session.execute(
        select(
            ResourceLink.id,
            ResourceLink.lineitem_url,
            LinkCredential.created_lineitem_url,
            Course.platform_id,
        )
        .join(LinkCredential, LinkCredential.resource_link_id == ResourceLink.id)
        .join(Course, Course.id == ResourceLink.course_id)
        .join(Enrollment, Enrollment.course_id == Course.id)
        .where(
            LinkCredential.micro_credential_id == micro_credential_id,
            Enrollment.user_id == user_id,
            Enrollment.status == ACTIVE,
        )
        .order_by(ResourceLink.id)
    )
    return _targets(user_id, rows)


def stack_line_items(session: Session, user_id: int, stack_key: str) -> list[LineItemTarget]:
    """The line items of the stack's own links (custom `stack` naming it, no micro-credential)
    in the courses where the learner is actively enrolled."""
    rows = session.execute(
        select(ResourceLink.id, ResourceLink.lineitem_url, ResourceLink.custom, Course.platform_id)
        .join(Course, Course.id == ResourceLink.course_id)
        .join(Enrollment, Enrollment.course_id == Course.id)
        .outerjoin(LinkCredential, LinkCredential.resource_link_id == ResourceLink.id)
        .where(
            Enrollment.user_id == user_id,
            Enrollment.status == ACTIVE,
            LinkCredential.id.is_(None),
            ResourceLink.lineitem_url.is_not(None),
        )
        .order_by(ResourceLink.id)
    )
    chosen = [
        (link_id, url, None, platform_id)
        for link_id, url, custom, platform_id in rows
        if isinstance(custom, dict)
        and str(custom.get("stack") or "").strip() == stack_key
        and not str(custom.get("micro_credential") or "").strip()
    ]
    return _targets(user_id, chosen)


def _targets(user_id: int, rows: Iterable) -> list[LineItemTarget]:
    found: dict[str, LineItemTarget] = {}
    for link_id, launched_url, created_url, platform_id in rows:
        url = launched_url or created_url
        if url and url not in found:
            found[url] = LineItemTarget(user_id, platform_id, url, link_id)
    return list(found.values())


# -- writing a state ---------------------------------------------------------------------------
def record_score(
    session: Session,
    target: LineItemTarget,
    desired: DesiredScore,
    *,
    rank: int,
    source: str = SOURCE_ATTEMPT,
    attempt_id: int | None = None,
    stack_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Make `desired` the state of the learner's line item, unless the row holds a state of
    higher rank; True when the row changed (a new version to deliver)."""
    now = now or utcnow()
    row = _locked_row(session, target)
    if row is None:
        row = Score(
            user_id=target.user_id,
            platform_id=target.platform_id,
            lineitem_url=target.lineitem_url,
            resource_link_id=target.resource_link_id,
            source=source,
            attempt_id=attempt_id,
            stack_id=stack_id,
            rank=rank,
            timestamp=now,
            version=1,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
            **desired.fields(),
        )
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return True
        except IntegrityError:  # inserted meanwhile by another transaction: update that one
            row = _locked_row(session, target)
            assert row is not None
    if rank < row.rank:
        return False
    unchanged = all(getattr(row, k) == v for k, v in desired.fields().items())
    if unchanged and rank == row.rank and row.attempt_id == attempt_id:
        return False
    for name, value in desired.fields().items():
        setattr(row, name, value)
    row.rank = rank
    row.attempt_id = attempt_id
    row.stack_id = stack_id
    row.source = source
    row.resource_link_id = target.resource_link_id or row.resource_link_id
    # Strictly after the state it replaces, whatever the clocks say (Moodle: 409 otherwise).
    row.timestamp = max(now, row.timestamp + ONE_MICROSECOND)
    row.version += 1
    # Pending even while a post of the previous version is in flight: that post cannot mark
    # this version delivered (compare-and-set on `version`), and is older on the platform.
    row.status = PENDING
    row.attempts = 0
    row.next_attempt_at = now
    row.last_error = None
    row.last_error_status = None
    row.updated_at = now
    session.flush()
    return True


def _locked_row(session: Session, target: LineItemTarget) -> Score | None:
    return session.scalars(
        select(Score)
        .where(Score.user_id == target.user_id, Score.lineitem_url == target.lineitem_url)
        .with_for_update()
    ).first()


# -- the outbox handlers -----------------------------------------------------------------------
def _badge_url_for_attempt(session: Session, attempt_id: int, base_url: str) -> str | None:
    """The public badge page of an earned attempt (None before the badge is issued)."""
    from lti_tool.credentials.service import public_url_for_attempt

    return public_url_for_attempt(session, attempt_id, base_url)


def _badge_url_for_credential(session: Session, credential_id: str, base_url: str) -> str | None:
    """The public page of an issued credential (a stack's)."""
    from lti_tool.credentials import documents

    return base_url.rstrip("/") + documents.badge_path(credential_id)


def score_attempt(session: Session, services: Services, attempt_id: int) -> int:
    """Write the current state of an attempt to each of its line items; how many changed.

    The attempt row is locked first, so two events of one attempt are handled one after the
    other, each seeing the attempt as the latest committed transaction left it.
    """
    from lti_tool.evidence.models import Attempt

    attempt = session.scalars(
        select(Attempt).where(Attempt.id == attempt_id).with_for_update()
    ).first()
    if attempt is None:
        log.warning(
            "grade event for attempt %s, which does not exist: nothing to score", attempt_id
        )
        return 0
    title = (
        session.scalar(
            select(MicroCredentialVersion.title).where(
                MicroCredentialVersion.id == attempt.version_id
            )
        )
        or "micro-credential"
    )
    stage = attempt_stage(attempt)
    badge = (
        _badge_url_for_attempt(session, attempt.id, services.settings.public_url)
        if stage == STAGE_EARNED
        else None
    )
    desired = attempt_score(
        attempt, title, badge, revise_score(services.settings.grade_revise_score)
    )
    rank = attempt.number * 10 + stage
    changed = 0
    for target in attempt_line_items(session, attempt.user_id, attempt.micro_credential_id):
        changed += record_score(session, target, desired, rank=rank, attempt_id=attempt.id)
    if changed:
        deliver_after_commit(session, services)
    return changed


def score_stack(
    session: Session, services: Services, user_id: int, stack_id: int, credential_id: str | None
) -> int:
    """Score the stack's line items (if the learner's courses have any) as completed."""
    stack = session.get(Stack, stack_id)
    if stack is None or session.get(LmsUser, user_id) is None:
        return 0
    badge = (
        _badge_url_for_credential(session, credential_id, services.settings.public_url)
        if credential_id is not None
        else None
    )
    desired = stack_score(stack.credential_name or stack.title, badge)
    changed = 0
    for target in stack_line_items(session, user_id, stack.key):
        changed += record_score(
            session, target, desired, rank=STACK_RANK, source=SOURCE_STACK, stack_id=stack_id
        )
    if changed:
        deliver_after_commit(session, services)
    return changed


def score_new_line_item(session: Session, services: Services, resource_link_id: int) -> int:
    """A link got its line item after learners had submitted (the tool created it later):
    score each enrolled learner's latest attempt of the link's micro-credential there too."""
    from lti_tool.evidence.models import Attempt

    latest = (
        select(Attempt.user_id, func.max(Attempt.number).label("number"))
        .join(LinkCredential, LinkCredential.micro_credential_id == Attempt.micro_credential_id)
        .join(ResourceLink, ResourceLink.id == LinkCredential.resource_link_id)
        .join(
            Enrollment,
            (Enrollment.course_id == ResourceLink.course_id)
            & (Enrollment.user_id == Attempt.user_id),
        )
        .where(ResourceLink.id == resource_link_id, Enrollment.status == ACTIVE)
        .group_by(Attempt.user_id)
        .subquery()
    )
    attempt_ids = session.scalars(
        select(Attempt.id)
        .join(LinkCredential, LinkCredential.micro_credential_id == Attempt.micro_credential_id)
        .join(
            latest,
            (latest.c.user_id == Attempt.user_id) & (latest.c.number == Attempt.number),
        )
        .where(LinkCredential.resource_link_id == resource_link_id)
        .order_by(Attempt.id)
    ).all()
    return sum(score_attempt(session, services, attempt_id) for attempt_id in attempt_ids)


def on_attempt_event(session: Session, services: Services, payload: dict) -> None:
    """Outbox handler of grade.submitted, grade.decided and grade.withdrawn ({attempt_id})."""
    score_attempt(session, services, int(payload["attempt_id"]))


def on_stack_earned(session: Session, services: Services, payload: dict) -> None:
    """Outbox handler of grade.stack_earned ({user_id, stack_id, credential_id})."""
    credential = payload.get("credential_id")
    score_stack(
        session,
        services,
        int(payload["user_id"]),
        int(payload["stack_id"]),
        str(credential) if credential is not None else None,
    )


# -- after the transaction ---------------------------------------------------------------------
_AFTER_COMMIT_FLAG = "gradebook_deliver_after_commit"


def deliver_after_commit(session: Session, services: Services) -> None:
    """Once this transaction commits, start a delivery (once per transaction; a rolled-back
    transaction's listener fires on the session's next commit, which costs one empty run)."""
    if session.info.get(_AFTER_COMMIT_FLAG):
        return
    session.info[_AFTER_COMMIT_FLAG] = True

    def _after_commit(committed: Session) -> None:
        committed.info.pop(_AFTER_COMMIT_FLAG, None)
        from lti_tool.jobs import request_score_delivery

        try:
            request_score_delivery(services)
        except Exception:  # the rows are committed: the sweep delivers them later
            log.exception("could not start the score delivery; `lti-tool sweep` will")

    event.listen(session, "after_commit", _after_commit, once=True)
