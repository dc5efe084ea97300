"""Moving a learner's state, and reading progress for a course and for one learner.

Writes: the evidence and assessment packages call `set_state` in the transaction of the change
that causes it (a draft saved, a submission, assessors assigned, a decision). It checks the
transition, so a late or repeated job cannot take an earned micro-credential back.

Reads are built for a MOOC: `course_progress` answers in a fixed number of queries however
many learners the course has (the grid of learners x micro-credentials is pivoted and stack
progress is counted in SQL, for one page of learners at a time; the per-state counts are one
grouped query), and `course_progress_csv` streams every learner through a server-side cursor,
a batch at a time, so 50,000 learners never sit in memory at once.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from lti_tool.catalog.models import (
    RULE_N_OF_M,
    CourseStack,
    MicroCredential,
    MicroCredentialVersion,
    Stack,
    StackMember,
)
from lti_tool.catalog.service import latest_versions
from lti_tool.db import utcnow
from lti_tool.progress.models import (
    DRAFT,
    EARNED,
    IN_REVIEW,
    NOT_STARTED,
    REVISE,
    STATES,
    STORED_STATES,
    SUBMITTED,
    CredentialProgress,
)
from lti_tool.roster.models import LEARNER, Enrollment, LmsUser

STATE_LABELS = {
    NOT_STARTED: "Not started",
    DRAFT: "Draft",
    SUBMITTED: "Submitted",
    IN_REVIEW: "In review",
    REVISE: "Revise and resubmit",
    EARNED: "Earned",
}

# Where each state may go. Earned is final. A submission may be withdrawn to a draft before an
# assessor takes it; a decision may come straight from "submitted" (no separate review step);
# after "revise", a new attempt starts as a draft or is resubmitted at once.
TRANSITIONS: dict[str, frozenset[str]] = {
    NOT_STARTED: frozenset({DRAFT, SUBMITTED}),
    DRAFT: frozenset({SUBMITTED}),
    SUBMITTED: frozenset({DRAFT, IN_REVIEW, REVISE, EARNED}),
    IN_REVIEW: frozenset({REVISE, EARNED}),
    REVISE: frozenset({DRAFT, SUBMITTED}),
    EARNED: frozenset(),
}

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
CSV_BATCH = 1000
DECISION_BUSINESS_DAYS = 14  # DOMAIN.md: a decision is due within 14 business days


class TransitionError(ValueError):
    """A move the state machine does not allow (for example anything out of "earned")."""


# -- writing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StateChange:
    """What `set_state` did: `changed` is False when the learner already was in `state`."""

    user_id: int
    micro_credential_id: int
    previous: str
    state: str
    changed: bool


def set_state(
    session: Session,
    user_id: int,
    micro_credential_id: int,
    state: str,
    *,
    version_id: int | None = None,
    next_step_due: datetime | None = None,
    when: datetime | None = None,
) -> StateChange:
    """Move a learner to `state` for a micro-credential, if the transition is allowed.

    Setting the state the learner already is in changes nothing but `version_id` and
    `next_step_due` when they are given (a retried job is harmless). A real change stamps
    `state_changed_at` and replaces `next_step_due` (a due date belongs to the state it was
    set for). Race-safe: the row is locked (PostgreSQL) and the first insert is
    INSERT ... ON CONFLICT DO NOTHING. The caller owns the transaction. Raises TransitionError
    for a move out of order, ValueError for a version of another micro-credential.
    """
    if state not in STORED_STATES:
        raise TransitionError(f"{state!r} cannot be set; the states are {', '.join(STATES[1:])}")
    if version_id is not None:
        owner = session.scalar(
            select(MicroCredentialVersion.micro_credential_id).where(
                MicroCredentialVersion.id == version_id
            )
        )
        if owner != micro_credential_id:
            raise ValueError(f"version {version_id} is not a version of {micro_credential_id}")
    when = when or utcnow()
    row = _locked_row(session, user_id, micro_credential_id)
    if row is None:
        _check(NOT_STARTED, state)
        if _insert_first(session, user_id, micro_credential_id, state, version_id, next_step_due,
                         when):  # fmt: skip
            return StateChange(user_id, micro_credential_id, NOT_STARTED, state, True)
        row = _locked_row(session, user_id, micro_credential_id)  # a concurrent first move won
        assert row is not None
    previous = row.state
    if previous == state:
        if version_id is not None:
            row.version_id = version_id
        if next_step_due is not None:
            row.next_step_due = next_step_due
        session.flush()
        return StateChange(user_id, micro_credential_id, previous, state, False)
    _check(previous, state)
    row.state = state
    row.state_changed_at = when
    row.next_step_due = next_step_due
    if version_id is not None:
        row.version_id = version_id
    session.flush()
    return StateChange(user_id, micro_credential_id, previous, state, True)


def state_of(session: Session, user_id: int, micro_credential_id: int) -> str:
    """The learner's state for one micro-credential (NOT_STARTED without a row)."""
    state = session.scalar(
        select(CredentialProgress.state).where(
            CredentialProgress.user_id == user_id,
            CredentialProgress.micro_credential_id == micro_credential_id,
        )
    )
    return state or NOT_STARTED


def _check(previous: str, state: str) -> None:
    if state not in TRANSITIONS[previous]:
        raise TransitionError(
            f"a learner cannot go from {STATE_LABELS[previous].lower()!r} "
            f"to {STATE_LABELS[state].lower()!r}"
        )


def _locked_row(session: Session, user_id: int, micro_credential_id: int):
    return session.scalars(
        select(CredentialProgress)
        .where(
            CredentialProgress.user_id == user_id,
            CredentialProgress.micro_credential_id == micro_credential_id,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def _insert_first(
    session: Session,
    user_id: int,
    micro_credential_id: int,
    state: str,
    version_id: int | None,
    next_step_due: datetime | None,
    when: datetime,
) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING: True for the one caller that created the row."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    added = session.execute(
        insert(CredentialProgress)
        .values(
            user_id=user_id,
            micro_credential_id=micro_credential_id,
            version_id=version_id,
            state=state,
            state_changed_at=when,
            next_step_due=next_step_due,
        )
        .on_conflict_do_nothing(index_elements=["user_id", "micro_credential_id"])
        .returning(CredentialProgress.id)
    ).first()
    return added is not None


# -- what a course holds -----------------------------------------------------------------------
@dataclass(frozen=True)
class CredentialColumn:
    id: int
    key: str
    title: str


@dataclass(frozen=True)
class StackColumn:
    """A stack of the course, with the members it counts and how many complete it."""

    id: int
    key: str
    title: str
    completion_rule: str
    needed: int
    credential_name: str
    members: tuple[CredentialColumn, ...]


@dataclass(frozen=True)
class CourseLayout:
    """The course's stacks in mapping order, and their micro-credentials, each once."""

    stacks: tuple[StackColumn, ...]
    credentials: tuple[CredentialColumn, ...]

    @property
    def credential_ids(self) -> list[int]:
        return [c.id for c in self.credentials]

    def credential(self, key: str | None) -> CredentialColumn | None:
        return next((c for c in self.credentials if c.key == key), None)


def course_layout(session: Session, course_id: int) -> CourseLayout:
    """The course's stacks and micro-credentials (newest titles), in one query."""
    newest = latest_versions().subquery()
    rows = session.execute(
        select(
            Stack.id,
            Stack.key,
            Stack.title,
            Stack.completion_rule,
            Stack.required_count,
            Stack.credential_name,
            MicroCredential.id,
            MicroCredential.key,
            newest.c.title,
        )
        .select_from(CourseStack)
        .join(Stack, Stack.id == CourseStack.stack_id)
        .outerjoin(StackMember, StackMember.stack_id == Stack.id)
        .outerjoin(MicroCredential, MicroCredential.id == StackMember.micro_credential_id)
        .outerjoin(newest, newest.c.micro_credential_id == MicroCredential.id)
        .where(CourseStack.course_id == course_id)
        .order_by(CourseStack.id, StackMember.position)
    ).all()
    stacks: dict[int, dict] = {}
    credentials: dict[int, CredentialColumn] = {}
    for sid, skey, stitle, rule, required, cname, mid, mkey, mtitle in rows:
        stack = stacks.setdefault(
            sid,
            {"key": skey, "title": stitle, "rule": rule, "required": required, "name": cname,
             "members": []},
        )  # fmt: skip
        if mid is not None:
            column = credentials.setdefault(mid, CredentialColumn(mid, mkey, mtitle or mkey))
            stack["members"].append(column)
    return CourseLayout(
        stacks=tuple(
            StackColumn(
                id=sid,
                key=s["key"],
                title=s["title"],
                completion_rule=s["rule"],
                needed=_needed(s["rule"], s["required"], len(s["members"])),
                credential_name=s["name"],
                members=tuple(s["members"]),
            )
            for sid, s in stacks.items()
        ),
        credentials=tuple(credentials.values()),
    )


def _needed(rule: str, required: int | None, members: int) -> int:
    """How many members complete a stack: all of them, or N of M."""
    if rule == RULE_N_OF_M and required is not None:
        return required
    return members


# -- a course's progress -----------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    """Which learners to list: with a micro-credential (or any) in a state, and/or whose name
    or e-mail contains every word of `search`."""

    state: str | None = None
    credential: str | None = None  # a micro-credential key
    search: str = ""

    def checked(self, layout: CourseLayout) -> Filters:
        """The same filters with what the course does not know dropped (a stale link)."""
        state = self.state if self.state in STATES else None
        credential = self.credential if layout.credential(self.credential) else None
        return Filters(state, credential, " ".join(self.search.split())[:200])

    @property
    def active(self) -> bool:
        return bool(self.state or self.credential or self.search)


@dataclass(frozen=True)
class StackProgress:
    earned: int
    needed: int
    total: int  # members of the stack

    @property
    def complete(self) -> bool:
        return self.needed > 0 and self.earned >= self.needed

    @property
    def shown(self) -> int:
        """Earned, counted up to `needed` (a progress bar's value)."""
        return min(self.earned, self.needed)

    @property
    def percent(self) -> int:
        return round(100 * self.shown / self.needed) if self.needed else 0


@dataclass(frozen=True)
class LearnerRow:
    user_id: int
    name: str
    email: str
    enrollment_status: str  # active, or inactive / deleted / absent in the LMS
    states: dict[str, str]  # micro-credential key -> state
    stacks: dict[str, StackProgress]  # stack key -> progress


@dataclass(frozen=True)
class CourseProgress:
    layout: CourseLayout
    filters: Filters
    learners: list[LearnerRow]
    total_learners: int  # in the course
    matching: int  # learners the filters select
    page: int
    page_size: int
    # Learner x micro-credential cells of the whole course, per state (not started included).
    state_counts: dict[str, int] = field(default_factory=dict)
    # The same per micro-credential key.
    credential_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    # Learners of the course who completed each stack (by key).
    stack_completions: dict[str, int] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.matching / self.page_size))

    @property
    def first_index(self) -> int:
        """1-based position of the page's first learner among the matching ones."""
        return (self.page - 1) * self.page_size + 1 if self.learners else 0


def course_progress(
    session: Session,
    course_id: int,
    filters: Filters | None = None,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> CourseProgress:
    """One page of the course's learners (by name) with their state for every micro-credential
    of the course's stacks and their progress in each stack, the course-wide counts per state,
    and how many learners completed each stack.

    At most five queries, whatever the number of learners: layout, learner counts, one grouped
    count per state, stack completions, and the page itself (pivoted in SQL).
    """
    layout = course_layout(session, course_id)
    filters = (filters or Filters()).checked(layout)
    page_size = max(1, min(page_size, MAX_PAGE_SIZE))
    conditions = _learner_conditions(filters, layout)
    # Learners in the course, and those the filters select, in one pass over its enrolments
    # (lms_users joined only when a name is searched).
    matching_expr = (
        func.coalesce(func.sum(case((_all_of(conditions), 1), else_=0)), 0)
        if conditions
        else func.count()
    )
    counting = (
        select(func.count(), matching_expr)
        .select_from(Enrollment)
        .where(Enrollment.course_id == course_id, Enrollment.role == LEARNER)
    )
    if filters.search:
        counting = counting.join(LmsUser, LmsUser.id == Enrollment.user_id)
    total, matching = session.execute(counting).one()
    pages = max(1, math.ceil(matching / page_size))
    page = max(1, min(page, pages))
    learners: list[LearnerRow] = []
    if matching:
        statement = _grid(course_id, filters, layout, limit=page_size,
                          offset=(page - 1) * page_size)  # fmt: skip
        learners = [_learner_row(layout, row) for row in session.execute(statement)]
    per_credential, per_state = _state_counts(session, course_id, layout, total)
    return CourseProgress(
        layout=layout,
        filters=filters,
        learners=learners,
        total_learners=total,
        matching=matching,
        page=page,
        page_size=page_size,
        state_counts=per_state,
        credential_counts=per_credential,
        stack_completions=_stack_completions(session, course_id, layout),
    )


def _all_of(conditions: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return and_(*conditions) if len(conditions) > 1 else conditions[0]


def iter_course_progress(
    session: Session, course_id: int, filters: Filters | None = None, batch: int = CSV_BATCH
) -> Iterator[LearnerRow]:
    """Every learner the filters select, by name, read through a server-side cursor `batch`
    rows at a time (one query however many learners)."""
    layout = course_layout(session, course_id)
    filters = (filters or Filters()).checked(layout)
    yield from _stream(session, course_id, filters, layout, batch)


def course_progress_csv(
    session: Session, course_id: int, filters: Filters | None = None, batch: int = CSV_BATCH
) -> Iterator[str]:
    """The course's progress as CSV text, in chunks of at most `batch` learners (the header
    first). Two queries in all; memory holds one batch."""
    layout = course_layout(session, course_id)
    filters = (filters or Filters()).checked(layout)
    header = ["Learner", "Email", "Enrolment"]
    header += [c.title for c in layout.credentials]
    for stack in layout.stacks:
        header += [f"{stack.title}: earned", f"{stack.title}: needed", f"{stack.title}: complete"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    yield _drain(buffer)
    for count, learner in enumerate(_stream(session, course_id, filters, layout, batch), 1):
        row = [_cell(learner.name), _cell(learner.email), learner.enrollment_status]
        row += [STATE_LABELS[learner.states[c.key]] for c in layout.credentials]
        for stack in layout.stacks:
            progress = learner.stacks[stack.key]
            row += [progress.earned, progress.needed, "yes" if progress.complete else "no"]
        writer.writerow(row)
        if count % batch == 0:
            yield _drain(buffer)
    rest = _drain(buffer)
    if rest:
        yield rest


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _cell(text: str) -> str:
    """LMS-supplied text, defused for spreadsheets (no formula injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _stream(
    session: Session, course_id: int, filters: Filters, layout: CourseLayout, batch: int
) -> Iterator[LearnerRow]:
    statement = _grid(course_id, filters, layout).execution_options(yield_per=batch)
    result = session.execute(statement)
    try:
        for rows in result.partitions():
            for row in rows:
                yield _learner_row(layout, row)
    finally:
        result.close()


def _display_name() -> ColumnElement[str]:
    """LmsUser.display_name in SQL, to sort and page by."""
    full = func.trim(LmsUser.given_name + " " + LmsUser.family_name)
    return func.coalesce(
        func.nullif(LmsUser.name, ""),
        func.nullif(full, ""),
        func.nullif(LmsUser.email, ""),
        "(no name given)",
    )


def _learner_conditions(filters: Filters, layout: CourseLayout) -> list[ColumnElement[bool]]:
    """The filters as conditions on Enrollment (joined to LmsUser)."""
    conditions: list[ColumnElement[bool]] = []
    for word in filters.search.split():
        conditions.append(
            or_(
                LmsUser.name.icontains(word, autoescape=True),
                LmsUser.given_name.icontains(word, autoescape=True),
                LmsUser.family_name.icontains(word, autoescape=True),
                LmsUser.email.icontains(word, autoescape=True),
            )
        )
    chosen = layout.credential(filters.credential)
    ids = [chosen.id] if chosen else layout.credential_ids
    progress = aliased(CredentialProgress)
    if filters.state == NOT_STARTED:
        started = (
            select(func.count())
            .select_from(progress)
            .where(progress.user_id == Enrollment.user_id, progress.micro_credential_id.in_(ids))
            .scalar_subquery()
        )
        conditions.append(started < len(ids))
    elif filters.state:
        conditions.append(
            exists().where(
                progress.user_id == Enrollment.user_id,
                progress.micro_credential_id.in_(ids),
                progress.state == filters.state,
            )
        )
    return conditions


def _grid(
    course_id: int,
    filters: Filters,
    layout: CourseLayout,
    limit: int | None = None,
    offset: int = 0,
) -> Select:
    """Learners (by name) x the course's micro-credentials, one row per learner: a state column
    per micro-credential (`c0`...) and an earned count per stack (`s0`...).

    With `limit` (a page), the page's learners are chosen first and only their progress rows
    are joined and grouped. Without (the export), progress rows are grouped per learner first
    and then joined, so the sort by name handles one row per learner, not one per cell.
    """
    sort = func.lower(_display_name())
    learners = (
        select(
            Enrollment.user_id.label("user_id"),
            _display_name().label("name"),
            LmsUser.email.label("email"),
            Enrollment.status.label("status"),
            sort.label("sort"),
        )
        .join(LmsUser, LmsUser.id == Enrollment.user_id)
        .where(
            Enrollment.course_id == course_id,
            Enrollment.role == LEARNER,
            *_learner_conditions(filters, layout),
        )
    )
    progress = CredentialProgress
    in_course = progress.micro_credential_id.in_(layout.credential_ids)
    if limit is not None:
        ordered = learners.order_by(sort, Enrollment.user_id)
        page = ordered.limit(limit).offset(offset).subquery("learners")
        return (
            select(page.c.user_id, page.c.name, page.c.email, page.c.status, *_pivot(layout))
            .select_from(page)
            .outerjoin(progress, and_(progress.user_id == page.c.user_id, in_course))
            .group_by(page.c.user_id, page.c.name, page.c.email, page.c.status, page.c.sort)
            .order_by(page.c.sort, page.c.user_id)
        )
    course_learners = select(Enrollment.user_id).where(
        Enrollment.course_id == course_id, Enrollment.role == LEARNER
    )
    pivot = (
        select(progress.user_id.label("user_id"), *_pivot(layout))
        .where(in_course, progress.user_id.in_(course_learners))
        .group_by(progress.user_id)
        .subquery("pivot")
    )
    everyone = learners.subquery("learners")
    columns = [pivot.c[f"c{i}"] for i in range(len(layout.credentials))]
    columns += [pivot.c[f"s{j}"] for j in range(len(layout.stacks))]
    return (
        select(everyone.c.user_id, everyone.c.name, everyone.c.email, everyone.c.status, *columns)
        .select_from(everyone)
        .outerjoin(pivot, pivot.c.user_id == everyone.c.user_id)
        .order_by(everyone.c.sort, everyone.c.user_id)
    )


def _pivot(layout: CourseLayout) -> list[ColumnElement]:
    """Aggregates over one learner's progress rows: each micro-credential's state, and the
    members earned in each stack."""
    progress = CredentialProgress
    states = [
        func.max(case((progress.micro_credential_id == c.id, progress.state))).label(f"c{i}")
        for i, c in enumerate(layout.credentials)
    ]
    earned = [
        func.count(
            case(
                (
                    and_(
                        progress.state == EARNED,
                        progress.micro_credential_id.in_([m.id for m in s.members]),
                    ),
                    1,
                )
            )
        ).label(f"s{j}")
        for j, s in enumerate(layout.stacks)
    ]
    return [*states, *earned]


def _learner_row(layout: CourseLayout, row) -> LearnerRow:
    user_id, name, email, status, *rest = row
    n = len(layout.credentials)
    states = {c.key: (rest[i] or NOT_STARTED) for i, c in enumerate(layout.credentials)}
    stacks = {
        s.key: StackProgress(earned=rest[n + j] or 0, needed=s.needed, total=len(s.members))
        for j, s in enumerate(layout.stacks)
    }
    return LearnerRow(user_id, name, email or "", status, states, stacks)


def _state_counts(
    session: Session, course_id: int, layout: CourseLayout, learners: int
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Cells per state, per micro-credential and in all, for the whole course (one grouped
    query; "not started" is what the rows do not account for)."""
    per_credential = {c.key: dict.fromkeys(STATES, 0) for c in layout.credentials}
    if layout.credentials:
        keys = {c.id: c.key for c in layout.credentials}
        rows = session.execute(
            select(CredentialProgress.micro_credential_id, CredentialProgress.state, func.count())
            .join(
                Enrollment,
                and_(
                    Enrollment.user_id == CredentialProgress.user_id,
                    Enrollment.course_id == course_id,
                    Enrollment.role == LEARNER,
                ),
            )
            .where(CredentialProgress.micro_credential_id.in_(list(keys)))
            .group_by(CredentialProgress.micro_credential_id, CredentialProgress.state)
        )
        for mc_id, state, count in rows:
            per_credential[keys[mc_id]][state] = count
    for counts in per_credential.values():
        counts[NOT_STARTED] = learners - sum(counts.values())
    per_state = {
        state: sum(counts[state] for counts in per_credential.values()) for state in STATES
    }
    return per_credential, per_state


def _stack_completions(session: Session, course_id: int, layout: CourseLayout) -> dict[str, int]:
    """Learners of the course who completed each stack by its rule (one query: earned members
    per learner and stack, then how many learners reached each count)."""
    result = {s.key: 0 for s in layout.stacks}
    if not layout.stacks:
        return result
    per_learner = (
        select(
            StackMember.stack_id.label("stack_id"),
            func.count().label("earned"),
        )
        .select_from(CredentialProgress)
        .join(
            StackMember, StackMember.micro_credential_id == CredentialProgress.micro_credential_id
        )
        .join(
            Enrollment,
            and_(
                Enrollment.user_id == CredentialProgress.user_id,
                Enrollment.course_id == course_id,
                Enrollment.role == LEARNER,
            ),
        )
        .where(
            StackMember.stack_id.in_([s.id for s in layout.stacks]),
            CredentialProgress.state == EARNED,
        )
        .group_by(StackMember.stack_id, CredentialProgress.user_id)
        .subquery()
    )
    rows = session.execute(
        select(per_learner.c.stack_id, per_learner.c.earned, func.count()).group_by(
            per_learner.c.stack_id, per_learner.c.earned
        )
    )
    by_id = {s.id: s for s in layout.stacks}
    for stack_id, earned, count in rows:
        stack = by_id[stack_id]
        if stack.needed and earned >= stack.needed:
            result[stack.key] += count
    return result


# -- one learner -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemberProgress:
    key: str
    title: str
    state: str
    label: str
    next_step: str
    next_step_due: datetime | None
    state_changed_at: datetime | None


@dataclass(frozen=True)
class StackOverview:
    key: str
    title: str
    credential_name: str
    completion_rule: str
    progress: StackProgress
    members: tuple[MemberProgress, ...]


@dataclass(frozen=True)
class LearnerOverview:
    stacks: tuple[StackOverview, ...]


def learner_overview(session: Session, user_id: int, course_id: int) -> LearnerOverview:
    """The learner's landing page: the course's stacks, each member's state and next step, and
    how far the learner is in each stack (two queries)."""
    layout = course_layout(session, course_id)
    rows = {}
    if layout.credentials:
        rows = {
            mc_id: (state, changed, due)
            for mc_id, state, changed, due in session.execute(
                select(
                    CredentialProgress.micro_credential_id,
                    CredentialProgress.state,
                    CredentialProgress.state_changed_at,
                    CredentialProgress.next_step_due,
                ).where(
                    CredentialProgress.user_id == user_id,
                    CredentialProgress.micro_credential_id.in_(layout.credential_ids),
                )
            )
        }
    stacks = []
    for stack in layout.stacks:
        members = []
        for member in stack.members:
            state, changed, due = rows.get(member.id, (NOT_STARTED, None, None))
            members.append(
                MemberProgress(
                    key=member.key,
                    title=member.title,
                    state=state,
                    label=STATE_LABELS[state],
                    next_step=next_step(state, due),
                    next_step_due=due,
                    state_changed_at=changed,
                )
            )
        earned = sum(1 for m in members if m.state == EARNED)
        stacks.append(
            StackOverview(
                key=stack.key,
                title=stack.title,
                credential_name=stack.credential_name,
                completion_rule=stack.completion_rule,
                progress=StackProgress(earned, stack.needed, len(stack.members)),
                members=tuple(members),
            )
        )
    return LearnerOverview(stacks=tuple(stacks))


def next_step(state: str, due: datetime | None = None) -> str:
    """What the learner does next, in words (dates in UTC)."""
    on = f"{due:%d %B %Y}" if due else None
    if state == NOT_STARTED:
        return "Open this micro-credential's activity in your course to start your evidence."
    if state == DRAFT:
        text = "Finish your evidence (overview, artifacts and reflection) and submit it."
        return f"{text} You planned to submit by {on}." if on else text
    if state in (SUBMITTED, IN_REVIEW):
        text = (
            "Two assessors are reviewing your evidence."
            if state == IN_REVIEW
            else "Your evidence is waiting for its two assessors."
        )
        if on:
            return f"{text} A decision is due by {on}."
        return f"{text} A decision is due within {DECISION_BUSINESS_DAYS} business days."
    if state == REVISE:
        return (
            "Read the assessors' feedback on each criterion, revise, and resubmit all your "
            "evidence."
        )
    return "Nothing more to do: you have earned it."
