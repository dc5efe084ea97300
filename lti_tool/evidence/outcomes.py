"""What assessment does to an attempt: start reviewing it, then decide it.

Assessment calls these (never writes attempts itself), so the attempt's status and the
learner's progress always move together, in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from lti_tool.evidence.models import DECISIONS, EARNED, IN_REVIEW, SUBMITTED, Attempt
from lti_tool.progress import models as progress_states
from lti_tool.progress.service import set_state


class AttemptStateError(ValueError):
    """The attempt is not in a state that allows this (withdrawn, already decided...)."""


def _locked(session: Session, attempt_id: int) -> Attempt:
    attempt = session.get(Attempt, attempt_id, with_for_update=True)
    if attempt is None:
        raise AttemptStateError(f"there is no attempt {attempt_id}")
    return attempt


def mark_in_review(session: Session, attempt_id: int) -> bool:
    """An assessor started on the attempt: the learner can no longer withdraw it. True when
    this call moved it; False when it was in review already."""
    attempt = _locked(session, attempt_id)
    if attempt.status == IN_REVIEW:
        return False
    if attempt.status != SUBMITTED:
        raise AttemptStateError(f"attempt {attempt_id} is {attempt.status}, not submitted")
    attempt.status = IN_REVIEW
    set_state(
        session,
        attempt.user_id,
        attempt.micro_credential_id,
        progress_states.IN_REVIEW,
        next_step_due=attempt.decision_due_at,
    )
    return True


def record_decision(
    session: Session, attempt_id: int, decision: str, feedback: list[dict], decided_at: datetime
) -> bool:
    """Record the outcome (`earned` or `revise`) and the learner-facing feedback (criteria not
    met, comments signed "Assessor 1" / "Assessor 2"). True when recorded now; False when
    the same decision was recorded before (a retried job); a different one is refused."""
    if decision not in DECISIONS:
        raise AttemptStateError(f"a decision is one of {', '.join(DECISIONS)}, not {decision!r}")
    attempt = _locked(session, attempt_id)
    if attempt.decision is not None:
        if attempt.decision == decision:
            return False
        raise AttemptStateError(f"attempt {attempt_id} was decided {attempt.decision} already")
    if attempt.status not in (SUBMITTED, IN_REVIEW):
        raise AttemptStateError(f"attempt {attempt_id} is {attempt.status}: it cannot be decided")
    attempt.status = decision
    attempt.decision = decision
    attempt.feedback = feedback
    attempt.decided_at = decided_at
    state = progress_states.EARNED if decision == EARNED else progress_states.REVISE
    set_state(session, attempt.user_id, attempt.micro_credential_id, state, when=decided_at)
    return True
