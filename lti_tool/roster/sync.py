"""Roster sync: apply pages of course members to users and enrolments, with visible progress.

The domain side only: it neither knows where members come from (the LMS's NRPS, in lti/nrps.py)
nor who asked (the web). Each page is written in its own transaction with a constant number of
statements (bulk upserts), so a 50,000-member course costs the same per page as a small one and
is never held in memory at once. Progress and the one-sync-per-course lock live in the shared
cache (they may be lost: a lost lock only allows a second sync, lost progress only its display),
so any web process can show how far a worker has got.

Members reported Inactive or Deleted, and enrolments absent from a complete sync, keep their row
and role (their work stays theirs) and are *marked* in `enrollments.status` (inactive, deleted,
absent); `enrollments.roster_synced_at` says when a sync last listed them. A launch makes the
enrolment active again.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from lti_tool.cache import Cache
from lti_tool.db import utcnow
from lti_tool.roster import models
from lti_tool.roster.models import LEARNER, Course, Enrollment, LmsUser
from lti_tool.roster.recent import forget_course_visits

log = logging.getLogger(__name__)

# A member's status as NRPS reports it (RosterMember.status) ...
ACTIVE, INACTIVE, DELETED = "Active", "Inactive", "Deleted"
STATUSES = (ACTIVE, INACTIVE, DELETED)
# ... and as enrollments.status records it.
ENROLLMENT_STATUS = {ACTIVE: models.ACTIVE, INACTIVE: models.INACTIVE, DELETED: models.DELETED}

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
# A sync holds its course's lock this long after its last sign of life (each page renews it):
# a worker killed mid-sync blocks the next sync for at most this long.
LOCK_TTL = 15 * 60
PROGRESS_TTL = 90 * 86400

# Column sizes of lms_users: longer values from a platform are cut, never an error mid-sync.
_SIZES = {"subject": 255, "name": 300, "given_name": 200, "family_name": 200, "email": 320}


@dataclass(frozen=True)
class RosterMember:
    """One course member as the tool records them (already mapped to the tool's role)."""

    subject: str
    role: str = LEARNER
    lti_roles: tuple[str, ...] = ()
    name: str = ""
    given_name: str = ""
    family_name: str = ""
    email: str = ""
    status: str = ACTIVE


@dataclass
class SyncProgress:
    """How far a course's roster sync has got (JSON in the shared cache)."""

    state: str = QUEUED
    pages: int = 0
    members: int = 0
    inactive: int = 0
    deleted: int = 0
    absent: int = 0
    error: str | None = None
    queued_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SyncProgress:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def active(self) -> bool:
        return self.state in (QUEUED, RUNNING)


@dataclass
class PageOutcome:
    written: int = 0
    inactive_user_ids: list[int] = field(default_factory=list)
    deleted_user_ids: list[int] = field(default_factory=list)


# -- the shared cache: progress and lock --------------------------------------------------------
def _progress_key(course_id: int) -> str:
    return f"roster-sync:{course_id}"


def _lock_key(course_id: int) -> str:
    return f"roster-sync-lock:{course_id}"


def progress(cache: Cache, course_id: int) -> SyncProgress | None:
    """The last (or current) sync's progress. A sync shown as queued or running whose lock is
    gone was interrupted (worker killed, job lost): it is reported as failed."""
    data = cache.get(_progress_key(course_id))
    if data is None:
        return None
    state = SyncProgress.from_dict(data)
    if state.active and cache.get(_lock_key(course_id)) is None:
        # A sync saves its final state before it releases the lock: read once more, or a sync
        # that finished between the two reads above would be reported as failed.
        again = cache.get(_progress_key(course_id))
        state = SyncProgress.from_dict(again) if again is not None else state
        if state.active:
            state.state = FAILED
            state.error = state.error or "The sync stopped before it finished. Start it again."
    return state


def _save(cache: Cache, course_id: int, state: SyncProgress) -> None:
    cache.set(_progress_key(course_id), state.to_dict(), PROGRESS_TTL)


def claim(cache: Cache, course_id: int) -> str | None:
    """Take the course's sync lock: a token for whoever got it, None if a sync is already queued
    or running. The token travels with the job, which then knows the lock is its own."""
    token = secrets.token_urlsafe(12)
    return token if cache.add(_lock_key(course_id), token, LOCK_TTL) else None


def release(cache: Cache, course_id: int, token: str) -> None:
    if cache.get(_lock_key(course_id)) == token:
        cache.delete(_lock_key(course_id))


def _hold(cache: Cache, course_id: int, token: str) -> bool:
    """Renew the lock if it is still ours (or take it back if it expired); False if another
    sync has it now."""
    current = cache.get(_lock_key(course_id))
    if current is None:
        return cache.add(_lock_key(course_id), token, LOCK_TTL)
    if current != token:
        return False
    cache.set(_lock_key(course_id), token, LOCK_TTL)
    return True


def mark_queued(cache: Cache, course_id: int) -> SyncProgress:
    state = SyncProgress(state=QUEUED, queued_at=utcnow().isoformat())
    _save(cache, course_id, state)
    return state


# -- the database ------------------------------------------------------------------------------
def _insert(session: Session):
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _clean(member: RosterMember) -> RosterMember | None:
    subject = member.subject.strip()
    if not subject or len(subject) > _SIZES["subject"]:
        return None
    status = member.status if member.status in STATUSES else ACTIVE
    return RosterMember(
        subject=subject,
        role=member.role,
        lti_roles=tuple(member.lti_roles),
        name=member.name.strip()[: _SIZES["name"]],
        given_name=member.given_name.strip()[: _SIZES["given_name"]],
        family_name=member.family_name.strip()[: _SIZES["family_name"]],
        email=member.email.strip()[: _SIZES["email"]],
        status=status,
    )


def apply_page(
    session: Session,
    platform_id: int,
    course_id: int,
    members: Sequence[RosterMember],
    now: datetime | None = None,
) -> PageOutcome:
    """Write one page of members: at most three statements whatever the page size (users,
    enrolments with their status, and the Deleted marked), each race-safe against concurrent
    launches.

    A member without a name or e-mail keeps what a launch told us; a user the sync creates has
    no last launch. A Deleted member is never added, only marked if known.
    """
    now = now or utcnow()
    by_subject: dict[str, RosterMember] = {}
    for member in members:
        cleaned = _clean(member)
        if cleaned is not None:
            by_subject[cleaned.subject] = cleaned  # one row per subject per statement
    present = [m for m in by_subject.values() if m.status != DELETED]
    deleted = [m.subject for m in by_subject.values() if m.status == DELETED]
    outcome = PageOutcome()
    insert = _insert(session)
    connection = session.connection()
    user_ids: dict[str, int] = {}
    if present:
        users = insert(LmsUser)
        keep = {
            column: func.coalesce(
                func.nullif(users.excluded[column], ""), LmsUser.__table__.c[column]
            )
            for column in ("name", "given_name", "family_name", "email")
        }
        users = users.on_conflict_do_update(
            index_elements=["platform_id", "subject"], set_=keep
        ).returning(LmsUser.id, LmsUser.subject)
        rows = connection.execute(
            users,
            [
                {
                    "platform_id": platform_id,
                    "subject": m.subject,
                    "name": m.name,
                    "given_name": m.given_name,
                    "family_name": m.family_name,
                    "email": m.email,
                    "created_at": now,
                }
                for m in present
            ],
        )
        user_ids = {row.subject: row.id for row in rows}
        enrollments = insert(Enrollment)
        enrollments = enrollments.on_conflict_do_update(
            index_elements=["user_id", "course_id"],
            set_={
                "role": enrollments.excluded.role,
                "lti_roles": enrollments.excluded.lti_roles,
                "status": enrollments.excluded.status,
                "roster_synced_at": enrollments.excluded.roster_synced_at,
                "updated_at": enrollments.excluded.updated_at,
            },
        )
        connection.execute(
            enrollments,
            [
                {
                    "user_id": user_ids[m.subject],
                    "course_id": course_id,
                    "role": m.role,
                    "lti_roles": list(m.lti_roles),
                    "status": ENROLLMENT_STATUS[m.status],
                    "roster_synced_at": now,
                    "updated_at": now,
                }
                for m in present
            ],
        )
        outcome.written = len(present)
        outcome.inactive_user_ids = [user_ids[m.subject] for m in present if m.status == INACTIVE]
    if deleted:
        known = select(LmsUser.id).where(
            LmsUser.platform_id == platform_id, LmsUser.subject.in_(deleted)
        )
        outcome.deleted_user_ids = list(
            connection.execute(
                update(Enrollment)
                .where(Enrollment.course_id == course_id, Enrollment.user_id.in_(known))
                .values(status=models.DELETED, roster_synced_at=now, updated_at=now)
                .returning(Enrollment.user_id)
            ).scalars()
        )
    return outcome


def mark_absent(session: Session, course_id: int, since: datetime) -> int:
    """Mark absent every enrolment of the course that neither the sync begun at `since` nor a
    launch has touched since; how many there are (one statement)."""
    result = session.connection().execute(
        update(Enrollment)
        .where(Enrollment.course_id == course_id, Enrollment.updated_at < since)
        .values(status=models.ABSENT, updated_at=utcnow())
    )
    return result.rowcount


def status_counts(session: Session, course_id: int) -> dict[str, int]:
    """How many enrolments of the course have each status (statuses without any: 0)."""
    counts = dict.fromkeys(models.STATUSES, 0)
    rows = session.execute(
        select(Enrollment.status, func.count())
        .where(Enrollment.course_id == course_id)
        .group_by(Enrollment.status)
    )
    counts.update({status: count for status, count in rows})
    return counts


def course_memberships_url(session: Session, course_id: int) -> str | None:
    """The NRPS memberships URL the course's launches recorded, if any."""
    return session.scalar(select(Course.context_memberships_url).where(Course.id == course_id))


def learner_count(session: Session, course_id: int) -> int:
    """Learners the tool knows in a course (from launches and syncs)."""
    return session.scalar(
        select(func.count())
        .select_from(Enrollment)
        .where(Enrollment.course_id == course_id, Enrollment.role == LEARNER)
    )


# -- one sync ----------------------------------------------------------------------------------
def run_sync(
    session_factory: sessionmaker[Session],
    cache: Cache,
    course_id: int,
    pages: Iterable[Sequence[RosterMember]],
    lock_token: str | None = None,
) -> SyncProgress:
    """Apply every page of a complete roster to a course, then mark absent whom it did not list.

    `pages` is consumed lazily, one page at a time. With `lock_token` (from `claim`) the lock is
    already ours; without, it is taken here. If another sync holds it, nothing is done and its
    progress is returned. A failure is recorded (state failed, the error's text) and re-raised;
    the pages already applied stay.
    """
    token = lock_token or claim(cache, course_id)
    if token is None or not _hold(cache, course_id, token):
        log.info("roster sync of course %s already under way", course_id)
        return progress(cache, course_id) or SyncProgress(state=RUNNING)
    started = utcnow()
    queued = cache.get(_progress_key(course_id)) or {}
    state = SyncProgress(
        state=RUNNING, queued_at=queued.get("queued_at"), started_at=started.isoformat()
    )
    _save(cache, course_id, state)
    try:
        with session_factory() as session:
            course = session.get(Course, course_id)
            if course is None:
                raise LookupError(f"There is no course {course_id}.")
            platform_id, context_id = course.platform_id, course.context_id
        for page in pages:
            with session_factory() as session, session.begin():
                outcome = apply_page(session, platform_id, course_id, page)
            # After the commit: a launch that read the course's mark before it reads the
            # enrolments as they are now.
            forget_course_visits(cache, platform_id, context_id)
            state.pages += 1
            state.members += len(page)
            state.inactive += len(outcome.inactive_user_ids)
            state.deleted += len(outcome.deleted_user_ids)
            if not _hold(cache, course_id, token):
                raise RuntimeError("Another roster sync took over this course.")
            _save(cache, course_id, state)
        with session_factory() as session, session.begin():
            state.absent = mark_absent(session, course_id, started)
        forget_course_visits(cache, platform_id, context_id)
        state.state = DONE
    except BaseException as exc:
        state.state = FAILED
        state.error = str(exc) or type(exc).__name__
        raise
    finally:
        state.finished_at = utcnow().isoformat()
        _save(cache, course_id, state)
        release(cache, course_id, token)
        log.info(
            "roster sync of course %s: %s, %d pages, %d members",
            course_id,
            state.state,
            state.pages,
            state.members,
        )
    return state
