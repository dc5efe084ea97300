"""Near-identical submissions, as assessors and administrators see them: flagged at submission
by the evidence package, named here by case code only, never blocking."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from lti_tool.assessment.models import OPEN_CASE_STATUSES, Case
from lti_tool.evidence.checks import similarity_flags
from lti_tool.evidence.models import AttemptNotes


@dataclass(frozen=True)
class SimilarView:
    """A submission of the same micro-credential this one nearly matches, named by its case
    code only (None: it was never a case, e.g. withdrawn), never by who wrote it."""

    case_code: str | None
    percent: int
    parts: list[tuple[str, int]]
    declared_collaboration: bool


def similar_to(session: Session, attempt_id: int) -> list[SimilarView]:
    """The similarity flags evidence stored for the attempt, told by case code."""
    flags = similarity_flags(session, attempt_id)
    codes = dict(
        session.execute(
            select(Case.attempt_id, Case.code).where(
                Case.attempt_id.in_([flag["attempt_id"] for flag in flags])
            )
        ).all()
    )
    return [
        SimilarView(
            case_code=codes.get(flag["attempt_id"]),
            percent=round(100 * flag["score"]),
            parts=[(p["part"], round(100 * p["score"])) for p in flag.get("parts", [])],
            declared_collaboration=bool(flag.get("declared")),
        )
        for flag in flags
    ]


def flagged_open_cases(session: Session, limit: int) -> list[tuple[Case, list[SimilarView]]]:
    """Open cases whose submission was flagged as nearly identical to another, newest first."""
    cases = session.scalars(
        select(Case)
        .join(AttemptNotes, AttemptNotes.attempt_id == Case.attempt_id)
        .where(
            Case.status.in_(OPEN_CASE_STATUSES),
            cast(AttemptNotes.similar_attempts, String) != "[]",
        )
        .order_by(Case.id.desc())
        .limit(limit)
    ).all()
    return [(case, similar_to(session, case.attempt_id)) for case in cases]
