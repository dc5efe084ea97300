"""Consistency and turnaround of assessment, for administrators and funders.

Two layers: pure functions over plain facts (Cohen's kappa over pairs of met/not-met marks,
agreement, medians, the per-assessor / per-micro-credential / per-criterion summaries), and
`load_facts`, which reads those facts for a period from the assessment tables.

What counts in a period [start, end):
- a review is done when it was submitted in the period; its turnaround is assigned -> submitted;
- a pair of marks is the first and second assessors' marks of one criterion of one case, counted
  when the later of the two reviews was submitted in the period;
- a case is decided when its decision was made in the period; its turnaround is the learner's
  submission -> decision, and it was adjudicated when the two disagreed on a required criterion.

Kappa is None (undefined) with no pairs, and when every mark of both assessors was the same
(chance agreement is then 100%: agreement is 100% too, and says more).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from lti_tool.accounts.models import Account
from lti_tool.assessment.models import (
    ADJUDICATED,
    FIRST,
    SECOND,
    SUBMITTED,
    Assessor,
    Assignment,
    Case,
    Decision,
    Mark,
    Review,
)
from lti_tool.catalog.models import MicroCredential

Pair = tuple[bool, bool]


# -- pure statistics -------------------------------------------------------------------------
def cohen_kappa(pairs: Iterable[Pair]) -> float | None:
    """Cohen's kappa of two raters' met/not-met marks: (p_o - p_e) / (1 - p_e), computed
    exactly. None when there are no pairs or when p_e is 1 (every mark the same)."""
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return None
    agreed = sum(1 for a, b in pairs if a == b)
    first_met = sum(1 for a, _b in pairs if a)
    second_met = sum(1 for _a, b in pairs if b)
    # p_e * n^2: both say met by chance, plus both say not met by chance.
    chance = first_met * second_met + (n - first_met) * (n - second_met)
    if chance == n * n:
        return None
    return float(Fraction(agreed * n - chance, n * n - chance))


def agreement_rate(pairs: Iterable[Pair]) -> float | None:
    """Share of pairs where both raters gave the same mark (None without pairs)."""
    pairs = list(pairs)
    if not pairs:
        return None
    return sum(1 for a, b in pairs if a == b) / len(pairs)


def median_hours(durations_seconds: Sequence[float]) -> float | None:
    if not durations_seconds:
        return None
    return statistics.median(durations_seconds) / 3600


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# -- facts -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReviewFact:
    assessor_id: int
    micro_credential_id: int
    case_id: int
    assigned_at: datetime
    submitted_at: datetime


@dataclass(frozen=True)
class MarkPair:
    case_id: int
    micro_credential_id: int
    part: str
    criterion_key: str
    first_assessor_id: int
    second_assessor_id: int
    first_met: bool
    second_met: bool


@dataclass(frozen=True)
class DecisionFact:
    case_id: int
    micro_credential_id: int
    submitted_at: datetime
    decided_at: datetime
    adjudicated: bool
    assessor_ids: tuple[int, ...]  # the first and second assessors


@dataclass
class Facts:
    reviews: list[ReviewFact] = field(default_factory=list)
    pairs: list[MarkPair] = field(default_factory=list)
    decisions: list[DecisionFact] = field(default_factory=list)
    assessor_names: dict[int, str] = field(default_factory=dict)
    credential_titles: dict[int, str] = field(default_factory=dict)
    criterion_texts: dict[tuple[int, str, str], str] = field(default_factory=dict)


# -- summaries -------------------------------------------------------------------------------
@dataclass(frozen=True)
class AssessorRow:
    assessor_id: int
    name: str
    reviews_done: int
    median_turnaround_hours: float | None
    paired_marks: int
    agreement_rate: float | None
    kappa: float | None
    decided_cases: int
    adjudication_rate: float | None


@dataclass(frozen=True)
class CriterionRow:
    micro_credential_id: int
    title: str
    part: str
    criterion_key: str
    text: str
    pairs: int
    agreement_rate: float | None
    kappa: float | None


@dataclass(frozen=True)
class CredentialRow:
    micro_credential_id: int
    title: str
    cases_decided: int
    median_turnaround_hours: float | None
    reviews_done: int
    median_review_turnaround_hours: float | None
    paired_marks: int
    agreement_rate: float | None
    adjudication_rate: float | None
    criteria: list[CriterionRow]


@dataclass(frozen=True)
class Report:
    start: datetime
    end: datetime
    assessors: list[AssessorRow]
    credentials: list[CredentialRow]

    @property
    def criteria(self) -> list[CriterionRow]:
        return [row for credential in self.credentials for row in credential.criteria]


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def _assessor_rows(facts: Facts) -> list[AssessorRow]:
    reviews: dict[int, list[ReviewFact]] = defaultdict(list)
    for review in facts.reviews:
        reviews[review.assessor_id].append(review)
    pairs: dict[int, list[Pair]] = defaultdict(list)
    for pair in facts.pairs:
        # Each assessor against their co-assessor: the assessor is always the first rater.
        pairs[pair.first_assessor_id].append((pair.first_met, pair.second_met))
        pairs[pair.second_assessor_id].append((pair.second_met, pair.first_met))
    decided: dict[int, list[DecisionFact]] = defaultdict(list)
    for decision in facts.decisions:
        for assessor_id in decision.assessor_ids:
            decided[assessor_id].append(decision)
    rows = []
    for assessor_id in sorted(set(reviews) | set(pairs) | set(decided)):
        own = reviews[assessor_id]
        cases = decided[assessor_id]
        rows.append(
            AssessorRow(
                assessor_id=assessor_id,
                name=facts.assessor_names.get(assessor_id, f"Assessor #{assessor_id}"),
                reviews_done=len(own),
                median_turnaround_hours=median_hours(
                    [_seconds(r.assigned_at, r.submitted_at) for r in own]
                ),
                paired_marks=len(pairs[assessor_id]),
                agreement_rate=agreement_rate(pairs[assessor_id]),
                kappa=cohen_kappa(pairs[assessor_id]),
                decided_cases=len(cases),
                adjudication_rate=rate(sum(d.adjudicated for d in cases), len(cases)),
            )
        )
    return sorted(rows, key=lambda row: (row.name.lower(), row.assessor_id))


def _criterion_rows(facts: Facts, credential_id: int, title: str) -> list[CriterionRow]:
    by_criterion: dict[tuple[str, str], list[Pair]] = defaultdict(list)
    for pair in facts.pairs:
        if pair.micro_credential_id == credential_id:
            by_criterion[(pair.part, pair.criterion_key)].append((pair.first_met, pair.second_met))
    order = list(facts.criterion_texts)
    rows = []
    for (part, key), pairs in by_criterion.items():
        rows.append(
            CriterionRow(
                micro_credential_id=credential_id,
                title=title,
                part=part,
                criterion_key=key,
                text=facts.criterion_texts.get((credential_id, part, key), ""),
                pairs=len(pairs),
                agreement_rate=agreement_rate(pairs),
                kappa=cohen_kappa(pairs),
            )
        )

    def rubric_order(row: CriterionRow) -> tuple[int, str, str]:
        place = (credential_id, row.part, row.criterion_key)
        return (order.index(place) if place in order else len(order), row.part, row.criterion_key)

    return sorted(rows, key=rubric_order)


def summarise(facts: Facts, start: datetime, end: datetime) -> Report:
    """The report of a period from its facts (pure: no database)."""
    credential_ids = sorted(
        {r.micro_credential_id for r in facts.reviews}
        | {p.micro_credential_id for p in facts.pairs}
        | {d.micro_credential_id for d in facts.decisions}
    )
    credentials = []
    for credential_id in credential_ids:
        title = facts.credential_titles.get(credential_id, f"Micro-credential #{credential_id}")
        decisions = [d for d in facts.decisions if d.micro_credential_id == credential_id]
        reviews = [r for r in facts.reviews if r.micro_credential_id == credential_id]
        pairs = [
            (p.first_met, p.second_met)
            for p in facts.pairs
            if p.micro_credential_id == credential_id
        ]
        credentials.append(
            CredentialRow(
                micro_credential_id=credential_id,
                title=title,
                cases_decided=len(decisions),
                median_turnaround_hours=median_hours(
                    [_seconds(d.submitted_at, d.decided_at) for d in decisions]
                ),
                reviews_done=len(reviews),
                median_review_turnaround_hours=median_hours(
                    [_seconds(r.assigned_at, r.submitted_at) for r in reviews]
                ),
                paired_marks=len(pairs),
                agreement_rate=agreement_rate(pairs),
                adjudication_rate=rate(sum(d.adjudicated for d in decisions), len(decisions)),
                criteria=_criterion_rows(facts, credential_id, title),
            )
        )
    credentials.sort(key=lambda row: (row.title.lower(), row.micro_credential_id))
    return Report(start, end, _assessor_rows(facts), credentials)


# -- reading the facts of a period -----------------------------------------------------------
def _first_and_second(end: datetime):
    """(case, first review, second review) of every case with both, submitted before `end`."""
    first, second = aliased(Review), aliased(Review)
    first_job, second_job = aliased(Assignment), aliased(Assignment)
    return (
        select(Case, first, second)
        .join(first, (first.case_id == Case.id) & (first.role == FIRST))
        .join(first_job, (first_job.id == first.assignment_id) & (first_job.state == SUBMITTED))
        .join(second, (second.case_id == Case.id) & (second.role == SECOND))
        .join(
            second_job, (second_job.id == second.assignment_id) & (second_job.state == SUBMITTED)
        )
        .where(first.submitted_at < end, second.submitted_at < end)
    )


def load_facts(session: Session, start: datetime, end: datetime) -> Facts:
    """The facts of [start, end) from the assessment tables (a handful of queries)."""
    facts = Facts()
    for review, assignment, case in session.execute(
        select(Review, Assignment, Case)
        .join(Assignment, Assignment.id == Review.assignment_id)
        .join(Case, Case.id == Review.case_id)
        .where(
            Assignment.state == SUBMITTED,
            Review.submitted_at >= start,
            Review.submitted_at < end,
        )
    ).all():
        facts.reviews.append(
            ReviewFact(
                review.assessor_id,
                case.micro_credential_id,
                case.id,
                assignment.assigned_at,
                review.submitted_at,
            )
        )

    paired = {
        case.id: (case, first, second)
        for case, first, second in session.execute(_first_and_second(end)).all()
        if first.submitted_at >= start or second.submitted_at >= start
    }
    review_ids = [review.id for _case, *reviews in paired.values() for review in reviews]
    marks: dict[int, dict[tuple[str, str], bool]] = defaultdict(dict)
    for mark in session.scalars(select(Mark).where(Mark.review_id.in_(review_ids))):
        marks[mark.review_id][(mark.part_kind, mark.criterion_key)] = mark.met
    for case, first, second in paired.values():
        theirs = marks[second.id]
        for (part, key), met in marks[first.id].items():
            if (part, key) in theirs:
                facts.pairs.append(
                    MarkPair(
                        case.id,
                        case.micro_credential_id,
                        part,
                        key,
                        first.assessor_id,
                        second.assessor_id,
                        met,
                        theirs[(part, key)],
                    )
                )

    decided = session.execute(
        select(Decision, Case)
        .join(Case, Case.id == Decision.case_id)
        .where(Decision.decided_at >= start, Decision.decided_at < end)
    ).all()
    reviewers: dict[int, list[int]] = defaultdict(list)
    for case_id, assessor_id in session.execute(
        select(Review.case_id, Review.assessor_id)
        .join(Assignment, Assignment.id == Review.assignment_id)
        .where(
            Review.case_id.in_([case.id for _d, case in decided]),
            Review.role.in_((FIRST, SECOND)),
            Assignment.state == SUBMITTED,
        )
    ):
        reviewers[case_id].append(assessor_id)
    for decision, case in decided:
        facts.decisions.append(
            DecisionFact(
                case.id,
                case.micro_credential_id,
                case.submitted_at,
                decision.decided_at,
                decision.path == ADJUDICATED,
                tuple(sorted(reviewers[case.id])),
            )
        )

    assessor_ids = (
        {r.assessor_id for r in facts.reviews}
        | {a for d in facts.decisions for a in d.assessor_ids}
        | {a for p in facts.pairs for a in (p.first_assessor_id, p.second_assessor_id)}
    )
    for assessor_id, name in session.execute(
        select(Assessor.id, Account.name)
        .join(Account, Account.id == Assessor.account_id)
        .where(Assessor.id.in_(assessor_ids))
    ):
        facts.assessor_names[assessor_id] = name
    credential_ids = {r.micro_credential_id for r in facts.reviews} | {
        d.micro_credential_id for d in facts.decisions
    }
    for credential in session.scalars(
        select(MicroCredential).where(MicroCredential.id.in_(credential_ids))
    ):
        version = credential.current
        facts.credential_titles[credential.id] = version.title
        for part in version.parts:
            for criterion in part.rubric:
                facts.criterion_texts[(credential.id, part.kind, criterion.key)] = criterion.text
    return facts


def report(session: Session, start: datetime, end: datetime) -> Report:
    """Consistency and turnaround of [start, end)."""
    return summarise(load_facts(session, start, end), start, end)
