"""The score table: what each learner's line item should show in the LMS gradebook, and how its
delivery through AGS is going.

One row per learner (lms_users) and line item (its URL). The row holds only the latest desired
state, with a `version` that grows on every change: delivering the row delivers that version,
so any number of changes before a delivery cost one post (coalescing), and a post that lands
after a newer change does not mark the row delivered (compare-and-set on `version`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lti_tool.db import Base, UTCDateTime, utcnow

PENDING = "pending"
DELIVERING = "delivering"
DELIVERED = "delivered"
FAILED = "failed"  # gave up (a 4xx, or too many tries): shown on /admin/grades, retried on demand
STATUSES = (PENDING, DELIVERING, DELIVERED, FAILED)

# What a row stands for: a micro-credential attempt's line item, or a stack's.
SOURCE_ATTEMPT = "attempt"
SOURCE_STACK = "stack"


class Score(Base):
    """The desired AGS score of one learner on one line item, and its delivery state."""

    __tablename__ = "gradebook_scores"
    __table_args__ = (
        UniqueConstraint("user_id", "lineitem_url"),
        CheckConstraint(
            "status IN ('pending', 'delivering', 'delivered', 'failed')", name="status"
        ),
        CheckConstraint("source IN ('attempt', 'stack')", name="source"),
        # The delivery job and the sweep read due rows without scanning delivered ones.
        Index("ix_gradebook_scores_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_users.id", ondelete="CASCADE"))
    platform_id: Mapped[int] = mapped_column(
        ForeignKey("platforms.id", ondelete="CASCADE"), index=True
    )
    resource_link_id: Mapped[int | None] = mapped_column(
        ForeignKey("resource_links.id", ondelete="SET NULL"), nullable=True
    )
    lineitem_url: Mapped[str] = mapped_column(String(1000))
    source: Mapped[str] = mapped_column(String(20), default=SOURCE_ATTEMPT)
    # The attempt (evidence_attempts.id) whose state this is.
    attempt_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    # Order of states: attempt number * 10 + stage (submitted 1, withdrawn 2, revise 3,
    # earned 4); a state of lower rank never replaces one of higher rank.
    rank: Mapped[int] = mapped_column(Integer, default=0)
    stack_id: Mapped[int | None] = mapped_column(
        ForeignKey("stacks.id", ondelete="SET NULL"), nullable=True
    )

    # -- the desired state (AGS Score) ----------------------------------------------------
    activity_progress: Mapped[str] = mapped_column(String(20))
    grading_progress: Mapped[str] = mapped_column(String(20))
    score_given: Mapped[float | None] = mapped_column(Float, nullable=True)
    score_maximum: Mapped[float | None] = mapped_column(Float, nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    # Canvas submission extension data ({"submission_type", "submission_data", "submitted_at"});
    # `new_submission` is decided when posting (true once per learner and line item).
    submission: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # AGS timestamp of this state: strictly increasing per row, microseconds and UTC zone.
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)

    # -- delivery -------------------------------------------------------------------------
    status: Mapped[str] = mapped_column(String(20), default=PENDING, server_default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # While delivering: when the claim lapses (a killed worker's rows are claimed again).
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The last comment the platform received (Canvas adds a submission comment per post: an
    # unchanged comment is not sent again).
    delivered_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The version that carried Canvas's new_submission=true (one submission, one attempt used).
    submission_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
