"""The database side of the assignment policy: load candidates and waiting cases with a few
set-based queries, plan them all in memory (policy.plan), write the assignments in bulk.

Also the deadlines: reminders before an assessor's due date, reassignment after it. With e-mail
on (LTI_TOOL_SMTP_URL), each reminder and each assessor's new cases are posted to the outbox
in the run's transaction and mailed after it commits (assessment/notices.py).

Runs one at a time: on PostgreSQL a transaction-level advisory lock serialises assignment
runs (a case handler, the sweep job, a decline), so two workers never push an assessor over
capacity; SQLite serialises writers anyway.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import (
    ARRAY,
    Integer,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from lti_tool.accounts.models import Account
from lti_tool.assessment.models import (
    ACTIVE,
    ADJUDICATION,
    ADJUDICATOR,
    ASSIGNED,
    FIRST,
    IN_REVIEW,
    LIVE_STATES,
    OPEN_STATES,
    REASSIGNED,
    SECOND,
    WAITING,
    Assessor,
    AssessorCertification,
    Assignment,
    Case,
)
from lti_tool.assessment.notices import post_new_case_notices, post_reminders
from lti_tool.assessment.policy import Allocator, Candidate, Choice, Need, institution_keys
from lti_tool.business_days import calendar_from_settings
from lti_tool.db import utcnow
from lti_tool.mail import mail_enabled
from lti_tool.settings import Settings

log = logging.getLogger(__name__)

LOAD_WINDOW = timedelta(days=7)  # "weekly capacity": cases taken in any 7 days
CASE_BATCH = 20_000  # waiting cases read per query
WRITE_CHUNK = 900  # ids per UPDATE ... IN (...) (under SQLite's bound-parameter limit)
ADVISORY_LOCK = 7_310_009  # pg_advisory_xact_lock key of assignment runs


@dataclass(frozen=True)
class AssignmentRun:
    """What one run did: assignments made, cases now fully staffed, cases still waiting."""

    assigned: int
    staffed: int
    still_waiting: int


def lock_assignment(session: Session) -> None:
    """Serialise assignment runs (PostgreSQL); a no-op on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})


def load_candidates(session: Session, now: datetime) -> list[Candidate]:
    """Every active assessor with an active account: certifications, load, conflict keys.
    Three queries, whatever the number of assessors."""
    rows = session.execute(
        select(Assessor.id, Assessor.weekly_capacity, Assessor.institution, Account.email)
        .join(Account, Account.id == Assessor.account_id)
        .where(Assessor.status == ACTIVE, Account.active.is_(True))
    ).all()
    certified: dict[int, set[tuple[int, int | None]]] = {}
    for assessor_id, credential_id, version_id in session.execute(
        select(
            AssessorCertification.assessor_id,
            AssessorCertification.micro_credential_id,
            AssessorCertification.version_id,
        )
    ):
        certified.setdefault(assessor_id, set()).add((credential_id, version_id))
    loads = dict(
        session.execute(
            select(Assignment.assessor_id, func.count())
            .where(Assignment.state.in_(LIVE_STATES), Assignment.assigned_at > now - LOAD_WINDOW)
            .group_by(Assignment.assessor_id)
        ).all()
    )
    return [
        Candidate(
            assessor_id=assessor_id,
            capacity=capacity,
            load=loads.get(assessor_id, 0),
            certified=frozenset(certified.get(assessor_id, ())),
            conflict_keys=institution_keys([institution], [email]),
        )
        for assessor_id, capacity, institution, email in rows
    ]


class _JsonCache:
    """Parse each distinct JSON text once: the waiting cases of one run repeat a few values
    (the conflict keys of each institution, `[]` for most preferences), so decoding them per
    row was most of the time spent reading 100,000 cases."""

    def __init__(self) -> None:
        self._keys: dict[str | None, frozenset[str]] = {}
        self._ids: dict[str | None, tuple[int, ...]] = {}

    def keys(self, raw: str | None) -> frozenset[str]:
        parsed = self._keys.get(raw)
        if parsed is None:
            parsed = self._keys[raw] = frozenset(json.loads(raw) or ()) if raw else frozenset()
        return parsed

    def ids(self, raw: str | None) -> tuple[int, ...]:
        parsed = self._ids.get(raw)
        if parsed is None:
            parsed = self._ids[raw] = tuple(json.loads(raw) or ()) if raw else ()
        return parsed


class _WaitingRows(NamedTuple):
    """A batch of waiting cases as read: (id, micro_credential_id, version_id, status,
    conflict_keys and preferred_assessor_ids as JSON text), and (case_id, assessor_id, role,
    state) of every assignment they have or had."""

    cases: Sequence[Row]
    held: Sequence[Row]


def _waiting_rows(session: Session, after_id: int, case_ids: Sequence[int] | None) -> _WaitingRows:
    """The next batch of cases that need someone (ids above after_id): two queries, Core rows
    on the session's connection (the caller has flushed), the JSON left as text."""
    connection = session.connection()
    query = (
        select(
            Case.id,
            Case.micro_credential_id,
            Case.version_id,
            Case.status,
            cast(Case.conflict_keys, Text),
            cast(Case.preferred_assessor_ids, Text),
        )
        .where(Case.staffing_needed, Case.id > after_id)  # the partial index's own predicate
        .order_by(Case.id)
        .limit(CASE_BATCH)
    )
    if case_ids is not None:
        query = query.where(Case.id.in_(case_ids))
    cases = connection.execute(query).all()
    if not cases:
        return _WaitingRows([], [])
    # The batch is every waiting case of its id range: a join finds their assignments without
    # sending the batch's ids back.
    held = (
        select(Assignment.case_id, Assignment.assessor_id, Assignment.role, Assignment.state)
        .join(Case, Case.id == Assignment.case_id)
        .where(Case.staffing_needed, Case.id > after_id, Case.id <= cases[-1][0])
    )
    if case_ids is not None:
        held = held.where(Case.id.in_(case_ids))
    return _WaitingRows(cases, connection.execute(held).all())


def _needs(rows: _WaitingRows, parsed: _JsonCache) -> list[Need]:
    """What each case of the batch still needs; whoever holds or held a role is excluded."""
    excluded: dict[int, set[int]] = {}
    live_roles: dict[int, set[str]] = {}
    for case_id, assessor_id, role, state in rows.held:
        excluded.setdefault(case_id, set()).add(assessor_id)
        if state in LIVE_STATES:
            live_roles.setdefault(case_id, set()).add(role)
    needs = []
    for case_id, credential_id, version_id, status, keys, preferred in rows.cases:
        needed = (ADJUDICATOR,) if status == ADJUDICATION else (FIRST, SECOND)
        live = live_roles.get(case_id)  # most have none: no tuple to filter
        needs.append(
            Need(
                case_id=case_id,
                micro_credential_id=credential_id,
                version_id=version_id,
                roles=needed if live is None else tuple(r for r in needed if r not in live),
                excluded=frozenset(excluded.get(case_id, ())),
                conflict_keys=parsed.keys(keys),
                preferred=() if status == ADJUDICATION else parsed.ids(preferred),
            )
        )
    return needs


@dataclass(frozen=True)
class _PlannedBatch:
    """One batch of waiting cases, planned: the assignments to insert, the cases they staff."""

    last_case_id: int
    full: bool  # CASE_BATCH cases: more may wait after last_case_id
    choices: list[Choice]
    staffed: list[int]
    still_waiting: int


def _plan_batch(
    allocator: Allocator, parsed: _JsonCache, rows: _WaitingRows
) -> _PlannedBatch | None:
    """Pure Python (no database): what assign_waiting runs in its planning thread."""
    needs = _needs(rows, parsed)
    if not needs:
        return None
    choices: list[Choice] = []
    staffed: list[int] = []
    for need in needs:
        made = allocator.choose(need) if need.roles else []
        choices.extend(made)
        if len(made) == len(need.roles):
            staffed.append(need.case_id)
    return _PlannedBatch(
        needs[-1].case_id, len(needs) == CASE_BATCH, choices, staffed, len(needs) - len(staffed)
    )


def assign_waiting(
    session: Session,
    settings: Settings,
    case_ids: Iterable[int] | None = None,
    now: datetime | None = None,
) -> AssignmentRun:
    """Assign every case that needs an assessor (or only `case_ids`), oldest first. The caller
    owns the transaction; cases nobody can take stay waiting, visibly, for the next run.

    Batch after batch, the next batch is read before this one is written (its cases are not
    this batch's, so nothing it reads changes) and planned in a thread while the database
    writes this one: planning is pure Python and the write waits on the server (the GIL is
    released), so the two overlap instead of adding up."""
    now = now or utcnow()
    lock_assignment(session)
    wanted = sorted(set(case_ids)) if case_ids is not None else None
    if wanted == []:
        return AssignmentRun(0, 0, 0)
    session.flush()  # the reads below go through the connection, past the ORM's autoflush
    allocator = Allocator(load_candidates(session, now))
    parsed = _JsonCache()
    due_at = calendar_from_settings(settings).add(now, settings.assessment_review_business_days)
    assigned = staffed = waiting = 0
    # The assessors to tell of their new cases (only when e-mail is on).
    notify = mail_enabled(settings)
    new_cases: dict[int, list[int]] = {}
    batch = _plan_batch(allocator, parsed, _waiting_rows(session, 0, wanted))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="assignment-plan") as planner:
        while batch is not None:
            upcoming: Future[_PlannedBatch | None] | None = None
            if wanted is None and batch.full:
                rows = _waiting_rows(session, batch.last_case_id, None)
                upcoming = planner.submit(_plan_batch, allocator, parsed, rows)
            _write(session, batch.choices, batch.staffed, now, due_at)
            if notify:
                for choice in batch.choices:
                    new_cases.setdefault(choice.assessor_id, []).append(choice.case_id)
            assigned += len(batch.choices)
            staffed += len(batch.staffed)
            waiting += batch.still_waiting
            batch = upcoming.result() if upcoming is not None else None
    if assigned or waiting:
        log.info(
            "assigned %d reviews; %d cases staffed, %d still waiting", assigned, staffed, waiting
        )
    post_new_case_notices(session, settings, new_cases, now)
    return AssignmentRun(assigned, staffed, waiting)


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), WRITE_CHUNK):
        yield ids[start : start + WRITE_CHUNK]


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _id_conditions(session: Session, column, ids: Sequence[int]) -> Iterable:
    """`column IN ids` as few statements as the database allows: one `= ANY(array)` on
    PostgreSQL, chunks under SQLite's bound-parameter limit elsewhere."""
    if not ids:
        return
    if _is_postgresql(session):
        # A typed array parameter, not a text literal cast to an array: the planner sees a
        # constant it can hash (a cast of text stays a call, tested against every row).
        yield column == any_(bindparam("ids", list(ids), type_=ARRAY(Integer)))
        return
    for chunk in _chunks(ids):
        yield column.in_(chunk)


def _array_literal(values: Iterable[int | str]) -> str:
    """A PostgreSQL array as text, `{1,2,3}`, of integers or plain words (the roles): psycopg
    adapts a list item by item in Python, ten times slower (0.1 s for a batch's 60,000)."""
    return "{" + ",".join(map(str, values)) + "}"


# One statement for any number of assignments on PostgreSQL: the rows travel as three arrays.
_INSERT_UNNEST = text(
    "INSERT INTO assessment_assignments (case_id, assessor_id, role, state, assigned_at, due_at) "
    "SELECT c, a, r, :state, :assigned_at, :due_at "
    "FROM unnest(CAST(:cases AS integer[]), CAST(:assessors AS integer[]), "
    "CAST(:roles AS varchar[])) AS t(c, a, r)"
)


def _write(
    session: Session, choices: list[Choice], done: list[int], now: datetime, due_at: datetime
) -> None:
    """Insert the assignments and mark the staffed cases, in a handful of statements."""
    if choices and _is_postgresql(session):
        session.execute(
            _INSERT_UNNEST,
            {
                "state": ASSIGNED,
                "assigned_at": now,
                "due_at": due_at,
                "cases": _array_literal(c.case_id for c in choices),
                "assessors": _array_literal(c.assessor_id for c in choices),
                "roles": _array_literal(c.role for c in choices),
            },
        )
    elif choices:
        session.execute(
            insert(Assignment),
            [
                {
                    "case_id": c.case_id,
                    "assessor_id": c.assessor_id,
                    "role": c.role,
                    "state": ASSIGNED,
                    "assigned_at": now,
                    "due_at": due_at,
                }
                for c in choices
            ],
        )
    for condition in _id_conditions(session, Case.id, done):
        session.execute(
            update(Case)
            .where(condition)
            .values(staffing_needed=False, status=_staffed_status())
            .execution_options(synchronize_session=False)
        )
    if done:
        session.expire_all()  # cases loaded in this session must not keep their old status


def _staffed_status():
    from sqlalchemy import case

    return case((Case.status == WAITING, IN_REVIEW), else_=Case.status)


# -- deadlines ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeadlineRun:
    reminded: int
    reassigned: int
    assignment: AssignmentRun


def process_deadlines(
    session: Session, settings: Settings, now: datetime | None = None
) -> DeadlineRun:
    """Remind assessors whose due date is near; take overdue cases away and assign them
    again (the overdue assessor never gets the case back)."""
    now = now or utcnow()
    lock_assignment(session)
    calendar = calendar_from_settings(settings)
    remind_before = calendar.add(now, settings.assessment_reminder_business_days)
    to_remind = list(
        session.scalars(
            select(Assignment.id).where(
                Assignment.state.in_(OPEN_STATES),
                Assignment.reminded_at.is_(None),
                Assignment.due_at <= remind_before,
                Assignment.due_at > now,
            )
        )
    )
    for condition in _id_conditions(session, Assignment.id, to_remind):
        session.execute(
            update(Assignment)
            .where(condition)
            .values(reminded_at=now)
            .execution_options(synchronize_session=False)
        )
    reminded = len(to_remind)
    # Sent after this transaction commits (the outbox), never from inside it.
    post_reminders(session, settings, to_remind)
    overdue = session.execute(
        select(Assignment.id, Assignment.case_id).where(
            Assignment.state.in_(OPEN_STATES), Assignment.due_at <= now
        )
    ).all()
    assignment_ids = [row.id for row in overdue]
    case_ids = sorted({row.case_id for row in overdue})
    for condition in _id_conditions(session, Assignment.id, assignment_ids):
        session.execute(
            update(Assignment)
            .where(condition)
            .values(state=REASSIGNED, ended_at=now)
            .execution_options(synchronize_session=False)
        )
    for condition in _id_conditions(session, Case.id, case_ids):
        session.execute(
            update(Case)
            .where(condition)
            .values(staffing_needed=True, status=_waiting_status())
            .execution_options(synchronize_session=False)
        )
    if reminded or assignment_ids:
        log.info(
            "reminded %d assessors; reassigning %d overdue reviews", reminded, len(assignment_ids)
        )
    session.expire_all()
    return DeadlineRun(reminded, len(assignment_ids), assign_waiting(session, settings, now=now))


def _waiting_status():
    from sqlalchemy import case

    return case((Case.status == IN_REVIEW, WAITING), else_=Case.status)


def deadline_work(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """How many cases wait for an assessor plus open assignments due for a reminder or
    overdue: what the sweep counts to decide whether to run the jobs."""
    now = now or utcnow()
    remind_before = calendar_from_settings(settings).add(
        now, settings.assessment_reminder_business_days
    )
    waiting = session.scalar(
        select(func.count()).select_from(Case).where(Case.staffing_needed)
    )
    due = session.scalar(
        select(func.count())
        .select_from(Assignment)
        .where(
            Assignment.state.in_(OPEN_STATES),
            or_(
                Assignment.due_at <= now,
                and_(Assignment.reminded_at.is_(None), Assignment.due_at <= remind_before),
            ),
        )
    )
    return (waiting or 0) + (due or 0)
