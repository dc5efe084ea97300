"""Attempts: what a learner submitted for one micro-credential, frozen at submission.

An attempt never changes after it is submitted except for its status and decision: the
snapshot holds every answer, link and statement as submitted, and `evidence_attempt_files`
every file with its hash, so assessors and auditors see exactly what was handed in.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.db import Base, UTCDateTime, utcnow

SUBMITTED = "submitted"
WITHDRAWN = "withdrawn"
IN_REVIEW = "in_review"
REVISE = "revise"
EARNED = "earned"
ATTEMPT_STATUSES = (SUBMITTED, WITHDRAWN, IN_REVIEW, REVISE, EARNED)
DECISIONS = (EARNED, REVISE)


class Attempt(Base):
    """One submission of a learner (as one platform knows them) for one micro-credential."""

    __tablename__ = "evidence_attempts"
    __table_args__ = (
        UniqueConstraint("user_id", "micro_credential_id", "number"),
        CheckConstraint(
            "status IN ('submitted', 'withdrawn', 'in_review', 'revise', 'earned')", name="status"
        ),
        CheckConstraint("decision IS NULL OR decision IN ('earned', 'revise')", name="decision"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_users.id", ondelete="CASCADE"))
    micro_credential_id: Mapped[int] = mapped_column(
        ForeignKey("micro_credentials.id", ondelete="CASCADE"), index=True
    )
    # The version the learner worked on: its rubric is the one assessors apply.
    version_id: Mapped[int] = mapped_column(ForeignKey("micro_credential_versions.id"))
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per learner and micro-credential
    status: Mapped[str] = mapped_column(String(20), default=SUBMITTED)
    # The frozen answers, links and collaboration statement (files are rows below).
    snapshot: Mapped[dict] = mapped_column(JSON, default=dict)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decision_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # What the learner reads after a decision: for each criterion not met, the feedback of
    # "Assessor 1" / "Assessor 2" (never who they are).
    feedback: Mapped[list] = mapped_column(JSON, default=list)
    previous_attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("evidence_attempts.id", ondelete="SET NULL"), nullable=True
    )
    # The launch the learner submitted from (for the gradebook); None if not known.
    course_id: Mapped[int | None] = mapped_column(
        ForeignKey("courses.id", ondelete="SET NULL"), nullable=True
    )
    resource_link_id: Mapped[int | None] = mapped_column(
        ForeignKey("resource_links.id", ondelete="SET NULL"), nullable=True
    )

    files: Mapped[list[AttemptFile]] = relationship(
        back_populates="attempt",
        order_by="(AttemptFile.requirement_key, AttemptFile.position)",
        cascade="all, delete-orphan",
    )


class AttemptFile(Base):
    """A file of an attempt, as stored when it was uploaded (content-addressed by hash)."""

    __tablename__ = "evidence_attempt_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("evidence_attempts.id", ondelete="CASCADE"), index=True
    )
    requirement_key: Mapped[str] = mapped_column(String(100))  # the artifact requirement
    position: Mapped[int] = mapped_column(Integer, default=0)
    original_name: Mapped[str] = mapped_column(String(500))
    storage_key: Mapped[str] = mapped_column(String(500))  # where Services.storage keeps it
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(200))

    attempt: Mapped[Attempt] = relationship(back_populates="files")
