"""Recently recorded visits (roster.recent): a repeat launch within a minute reads no roster
table, and reads the remembered visit in the round trip that pops its state; a changed launch
is still written; a roster sync voids what its course remembered, so the next launch makes an
enrolment active again; a visit is never remembered past the last launch time's resolution nor
past RECENT_VISIT_TTL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from lti_tool.db import transaction, utcnow
from lti_tool.lti.platforms import find_platform
from lti_tool.roster import models, recent
from lti_tool.roster import sync as roster_sync
from lti_tool.roster.models import Enrollment, LmsUser
from lti_tool.roster.service import (
    LAST_LAUNCH_RESOLUTION,
    CourseInfo,
    LinkInfo,
    PersonInfo,
    Visit,
    record_visit,
)
from tests.conftest import BASE_URL
from tests.support.platform import launch

ROSTER_TABLES = ("lms_users", "courses", "resource_links", "enrollments")
SUBJECT = "recent-visits-learner"


@pytest.fixture
def roster_statements(services):
    """The SQL statements that touch a roster table."""
    seen: list[str] = []

    def listen(conn, cursor, statement, *args):
        if any(table in statement for table in ROSTER_TABLES):
            seen.append(statement)

    event.listen(services.engine, "before_cursor_execute", listen)
    yield seen
    event.remove(services.engine, "before_cursor_execute", listen)


def assert_launched(response) -> None:
    assert response.status_code == 303, response.get_data(as_text=True)[:300]


def enrolment_of(services, subject: str) -> tuple[str, str]:
    """(status, user name) of the person's enrolment."""
    with services.session_factory() as session:
        row = session.execute(
            select(Enrollment.status, LmsUser.name)
            .join(LmsUser, LmsUser.id == Enrollment.user_id)
            .where(LmsUser.subject == subject)
        ).one()
    return row.status, row.name


def test_a_repeat_launch_within_a_minute_reads_no_roster_table(
    client, canvas, roster_statements
):
    assert_launched(launch(client, canvas, BASE_URL, sub=SUBJECT))
    assert roster_statements, "the first launch is recorded in the database"
    roster_statements.clear()
    assert_launched(launch(client, canvas, BASE_URL, sub=SUBJECT))
    assert roster_statements == []


def test_a_repeat_launch_reads_its_visit_with_the_state(client, canvas, services, monkeypatch):
    """One cache round trip: the launch pops its state and nonce and reads the remembered visit
    and the course's mark together."""
    cache = services.cache
    pop_many, get_many = cache.pop_many, cache.get_many
    calls: list[tuple[str, int]] = []

    def pop_and_get(pop, get):
        calls.append(("pop_and_get", len(get)))
        return pop_many(pop), get_many(get)

    def spied_get_many(keys):
        calls.append(("get_many", len(keys)))
        return get_many(keys)

    monkeypatch.setattr(cache, "pop_and_get", pop_and_get)
    monkeypatch.setattr(cache, "get_many", spied_get_many)
    assert_launched(launch(client, canvas, BASE_URL, sub=SUBJECT))
    calls.clear()
    assert_launched(launch(client, canvas, BASE_URL, sub=SUBJECT))
    assert calls == [("pop_and_get", 2)]


def test_a_changed_launch_is_written_though_the_visit_is_remembered(client, canvas, services):
    assert_launched(launch(client, canvas, BASE_URL, sub=SUBJECT))
    assert_launched(launch(client, canvas, BASE_URL, sub=SUBJECT))
    assert_launched(launch(client, canvas, BASE_URL, sub=SUBJECT, name="Ann Renamed"))
    assert enrolment_of(services, SUBJECT) == (models.ACTIVE, "Ann Renamed")


def test_after_a_roster_sync_the_next_launch_makes_the_enrolment_active_again(
    client, canvas, services
):
    assert_launched(launch(client, canvas, BASE_URL, sub=SUBJECT))
    assert_launched(launch(client, canvas, BASE_URL, sub=SUBJECT))  # remembered now
    name = enrolment_of(services, SUBJECT)[1]
    with services.session_factory() as session:
        course_id = session.scalars(select(Enrollment.course_id)).one()
    member = roster_sync.RosterMember(SUBJECT, name=name, status=roster_sync.INACTIVE)
    roster_sync.run_sync(services.session_factory, services.cache, course_id, [[member]])
    assert enrolment_of(services, SUBJECT)[0] == models.INACTIVE

    assert_launched(launch(client, canvas, BASE_URL, sub=SUBJECT))
    assert enrolment_of(services, SUBJECT)[0] == models.ACTIVE


# -- how long a visit is remembered ------------------------------------------------------------
@pytest.fixture
def visit(services, canvas) -> Visit:
    with services.session_factory() as session:
        platform_id = find_platform(session, canvas.issuer, canvas.client_id).id
    return Visit(
        platform_id=platform_id,
        deployment_id="d1",
        person=PersonInfo(SUBJECT, "Ann Lee", "Ann", "Lee", "a@school.example"),
        course=CourseInfo("ctx-1", "Course", "C1"),
        link=LinkInfo("link-1", "Active Listening", None, {"a": "b"}),
        role="learner",
        lti_roles=["Learner"],
    )


def recorded_now(services, visit: Visit):
    with transaction(services.session_factory) as session:
        return record_visit(session, visit)


def test_a_recorded_visit_is_recalled_with_its_ids(services, visit):
    recall = recent.recall_visit(services.cache, visit)
    assert recall is not None and recall.recorded is None
    recorded = recorded_now(services, visit)
    recent.remember_visit(services.cache, recall, recorded)
    again = recent.recall_visit(services.cache, visit)
    assert again is not None and again.recorded is not None
    assert (again.recorded.user_id, again.recorded.course_id, again.recorded.resource_link_id) == (
        recorded.user_id,
        recorded.course_id,
        recorded.resource_link_id,
    )
    other_role = Visit(**{**visit.__dict__, "role": "educator"})
    assert recent.recall_visit(services.cache, other_role).recorded is None


def test_a_visit_is_not_remembered_past_its_last_launch_resolution(services, visit):
    recall = recent.recall_visit(services.cache, visit)
    recorded = recorded_now(services, visit)
    recorded.last_launch_at = utcnow() - LAST_LAUNCH_RESOLUTION + timedelta(seconds=0.5)
    recent.remember_visit(services.cache, recall, recorded)
    assert recent.recall_visit(services.cache, visit).recorded is None


def test_a_remembered_visit_is_void_after_a_minute(services, visit, monkeypatch):
    recall = recent.recall_visit(services.cache, visit)
    recent.remember_visit(services.cache, recall, recorded_now(services, visit))
    assert recent.recall_visit(services.cache, visit).recorded is not None
    later = recall.read_at + recent.RECENT_VISIT_TTL + 1
    monkeypatch.setattr(recent.time, "time", lambda: later)
    assert recent.recall_visit(services.cache, visit).recorded is None


def test_forgetting_a_course_voids_its_visits_only(services, visit):
    other = Visit(**{**visit.__dict__, "course": CourseInfo("ctx-2", "Other", "C2")})
    for each in (visit, other):
        recall = recent.recall_visit(services.cache, each)
        recent.remember_visit(services.cache, recall, recorded_now(services, each))
    recent.forget_course_visits(services.cache, visit.platform_id, "ctx-1")
    assert recent.recall_visit(services.cache, visit).recorded is None
    assert recent.recall_visit(services.cache, other).recorded is not None
