"""Record who launched from where: users, courses, resource links and enrolments."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from lti_tool.db import upsert, utcnow
from lti_tool.roster.models import ACTIVE, Course, Enrollment, LmsUser, ResourceLink


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
    # The NRPS context_memberships_url, when the launch offered the roster service. A launch
    # without one leaves the course's recorded URL as it is.
    context_memberships_url: str | None = None


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
    # The user's last launch time in the database, when it was just read or written (how long
    # the visit may be remembered: roster.recent).
    last_launch_at: datetime | None = None


# A repeat launch that changes nothing writes nothing, unless the user's last launch time is
# older than this: a learner relaunching all day costs one read, not a write transaction.
LAST_LAUNCH_RESOLUTION = timedelta(minutes=5)


def record_visit(session: Session, visit: Visit, *, known_changed: bool = False) -> RecordedVisit:
    """Upsert the user, course, link and enrolment a launch reports (idempotent, race-safe).

    The launch makes the enrolment active again (whatever a roster sync marked it).
    `known_changed`: unchanged_visit has just said the database differs; do not read again.
    """
    now = utcnow()
    if not known_changed:
        unchanged = _unchanged_visit(session.connection(), visit, now)
        if unchanged is not None:
            return unchanged
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
        course_values = {
            "deployment_id": visit.deployment_id,
            "title": visit.course.title,
            "label": visit.course.label,
        }
        if visit.course.context_memberships_url:
            course_values["context_memberships_url"] = visit.course.context_memberships_url
        link_values = (
            {
                "title": visit.link.title,
                "lineitem_url": visit.link.lineitem_url,
                "custom": visit.link.custom,
            }
            if visit.link is not None
            else None
        )
        course_id, link_id = _recorded_as_reported(session, visit, course_values, link_values)
        if course_id is None:
            course_id = upsert(
                session,
                Course,
                {"platform_id": visit.platform_id, "context_id": visit.course.context_id},
                course_values,
            )
        if visit.link is not None and link_id is None:
            link_id = upsert(
                session,
                ResourceLink,
                {"course_id": course_id, "link_id": visit.link.link_id},
                link_values,
            )
        if user_id is not None:
            upsert(
                session,
                Enrollment,
                {"user_id": user_id, "course_id": course_id},
                {
                    "role": visit.role,
                    "lti_roles": visit.lti_roles,
                    "status": ACTIVE,
                    "updated_at": now,
                },
            )
    last_launch_at = now if user_id is not None else None
    return RecordedVisit(user_id, course_id, link_id, visit.role, last_launch_at)


# What is recorded of a launch's course and link (both queries below read these).
_COURSE_AND_LINK_COLUMNS = (
    Course.id.label("course_id"),
    Course.deployment_id,
    Course.title.label("course_title"),
    Course.label,
    Course.context_memberships_url,
    ResourceLink.id.label("link_id"),
    ResourceLink.title.label("link_title"),
    ResourceLink.lineitem_url,
    ResourceLink.custom,
)
# The course and link of a launch as recorded (the link's columns None when it has none yet).
_RECORDED_COURSE_AND_LINK = (
    select(*_COURSE_AND_LINK_COLUMNS)
    .outerjoin(
        ResourceLink,
        (ResourceLink.course_id == Course.id) & (ResourceLink.link_id == bindparam("link_id")),
    )
    .where(
        Course.platform_id == bindparam("platform_id"),
        Course.context_id == bindparam("context_id"),
    )
)


def _recorded_as_reported(
    session: Session, visit: Visit, course_values: dict, link_values: dict | None
) -> tuple[int | None, int | None]:
    """The ids of the launch's course and link where the database already holds exactly what
    the launch reports (None where it must be written). A newcomer's first launch in a known
    course then writes only their user and enrolment: rewriting the unchanged course row would
    hold its lock until commit, and every first launch in the course would wait on it."""
    assert visit.course is not None
    row = (
        session.connection()
        .execute(
            _RECORDED_COURSE_AND_LINK,
            {
                "platform_id": visit.platform_id,
                "context_id": visit.course.context_id,
                "link_id": visit.link.link_id if visit.link is not None else "",
            },
        )
        .first()
    )
    if row is None:
        return None, None
    recorded_course = {
        "deployment_id": row.deployment_id,
        "title": row.course_title,
        "label": row.label,
        "context_memberships_url": row.context_memberships_url,
    }
    same_course = all(recorded_course[name] == value for name, value in course_values.items())
    if not same_course:
        return None, None
    if row.link_id is None or link_values is None:
        return row.course_id, None
    recorded_link = {
        "title": row.link_title,
        "lineitem_url": row.lineitem_url,
        "custom": row.custom,
    }
    return row.course_id, (row.link_id if recorded_link == link_values else None)


# Built once: building this select (18 columns, 3 joins) cost more than running it.
_RECORDED_VISIT = (
    select(
        LmsUser.id.label("user_id"),
        LmsUser.name,
        LmsUser.given_name,
        LmsUser.family_name,
        LmsUser.email,
        LmsUser.last_launch_at,
        *_COURSE_AND_LINK_COLUMNS,
        Enrollment.role,
        Enrollment.lti_roles,
        Enrollment.status,
    )
    .join(Course, Course.platform_id == LmsUser.platform_id)
    .join(ResourceLink, ResourceLink.course_id == Course.id)
    .join(Enrollment, (Enrollment.user_id == LmsUser.id) & (Enrollment.course_id == Course.id))
    .where(
        LmsUser.platform_id == bindparam("platform_id"),
        LmsUser.subject == bindparam("subject"),
        Course.context_id == bindparam("context_id"),
        ResourceLink.link_id == bindparam("link_id"),
    )
)


def unchanged_visit(engine: Engine, visit: Visit) -> RecordedVisit | None:
    """The recorded ids when a repeat launch has nothing to write, else None (then record_visit).

    One read outside any transaction (autocommit): a repeat launch, the usual one, then costs
    one statement and one round trip instead of BEGIN, SELECT and COMMIT on an ORM session.
    """
    with _autocommit(engine).connect() as connection:
        return _unchanged_visit(connection, visit, utcnow())


@functools.lru_cache(maxsize=16)
def _autocommit(engine: Engine) -> Engine:
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _unchanged_visit(connection, visit: Visit, now: datetime) -> RecordedVisit | None:
    """The recorded ids when the database already says exactly what this launch says (one read).

    Only for the usual launch (a person in a course through a link); anything new or different
    goes through the upserts.
    """
    person, course, link = visit.person, visit.course, visit.link
    if person is None or course is None or link is None:
        return None
    row = connection.execute(
        _RECORDED_VISIT,
        {
            "platform_id": visit.platform_id,
            "subject": person.subject,
            "context_id": course.context_id,
            "link_id": link.link_id,
        },
    ).first()
    if row is None:
        return None
    # A launch without a memberships URL keeps the recorded one: no change to write.
    memberships_url = course.context_memberships_url or row.context_memberships_url
    recorded = (
        row.name, row.given_name, row.family_name, row.email,
        row.deployment_id, row.course_title, row.label, row.context_memberships_url,
        row.link_title, row.lineitem_url, row.custom, row.role, row.lti_roles, row.status,
    )  # fmt: skip
    reported = (
        person.name, person.given_name, person.family_name, person.email,
        visit.deployment_id, course.title, course.label, memberships_url,
        link.title, link.lineitem_url, link.custom, visit.role, visit.lti_roles, ACTIVE,
    )  # fmt: skip
    last_launch = row.last_launch_at
    if recorded != reported or last_launch is None or last_launch < now - LAST_LAUNCH_RESOLUTION:
        return None
    return RecordedVisit(row.user_id, row.course_id, row.link_id, visit.role, last_launch)
