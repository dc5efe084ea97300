"""What administrators watch: cases waiting for an assessor, cases at risk of missing their
decision due date (submission + 14 business days by default), and the cases assessors declined
lately with the reason they gave."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lti_tool.accounts.models import Account
from lti_tool.assessment.models import (
    DECLINED,
    LIVE_STATES,
    OPEN_CASE_STATUSES,
    ROLE_LABELS,
    Assessor,
    Assignment,
    Case,
)
from lti_tool.assessment.similar import SimilarView, flagged_open_cases
from lti_tool.business_days import calendar_from_settings
from lti_tool.catalog.models import MicroCredentialVersion
from lti_tool.db import utcnow
from lti_tool.settings import Settings

LIST_LIMIT = 500
DECLINED_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class AssessorOnCase:
    role: str
    name: str
    email: str
    state: str
    due_at: datetime


@dataclass(frozen=True)
class WatchedCase:
    code: str
    title: str
    status: str
    staffing_needed: bool
    submitted_at: datetime
    decision_due_at: datetime | None
    business_days_left: int | None  # negative: overdue by that many
    assessors: list[AssessorOnCase]


@dataclass(frozen=True)
class DeclinedCase:
    code: str
    title: str
    assessor: str
    declined_at: datetime
    reason: str | None


@dataclass(frozen=True)
class Oversight:
    waiting_count: int
    waiting: list[WatchedCase]
    at_risk_count: int
    at_risk: list[WatchedCase]
    # Open cases flagged as nearly identical to another submission, with what they match.
    similar: list[tuple[WatchedCase, list[SimilarView]]]
    # Assignments declined within DECLINED_WINDOW, newest first.
    declined: list[DeclinedCase]


def _watched(session: Session, settings: Settings, cases: list, now: datetime) -> list[WatchedCase]:
    calendar = calendar_from_settings(settings)
    ids = [case.id for case, _title in cases]
    people: dict[int, list[AssessorOnCase]] = {}
    if ids:
        for case_id, role, name, email, state, due_at in session.execute(
            select(
                Assignment.case_id,
                Assignment.role,
                Account.name,
                Account.email,
                Assignment.state,
                Assignment.due_at,
            )
            .join(Assessor, Assessor.id == Assignment.assessor_id)
            .join(Account, Account.id == Assessor.account_id)
            .where(Assignment.case_id.in_(ids), Assignment.state.in_(LIVE_STATES))
            .order_by(Assignment.id)
        ):
            people.setdefault(case_id, []).append(
                AssessorOnCase(ROLE_LABELS[role], name, email, state, due_at)
            )

    def left(due: datetime | None) -> int | None:
        if due is None:
            return None
        return calendar.between(now, due) if due >= now else -calendar.between(due, now)

    return [
        WatchedCase(
            code=case.code,
            title=title,
            status=case.status,
            staffing_needed=case.staffing_needed,
            submitted_at=case.submitted_at,
            decision_due_at=case.decision_due_at,
            business_days_left=left(case.decision_due_at),
            assessors=people.get(case.id, []),
        )
        for case, title in cases
    ]


def oversight(session: Session, settings: Settings, now: datetime | None = None) -> Oversight:
    """Cases waiting for an assessor (oldest first) and open cases whose decision is due within
    assessment_at_risk_business_days or overdue (soonest first)."""
    now = now or utcnow()
    horizon = calendar_from_settings(settings).add(now, settings.assessment_at_risk_business_days)
    titled = select(Case, MicroCredentialVersion.title).join(
        MicroCredentialVersion, MicroCredentialVersion.id == Case.version_id
    )
    waiting_filter = Case.staffing_needed
    risk_filter = (Case.status.in_(OPEN_CASE_STATUSES), Case.decision_due_at <= horizon)
    waiting = session.execute(
        titled.where(waiting_filter).order_by(Case.id).limit(LIST_LIMIT)
    ).all()
    at_risk = session.execute(
        titled.where(*risk_filter).order_by(Case.decision_due_at, Case.id).limit(LIST_LIMIT)
    ).all()
    flagged = flagged_open_cases(session, LIST_LIMIT)
    titles = dict(
        session.execute(
            select(MicroCredentialVersion.id, MicroCredentialVersion.title).where(
                MicroCredentialVersion.id.in_({case.version_id for case, _ in flagged})
            )
        ).all()
    )
    watched_flagged = _watched(
        session, settings, [(case, titles.get(case.version_id, "")) for case, _ in flagged], now
    )
    count = func.count()
    declined = session.execute(
        select(Case.code, MicroCredentialVersion.title, Account.name, Assignment.ended_at,
               Assignment.decline_reason)
        .join(Case, Case.id == Assignment.case_id)
        .join(MicroCredentialVersion, MicroCredentialVersion.id == Case.version_id)
        .join(Assessor, Assessor.id == Assignment.assessor_id)
        .join(Account, Account.id == Assessor.account_id)
        .where(Assignment.state == DECLINED, Assignment.ended_at >= now - DECLINED_WINDOW)
        .order_by(Assignment.ended_at.desc(), Assignment.id.desc())
        .limit(LIST_LIMIT)
    ).all()  # fmt: skip
    return Oversight(
        waiting_count=session.scalar(select(count).select_from(Case).where(waiting_filter)) or 0,
        waiting=_watched(session, settings, list(waiting), now),
        at_risk_count=session.scalar(select(count).select_from(Case).where(*risk_filter)) or 0,
        at_risk=_watched(session, settings, list(at_risk), now),
        similar=[
            (watched, views) for watched, (_, views) in zip(watched_flagged, flagged, strict=True)
        ],
        declined=[DeclinedCase(*row) for row in declined],
    )
