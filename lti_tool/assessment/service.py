"""What assessors do, for the portal (web/assess.py) and the API alike: list their cases, read
one blind, start, mark the rubric, decline. Every rule of blindness and independence lives
here, so both adapters return the same things:

- an assessor reaches a case only through a live assignment of their own (anything else is
  "no such case", never "forbidden", so codes cannot be probed);
- what they get is the case's blind copy (code, answers, neutral file names, links) and the
  version's rubric, never the attempt, the learner or the platform;
- they never see another assessor's review or who the others are, before or after submitting
  theirs; an adjudicator marks the disputed criteria only.

Decision rules: both met every required criterion -> earned; both agree on every required
criterion and some is not met -> revise, with both feedbacks on the failing criteria; any
disagreement on a required criterion -> an adjudicator marks only those and their marks
decide them. The decision is recorded through evidence.outcomes.record_decision with feedback
labelled "Assessor 1/2/3", and in the same transaction the outbox asks for the badge
(`badge.requested`, earned) or the grade (`grade.decided`, revise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lti_tool.accounts.models import Account
from lti_tool.assessment.assignment import assign_waiting
from lti_tool.assessment.models import (
    ADJUDICATED,
    ADJUDICATION,
    ADJUDICATOR,
    AGREED,
    ASSIGNED,
    DECIDED,
    DECLINED,
    EARNED,
    FIRST,
    IN_REVIEW,
    LIVE_STATES,
    OPEN_STATES,
    REVISE,
    ROLE_LABELS,
    SECOND,
    STARTED,
    SUBMITTED,
    WAITING,
    Assessor,
    Assignment,
    Case,
    CaseFile,
    Decision,
    Mark,
    Review,
)
from lti_tool.assessment.similar import SimilarView, similar_to
from lti_tool.catalog.models import MicroCredentialVersion
from lti_tool.db import utcnow
from lti_tool.evidence.outcomes import mark_in_review, record_decision
from lti_tool.evidence.storage import Storage
from lti_tool.outbox.service import post
from lti_tool.settings import Settings

PART_TITLES = {
    "overview": "Part 1: Overview",
    "artifacts": "Part 2: Artifacts",
    "reflection": "Part 3: Reflection",
}


MAX_DECLINE_REASON = 2000


class AssessmentError(Exception):
    """A request an assessor cannot make; `status` is the HTTP status an adapter answers."""

    status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CaseNotFound(AssessmentError):
    status = 404


class InvalidRequest(AssessmentError):
    status = 400


class InvalidReview(AssessmentError):
    """Marks that do not make a review: `problems` maps "part/criterion" to what is wrong."""

    status = 400

    def __init__(self, message: str, problems: dict[str, str]) -> None:
        super().__init__(message)
        self.problems = problems


# -- what adapters show -----------------------------------------------------------------------
@dataclass(frozen=True)
class CaseSummary:
    code: str
    title: str
    adjudication: bool
    state: str  # the assessor's assignment: assigned, started, submitted
    assigned_at: datetime
    due_at: datetime
    decision_due_at: datetime | None
    reminded: bool


@dataclass(frozen=True)
class CriterionView:
    part: str
    key: str
    text: str
    required: bool
    to_mark: bool  # the adjudicator marks the disputed criteria only
    met: bool | None = None  # this assessor's own submitted mark
    feedback: str | None = None


@dataclass(frozen=True)
class FileView:
    name: str
    requirement_key: str
    requirement: str
    media_type: str
    size: int
    metadata_removed: bool


@dataclass(frozen=True)
class LinkView:
    url: str
    title: str
    requirement: str


@dataclass(frozen=True)
class AnswerView:
    prompt: str
    text: str
    words: int


@dataclass(frozen=True)
class PartView:
    kind: str
    title: str
    instructions: str
    passing: str
    answers: list[AnswerView]
    files: list[FileView]
    links: list[LinkView]
    criteria: list[CriterionView]


@dataclass(frozen=True)
class CaseView:
    code: str
    title: str
    competency: str
    key_method: str
    method_components: list[str]
    adjudication: bool
    state: str
    assigned_at: datetime
    due_at: datetime
    decision_due_at: datetime | None
    collaboration: str
    parts: list[PartView]
    submitted: bool
    can_start: bool
    can_submit: bool
    can_decline: bool
    similar: list[SimilarView] = field(default_factory=list)

    @property
    def criteria_to_mark(self) -> list[CriterionView]:
        return [c for part in self.parts for c in part.criteria if c.to_mark]


@dataclass
class _Context:
    assignment: Assignment
    case: Case
    version: MicroCredentialVersion
    disputed: set[tuple[str, str]] = field(default_factory=set)


# -- finding one's own case -------------------------------------------------------------------
def assessor_for_account(session: Session, account_id: int) -> Assessor | None:
    """The assessor profile of an account (None: not an assessor). A paused assessor gets no
    new cases but still reaches the ones they hold."""
    return session.scalar(select(Assessor).where(Assessor.account_id == account_id))


def assessor_of_organisation(session: Session, organisation_id: int, email: str) -> Assessor | None:
    """The assessor with this e-mail among an organisation's (None: not one of theirs), for
    the API, where an organisation's token acts for its own assessors only."""
    return session.scalar(
        select(Assessor)
        .join(Account, Account.id == Assessor.account_id)
        .where(Account.organisation_id == organisation_id, Account.email == email.strip().lower())
    )


def assessors_of_organisation(session: Session, organisation_id: int) -> list[Assessor]:
    """Every assessor of an organisation, by id."""
    return list(
        session.scalars(
            select(Assessor)
            .join(Account, Account.id == Assessor.account_id)
            .where(Account.organisation_id == organisation_id)
            .order_by(Assessor.id)
        )
    )


def _context(session: Session, assessor: Assessor, code: str, lock: bool = False) -> _Context:
    query = (
        select(Assignment, Case)
        .join(Case, Case.id == Assignment.case_id)
        .where(
            Case.code == code.strip().upper(),
            Assignment.assessor_id == assessor.id,
            Assignment.state.in_(LIVE_STATES),
        )
    )
    if lock:
        query = query.with_for_update()
    row = session.execute(query).first()
    if row is None:
        raise CaseNotFound(f"You have no case {code}.")
    assignment, case = row
    version = session.get(MicroCredentialVersion, case.version_id)
    assert version is not None
    context = _Context(assignment, case, version)
    if assignment.role == ADJUDICATOR:
        context.disputed = _disputed(session, case)
    return context


def list_cases_for(session: Session, assessor: Assessor) -> list[CaseSummary]:
    """The assessor's cases: open work first by due date, then what they submitted."""
    rows = session.execute(
        select(Assignment, Case, MicroCredentialVersion.title)
        .join(Case, Case.id == Assignment.case_id)
        .join(MicroCredentialVersion, MicroCredentialVersion.id == Case.version_id)
        .where(Assignment.assessor_id == assessor.id, Assignment.state.in_(LIVE_STATES))
        .order_by(Assignment.state == SUBMITTED, Assignment.due_at, Assignment.id)
    ).all()
    return [
        CaseSummary(
            code=case.code,
            title=title,
            adjudication=assignment.role == ADJUDICATOR,
            state=assignment.state,
            assigned_at=assignment.assigned_at,
            due_at=assignment.due_at,
            decision_due_at=case.decision_due_at,
            reminded=assignment.reminded_at is not None and assignment.state in OPEN_STATES,
        )
        for assignment, case, title in rows
    ]


def _own_marks(session: Session, assignment: Assignment) -> dict[tuple[str, str], Mark]:
    review = session.scalar(select(Review).where(Review.assignment_id == assignment.id))
    if review is None:
        return {}
    return {(m.part_kind, m.criterion_key): m for m in review.marks}


def _belongs(requirement_key: str, part: str, in_part: set[str], known: dict) -> bool:
    """Whether a file or link shows under this part: its requirement's part, or the artifacts
    part when its requirement is not in the rubric's version (nothing is hidden)."""
    return requirement_key in in_part or (part == "artifacts" and requirement_key not in known)


def case_view(session: Session, assessor: Assessor, code: str) -> CaseView:
    """One case as its assessor sees it: rubric beside the blind evidence, their own marks."""
    context = _context(session, assessor, code)
    assignment, case, version = context.assignment, context.case, context.version
    own = _own_marks(session, assignment)
    requirement_titles = {r.key: r.title for part in version.parts for r in part.requirements}
    answers = case.answers or {}
    parts = []
    for part in version.parts:
        criteria = []
        for criterion in part.rubric:
            mark = own.get((part.kind, criterion.key))
            to_mark = (
                (part.kind, criterion.key) in context.disputed
                if assignment.role == ADJUDICATOR
                else True
            )
            criteria.append(
                CriterionView(
                    part=part.kind,
                    key=criterion.key,
                    text=criterion.text,
                    required=criterion.required,
                    to_mark=to_mark,
                    met=mark.met if mark else None,
                    feedback=mark.feedback if mark else None,
                )
            )
        requirement_keys = {r.key for r in part.requirements}
        parts.append(
            PartView(
                kind=part.kind,
                title=PART_TITLES.get(part.kind, part.kind),
                instructions=part.instructions,
                passing=part.passing,
                answers=[
                    AnswerView(a["prompt"], a["text"], len(a["text"].split()))
                    for a in answers.get("answers", [])
                    if a.get("part") == part.kind
                ],
                files=[
                    FileView(
                        name=f.neutral_name,
                        requirement_key=f.requirement_key,
                        requirement=requirement_titles.get(f.requirement_key, ""),
                        media_type=f.media_type,
                        size=f.size,
                        metadata_removed=f.metadata_removed,
                    )
                    for f in case.files
                    if _belongs(f.requirement_key, part.kind, requirement_keys, requirement_titles)
                ],
                links=[
                    LinkView(
                        url=link["url"],
                        title=link.get("title") or "",
                        requirement=requirement_titles.get(link.get("requirement_key", ""), ""),
                    )
                    for link in answers.get("links", [])
                    if _belongs(
                        link.get("requirement_key", ""),
                        part.kind,
                        requirement_keys,
                        requirement_titles,
                    )
                ],
                criteria=criteria,
            )
        )
    open_work = assignment.state in OPEN_STATES
    return CaseView(
        code=case.code,
        title=version.title,
        competency=version.competency,
        key_method=version.key_method,
        method_components=list(version.method_components or []),
        adjudication=assignment.role == ADJUDICATOR,
        state=assignment.state,
        assigned_at=assignment.assigned_at,
        due_at=assignment.due_at,
        decision_due_at=case.decision_due_at,
        collaboration=answers.get("collaboration", ""),
        similar=similar_to(session, case.attempt_id),
        parts=parts,
        submitted=assignment.state == SUBMITTED,
        can_start=assignment.state == ASSIGNED,
        can_submit=open_work,
        can_decline=open_work,
    )


def open_blind_file(
    session: Session, storage: Storage, assessor: Assessor, code: str, name: str
) -> tuple[IO[bytes], CaseFile]:
    """A blind file of one's own case by its neutral name: (stream to close, its record)."""
    context = _context(session, assessor, code)
    found = next((f for f in context.case.files if f.neutral_name == name), None)
    if found is None:
        raise CaseNotFound(f"Case {context.case.code} has no file {name}.")
    return storage.open(found.storage_key), found


# -- doing the work ---------------------------------------------------------------------------
def start_review(session: Session, assessor: Assessor, code: str) -> bool:
    """The assessor opens the work: the learner can no longer withdraw. True when started now."""
    context = _context(session, assessor, code, lock=True)
    return _start(session, context)


def _start(session: Session, context: _Context) -> bool:
    assignment = context.assignment
    if assignment.state != ASSIGNED:
        return False
    assignment.state = STARTED
    assignment.started_at = utcnow()
    mark_in_review(session, context.case.attempt_id)
    return True


def decline(
    session: Session, settings: Settings, assessor: Assessor, code: str, reason: str = ""
) -> None:
    """A conflict of interest the assessor recognises: the case goes to someone else (never
    back to them), right away if anyone is eligible, else it waits. `reason` is what they
    said (kept with the assignment, for administrators)."""
    reason = reason.strip()
    if len(reason) > MAX_DECLINE_REASON:
        raise InvalidRequest(f"Keep the reason under {MAX_DECLINE_REASON} characters.")
    context = _context(session, assessor, code, lock=True)
    assignment, case = context.assignment, context.case
    if assignment.state not in OPEN_STATES:
        raise AssessmentError("You submitted your review of this case: it cannot be declined now.")
    assignment.state = DECLINED
    assignment.ended_at = utcnow()
    assignment.decline_reason = reason or None
    case.staffing_needed = True
    if case.status == IN_REVIEW:
        case.status = WAITING
    session.flush()
    assign_waiting(session, settings, [case.id])


def _criteria(version: MicroCredentialVersion) -> dict[tuple[str, str], tuple[str, bool]]:
    """(part, key) -> (text, required), in rubric order."""
    return {(part.kind, c.key): (c.text, c.required) for part in version.parts for c in part.rubric}


def _parse_marks(
    marks: Iterable[Mapping[str, Any]], expected: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[bool, str | None]]:
    given: dict[tuple[str, str], Mapping[str, Any]] = {}
    problems: dict[str, str] = {}
    for item in marks:
        key = (str(item.get("part", "")), str(item.get("criterion_key", "")))
        given[key] = item
    parsed: dict[tuple[str, str], tuple[bool, str | None]] = {}
    for key in expected:
        label = "/".join(key)
        item = given.pop(key, None)
        met = item.get("met") if item is not None else None
        if not isinstance(met, bool):
            problems[label] = "Mark this criterion met or not met."
            continue
        feedback = str(item.get("feedback") or "").strip() if item is not None else ""
        if not met and not feedback:
            problems[label] = "Write feedback for a criterion that is not met: what is missing."
            continue
        parsed[key] = (met, None if met else feedback)  # feedback on met criteria is not kept
    for key in given:
        problems["/".join(key)] = "This criterion is not one you are asked to mark."
    if problems:
        raise InvalidReview("Some criteria need your attention.", problems)
    return parsed


def submit_review(
    session: Session,
    settings: Settings,
    assessor: Assessor,
    code: str,
    marks: Iterable[Mapping[str, Any]],
) -> Review:
    """Submit marks: [{"part": "overview", "criterion_key": "context", "met": bool,
    "feedback": str}] for every criterion to mark (all of the rubric; the disputed ones for an
    adjudicator). Feedback is required when not met and dropped when met. Once both reviews
    (or the adjudication) are in, the case is decided in this same transaction."""
    context = _context(session, assessor, code, lock=True)
    # Lock the case too: two assessors submitting at once must not both miss the decision.
    session.execute(select(Case.id).where(Case.id == context.case.id).with_for_update())
    assignment, case = context.assignment, context.case
    if assignment.state == SUBMITTED:
        raise AssessmentError("You have submitted your review of this case already.")
    criteria = _criteria(context.version)
    expected = (
        [key for key in criteria if key in context.disputed]
        if assignment.role == ADJUDICATOR
        else list(criteria)
    )
    parsed = _parse_marks(marks, expected)
    _start(session, context)
    now = utcnow()
    review = Review(
        assignment_id=assignment.id,
        case_id=case.id,
        assessor_id=assessor.id,
        role=assignment.role,
        submitted_at=now,
        marks=[
            Mark(part_kind=part, criterion_key=key, met=met, feedback=feedback)
            for (part, key), (met, feedback) in parsed.items()
        ],
    )
    session.add(review)
    assignment.state = SUBMITTED
    assignment.submitted_at = now
    session.flush()
    _decide_if_ready(session, settings, case, context.version, now)
    return review


# -- deciding ---------------------------------------------------------------------------------
def _reviews(session: Session, case: Case) -> dict[str, Review]:
    """The submitted reviews of a case by role (of live assignments only)."""
    rows = session.scalars(
        select(Review)
        .join(Assignment, Assignment.id == Review.assignment_id)
        .where(Review.case_id == case.id, Assignment.state == SUBMITTED)
    ).all()
    return {review.role: review for review in rows}


def _marks(review: Review) -> dict[tuple[str, str], Mark]:
    return {(m.part_kind, m.criterion_key): m for m in review.marks}


def _disputed(session: Session, case: Case) -> set[tuple[str, str]]:
    """Required criteria the first and second assessors marked differently."""
    version = session.get(MicroCredentialVersion, case.version_id)
    assert version is not None
    reviews = _reviews(session, case)
    if FIRST not in reviews or SECOND not in reviews:
        return set()
    first, second = _marks(reviews[FIRST]), _marks(reviews[SECOND])
    return {
        key
        for key, (_text, required) in _criteria(version).items()
        if required and key in first and key in second and first[key].met != second[key].met
    }


def _feedback(
    criteria: Mapping[tuple[str, str], tuple[str, bool]],
    failing: Iterable[tuple[str, str]],
    reviews: Mapping[str, Review],
) -> list[dict]:
    """What the learner reads: each failing criterion with the comments of whoever marked it
    not met, signed by role ("Assessor 1"), never by name."""
    marks = {role: _marks(review) for role, review in reviews.items()}
    feedback = []
    for key in criteria:
        if key not in failing:
            continue
        comments = [
            {"assessor": ROLE_LABELS[role], "text": marks[role][key].feedback}
            for role in (FIRST, SECOND, ADJUDICATOR)
            if role in marks and key in marks[role] and not marks[role][key].met
        ]
        feedback.append(
            {
                "part": key[0],
                "criterion_key": key[1],
                "criterion": criteria[key][0],
                "comments": comments,
            }
        )
    return feedback


def _decide_if_ready(
    session: Session,
    settings: Settings,
    case: Case,
    version: MicroCredentialVersion,
    now: datetime,
) -> Decision | None:
    reviews = _reviews(session, case)
    if FIRST not in reviews or SECOND not in reviews:
        return None
    criteria = _criteria(version)
    required = [key for key, (_text, is_required) in criteria.items() if is_required]
    first, second = _marks(reviews[FIRST]), _marks(reviews[SECOND])
    disputed = [key for key in required if first[key].met != second[key].met]
    if disputed and ADJUDICATOR not in reviews:
        if case.status != ADJUDICATION:
            case.status = ADJUDICATION
            case.staffing_needed = True
            session.flush()
            assign_waiting(session, settings, [case.id])
        return None
    final = {key: first[key].met for key in required if key not in disputed}
    if disputed:
        adjudication = _marks(reviews[ADJUDICATOR])
        final.update({key: adjudication[key].met for key in disputed})
    failing = [key for key in required if not final[key]]
    outcome = REVISE if failing else EARNED
    decision = Decision(
        case_id=case.id,
        attempt_id=case.attempt_id,
        outcome=outcome,
        path=ADJUDICATED if disputed else AGREED,
        disputed=[{"part": part, "criterion_key": key} for part, key in disputed],
        decided_at=now,
    )
    session.add(decision)
    case.status = DECIDED
    case.staffing_needed = False
    case.decided_at = now
    record_decision(session, case.attempt_id, outcome, _feedback(criteria, failing, reviews), now)
    if outcome == EARNED:
        post(
            session,
            "badge.requested",
            f"badge.requested:{case.attempt_id}",
            {"attempt_id": case.attempt_id},
        )
    else:
        post(
            session,
            "grade.decided",
            f"grade.decided:{case.attempt_id}",
            {"attempt_id": case.attempt_id},
        )
    session.flush()
    return decision
