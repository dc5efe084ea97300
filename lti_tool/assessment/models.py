"""Tables of assessment. Read this before computing statistics over them.

- `assessors`: one per assessor Account (`account_id` unique). `institution` (free text) and the
  account's e-mail domain are what conflicts of interest are checked against; `weekly_capacity`
  is how many cases they take in any 7 days; `status` is active or paused.
- `assessor_certifications`: what an assessor may assess: a micro-credential, every version
  (`version_id` NULL) or one version per row.
- `assessment_cases`: the blind copy of one attempt (`attempt_id` unique). `code` is random and
  carries no identity; `answers` holds the text answers, links and collaboration statement as
  written; `conflict_keys` are salted hashes of the learner's institution (platform name) and
  e-mail domain, never the names themselves. `status`: waiting_for_assessor (a first or second
  assessor is missing), in_review, adjudication (the two disagreed; a third assessor decides the
  disputed criteria), decided, withdrawn. `staffing_needed` is true while a role the case needs
  has no live assignment (the assignment sweep's work list). `decision_due_at` is the attempt's.
- `assessment_case_files`: the blind copies of the attempt's files, under a neutral name.
  `metadata_removed` says whether metadata was stripped (False: copied as is, not cleaned).
- `assessment_assignments`: who works on a case in which `role` (first, second, adjudicator).
  `state`: assigned -> started -> submitted, or declined (conflict of interest the assessor
  recognised), reassigned (overdue, taken away), cancelled (the learner withdrew). A live
  assignment (assigned/started/submitted) is unique per case and role. Turnaround of one
  review = `submitted_at - assigned_at`.
- `assessment_reviews` and `assessment_marks`: one review per submitted assignment, one mark per
  criterion reviewed (criterion_key is the rubric key within its part, `part_kind` the part):
  `met` true/false, `feedback` only when not met. First and second reviews mark every criterion
  of the version's rubric; the adjudicator's review marks the disputed criteria only. Agreement
  between co-assessors per criterion: join the marks of the first and second review of a case
  on (part_kind, criterion_key).
- `assessment_decisions`: the outcome of a case (earned/revise), its `path` (agreed when the two
  assessors agreed on every required criterion, adjudicated otherwise), and the disputed
  criteria as [{"part": kind, "criterion_key": key}].
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.accounts.models import Account
from lti_tool.db import Base, UTCDateTime, utcnow

ACTIVE = "active"
PAUSED = "paused"
ASSESSOR_STATUSES = (ACTIVE, PAUSED)

WAITING = "waiting_for_assessor"
IN_REVIEW = "in_review"
ADJUDICATION = "adjudication"
DECIDED = "decided"
WITHDRAWN = "withdrawn"
CASE_STATUSES = (WAITING, IN_REVIEW, ADJUDICATION, DECIDED, WITHDRAWN)
OPEN_CASE_STATUSES = (WAITING, IN_REVIEW, ADJUDICATION)

FIRST = "first"
SECOND = "second"
ADJUDICATOR = "adjudicator"
ROLES = (FIRST, SECOND, ADJUDICATOR)
# What the learner reads instead of a name ("Assessor 1", ...), by role.
ROLE_LABELS = {FIRST: "Assessor 1", SECOND: "Assessor 2", ADJUDICATOR: "Assessor 3"}

ASSIGNED = "assigned"
STARTED = "started"
SUBMITTED = "submitted"
DECLINED = "declined"
REASSIGNED = "reassigned"
CANCELLED = "cancelled"
ASSIGNMENT_STATES = (ASSIGNED, STARTED, SUBMITTED, DECLINED, REASSIGNED, CANCELLED)
LIVE_STATES = (ASSIGNED, STARTED, SUBMITTED)  # the assignment holds its role on the case
OPEN_STATES = (ASSIGNED, STARTED)  # work still to do

EARNED = "earned"
REVISE = "revise"
OUTCOMES = (EARNED, REVISE)
AGREED = "agreed"
ADJUDICATED = "adjudicated"
PATHS = (AGREED, ADJUDICATED)


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


class Assessor(Base):
    """An assessor: an Account certified for some micro-credentials, with a weekly capacity."""

    __tablename__ = "assessors"
    __table_args__ = (
        CheckConstraint(f"status IN {_in(ASSESSOR_STATUSES)}", name="status"),
        CheckConstraint("weekly_capacity >= 0", name="capacity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), unique=True
    )
    institution: Mapped[str] = mapped_column(String(300), default="")
    weekly_capacity: Mapped[int] = mapped_column(Integer, default=5)
    status: Mapped[str] = mapped_column(String(20), default=ACTIVE, server_default=ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    account: Mapped[Account] = relationship()
    certifications: Mapped[list[AssessorCertification]] = relationship(
        back_populates="assessor", cascade="all, delete-orphan", order_by="AssessorCertification.id"
    )

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


class AssessorCertification(Base):
    """An assessor may assess this micro-credential: every version, or only `version_id`."""

    __tablename__ = "assessor_certifications"
    __table_args__ = (
        UniqueConstraint("assessor_id", "micro_credential_id", "version_id"),
        # Who is certified for a micro-credential (assignment reads it this way round).
        Index("ix_assessor_certifications_micro_credential_id", "micro_credential_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assessor_id: Mapped[int] = mapped_column(ForeignKey("assessors.id", ondelete="CASCADE"))
    micro_credential_id: Mapped[int] = mapped_column(
        ForeignKey("micro_credentials.id", ondelete="CASCADE")
    )
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("micro_credential_versions.id", ondelete="CASCADE"), nullable=True
    )
    certified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    assessor: Mapped[Assessor] = relationship(back_populates="certifications")


class Case(Base):
    """The blind copy of one attempt, as assessors see it: a code, never a person."""

    __tablename__ = "assessment_cases"
    __table_args__ = (
        CheckConstraint(f"status IN {_in(CASE_STATUSES)}", name="status"),
        # The assignment sweep reads the cases waiting for someone, oldest first.
        Index(
            "ix_assessment_cases_waiting",
            "id",
            sqlite_where=text("staffing_needed"),
            postgresql_where=text("staffing_needed"),
        ),
        Index("ix_assessment_cases_status_decision_due_at", "status", "decision_due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("evidence_attempts.id", ondelete="CASCADE"), unique=True
    )
    code: Mapped[str] = mapped_column(String(20), unique=True)
    # Not indexed: no query selects cases by micro-credential, and every index is one more
    # entry to write each time an assignment run changes a case's status (migration 0013).
    micro_credential_id: Mapped[int] = mapped_column(
        ForeignKey("micro_credentials.id", ondelete="CASCADE")
    )
    version_id: Mapped[int] = mapped_column(ForeignKey("micro_credential_versions.id"))
    status: Mapped[str] = mapped_column(String(30), default=WAITING)
    staffing_needed: Mapped[bool] = mapped_column(Boolean, default=True)
    # {"answers": [{"part", "prompt_key", "prompt", "text"}], "links": [{"requirement_key",
    # "url", "title"}], "collaboration": str}: the learner's words as written.
    answers: Mapped[dict] = mapped_column(JSON, default=dict)
    # Salted hashes of the learner's institution names and e-mail domain (policy.conflict_key).
    conflict_keys: Mapped[list] = mapped_column(JSON, default=list)
    # Assessors of the previous attempt (a resubmission goes back to them when eligible).
    preferred_assessor_ids: Mapped[list] = mapped_column(JSON, default=list)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decision_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    files: Mapped[list[CaseFile]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CaseFile.position"
    )
    assignments: Mapped[list[Assignment]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="Assignment.id"
    )


class CaseFile(Base):
    """A blind copy of one attempt file, under a neutral name ("artifact-2.pdf")."""

    __tablename__ = "assessment_case_files"
    __table_args__ = (UniqueConstraint("case_id", "neutral_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("assessment_cases.id", ondelete="CASCADE"))
    attempt_file_id: Mapped[int] = mapped_column(
        ForeignKey("evidence_attempt_files.id", ondelete="CASCADE"), unique=True
    )
    position: Mapped[int] = mapped_column(Integer)
    requirement_key: Mapped[str] = mapped_column(String(100))
    neutral_name: Mapped[str] = mapped_column(String(200))
    storage_key: Mapped[str] = mapped_column(String(500))
    media_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # True only when the metadata was actually stripped; False: copied as is, not cleaned.
    metadata_removed: Mapped[bool] = mapped_column(Boolean, default=False)

    case: Mapped[Case] = relationship(back_populates="files")


class Assignment(Base):
    """One assessor's job on one case, in one role."""

    __tablename__ = "assessment_assignments"
    __table_args__ = (
        CheckConstraint(f"role IN {_in(ROLES)}", name="role"),
        CheckConstraint(f"state IN {_in(ASSIGNMENT_STATES)}", name="state"),
        # One live assignment per case and role, even when two sweeps race.
        Index(
            "uq_assessment_assignments_live_role",
            "case_id",
            "role",
            unique=True,
            sqlite_where=text("state IN ('assigned', 'started', 'submitted')"),
            postgresql_where=text("state IN ('assigned', 'started', 'submitted')"),
        ),
        # An assessor's cases, and their load over the last days.
        Index("ix_assessment_assignments_assessor_id_assigned_at", "assessor_id", "assigned_at"),
        # Reminders and reassignment read the open assignments by due date.
        Index("ix_assessment_assignments_state_due_at", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("assessment_cases.id", ondelete="CASCADE"), index=True
    )
    assessor_id: Mapped[int] = mapped_column(ForeignKey("assessors.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), default=ASSIGNED)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When it was declined, reassigned or cancelled.
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What the assessor said when declining (the portal's optional note, the API's reason).
    decline_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    case: Mapped[Case] = relationship(back_populates="assignments")
    assessor: Mapped[Assessor] = relationship()


class Review(Base):
    """What one assessor submitted for one assignment."""

    __tablename__ = "assessment_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assessment_assignments.id", ondelete="CASCADE"), unique=True
    )
    case_id: Mapped[int] = mapped_column(
        ForeignKey("assessment_cases.id", ondelete="CASCADE"), index=True
    )
    assessor_id: Mapped[int] = mapped_column(
        ForeignKey("assessors.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(20))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    marks: Mapped[list[Mark]] = relationship(
        back_populates="review", cascade="all, delete-orphan", order_by="Mark.id"
    )


class Mark(Base):
    """One criterion, met or not; feedback is written (only) where it is not met."""

    __tablename__ = "assessment_marks"
    __table_args__ = (
        UniqueConstraint("review_id", "part_kind", "criterion_key"),
        CheckConstraint(
            "(met AND feedback IS NULL) OR (NOT met AND feedback IS NOT NULL AND feedback <> '')",
            name="feedback",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("assessment_reviews.id", ondelete="CASCADE"))
    part_kind: Mapped[str] = mapped_column(String(20))
    criterion_key: Mapped[str] = mapped_column(String(100))
    met: Mapped[bool] = mapped_column(Boolean)
    feedback: Mapped[str | None] = mapped_column(Text, nullable=True)

    review: Mapped[Review] = relationship(back_populates="marks")


class Decision(Base):
    """How a case ended: earned or revise, agreed by both or adjudicated by a third."""

    __tablename__ = "assessment_decisions"
    __table_args__ = (
        CheckConstraint(f"outcome IN {_in(OUTCOMES)}", name="outcome"),
        CheckConstraint(f"path IN {_in(PATHS)}", name="path"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("assessment_cases.id", ondelete="CASCADE"), unique=True
    )
    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("evidence_attempts.id", ondelete="CASCADE"), unique=True
    )
    outcome: Mapped[str] = mapped_column(String(20))
    path: Mapped[str] = mapped_column(String(20))
    disputed: Mapped[list] = mapped_column(JSON, default=list)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
