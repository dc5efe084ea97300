"""Record who launched from where: users, courses, resource links and enrolments."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from lti_tool.db import upsert, utcnow
from lti_tool.roster.models import Course, Enrollment, LmsUser, ResourceLink


@dataclass
class PersonInfo:
    subject: str
    name: str = ""
    given_name: str = ""
    family_name: str = ""
    email: str = ""


@dataclass
class CourseInfo:
    context_id: str
    title: str = ""
    label: str = ""


@dataclass
class LinkInfo:
    link_id: str
    title: str = ""
    lineitem_url: str | None = None
    custom: dict = field(default_factory=dict)


@dataclass
class Visit:
    """What one launch told us, already mapped to the tool's role."""

    platform_id: int
    deployment_id: str
    person: PersonInfo | None
    course: CourseInfo | None
    link: LinkInfo | None
    role: str
    lti_roles: list[str]


@dataclass
class RecordedVisit:
    user_id: int | None
    course_id: int | None
    resource_link_id: int | None
    role: str


def record_visit(session: Session, visit: Visit) -> RecordedVisit:
    """Upsert the user, course, link and enrolment a launch reports (idempotent, race-safe)."""
    now = utcnow()
    user_id = course_id = link_id = None
    if visit.person is not None:
        person = visit.person
        user_id = upsert(
            session,
            LmsUser,
            {"platform_id": visit.platform_id, "subject": person.subject},
            {
                "name": person.name,
                "given_name": person.given_name,
                "family_name": person.family_name,
                "email": person.email,
                "last_launch_at": now,
            },
        )
    if visit.course is not None:
        course_id = upsert(
            session,
            Course,
            {"platform_id": visit.platform_id, "context_id": visit.course.context_id},
            {
                "deployment_id": visit.deployment_id,
                "title": visit.course.title,
                "label": visit.course.label,
            },
        )
        if visit.link is not None:
            link_id = upsert(
                session,
                ResourceLink,
                {"course_id": course_id, "link_id": visit.link.link_id},
                {
                    "title": visit.link.title,
                    "lineitem_url": visit.link.lineitem_url,
                    "custom": visit.link.custom,
                },
            )
        if user_id is not None:
            upsert(
                session,
                Enrollment,
                {"user_id": user_id, "course_id": course_id},
                {"role": visit.role, "lti_roles": visit.lti_roles, "updated_at": now},
            )
    return RecordedVisit(user_id, course_id, link_id, visit.role)
