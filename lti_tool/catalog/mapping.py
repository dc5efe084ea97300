"""Where the catalog is used: LMS courses mapped to stacks, resource links to micro-credentials.

A course (an LTI context, roster `courses`) may hold several stacks. A resource link (roster
`resource_links`) stands for one micro-credential, named by its stable key: the same
micro-credential may appear in many courses and platforms (a MOOC run many times), and
earning it once counts everywhere for that learner on that platform.

Mappings are made three ways (`CourseStack.mapped_by`): by an educator picking a whole stack in
Deep Linking, by a launch whose link names a micro-credential (its `micro_credential` custom
parameter), and by an educator on the course page. Every write is race-safe (INSERT ... ON
CONFLICT), so concurrent first launches of one link never fail. The caller owns the transaction.

Line items: a link launched without an AGS line item, from a platform that lets the tool create
one, is recorded as needing one. The gradebook's AGS code reads `links_needing_line_items`,
creates each line item (label, `SCORE_MAXIMUM`, resourceId = the micro-credential key,
`LINE_ITEM_TAG`, resourceLinkId = the LMS link id) and calls `line_item_created`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from lti_tool.catalog.models import (
    MAPPED_BY,
    CourseStack,
    LinkCredential,
    MicroCredential,
    Stack,
    StackMember,
)
from lti_tool.catalog.service import StackSummary, latest_versions, list_stacks
from lti_tool.db import upsert, utcnow
from lti_tool.roster.models import Course, ResourceLink

log = logging.getLogger(__name__)

# What every micro-credential's gradebook column looks like (Deep Linking and AGS alike).
SCORE_MAXIMUM = 100
LINE_ITEM_TAG = "micro-credential"


class MappingError(ValueError):
    """An unknown stack or micro-credential key, or a micro-credential outside its stack."""


@dataclass(frozen=True)
class Pick:
    """One micro-credential chosen for a course (Deep Linking), with the stack it came from."""

    key: str
    title: str
    competency: str
    stack_key: str
    stack_title: str


@dataclass(frozen=True)
class MappedLink:
    """A resource link of a course and the micro-credential it stands for."""

    resource_link_id: int
    link_id: str  # the LMS's id of the link
    title: str
    credential_key: str
    stack_key: str | None
    line_item_needed: bool


@dataclass(frozen=True)
class CourseHoldings:
    """What a course holds: its stacks (with members, in order) and its mapped links."""

    stacks: list[StackSummary]
    links: list[MappedLink]

    def links_for(self, credential_key: str) -> list[MappedLink]:
        return [link for link in self.links if link.credential_key == credential_key]


@dataclass(frozen=True)
class LinkMapping:
    """What `map_link` did."""

    resource_link_id: int
    credential_key: str
    stack_key: str | None
    changed: bool  # the link was unmapped, or mapped otherwise, before
    course_stack_added: bool  # the course was mapped to `stack_key` by this call
    line_item_needed: bool


@dataclass(frozen=True)
class LineItemNeeded:
    """A link whose line item the tool should create through AGS."""

    resource_link_id: int
    link_id: str  # the LMS's resource link id (AGS `resourceLinkId`)
    course_id: int
    platform_id: int
    lineitems_url: str
    label: str
    score_maximum: int
    resource_id: str  # the micro-credential key
    tag: str


# -- course <-> stack --------------------------------------------------------------------------
def map_course_to_stack(
    session: Session, course_id: int, stack_key: str, mapped_by: str = "educator"
) -> bool:
    """Map a course to a stack; True when it was not mapped before. Unknown key: MappingError."""
    if mapped_by not in MAPPED_BY:
        raise ValueError(f"mapped_by must be one of {', '.join(MAPPED_BY)}")
    stack_id = _stack_id(session, stack_key)
    return _add_course_stack(session, course_id, stack_id, mapped_by)


def unmap_course_from_stack(session: Session, course_id: int, stack_key: str) -> bool:
    """Remove a stack from a course; True when it was mapped. Links keep their mapping."""
    stack_id = _stack_id(session, stack_key)
    row = session.scalars(
        select(CourseStack).where(
            CourseStack.course_id == course_id, CourseStack.stack_id == stack_id
        )
    ).first()
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def course_stack_keys(session: Session, course_id: int) -> list[str]:
    """Keys of the stacks a course holds, in the order they were mapped."""
    return list(
        session.scalars(
            select(Stack.key)
            .join(CourseStack, CourseStack.stack_id == Stack.id)
            .where(CourseStack.course_id == course_id)
            .order_by(CourseStack.id)
        )
    )


def course_holdings(session: Session, course_id: int) -> CourseHoldings:
    """The course's stacks with their members, and its links mapped to micro-credentials.

    A fixed number of queries, however many stacks, members and links.
    """
    keys = course_stack_keys(session, course_id)
    by_key = {s.key: s for s in list_stacks(session, keys=keys)} if keys else {}
    stacks = [by_key[k] for k in keys if k in by_key]
    rows = session.execute(
        select(
            ResourceLink.id,
            ResourceLink.link_id,
            ResourceLink.title,
            MicroCredential.key,
            Stack.key,
            LinkCredential.line_item_needed,
        )
        .join(LinkCredential, LinkCredential.resource_link_id == ResourceLink.id)
        .join(MicroCredential, MicroCredential.id == LinkCredential.micro_credential_id)
        .outerjoin(Stack, Stack.id == LinkCredential.stack_id)
        .where(ResourceLink.course_id == course_id)
        .order_by(ResourceLink.id)
    )
    links = [MappedLink(*row) for row in rows]
    return CourseHoldings(stacks=stacks, links=links)


# -- resource link <-> micro-credential ---------------------------------------------------------
def map_link(
    session: Session,
    resource_link_id: int,
    course_id: int,
    credential_key: str,
    stack_key: str | None = None,
    *,
    has_line_item: bool = True,
    lineitems_url: str | None = None,
) -> LinkMapping:
    """Map a resource link to a micro-credential (idempotent: an unchanged mapping writes
    nothing), and the course to the link's stack when the mapping is new or changed.

    The stack is `stack_key` when the micro-credential belongs to it, else the only stack the
    micro-credential belongs to, else none. `lineitems_url` is given when the platform lets the
    tool create line items; with `has_line_item` False the link is then marked as needing one.
    Unknown micro-credential: MappingError, raised before anything is written.
    """
    # The usual case, a link launched again: one read, no write.
    known = session.execute(
        select(LinkCredential, MicroCredential.key, Stack.key)
        .join(MicroCredential, MicroCredential.id == LinkCredential.micro_credential_id)
        .outerjoin(Stack, Stack.id == LinkCredential.stack_id)
        .where(LinkCredential.resource_link_id == resource_link_id)
    ).first()
    if known is not None:
        row, known_key, known_stack = known
        needed = not has_line_item and bool(lineitems_url) and row.created_lineitem_url is None
        if (
            known_key == credential_key
            and (stack_key is None or stack_key == known_stack)
            and row.lineitems_url == lineitems_url
            and row.line_item_needed == needed
        ):
            return LinkMapping(resource_link_id, credential_key, known_stack, False, False, needed)
    credential_id = session.scalar(
        select(MicroCredential.id).where(MicroCredential.key == credential_key)
    )
    if credential_id is None:
        raise MappingError(f"no micro-credential with key {credential_key!r}")
    stacks = dict(
        session.execute(
            select(Stack.key, Stack.id)
            .join(StackMember, StackMember.stack_id == Stack.id)
            .where(StackMember.micro_credential_id == credential_id)
            .order_by(Stack.key)
        ).all()
    )
    if stack_key not in stacks:
        if stack_key is not None:
            log.info(
                "link %s names stack %r, which does not hold %s",
                resource_link_id,
                stack_key,
                credential_key,
            )
        stack_key = next(iter(stacks)) if len(stacks) == 1 else None
    stack_id = stacks.get(stack_key) if stack_key else None

    existing = known[0] if known is not None else None
    same_credential = existing is not None and existing.micro_credential_id == credential_id
    created = existing.created_lineitem_url if same_credential and existing else None
    needed = not has_line_item and bool(lineitems_url) and created is None
    values = {
        "micro_credential_id": credential_id,
        "stack_id": stack_id,
        "line_item_needed": needed,
        "lineitems_url": lineitems_url,
        "created_lineitem_url": created,
    }
    if existing is not None and all(getattr(existing, k) == v for k, v in values.items()):
        return LinkMapping(resource_link_id, credential_key, stack_key, False, False, needed)
    changed = existing is None or not same_credential or existing.stack_id != stack_id
    upsert(
        session,
        LinkCredential,
        {"resource_link_id": resource_link_id},
        {**values, "updated_at": utcnow()},
    )
    if existing is not None:
        session.expire(existing)
    added = False
    if changed and stack_id is not None:
        added = _add_course_stack(session, course_id, stack_id, "launch")
    return LinkMapping(resource_link_id, credential_key, stack_key, changed, added, needed)


def link_credential_key(session: Session, resource_link_id: int) -> str | None:
    """The key of the micro-credential a resource link stands for, if it is mapped."""
    return session.scalar(
        select(MicroCredential.key)
        .join(LinkCredential, LinkCredential.micro_credential_id == MicroCredential.id)
        .where(LinkCredential.resource_link_id == resource_link_id)
    )


def links_needing_line_items(
    session: Session, limit: int = 100, after: int = 0, platform_id: int | None = None
) -> list[LineItemNeeded]:
    """Links launched without a line item from platforms that let the tool create one, in
    the order of their resource link id, from after `after` (a page at a time); of one
    platform when given."""
    scope = [Course.platform_id == platform_id] if platform_id is not None else []
    newest = latest_versions().subquery()
    rows = session.execute(
        select(
            LinkCredential.resource_link_id,
            ResourceLink.link_id,
            ResourceLink.course_id,
            Course.platform_id,
            LinkCredential.lineitems_url,
            ResourceLink.title,
            newest.c.title,
            MicroCredential.key,
        )
        .join(ResourceLink, ResourceLink.id == LinkCredential.resource_link_id)
        .join(Course, Course.id == ResourceLink.course_id)
        .join(MicroCredential, MicroCredential.id == LinkCredential.micro_credential_id)
        .join(newest, newest.c.micro_credential_id == MicroCredential.id)
        .where(
            LinkCredential.line_item_needed.is_(True),
            LinkCredential.resource_link_id > after,
            *scope,
        )
        .order_by(LinkCredential.resource_link_id)
        .limit(limit)
    )
    return [
        LineItemNeeded(
            resource_link_id=link_pk,
            link_id=link_id,
            course_id=course_id,
            platform_id=platform_id,
            lineitems_url=lineitems_url,
            label=link_title or credential_title,
            score_maximum=SCORE_MAXIMUM,
            resource_id=key,
            tag=LINE_ITEM_TAG,
        )
        for (link_pk, link_id, course_id, platform_id, lineitems_url, link_title,
             credential_title, key) in rows
    ]  # fmt: skip


def line_item_created(session: Session, resource_link_id: int, lineitem_url: str) -> bool:
    """Record the line item the tool created for a link; True when the link needed one."""
    result = session.execute(
        update(LinkCredential)
        .where(
            LinkCredential.resource_link_id == resource_link_id,
            LinkCredential.line_item_needed.is_(True),
        )
        .values(line_item_needed=False, created_lineitem_url=lineitem_url, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


# -- picking for Deep Linking ---------------------------------------------------------------------
def resolve_picks(
    session: Session,
    stack_keys: Sequence[str] = (),
    members: Iterable[tuple[str, str]] = (),
) -> list[Pick]:
    """The micro-credentials of whole stacks and of (stack key, micro-credential key) picks, in
    that order, each once. Unknown keys, or a member outside its stack: MappingError."""
    wanted = list(dict.fromkeys([*stack_keys, *(stack for stack, _ in members)]))
    stacks = {s.key: s for s in list_stacks(session, keys=wanted)} if wanted else {}
    missing = [key for key in wanted if key not in stacks]
    if missing:
        raise MappingError(f"unknown stack: {', '.join(missing)}")
    picks: dict[str, Pick] = {}

    def add(stack: StackSummary, key: str) -> None:
        member = next((m for m in stack.members if m.key == key), None)
        if member is None:
            raise MappingError(f"the stack {stack.key!r} has no micro-credential {key!r}")
        picks.setdefault(
            key, Pick(member.key, member.title, member.competency, stack.key, stack.title)
        )

    for key in stack_keys:
        for member in stacks[key].members:
            add(stacks[key], member.key)
    for stack_key, key in members:
        add(stacks[stack_key], key)
    return list(picks.values())


# -- helpers ------------------------------------------------------------------------------------
def _stack_id(session: Session, stack_key: str) -> int:
    stack_id = session.scalar(select(Stack.id).where(Stack.key == stack_key))
    if stack_id is None:
        raise MappingError(f"no stack with key {stack_key!r}")
    return stack_id


def _add_course_stack(session: Session, course_id: int, stack_id: int, mapped_by: str) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING: True for the one caller that added the row."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    added = session.execute(
        insert(CourseStack)
        .values(course_id=course_id, stack_id=stack_id, mapped_by=mapped_by, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["course_id", "stack_id"])
        .returning(CourseStack.id)
    ).first()
    return added is not None
