"""Recording launches: repeat launches that change nothing cost one read and no write; any
change, and a stale last-launch time, are written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, update

from lti_tool.db import transaction, utcnow
from lti_tool.roster import service
from lti_tool.roster.models import LmsUser
from lti_tool.roster.service import CourseInfo, LinkInfo, PersonInfo, Visit, record_visit


@pytest.fixture
def platform_id(services, canvas):
    from lti_tool.lti.platforms import find_platform

    with services.session_factory() as session:
        return find_platform(session, canvas.issuer, canvas.client_id).id


def visit(platform_id: int, email: str = "a@school.example", role: str = "learner") -> Visit:
    return Visit(
        platform_id=platform_id,
        deployment_id="d1",
        person=PersonInfo("sub-1", "Ann Lee", "Ann", "Lee", email),
        course=CourseInfo("ctx-1", "Course", "C1"),
        link=LinkInfo("link-1", "Active Listening", "https://lms/li/1?type_id=1", {"a": "b"}),
        role=role,
        lti_roles=["Learner"],
    )


@pytest.fixture
def writes(services):
    """The INSERT/UPDATE statements the database receives."""
    seen: list[str] = []

    def listen(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            seen.append(statement)

    event.listen(services.engine, "before_cursor_execute", listen)
    yield seen
    event.remove(services.engine, "before_cursor_execute", listen)


def test_repeat_launch_writes_nothing(services, platform_id, writes):
    with transaction(services.session_factory) as session:
        first = record_visit(session, visit(platform_id))
    assert len(writes) == 4  # user, course, link, enrolment
    writes.clear()
    with transaction(services.session_factory) as session:
        again = record_visit(session, visit(platform_id))
    assert writes == []
    assert again == first


@pytest.mark.parametrize(
    "changed",
    [{"email": "new@school.example"}, {"role": "educator"}],
    ids=["new email", "new role"],
)
def test_a_change_is_written(services, platform_id, writes, changed):
    with transaction(services.session_factory) as session:
        first = record_visit(session, visit(platform_id))
    writes.clear()
    with transaction(services.session_factory) as session:
        again = record_visit(session, visit(platform_id, **changed))
    assert writes, "a changed launch must be recorded"
    assert again.user_id == first.user_id
    with services.session_factory() as session:
        user = session.get(LmsUser, first.user_id)
        assert user.email == changed.get("email", "a@school.example")


def test_a_stale_last_launch_time_is_refreshed(services, platform_id, writes):
    with transaction(services.session_factory) as session:
        first = record_visit(session, visit(platform_id))
    stale = utcnow() - service.LAST_LAUNCH_RESOLUTION - timedelta(seconds=5)
    with transaction(services.session_factory) as session:
        session.execute(update(LmsUser).values(last_launch_at=stale))
    writes.clear()
    with transaction(services.session_factory) as session:
        record_visit(session, visit(platform_id))
    assert writes
    with services.session_factory() as session:
        assert session.get(LmsUser, first.user_id).last_launch_at > stale


def newcomer(platform_id: int, subject: str, **link_changes) -> Visit:
    seen = visit(platform_id)
    seen.person = PersonInfo(subject, "Bo Kim", "Bo", "Kim", f"{subject}@school.example")
    for name, value in link_changes.items():
        setattr(seen.link, name, value)
    return seen


def test_a_newcomer_in_a_known_course_writes_only_their_user_and_enrolment(
    services, platform_id, writes
):
    """Rewriting the unchanged course row would hold its lock until commit: every first launch
    in a course would wait for the others'."""
    with transaction(services.session_factory) as session:
        first = record_visit(session, visit(platform_id))
    writes.clear()
    with transaction(services.session_factory) as session:
        second = record_visit(session, newcomer(platform_id, "sub-2"))
    tables = sorted(statement.split()[2] for statement in writes)
    assert tables == ["enrollments", "lms_users"], writes
    assert (second.course_id, second.resource_link_id) == (first.course_id, first.resource_link_id)
    assert second.user_id != first.user_id


def test_a_newcomer_reporting_a_changed_link_writes_it(services, platform_id, writes):
    with transaction(services.session_factory) as session:
        first = record_visit(session, visit(platform_id))
    writes.clear()
    with transaction(services.session_factory) as session:
        second = record_visit(session, newcomer(platform_id, "sub-3", title="Renamed"))
    tables = sorted(statement.split()[2] for statement in writes)
    assert tables == ["enrollments", "lms_users", "resource_links"], writes
    assert second.resource_link_id == first.resource_link_id
    with services.session_factory() as session:
        from lti_tool.roster.models import ResourceLink

        assert session.get(ResourceLink, first.resource_link_id).title == "Renamed"
