"""E-mail to assessors: a reminder before a review is due, a notice of newly assigned cases.

Only when LTI_TOOL_SMTP_URL is set. The run that records a reminder (or makes assignments)
posts an outbox message in its own transaction; the outbox handler below sends the mail after
that transaction has committed, and the outbox retries a failed send. A message says only what
an assessor may know: the case code, the micro-credential, the due date and the portal's link;
never anything of the learner.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from lti_tool.accounts.models import Account
from lti_tool.assessment.models import ADJUDICATOR, OPEN_STATES, Assessor, Assignment, Case
from lti_tool.catalog.models import MicroCredentialVersion
from lti_tool.mail import compose, mail_enabled, send
from lti_tool.outbox.service import post
from lti_tool.settings import Settings

if TYPE_CHECKING:
    from lti_tool.services import Services

log = logging.getLogger(__name__)

REMINDER = "assessment.reminder"
ASSIGNED = "assessment.assigned"


# -- posting (inside the run's transaction) ----------------------------------------------------
def post_reminders(session: Session, settings: Settings, assignment_ids: Iterable[int]) -> int:
    """One reminder message per assignment just reminded; none without mail."""
    if not mail_enabled(settings):
        return 0
    posted = 0
    for assignment_id in assignment_ids:
        post(session, REMINDER, f"{REMINDER}:{assignment_id}", {"assignment_id": assignment_id})
        posted += 1
    return posted


def post_new_case_notices(
    session: Session, settings: Settings, case_ids_by_assessor: dict[int, list[int]], now: datetime
) -> int:
    """One notice per assessor listing the cases this run gave them; none without mail."""
    if not mail_enabled(settings):
        return 0
    for assessor_id, case_ids in case_ids_by_assessor.items():
        cases = sorted(set(case_ids))
        digest = hashlib.sha256(f"{now.isoformat()}:{cases}".encode()).hexdigest()[:24]
        post(
            session,
            ASSIGNED,
            f"{ASSIGNED}:{assessor_id}:{digest}",
            {"assessor_id": assessor_id, "case_ids": cases},
        )
    return len(case_ids_by_assessor)


# -- sending (outbox handlers, after the run committed) ----------------------------------------
def _when(moment: datetime) -> str:
    return f"{moment:%A %d %B %Y, %H:%M} UTC"


def _open_work(session: Session, where) -> list[tuple[Assignment, str, str]]:
    """(assignment, case code, micro-credential title) of open assignments matching `where`."""
    rows = session.execute(
        select(Assignment, Case.code, MicroCredentialVersion.title)
        .join(Case, Case.id == Assignment.case_id)
        .join(MicroCredentialVersion, MicroCredentialVersion.id == Case.version_id)
        .where(where, Assignment.state.in_(OPEN_STATES))
        .order_by(Assignment.due_at, Assignment.id)
    ).all()
    return [(assignment, code, title) for assignment, code, title in rows]


def _recipient(session: Session, assessor_id: int) -> Account | None:
    account = session.scalar(
        select(Account)
        .join(Assessor, Assessor.account_id == Account.id)
        .where(Assessor.id == assessor_id)
    )
    return account if account is not None and account.active else None


def _line(settings: Settings, assignment: Assignment, code: str, title: str) -> str:
    role = " (adjudication: the disputed criteria only)" if assignment.role == ADJUDICATOR else ""
    return (
        f"- Case {code}, {title}{role}: review due {_when(assignment.due_at)}\n"
        f"  {settings.url(f'/assess/cases/{code}')}"
    )


def _footer(settings: Settings) -> str:
    return (
        f"\nYour cases: {settings.url('/assess/')}\n\n"
        f"You receive this e-mail because you are an assessor of {settings.tool_name}.\n"
    )


def handle_reminder(session: Session, services: Services, payload: dict) -> None:
    """Remind the assessor of one review still open; nothing if it was submitted, declined or
    reassigned since, or if mail has been turned off."""
    settings = services.settings
    if not mail_enabled(settings):
        log.info("mail is off: reminder for assignment %s not sent", payload["assignment_id"])
        return
    work = _open_work(session, Assignment.id == payload["assignment_id"])
    if not work:
        return
    assignment, code, title = work[0]
    account = _recipient(session, assignment.assessor_id)
    if account is None:
        return
    body = (
        f"Hello {account.name},\n\n"
        f"This is a reminder: your review of case {code} is due soon.\n\n"
        f"{_line(settings, assignment, code, title)}\n"
        "If it is not submitted by then, the case goes to another assessor.\n"
        f"{_footer(settings)}"
    )
    subject = f"Reminder: case {code} is due {assignment.due_at:%d %B %Y}"
    send(settings, compose(settings, account.email, subject, body))


def handle_assigned(session: Session, services: Services, payload: dict) -> None:
    """Tell the assessor which cases were assigned to them (those still open)."""
    settings = services.settings
    if not mail_enabled(settings):
        log.info("mail is off: new-case notice for assessor %s not sent", payload["assessor_id"])
        return
    work = _open_work(
        session,
        (Assignment.assessor_id == payload["assessor_id"])
        & Assignment.case_id.in_(payload["case_ids"]),
    )
    if not work:
        return
    account = _recipient(session, payload["assessor_id"])
    if account is None:
        return
    lines = "\n".join(_line(settings, *item) for item in work)
    body = (
        f"Hello {account.name},\n\n"
        f"{'A new case has' if len(work) == 1 else f'{len(work)} new cases have'} been assigned "
        f"to you.\n\n{lines}\n{_footer(settings)}"
    )
    count = len(work)
    subject = f"New case to assess: {work[0][1]}" if count == 1 else f"{count} new cases to assess"

    send(settings, compose(settings, account.email, subject, body))
