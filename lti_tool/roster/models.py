"""Users, courses (LTI contexts), resource links and enrolments recorded from launches."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.db import Base, UTCDateTime, utcnow

LEARNER = "learner"
EDUCATOR = "educator"
ADMINISTRATOR = "administrator"
ROLES = (LEARNER, EDUCATOR, ADMINISTRATOR)
# Who may manage a course in the tool: choose its micro-credentials, sync it, see its progress.
COURSE_ROLES = (EDUCATOR, ADMINISTRATOR)

# Enrolment status: as NRPS reports a member (active, inactive, deleted), or "absent" when the
# latest complete roster no longer lists someone the tool knew. A launch sets it back to active.
ACTIVE = "active"
INACTIVE = "inactive"
DELETED = "deleted"
ABSENT = "absent"
STATUSES = (ACTIVE, INACTIVE, DELETED, ABSENT)


class LmsUser(Base):
    """A person as one platform knows them (`sub` is unique per platform, not across them)."""

    __tablename__ = "lms_users"
    __table_args__ = (UniqueConstraint("platform_id", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platforms.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(300), default="")
    given_name: Mapped[str] = mapped_column(String(200), default="")
    family_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # None for people a roster sync created who have never launched the tool.
    last_launch_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def display_name(self) -> str:
        full = " ".join(p for p in (self.given_name, self.family_name) if p)
        return self.name or full or self.email or "(no name given)"


class Course(Base):
    """An LTI context (a course or section) of one platform."""

    __tablename__ = "courses"
    __table_args__ = (UniqueConstraint("platform_id", "context_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platforms.id", ondelete="CASCADE"))
    deployment_id: Mapped[str] = mapped_column(String(255))
    context_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500), default="")
    label: Mapped[str] = mapped_column(String(255), default="")
    # The NRPS context_memberships_url from the latest launch that carried one.
    context_memberships_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    resource_links: Mapped[list[ResourceLink]] = relationship(back_populates="course")


class ResourceLink(Base):
    """A placement of the tool inside a course (an assignment, a module item)."""

    __tablename__ = "resource_links"
    __table_args__ = (UniqueConstraint("course_id", "link_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    link_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500), default="")
    # The AGS line item URL the platform sent for this link, if any.
    lineitem_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    custom: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    course: Mapped[Course] = relationship(back_populates="resource_links")


class Enrollment(Base):
    """A user's role in a course: the LTI roles as sent, and what the tool makes of them."""

    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("user_id", "course_id"),
        # A course's learners (roster sync, progress pages) without scanning every enrolment.
        Index("ix_enrollments_course_id_role", "course_id", "role"),
        CheckConstraint("status IN ('active', 'inactive', 'deleted', 'absent')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_users.id", ondelete="CASCADE"))
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))
    lti_roles: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default=ACTIVE, server_default=ACTIVE)
    # When a roster sync last listed this member (None: only known from launches).
    roster_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
