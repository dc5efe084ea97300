"""The assessor pool: add assessors (with their account), certify them, pause and resume.

After any of these commits, cases that were waiting may have someone now: callers enqueue
`jobs.assign_waiting_cases` (the CLI and the admin pages do; the sweep would anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from lti_tool.accounts.models import Account
from lti_tool.accounts.service import organisation_named
from lti_tool.assessment.assignment import LOAD_WINDOW
from lti_tool.assessment.models import (
    ACTIVE,
    LIVE_STATES,
    OPEN_STATES,
    PAUSED,
    Assessor,
    AssessorCertification,
    Assignment,
)
from lti_tool.catalog.models import MicroCredential, MicroCredentialVersion
from lti_tool.db import utcnow

MAX_CAPACITY = 1000


class AssessorError(ValueError):
    """Bad input for the pool (unknown micro-credential, not an assessor...); says what."""


def _email(email: str) -> str:
    cleaned = email.strip().lower()
    local, _, domain = cleaned.partition("@")
    if not local or "." not in domain or " " in cleaned:
        raise AssessorError(f"{email!r} is not an e-mail address")
    return cleaned


def find_assessor(session: Session, email: str) -> Assessor:
    assessor = session.scalar(select(Assessor).join(Account).where(Account.email == _email(email)))
    if assessor is None:
        raise AssessorError(f"{email.strip()} is not an assessor")
    return assessor


def _certification_target(session: Session, spec: str) -> tuple[int, int | None, str]:
    """ "KEY" (every version) or "KEY@N" (version N only) -> ids and a label."""
    key, _, number = spec.strip().partition("@")
    credential = session.scalar(select(MicroCredential).where(MicroCredential.key == key))
    if credential is None:
        raise AssessorError(f"there is no micro-credential {key!r} in the catalog")
    if not number:
        return credential.id, None, key
    if not number.isdigit():
        raise AssessorError(f"{spec!r}: a version is a number, as in {key}@2")
    version_id = session.scalar(
        select(MicroCredentialVersion.id).where(
            MicroCredentialVersion.micro_credential_id == credential.id,
            MicroCredentialVersion.number == int(number),
        )
    )
    if version_id is None:
        raise AssessorError(f"{key!r} has no version {number}")
    return credential.id, version_id, spec.strip()


def certify(session: Session, assessor: Assessor, spec: str) -> bool:
    """Certify for a micro-credential ("KEY", every version) or one version ("KEY@2").
    False when the assessor held that certification already."""
    credential_id, version_id, _label = _certification_target(session, spec)
    for held in assessor.certifications:
        if held.micro_credential_id == credential_id and held.version_id == version_id:
            return False
    assessor.certifications.append(
        AssessorCertification(micro_credential_id=credential_id, version_id=version_id)
    )
    session.flush()
    return True


def add_assessor(
    session: Session,
    email: str,
    name: str,
    institution: str,
    capacity: int,
    certify_specs: list[str],
    organisation: str | None = None,
) -> Assessor:
    """A new assessor; their account is created when the e-mail has none yet."""
    if not name.strip():
        raise AssessorError("the assessor needs a name")
    if not 0 <= capacity <= MAX_CAPACITY:
        raise AssessorError(f"the weekly capacity is a number of cases from 0 to {MAX_CAPACITY}")
    address = _email(email)
    account = session.scalar(select(Account).where(Account.email == address))
    if account is not None and session.scalar(
        select(Assessor.id).where(Assessor.account_id == account.id)
    ):
        raise AssessorError(f"{address} is an assessor already")
    org = None
    if organisation and organisation.strip():
        org = organisation_named(session, organisation)
    if account is None:
        account = Account(email=address, name=name.strip(), organisation=org)
        session.add(account)
    elif org is not None:
        account.organisation = org
    assessor = Assessor(account=account, institution=institution.strip(), weekly_capacity=capacity)
    session.add(assessor)
    session.flush()
    for spec in certify_specs:
        certify(session, assessor, spec)
    return assessor


def set_paused(session: Session, email: str, paused: bool) -> Assessor:
    """Pause (no new cases; open ones stay theirs) or resume an assessor."""
    assessor = find_assessor(session, email)
    assessor.status = PAUSED if paused else ACTIVE
    assessor.updated_at = utcnow()
    return assessor


@dataclass(frozen=True)
class AssessorRow:
    id: int
    email: str
    name: str
    organisation: str | None
    institution: str
    weekly_capacity: int
    status: str
    certifications: list[str]
    load_this_week: int
    open_reviews: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def list_assessors(session: Session, now: datetime | None = None) -> list[AssessorRow]:
    """Every assessor with their certifications and workload (a handful of queries)."""
    now = now or utcnow()
    assessors = session.scalars(
        select(Assessor)
        .options(selectinload(Assessor.account).selectinload(Account.organisation))
        .order_by(Assessor.id)
    ).all()
    labels: dict[int, list[str]] = {}
    for assessor_id, key, number in session.execute(
        select(
            AssessorCertification.assessor_id,
            MicroCredential.key,
            MicroCredentialVersion.number,
        )
        .join(MicroCredential, MicroCredential.id == AssessorCertification.micro_credential_id)
        .outerjoin(
            MicroCredentialVersion,
            MicroCredentialVersion.id == AssessorCertification.version_id,
        )
        .order_by(MicroCredential.key, MicroCredentialVersion.number)
    ):
        labels.setdefault(assessor_id, []).append(key if number is None else f"{key}@{number}")
    week = dict(
        session.execute(
            select(Assignment.assessor_id, func.count())
            .where(
                Assignment.state.in_(LIVE_STATES),
                Assignment.assigned_at > now - LOAD_WINDOW,
            )
            .group_by(Assignment.assessor_id)
        ).all()
    )
    open_work = dict(
        session.execute(
            select(Assignment.assessor_id, func.count())
            .where(Assignment.state.in_(OPEN_STATES))
            .group_by(Assignment.assessor_id)
        ).all()
    )
    return [
        AssessorRow(
            id=a.id,
            email=a.account.email,
            name=a.account.name,
            organisation=a.account.organisation.name if a.account.organisation else None,
            institution=a.institution,
            weekly_capacity=a.weekly_capacity,
            status=a.status,
            certifications=labels.get(a.id, []),
            load_this_week=week.get(a.id, 0),
            open_reviews=open_work.get(a.id, 0),
        )
        for a in assessors
    ]
