"""Posting score rows to the platforms (AGS Score service), through the LTI Advantage client.

A run claims due rows in batches (`delivering`, with a lease: a killed worker's rows are
claimed again once it lapses), posts each row's latest version from a few threads, each with
its own kept-alive HTTP connection, and records the outcomes of a batch in a few statements.
The access token comes from the service client's shared cache: one token request per platform
and scope set per hour, whatever the number of scores, and one refresh on a 401.

Outcomes:
- 2xx: delivered, if the row still holds the version posted (else it stays pending: a newer
  state arrived meanwhile and goes out next).
- Canvas 400 about the timestamp, or 409 (Moodle: not strictly newer): the platform already
  holds this state or a newer one (a post that landed before a crash): done, not a failure.
- connection errors, timeouts, 5xx, 429: tried again later with exponential backoff and jitter,
  or after the platform's Retry-After; the platform's other scores of the run wait as well.
  After LTI_TOOL_GRADE_MAX_ATTEMPTS tries: failed.
- any other 4xx (a 401 after the one token refresh included): failed at once, with the
  platform's answer; /admin/grades shows it, its Retry button or `lti-tool sweep
  --retry-failed` tries again.

Canvas: every post carries the `https://canvas.instructure.com/lti/submission` extension
(without it Canvas defaults `new_submission` to true and makes a submission attempt per post);
`new_submission` is true once, on the post that brings the badge URL as an `online_url`
submission, so attempt limits are never used up by state changes. That post is not repeated
within a call; when a try of it went wrong (no answer, a killed worker: it may have landed), the
next try first reads the learner's result (Result service) and, if Canvas already holds the
score, sends `new_submission` false. An unchanged comment is not sent again (each comment
becomes one more submission comment). Moodle and others: plain AGS, the comment on every post
(Moodle blanks the feedback of a post without one).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from lti_tool.db import transaction, utcnow
from lti_tool.gradebook.models import DELIVERED, DELIVERING, FAILED, PENDING, Score
from lti_tool.gradebook.service import iso_timestamp
from lti_tool.lti.ags import held_score, scores_url
from lti_tool.lti.launch import SCORE_SCOPE
from lti_tool.lti.service_client import (
    RetryPolicy,
    ServiceClient,
    ServiceError,
    Transport,
    client_for_platform,
    platform_facts,
)
from lti_tool.retry import equal_jitter
from lti_tool.roster.models import LmsUser
from lti_tool.services import Services

log = logging.getLogger(__name__)

SCORE_MEDIA_TYPE = "application/vnd.ims.lis.v1.score+json"
CANVAS_SUBMISSION = "https://canvas.instructure.com/lti/submission"
CANVAS_ISSUER = "https://canvas.instructure.com"
CANVAS, MOODLE, OTHER = "canvas", "moodle", "other"

BATCH_SIZE = 500
MAX_RETRY_DELAY = 3600.0
ERROR_EXCERPT = 500


@dataclass(frozen=True)
class Outgoing:
    """A claimed row, with what posting it needs."""

    id: int
    version: int
    attempts: int
    platform_id: int
    flavour: str
    lineitem_url: str
    user_subject: str
    activity_progress: str
    grading_progress: str
    score_given: float | None
    score_maximum: float | None
    comment: str
    submission: dict | None
    timestamp: datetime
    delivered_comment: str | None
    submission_version: int | None


@dataclass(frozen=True)
class Outcome:
    row: Outgoing
    kind: str  # delivered, superseded, retry, failed, deferred
    comment_sent: str | None = None
    new_submission: bool = False
    delay: float = 0.0
    status: int | None = None
    error: str | None = None


@dataclass
class DeliveryRun:
    """What one run did (counts), and when the next row falls due (None: nothing waits)."""

    delivered: int = 0
    superseded: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    next_due: datetime | None = None

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["next_due"] = self.next_due.isoformat() if self.next_due else None
        return data


def flavour_of(product: str, issuer: str) -> str:
    """Canvas or Moodle, as the platform registry records it (product; the Canvas issuer)."""
    product = (product or "").lower()
    if product == CANVAS or issuer.rstrip("/") == CANVAS_ISSUER:
        return CANVAS
    if product == MOODLE:
        return MOODLE
    return OTHER


# -- the body of one post ----------------------------------------------------------------------
def score_body(row: Outgoing) -> tuple[dict[str, Any], str | None, bool]:
    """The AGS Score to post for a row; the comment sent (None: left out) and whether it asks
    Canvas for a new submission."""
    body: dict[str, Any] = {
        "userId": row.user_subject,
        "activityProgress": row.activity_progress,
        "gradingProgress": row.grading_progress,
        "timestamp": iso_timestamp(row.timestamp),
    }
    if row.score_given is not None:
        body["scoreGiven"] = row.score_given
        body["scoreMaximum"] = row.score_maximum
    comment: str | None = row.comment
    new_submission = False
    if row.flavour == CANVAS:
        if row.comment == row.delivered_comment:
            comment = None
        if row.submission:
            # True once: for the first post with the badge URL, and for that same version
            # again if its answer was lost (Canvas then sees the same submission twice).
            new_submission = row.submission_version in (None, row.version)
            body[CANVAS_SUBMISSION] = {**row.submission, "new_submission": new_submission}
        else:
            body[CANVAS_SUBMISSION] = {"new_submission": False}
    if comment is not None:
        body["comment"] = comment
    return body, comment, new_submission


def _superseded(exc: ServiceError) -> bool:
    """The platform holds this state or a newer one: Moodle's 409, Canvas's 400 on the
    timestamp ("Provided timestamp of ... before last updated timestamp")."""
    if exc.stage != "service":
        return False
    if exc.status == 409:
        return True
    message = (exc.platform_message or "").lower()
    return exc.status == 400 and "timestamp" in message and "before" in message


def _retryable(exc: ServiceError) -> bool:
    return exc.status is None or exc.status == 429 or exc.status >= 500


# -- a run -------------------------------------------------------------------------------------
@dataclass
class _Clients:
    """One service client per platform for a run, shared by its threads over one transport
    (a kept-alive connection per thread)."""

    services: Services
    policy: RetryPolicy
    transport: Transport = field(default_factory=Transport)
    base: dict[int, ServiceClient] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, platform_id: int) -> ServiceClient:
        client = self.base.get(platform_id)
        if client is None:
            with self.lock:
                if platform_id not in self.base:
                    with transaction(self.services.session_factory) as session:
                        # Commits: the tool's key may just have been made.
                        self.base[platform_id] = client_for_platform(
                            session,
                            platform_id,
                            self.services.cache,
                            http=self.transport,
                            policy=self.policy,
                        )
                client = self.base[platform_id]
        return client


def delivery_policy(services: Services) -> RetryPolicy:
    """Short in-call retries: a longer outage is the row's backoff, not a blocked thread."""
    return RetryPolicy(
        attempts=3,
        base_delay=0.5,
        max_delay=4.0,
        max_total_wait=10.0,
        read_timeout=float(services.settings.grade_http_timeout_seconds),
    )


def deliver_due(services: Services, batch_size: int = BATCH_SIZE) -> DeliveryRun:
    """Deliver every row that is due now; returns the counts and when the next row falls due."""
    settings = services.settings
    run = DeliveryRun()
    threads = max(1, settings.grade_delivery_threads)
    clients = _Clients(services, delivery_policy(services), Transport(connections=threads))
    down: dict[int, Outcome] = {}  # platform id -> the failure that holds its other scores
    down_lock = threading.Lock()

    def send(row: Outgoing) -> Outcome:
        with down_lock:
            held = down.get(row.platform_id)
        if held is not None:
            return Outcome(row, "deferred", delay=held.delay, status=held.status, error=held.error)
        outcome = post_score(clients, row, settings.grade_retry_base_seconds)
        if outcome.kind == "retry":
            with down_lock:
                down.setdefault(row.platform_id, outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scores") as pool:
        while True:
            with transaction(services.session_factory) as session:
                claimed = claim_due(session, batch_size, settings.grade_delivery_lease_seconds)
            if not claimed:
                break
            outcomes = list(pool.map(send, claimed))
            with transaction(services.session_factory) as session:
                record_outcomes(session, outcomes, settings.grade_max_attempts)
            for outcome in outcomes:
                setattr(run, _COUNTERS[outcome.kind], getattr(run, _COUNTERS[outcome.kind]) + 1)
    with services.session_factory() as session:
        run.next_due = next_due(session)
    return run


_COUNTERS = {
    "delivered": "delivered",
    "superseded": "superseded",
    "retry": "retried",
    "failed": "failed",
    "deferred": "deferred",
}


def post_score(clients: _Clients, row: Outgoing, retry_base: float) -> Outcome:
    """Post one row's version; what came of it."""
    body, comment, new_submission = score_body(row)
    try:
        client = clients.get(row.platform_id)
        if new_submission:
            if row.attempts and _submitted_before(client, row):
                body[CANVAS_SUBMISSION] = {**body[CANVAS_SUBMISSION], "new_submission": False}
            else:
                # Not idempotent (each such post is one more submission attempt in Canvas): no
                # try again within the call; the row's next try first asks if this one landed.
                client = dataclasses.replace(
                    client, policy=dataclasses.replace(client.policy, attempts=1)
                )
        client.post(
            scores_url(row.lineitem_url),
            [SCORE_SCOPE],
            json=body,
            content_type=SCORE_MEDIA_TYPE,
        )
    except ServiceError as exc:
        if _superseded(exc):
            log.info(
                "score %s v%s: the platform holds a newer state (%s)", row.id, row.version, exc
            )
            return Outcome(row, "superseded", comment, new_submission)
        error = str(exc)[:ERROR_EXCERPT]
        if _retryable(exc):
            delay = _retry_delay(row.attempts, retry_base, exc.retry_after)
            log.warning(
                "score %s v%s not delivered, retry in %.0fs: %s", row.id, row.version, delay, exc
            )
            return Outcome(row, "retry", delay=delay, status=exc.status, error=error)
        log.warning("score %s v%s refused by the platform: %s", row.id, row.version, exc)
        return Outcome(row, "failed", status=exc.status, error=error)
    except Exception as exc:  # a bug or an unreadable registration: kept, retried, visible
        log.exception("score %s v%s could not be posted", row.id, row.version)
        delay = _retry_delay(row.attempts, retry_base, None)
        return Outcome(
            row, "retry", delay=delay, error=f"{type(exc).__name__}: {exc}"[:ERROR_EXCERPT]
        )
    return Outcome(row, "delivered", comment, new_submission)


def _submitted_before(client: ServiceClient, row: Outgoing) -> bool:
    """Whether an earlier try of this badge post reached Canvas although its answer never came
    back (a timeout, a killed worker): Canvas then holds its score already, and posting the
    submission again would make a second attempt. Asked only when a try went wrong; when the
    platform cannot say, the post goes as it would (at worst a second submission, never none)."""
    if row.score_given is None:
        return False
    try:
        return held_score(client, row.lineitem_url, row.user_subject) == row.score_given
    except ServiceError as exc:
        log.info("score %s: the platform's result could not be read (%s)", row.id, exc)
        return False


def _retry_delay(attempts: int, base: float, retry_after: float | None) -> float:
    """Exponential backoff with equal jitter, or the platform's Retry-After (plus jitter)."""
    if retry_after is not None:
        return min(MAX_RETRY_DELAY, retry_after + random.uniform(0, 1))
    return equal_jitter(base, attempts, MAX_RETRY_DELAY)


# -- the rows ----------------------------------------------------------------------------------
def _due(now: datetime):
    return or_(
        and_(Score.status == PENDING, Score.next_attempt_at <= now),
        and_(Score.status == DELIVERING, Score.lease_until < now),
    )


def claim_due(session: Session, limit: int, lease_seconds: int) -> list[Outgoing]:
    """Take up to `limit` due rows for this run (concurrent runs never take the same row)."""
    now = utcnow()
    candidates = (
        select(Score.id).where(_due(now)).order_by(Score.next_attempt_at, Score.id).limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list(
        session.execute(
            update(Score)
            .where(Score.id.in_(candidates.scalar_subquery()), _due(now))
            .values(
                status=DELIVERING,
                lease_until=now + timedelta(seconds=lease_seconds),
                # A claim that lapsed was a try whose end nobody saw (a killed worker).
                attempts=case(
                    (Score.status == DELIVERING, Score.attempts + 1), else_=Score.attempts
                ),
            )
            .returning(Score.id)
            .execution_options(synchronize_session=False)
        ).scalars()
    )
    if not ids:
        return []
    rows = session.execute(
        select(
            Score.id,
            Score.version,
            Score.attempts,
            Score.platform_id,
            Score.lineitem_url,
            LmsUser.subject,
            Score.activity_progress,
            Score.grading_progress,
            Score.score_given,
            Score.score_maximum,
            Score.comment,
            Score.submission,
            Score.timestamp,
            Score.delivered_comment,
            Score.submission_version,
        )
        .join(LmsUser, LmsUser.id == Score.user_id)
        .where(Score.id.in_(ids))
        .order_by(Score.id)
    ).all()
    platforms = platform_facts(session, {r.platform_id for r in rows})
    return [
        Outgoing(
            id=r.id,
            version=r.version,
            attempts=r.attempts,
            platform_id=r.platform_id,
            flavour=flavour_of(platforms[r.platform_id].product, platforms[r.platform_id].issuer)
            if r.platform_id in platforms
            else OTHER,
            lineitem_url=r.lineitem_url,
            user_subject=r.subject,
            activity_progress=r.activity_progress,
            grading_progress=r.grading_progress,
            score_given=r.score_given,
            score_maximum=r.score_maximum,
            comment=r.comment,
            submission=r.submission,
            timestamp=r.timestamp,
            delivered_comment=r.delivered_comment,
            submission_version=r.submission_version,
        )
        for r in rows
    ]


_table = Score.__table__
_same_version = _table.c.version == bindparam("b_version")

# A post that went through: delivered if the row still holds that version; the comment and
# the submission it carried are remembered either way (they reached the platform).
_DELIVERED = (
    update(_table)
    .where(_table.c.id == bindparam("b_id"))
    .values(
        status=case((_same_version, DELIVERED), else_=_table.c.status),
        delivered_version=case(
            (_same_version, bindparam("b_version")), else_=_table.c.delivered_version
        ),
        delivered_at=case((_same_version, bindparam("b_now")), else_=_table.c.delivered_at),
        attempts=case((_same_version, 0), else_=_table.c.attempts),
        last_error=case((_same_version, None), else_=_table.c.last_error),
        last_error_status=case((_same_version, None), else_=_table.c.last_error_status),
        lease_until=case((_same_version, None), else_=_table.c.lease_until),
        delivered_comment=func.coalesce(bindparam("b_comment"), _table.c.delivered_comment),
        submission_version=func.coalesce(
            bindparam("b_submission_version"), _table.c.submission_version
        ),
    )
)
# A post that did not: the row's new delivery state, unless a newer version replaced it.
_NOT_DELIVERED = (
    update(_table)
    .where(
        _table.c.id == bindparam("b_id"),
        _same_version,
        _table.c.status == DELIVERING,
    )
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        last_error=bindparam("b_error"),
        last_error_status=bindparam("b_error_status"),
        lease_until=None,
        updated_at=bindparam("b_now"),
    )
)


def record_outcomes(session: Session, outcomes: list[Outcome], max_attempts: int) -> None:
    """Write a batch's outcomes: at most two statements, whatever the batch size."""
    now = utcnow()
    done, not_done = [], []
    for o in outcomes:
        row = o.row
        if o.kind in ("delivered", "superseded"):
            done.append(
                {
                    "b_id": row.id,
                    "b_version": row.version,
                    "b_now": now,
                    "b_comment": o.comment_sent,
                    "b_submission_version": row.version if o.new_submission else None,
                }
            )
            continue
        attempts = row.attempts + (0 if o.kind == "deferred" else 1)
        status = PENDING
        if o.kind == "failed" or (o.kind == "retry" and attempts >= max_attempts):
            status = FAILED
        not_done.append(
            {
                "b_id": row.id,
                "b_version": row.version,
                "b_status": status,
                "b_attempts": attempts,
                "b_next": now + timedelta(seconds=o.delay),
                "b_error": o.error,
                "b_error_status": o.status,
                "b_now": now,
            }
        )
    connection = session.connection()
    if done:
        connection.execute(_DELIVERED, done)
    if not_done:
        connection.execute(_NOT_DELIVERED, not_done)


def next_due(session: Session) -> datetime | None:
    """When the next row falls due: a pending row's next try, or a lapsing claim."""
    pending = session.scalar(select(func.min(Score.next_attempt_at)).where(Score.status == PENDING))
    claimed = session.scalar(select(func.min(Score.lease_until)).where(Score.status == DELIVERING))
    times = [t for t in (pending, claimed) if t is not None]
    if not times:
        return None
    # SQLite forgets the zone of an aggregate: the stored values are UTC.
    return min(t if t.tzinfo else t.replace(tzinfo=utcnow().tzinfo) for t in times)


def due_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Score).where(_due(utcnow()))) or 0


def retry_failed(
    session: Session, score_ids: list[int] | None = None, platform_id: int | None = None
) -> int:
    """Failed rows (all, or these; of one platform, when given) back to pending, tries reset."""
    query = update(Score).where(Score.status == FAILED)
    if score_ids is not None:
        query = query.where(Score.id.in_(score_ids))
    if platform_id is not None:
        query = query.where(Score.platform_id == platform_id)
    result = session.execute(
        query.values(status=PENDING, attempts=0, next_attempt_at=utcnow()).execution_options(
            synchronize_session=False
        )
    )
    return result.rowcount or 0


# -- what administrators see --------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreProblem:
    """A score that gave up (or keeps failing), with the platform's answer."""

    id: int
    status: str
    learner: str
    platform: str
    link: str
    lineitem_url: str
    grading_progress: str
    attempts: int
    error_status: int | None
    error: str
    next_attempt_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Overview:
    counts: dict[str, int]
    problems: list[ScoreProblem]


def overview(session: Session, platform_id: int | None = None, limit: int = 200) -> Overview:
    """Scores per delivery status, and the failed ones (then pending ones with an error),
    newest first; of one platform when given (an LMS administrator sees their own)."""
    from lti_tool.roster.models import ResourceLink

    scope = [Score.platform_id == platform_id] if platform_id is not None else []
    counts = dict.fromkeys((PENDING, DELIVERING, DELIVERED, FAILED), 0)
    counts.update(
        session.execute(
            select(Score.status, func.count()).where(*scope).group_by(Score.status)
        ).all()
    )
    rows = session.execute(
        select(Score, LmsUser, ResourceLink.title)
        .join(LmsUser, LmsUser.id == Score.user_id)
        .outerjoin(ResourceLink, ResourceLink.id == Score.resource_link_id)
        .where(
            *scope,
            or_(
                Score.status == FAILED, and_(Score.status == PENDING, Score.last_error.is_not(None))
            ),
        )
        .order_by(
            case((Score.status == FAILED, 0), else_=1), Score.updated_at.desc(), Score.id.desc()
        )
        .limit(limit)
    ).all()
    platforms = platform_facts(session, {score.platform_id for score, _, _ in rows})
    problems = [
        ScoreProblem(
            id=score.id,
            status=score.status,
            learner=user.display_name,
            platform=platforms[score.platform_id].name if score.platform_id in platforms else "",
            link=link_title or "",
            lineitem_url=score.lineitem_url,
            grading_progress=score.grading_progress,
            attempts=score.attempts,
            error_status=score.last_error_status,
            error=score.last_error or "",
            next_attempt_at=score.next_attempt_at,
            updated_at=score.updated_at,
        )
        for score, user, link_title in rows
    ]
    return Overview(counts=counts, problems=problems)
