"""The catalog's read API for the other packages and the web layer, and the one write the
evidence package makes (marking a version started)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.orm import Session, contains_eager, selectinload

from lti_tool.catalog.models import (
    MicroCredential,
    MicroCredentialVersion,
    Part,
    Stack,
    StackMember,
)
from lti_tool.db import utcnow

Version = MicroCredentialVersion

_WITH_CONTENT = (
    selectinload(Version.parts).selectinload(Part.prompts),
    selectinload(Version.parts).selectinload(Part.requirements),
    selectinload(Version.parts).selectinload(Part.rubric),
    selectinload(Version.micro_credential).selectinload(MicroCredential.issuer),
)


@dataclass(frozen=True)
class CredentialSummary:
    """What a list or a picker shows of a micro-credential (its newest version)."""

    key: str
    version: int
    version_id: int
    title: str
    competency: str
    estimated_hours: float | None
    stacks: tuple[str, ...]  # keys of the stacks it belongs to


@dataclass(frozen=True)
class StackSummary:
    key: str
    title: str
    description: str
    issuer: str  # the issuer's name
    completion_rule: str
    needed: int  # how many members complete the stack
    credential_name: str
    credential_description: str
    credential_estimated_hours: float | None
    members: tuple[CredentialSummary, ...]  # in the stack's order


def latest_versions() -> Select:
    """SELECT of the newest version of every micro-credential."""
    newest = (
        select(Version.micro_credential_id, func.max(Version.number).label("number"))
        .group_by(Version.micro_credential_id)
        .subquery()
    )
    return select(Version).join(
        newest,
        and_(
            Version.micro_credential_id == newest.c.micro_credential_id,
            Version.number == newest.c.number,
        ),
    )


def current_version(session: Session, key: str) -> MicroCredentialVersion | None:
    """The newest version of a micro-credential with its parts, prompts, artifact requirements
    and rubric loaded (None for an unknown key)."""
    statement = (
        latest_versions()
        .join(MicroCredential, MicroCredential.id == Version.micro_credential_id)
        .where(MicroCredential.key == key)
        .options(*_WITH_CONTENT)
    )
    return session.scalars(statement).one_or_none()


def get_version(session: Session, version_id: int) -> MicroCredentialVersion | None:
    """A version by id (the one a learner started), its content loaded."""
    statement = select(Version).where(Version.id == version_id).options(*_WITH_CONTENT)
    return session.scalars(statement).one_or_none()


def current_versions(
    session: Session, micro_credential_ids: Iterable[int] | None = None
) -> dict[int, MicroCredentialVersion]:
    """micro-credential id -> its newest version with content loaded (all, or the given)."""
    statement = latest_versions().options(*_WITH_CONTENT)
    if micro_credential_ids is not None:
        statement = statement.where(Version.micro_credential_id.in_(list(micro_credential_ids)))
    return {v.micro_credential_id: v for v in session.scalars(statement)}


def list_stacks(session: Session, keys: Iterable[str] | None = None) -> list[StackSummary]:
    """Every stack (or those with the given keys) with its members in order, in a fixed number
    of queries."""
    statement = (
        select(Stack)
        .order_by(Stack.title, Stack.id)
        .options(
            selectinload(Stack.issuer),
            selectinload(Stack.members).selectinload(StackMember.micro_credential),
        )
    )
    if keys is not None:
        statement = statement.where(Stack.key.in_(list(keys)))
    stacks = session.scalars(statement).all()
    ids = {m.micro_credential_id for s in stacks for m in s.members}
    summaries = _summaries(session, ids)
    return [
        StackSummary(
            key=s.key,
            title=s.title,
            description=s.description,
            issuer=s.issuer.name,
            completion_rule=s.completion_rule,
            needed=s.needed,
            credential_name=s.credential_name,
            credential_description=s.credential_description,
            credential_estimated_hours=s.credential_estimated_hours,
            members=tuple(summaries[m.micro_credential_id] for m in s.members),
        )
        for s in stacks
    ]


def search(session: Session, text: str, limit: int = 50) -> list[CredentialSummary]:
    """Micro-credentials whose newest version matches every word of `text` (case-insensitive) in
    its key, title, competency or key method, or in the title of a stack it belongs to. An empty
    text lists them all."""
    statement = latest_versions().join(
        MicroCredential, MicroCredential.id == Version.micro_credential_id
    )
    for word in text.split():
        in_stack = (
            select(StackMember.micro_credential_id)
            .join(Stack, Stack.id == StackMember.stack_id)
            .where(or_(Stack.title.icontains(word, autoescape=True), Stack.key == word.lower()))
        )
        statement = statement.where(
            or_(
                MicroCredential.key.icontains(word, autoescape=True),
                Version.title.icontains(word, autoescape=True),
                Version.competency.icontains(word, autoescape=True),
                Version.key_method.icontains(word, autoescape=True),
                MicroCredential.id.in_(in_stack),
            )
        )
    statement = (
        statement.options(contains_eager(Version.micro_credential))
        .order_by(Version.title, MicroCredential.key)
        .limit(limit)
    )
    versions = session.scalars(statement).all()
    stacks = _stack_keys(session, [v.micro_credential_id for v in versions])
    return [_summary(v, stacks.get(v.micro_credential_id, ())) for v in versions]


def mark_version_started(session: Session, version_id: int, when: datetime | None = None) -> bool:
    """Freeze a version: from now on an edit of the catalog creates the next version instead.

    For the evidence package, in the transaction that records a learner's start. One
    conditional UPDATE, so it is safe against a concurrent import (which locks the version row
    it edits in place). True when this call froze it, False when it already was frozen.
    """
    result = session.execute(
        update(Version)
        .where(Version.id == version_id, Version.started_at.is_(None))
        .values(started_at=when or utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _summaries(session: Session, ids: Iterable[int]) -> dict[int, CredentialSummary]:
    ids = list(ids)
    if not ids:
        return {}
    versions = session.scalars(
        latest_versions()
        .where(Version.micro_credential_id.in_(ids))
        .options(selectinload(Version.micro_credential))
    ).all()
    stacks = _stack_keys(session, ids)
    return {
        v.micro_credential_id: _summary(v, stacks.get(v.micro_credential_id, ()))
        for v in versions
    }


def _stack_keys(session: Session, ids: list[int]) -> dict[int, tuple[str, ...]]:
    if not ids:
        return {}
    rows = session.execute(
        select(StackMember.micro_credential_id, Stack.key)
        .join(Stack, Stack.id == StackMember.stack_id)
        .where(StackMember.micro_credential_id.in_(ids))
        .order_by(Stack.key)
    )
    result: dict[int, tuple[str, ...]] = {}
    for mc_id, key in rows:
        result[mc_id] = (*result.get(mc_id, ()), key)
    return result


def _summary(version: MicroCredentialVersion, stacks: tuple[str, ...]) -> CredentialSummary:
    return CredentialSummary(
        key=version.micro_credential.key,
        version=version.number,
        version_id=version.id,
        title=version.title,
        competency=version.competency,
        estimated_hours=version.estimated_hours,
        stacks=stacks,
    )
