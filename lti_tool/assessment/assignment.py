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

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ARRAY,
    Integer,
    and_,
    any_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
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


def _waiting_needs(session: Session, after_id: int, case_ids: Sequence[int] | None) -> list[Need]:
    """The next batch of cases that need someone (ids above after_id), with their roles."""
    query = (
        select(
            Case.id,
            Case.micro_credential_id,
            Case.version_id,
            Case.status,
            Case.conflict_keys,
            Case.preferred_assessor_ids,
        )
        .where(Case.staffing_needed, Case.id > after_id)  # the partial index's own predicate
        .order_by(Case.id)
        .limit(CASE_BATCH)
    )
    if case_ids is not None:
        query = query.where(Case.id.in_(case_ids))
    cases = session.execute(query).all()
    if not cases:
        return []
    # Everyone who holds or held a role on these cases (PostgreSQL: one `= ANY(array)` query).
    batch_ids = [case.id for case in cases]
    excluded: dict[int, set[int]] = {}
    live_roles: dict[int, set[str]] = {}
    for condition in _id_conditions(session, Assignment.case_id, batch_ids):
        held = select(
            Assignment.case_id, Assignment.assessor_id, Assignment.role, Assignment.state
        ).where(condition)
        for case_id, assessor_id, role, state in session.execute(held):
            excluded.setdefault(case_id, set()).add(assessor_id)
            if state in LIVE_STATES:
                live_roles.setdefault(case_id, set()).add(role)
    needs = []
    for case_id, credential_id, version_id, status, keys, preferred in cases:
        needed = (ADJUDICATOR,) if status == ADJUDICATION else (FIRST, SECOND)
        live = live_roles.get(case_id, set())
        roles = tuple(role for role in needed if role not in live)
        needs.append(
            Need(
                case_id=case_id,
                micro_credential_id=credential_id,
                version_id=version_id,
                roles=roles,
                excluded=frozenset(excluded.get(case_id, ())),
                conflict_keys=frozenset(keys or ()),
                preferred=() if status == ADJUDICATION else tuple(preferred or ()),
            )
        )
    return needs


def assign_waiting(
    session: Session,
    settings: Settings,
    case_ids: Iterable[int] | None = None,
    now: datetime | None = None,
) -> AssignmentRun:
    """Assign every case that needs an assessor (or only `case_ids`), oldest first. The caller
    owns the transaction; cases nobody can take stay waiting, visibly, for the next run."""
    now = now or utcnow()
    lock_assignment(session)
    wanted = sorted(set(case_ids)) if case_ids is not None else None
    if wanted == []:
        return AssignmentRun(0, 0, 0)
    allocator = Allocator(load_candidates(session, now))
    due_at = calendar_from_settings(settings).add(now, settings.assessment_review_business_days)
    assigned = staffed = waiting = 0
    after_id = 0
    # The assessors to tell of their new cases (only when e-mail is on).
    notify = mail_enabled(settings)
    new_cases: dict[int, list[int]] = {}
    while True:
        needs = _waiting_needs(session, after_id, wanted)
        if not needs:
            break
        after_id = needs[-1].case_id
        choices: list[Choice] = []
        done: list[int] = []
        for need in needs:
            made = allocator.choose(need) if need.roles else []
            choices.extend(made)
            if len(made) == len(need.roles):
                done.append(need.case_id)
            else:
                waiting += 1
        _write(session, choices, done, now, due_at)
        if notify:
            for choice in choices:
                new_cases.setdefault(choice.assessor_id, []).append(choice.case_id)
        assigned += len(choices)
        staffed += len(done)
        if wanted is not None or len(needs) < CASE_BATCH:
            break
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
        yield column == any_(bindparam("ids", list(ids), type_=ARRAY(Integer)))
        return
    for chunk in _chunks(ids):
        yield column.in_(chunk)


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
                "cases": [c.case_id for c in choices],
                "assessors": [c.assessor_id for c in choices],
                "roles": [c.role for c in choices],
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
