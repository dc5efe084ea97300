"""The table of progress: one row per learner and micro-credential they have started.

The state belongs to the learner as their platform knows them (`lms_users` is per platform),
not to a course: a micro-credential earned in one run of a MOOC counts in every course of that
platform that holds it. No row means "not started", so a 50,000-learner course costs rows only
for the learners who began something.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lti_tool.db import Base, UTCDateTime, utcnow

# The six states a learner can be in with a micro-credential (service.STATES, in order).
NOT_STARTED = "not_started"  # never stored: the absence of a row
DRAFT = "draft"
SUBMITTED = "submitted"
IN_REVIEW = "in_review"
REVISE = "revise"  # revise and resubmit: not met, feedback given
EARNED = "earned"
STATES = (NOT_STARTED, DRAFT, SUBMITTED, IN_REVIEW, REVISE, EARNED)
STORED_STATES = STATES[1:]


class CredentialProgress(Base):
    """Where one learner (of one platform) stands with one micro-credential."""

    __tablename__ = "credential_progress"
    __table_args__ = (
        UniqueConstraint("user_id", "micro_credential_id"),
        CheckConstraint(
            "state IN ('draft', 'submitted', 'in_review', 'revise', 'earned')", name="state"
        ),
        # Course counts per micro-credential and state read this index alone (covering), and
        # it serves the foreign key to micro_credentials.
        Index(
            "ix_credential_progress_micro_credential_id_state_user_id",
            "micro_credential_id",
            "state",
            "user_id",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_users.id", ondelete="CASCADE"))
    micro_credential_id: Mapped[int] = mapped_column(
        ForeignKey("micro_credentials.id", ondelete="CASCADE")
    )
    # The version the learner started: they keep it, and assessment uses its rubric.
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("micro_credential_versions.id", ondelete="SET NULL"), nullable=True
    )
    state: Mapped[str] = mapped_column(String(20))
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the next step is due: the assessment decision (submitted, in review), or the date
    # the learner planned for their draft; None when nothing is due.
    next_step_due: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
