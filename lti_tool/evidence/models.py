"""Drafts and attempts: what a learner is writing for a micro-credential, and what they submitted.

A draft (`evidence_drafts`, one per learner and micro-credential, whatever course they open it
from) holds the text answers, links, plan dates and collaboration statement as typed, with a
`revision` counter: a save names the revision it started from and is refused when another tab
saved in between. Its files (`evidence_draft_files`) are in Services.storage under a key made
once per upload, never overwritten, so a file may be shared by a draft and the attempts made
from it.

An attempt never changes after it is submitted except for its status and decision: the
snapshot holds every answer, link and statement as submitted, and `evidence_attempt_files`
every file with its hash, so assessors and auditors see exactly what was handed in.

`Attempt.snapshot` (written by evidence.service.submit; read by assessment):

    {
      "format": 1,
      "version_id": 12, "version_number": 2, "title": "Active Listening",
      "answers": {"overview": {"<prompt key>": "text as typed"}, "reflection": {...}},
      "links": {"<requirement key>": [{"url": "https://...", "title": "as typed"}]},
      "files": [{"requirement_key": "...", "position": 0, "original_name": "plan.pdf",
                 "sha256": "...", "size": 1234, "media_type": "application/pdf"}],
      "collaboration": {"collaborative": true | false | null, "how": "text"},
      "plan": {"overview": "2026-12-10", "artifacts": null, "reflection": null}
    }

Answers are plain text exactly as typed (never HTML: escape when showing). File names are as
uploaded and may name people: show assessors a neutral name (the blind copy's). The names of
collaborators are NOT in the snapshot (assessors never see them): they are in
`AttemptNotes.collaborators`, beside the similarity and confidentiality findings.
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
    Text,
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


class Draft(Base):
    """A learner's work in progress on one micro-credential (one per learner, not per course).

    `revision` counts the saves of the typed fields (answers, plan, collaboration): a save that
    started from an older revision is refused (another tab saved first). Files and links are
    added and removed one at a time and do not change the revision.
    """

    __tablename__ = "evidence_drafts"
    __table_args__ = (UniqueConstraint("user_id", "micro_credential_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_users.id", ondelete="CASCADE"))
    micro_credential_id: Mapped[int] = mapped_column(
        ForeignKey("micro_credentials.id", ondelete="CASCADE"), index=True
    )
    # The version the learner works on: the one they started, kept across catalog edits.
    version_id: Mapped[int] = mapped_column(ForeignKey("micro_credential_versions.id"))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    # {part kind: {prompt key: text as typed}}
    answers: Mapped[dict] = mapped_column(JSON, default=dict)
    # {requirement key: [{"url": ..., "title": ...}]}
    links: Mapped[dict] = mapped_column(JSON, default=dict)
    # {part kind: "YYYY-MM-DD"}: the learner's own target date per part
    plan: Mapped[dict] = mapped_column(JSON, default=dict)
    # {"collaborative": bool | None, "with_whom": str, "how": str}
    collaboration: Mapped[dict] = mapped_column(JSON, default=dict)
    # The attempt this draft revises (after "revise and resubmit", or a withdrawal).
    previous_attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("evidence_attempts.id", ondelete="SET NULL"), nullable=True
    )
    # The latest launch the learner worked from (the submission's course and link).
    course_id: Mapped[int | None] = mapped_column(
        ForeignKey("courses.id", ondelete="SET NULL"), nullable=True
    )
    resource_link_id: Mapped[int | None] = mapped_column(
        ForeignKey("resource_links.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    files: Mapped[list[DraftFile]] = relationship(
        back_populates="draft",
        order_by="(DraftFile.requirement_key, DraftFile.position, DraftFile.id)",
        cascade="all, delete-orphan",
    )


class DraftFile(Base):
    """A file uploaded to a draft for one artifact requirement, with what was read from it
    (text and metadata of documents, for the confidentiality check)."""

    __tablename__ = "evidence_draft_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(
        ForeignKey("evidence_drafts.id", ondelete="CASCADE"), index=True
    )
    requirement_key: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    original_name: Mapped[str] = mapped_column(String(500))
    storage_key: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(200))
    # What evidence.checks.read_document found in the file (body text by place, metadata),
    # for the confidentiality and similarity checks; None when it was not read.
    document: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    draft: Mapped[Draft] = relationship(back_populates="files")


class AttemptNotes(Base):
    """What is kept beside an attempt for the learner and administrators, never in the
    assessors' copy: the collaborators' names as the learner wrote them, the submissions it is
    nearly identical to, and the confidentiality findings at submission."""

    __tablename__ = "evidence_attempt_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("evidence_attempts.id", ondelete="CASCADE"), unique=True
    )
    collaborators: Mapped[str] = mapped_column(Text, default="")
    # [{"attempt_id": int, "score": float, "parts": [{"part", "score"}], "declared": bool}]:
    # earlier submissions of other learners nearly identical to this one (declared: the two
    # named each other as collaborators). For assessors and administrators, never blocking.
    similar_attempts: Mapped[list] = mapped_column(JSON, default=list)
    # The confidentiality findings shown to the learner when they submitted.
    confidentiality: Mapped[list] = mapped_column(JSON, default=list)
    # What was read from the attempt's files: {storage key: DraftFile.document}, so the next
    # attempt's draft (files carried over) is checked without reading them again.
    documents: Mapped[dict] = mapped_column(JSON, default=dict)
    # The similarity sketch of this submission (similarity.Fingerprint.to_json()).
    fingerprint: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
