"""Roster sync from NRPS against a fake platform: pages followed through Link headers with a
limit, Canvas- and Moodle-shaped members, members without e-mail, Deleted and Inactive members,
absent ones, each marked in enrollments.status (a launch makes it active again); a constant
number of SQL statements per page; the memberships URL a launch gives kept on the course; the
educator's roster box and its progress; one sync per course; learners refused."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import event, select, update

from lti_tool.db import transaction
from lti_tool.lti import nrps
from lti_tool.lti.platforms import find_platform
from lti_tool.roster import sync as roster_sync
from lti_tool.roster.models import Course, Enrollment, LmsUser
from lti_tool.roster.service import CourseInfo, LinkInfo, PersonInfo, Visit, record_visit
from tests.conftest import BASE_URL
from tests.support.advantage import (
    Failure,
    Roster,
    attach_fake_lms,
    canvas_member,
    moodle_member,
)
from tests.support.platform import INSTRUCTOR, LEARNER, NRPS, TA, launch

CANVAS_CONTEXT = "4dde05e8ca1973bcca9bffc13e1548820eee93a3"  # what canvas_claims launches from
ROSTER_TABLES = ("lms_users", "enrollments", "courses")


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture
def canvas_lms(services, canvas, tool_jwks):
    fake = attach_fake_lms(services, canvas)
    yield fake
    fake.stop()


@pytest.fixture
def moodle_lms(services, moodle, tool_jwks):
    fake = attach_fake_lms(services, moodle)
    yield fake
    fake.stop()


def platform_id_of(services, test_platform) -> int:
    with services.session_factory() as session:
        return find_platform(session, test_platform.issuer, test_platform.client_id).id


def enrol(services, platform_id: int, context_id: str, subject: str, role: str = "learner", **p):
    """A launch's record of one person in a course; returns (user id, course id)."""
    with transaction(services.session_factory) as session:
        recorded = record_visit(
            session,
            Visit(
                platform_id=platform_id,
                deployment_id="1",
                person=PersonInfo(subject, **p),
                course=CourseInfo(context_id, "Course"),
                link=LinkInfo("link-1", "Active Listening"),
                role=role,
                lti_roles=["Learner"],
            ),
        )
    return recorded.user_id, recorded.course_id


def roster_of(services, course_id: int) -> dict[str, tuple]:
    """subject -> (role, name, email, lti_roles) of every enrolment of a course."""
    with services.session_factory() as session:
        rows = session.execute(
            select(
                LmsUser.subject, Enrollment.role, LmsUser.name, LmsUser.email, Enrollment.lti_roles
            )
            .join(Enrollment, Enrollment.user_id == LmsUser.id)
            .where(Enrollment.course_id == course_id)
        )
        return {r.subject: (r.role, r.name, r.email, r.lti_roles) for r in rows}


def statuses_of(services, course_id: int) -> dict[str, tuple]:
    """subject -> (enrolment status, roster synced?, ever launched?) of every enrolment."""
    with services.session_factory() as session:
        rows = session.execute(
            select(
                LmsUser.subject,
                Enrollment.status,
                Enrollment.roster_synced_at,
                LmsUser.last_launch_at,
            )
            .join(Enrollment, Enrollment.user_id == LmsUser.id)
            .where(Enrollment.course_id == course_id)
        )
        return {
            r.subject: (r.status, r.roster_synced_at is not None, r.last_launch_at is not None)
            for r in rows
        }


def canvas_roster() -> list[dict]:
    """25 members in the Canvas shape, with the awkward cases."""
    members = [canvas_member(n) for n in range(25)]
    members[0] = canvas_member(0, "Instructor")
    members[1] = canvas_member(1, roles=[TA])
    members[2] = {k: v for k, v in canvas_member(2).items() if k not in ("email", "name")}
    members[3] = canvas_member(3, status="Deleted")
    members[4] = canvas_member(4, status="Inactive")
    return members


@pytest.fixture
def statements(services):
    """SQL statements the database receives (text), while the fixture is active."""
    seen: list[str] = []

    def listen(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(services.engine, "before_cursor_execute", listen)
    yield seen
    event.remove(services.engine, "before_cursor_execute", listen)


def on_roster_tables(statements: list[str]) -> list[str]:
    return [s for s in statements if any(table in s for table in ROSTER_TABLES)]


# -- paging and mapping -----------------------------------------------------------------------
def test_canvas_roster_in_three_pages_through_link_headers(services, canvas, canvas_lms):
    platform_id = platform_id_of(services, canvas)
    _, course_id = enrol(services, platform_id, CANVAS_CONTEXT, "canvas-00003-5f0c")
    # A launch told us member 2's e-mail; the roster (privacy settings) does not: it stays.
    enrol(services, platform_id, CANVAS_CONTEXT, "canvas-00002-5f0c", email="two@school.example")
    enrol(services, platform_id, CANVAS_CONTEXT, "left-the-course")
    members = [*canvas_roster(), {"status": "Active", "name": "No id", "roles": []}]
    canvas_lms.rosters[CANVAS_CONTEXT] = Roster(CANVAS_CONTEXT, members, "canvas", max_limit=10)

    url = canvas_lms.memberships_url(CANVAS_CONTEXT)
    result = nrps.sync_course_roster(services, course_id, url)

    assert (result.state, result.pages, result.members) == ("done", 3, 25)
    # The tool asked for its limit; Canvas capped it at 10 and linked the next pages.
    assert len(canvas_lms.nrps_requests) == 3
    first = parse_qs(urlsplit(canvas_lms.nrps_requests[0]).query)
    assert first["limit"] == [str(nrps.DEFAULT_LIMIT)]
    assert [parse_qs(urlsplit(r).query).get("page") for r in canvas_lms.nrps_requests] == [
        None,
        ["2"],
        ["3"],
    ]
    assert canvas_lms.total_token_requests() == 1

    roster = roster_of(services, course_id)
    assert roster["canvas-00000-5f0c"][0] == "educator"
    assert roster["canvas-00001-5f0c"][0] == "educator"  # a TA is an Instructor sub-role
    assert roster["canvas-00002-5f0c"][:3] == ("learner", "", "two@school.example")
    assert roster["canvas-00004-5f0c"][0] == "learner"  # inactive: kept, marked
    assert roster["canvas-00010-5f0c"] == (
        "learner",
        "Canvas Person 10",
        "person10@school.example",
        ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
    )
    assert roster["canvas-00003-5f0c"][0] == "learner"  # deleted: the enrolment stays
    assert roster["left-the-course"][0] == "learner"
    assert len(roster) == 26  # 25 members (one Deleted, already known) + the one who left

    statuses = statuses_of(services, course_id)
    # Listed by the sync; launched (3 and 2) or not (the others, created by the sync).
    assert statuses["canvas-00003-5f0c"] == ("deleted", True, True)
    assert statuses["canvas-00004-5f0c"] == ("inactive", True, False)
    assert statuses["canvas-00002-5f0c"] == ("active", True, True)
    assert statuses["canvas-00010-5f0c"] == ("active", True, False)
    assert statuses["left-the-course"] == ("absent", False, True)
    assert sum(1 for status, *_ in statuses.values() if status == "active") == 23
    assert (result.deleted, result.inactive, result.absent) == (1, 1, 1)
    with services.session_factory() as session:
        assert roster_sync.status_counts(session, course_id) == {
            "active": 23,
            "inactive": 1,
            "deleted": 1,
            "absent": 1,
        }
    assert services.cache.get(f"roster-marks:{course_id}") is None  # no marks in the cache

    # Whoever launches again is active again.
    for subject in ("left-the-course", "canvas-00003-5f0c"):
        enrol(services, platform_id, CANVAS_CONTEXT, subject)
    statuses = statuses_of(services, course_id)
    assert statuses["left-the-course"][0] == statuses["canvas-00003-5f0c"][0] == "active"


def test_a_deleted_member_never_known_is_not_added(services, canvas, canvas_lms):
    _, course_id = enrol(services, platform_id_of(services, canvas), CANVAS_CONTEXT, "teacher")
    canvas_lms.rosters[CANVAS_CONTEXT] = Roster(
        CANVAS_CONTEXT, [canvas_member(1), canvas_member(2, status="Deleted")]
    )
    nrps.sync_course_roster(services, course_id, canvas_lms.memberships_url(CANVAS_CONTEXT))
    assert set(roster_of(services, course_id)) == {"teacher", "canvas-00001-5f0c"}
    with services.session_factory() as session:
        assert session.scalar(select(LmsUser).where(LmsUser.subject == "canvas-00002-5f0c")) is None
    statuses = statuses_of(services, course_id)
    assert statuses["teacher"] == ("absent", False, True)
    assert statuses["canvas-00001-5f0c"] == ("active", True, False)


def test_moodle_roster_with_relative_links_and_from(services, moodle, moodle_lms):
    _, course_id = enrol(services, platform_id_of(services, moodle), "2", "99")
    members = [moodle_member(n) for n in range(2, 30)]
    members[0] = moodle_member(2, "Instructor")
    members[1] = moodle_member(3, roles=["Instructor"])  # the short form
    members[2] = {k: v for k, v in moodle_member(4).items() if k != "email"}
    members[3] = {k: v for k, v in moodle_member(5).items() if k != "status"}
    members[4] = moodle_member(6, roles=[])  # no role at all: least privilege
    moodle_lms.rosters["2"] = Roster("2", members, "moodle")
    url = moodle_lms.memberships_url("2") + "?type_id=1"

    result = nrps.sync_course_roster(services, course_id, url, limit=10)

    assert (result.state, result.pages, result.members) == ("done", 3, 28)
    first, second, third = moodle_lms.nrps_requests
    assert parse_qs(urlsplit(first).query) == {"type_id": ["1"], "limit": ["10"]}
    assert parse_qs(urlsplit(second).query) == {"limit": ["10"], "from": ["10"]}
    assert parse_qs(urlsplit(third).query) == {"limit": ["10"], "from": ["20"]}
    roster = roster_of(services, course_id)
    assert roster["2"][0] == roster["3"][0] == "educator"
    assert roster["4"][2] == "" and roster["5"][0] == roster["6"][0] == "learner"
    assert len(roster) == 29  # 28 members + "99", who launched and is absent from the roster
    assert result.absent == 1


def test_a_roster_of_another_context_is_refused(services, canvas, canvas_lms):
    _, course_id = enrol(services, platform_id_of(services, canvas), CANVAS_CONTEXT, "teacher")
    canvas_lms.rosters["other"] = Roster("other", [canvas_member(1)])
    with pytest.raises(nrps.RosterSourceError, match="belongs to context other"):
        nrps.sync_course_roster(services, course_id, canvas_lms.memberships_url("other"))
    state = roster_sync.progress(services.cache, course_id)
    assert state.state == "failed" and "context other" in state.error
    assert set(roster_of(services, course_id)) == {"teacher"}


def test_a_page_that_fails_once_is_fetched_again(services, canvas, canvas_lms):
    _, course_id = enrol(services, platform_id_of(services, canvas), CANVAS_CONTEXT, "teacher")
    canvas_lms.rosters[CANVAS_CONTEXT] = Roster(CANVAS_CONTEXT, canvas_roster(), max_limit=10)
    canvas_lms.fail_next(Failure(503))
    result = nrps.sync_course_roster(
        services, course_id, canvas_lms.memberships_url(CANVAS_CONTEXT)
    )
    assert (result.state, result.pages) == ("done", 3)
    assert len(canvas_lms.nrps_requests) == 4


# -- statements per page ------------------------------------------------------------------------
def run_sized(services, canvas, canvas_lms, statements, size: int) -> list[str]:
    """Sync a fresh course of 3 pages of `size` members; the roster statements it made."""
    context = "ctx-" + uuid.uuid4().hex[:8]
    _, course_id = enrol(services, platform_id_of(services, canvas), context, "teacher-" + context)
    members = [canvas_member(n) for n in range(3 * size)]
    for page in range(3):  # the same awkward cases on every page, whatever its size
        members[page * size] = canvas_member(page * size, status="Deleted")
        members[page * size + 1] = canvas_member(page * size + 1, status="Inactive")
    canvas_lms.rosters[context] = Roster(context, members)
    statements.clear()
    result = nrps.sync_course_roster(
        services, course_id, canvas_lms.memberships_url(context), limit=size
    )
    assert (result.state, result.pages, result.members) == ("done", 3, 3 * size)
    return list(statements)


def test_statements_per_page_do_not_grow_with_the_page_size(
    services, canvas, canvas_lms, statements
):
    run_sized(services, canvas, canvas_lms, statements, 2)  # warms the access token
    small = run_sized(services, canvas, canvas_lms, statements, 10)
    large = run_sized(services, canvas, canvas_lms, statements, 400)
    assert len(large) == len(small)
    assert len(on_roster_tables(large)) == len(on_roster_tables(small))
    # Per page: users, enrolments, the Deleted lookup; once: the course (read by the sync and by
    # the NRPS reader) and the query of who was absent.
    assert len(on_roster_tables(large)) == 3 * 3 + 3


def test_apply_page_uses_three_statements_for_any_page(services, canvas, statements):
    platform_id = platform_id_of(services, canvas)
    _, course_id = enrol(services, platform_id, "ctx-apply", "someone")
    counts = []
    for size in (5, 1000):
        members = [
            roster_sync.RosterMember(f"s{size}-{n}", name=f"P {n}", email=f"p{n}@x.example")
            for n in range(size)
        ]
        members.append(roster_sync.RosterMember("someone", status="Deleted"))
        statements.clear()
        with transaction(services.session_factory) as session:
            outcome = roster_sync.apply_page(session, platform_id, course_id, members)
        counts.append(len(on_roster_tables(statements)))
        assert outcome.written == size and len(outcome.deleted_user_ids) == 1
    assert counts == [3, 3]


# -- the memberships URL: kept on the course by launches ------------------------------------------
def writes_in(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]


def test_the_launch_record_keeps_the_memberships_url(services, canvas, statements):
    platform_id = platform_id_of(services, canvas)

    def record(url: str | None) -> int:
        statements.clear()
        with transaction(services.session_factory) as session:
            recorded = record_visit(
                session,
                Visit(
                    platform_id=platform_id,
                    deployment_id="1",
                    person=PersonInfo("sub-url", "Ann Lee"),
                    course=CourseInfo("ctx-url", "Course", "C1", url),
                    link=LinkInfo("link-url", "Active Listening"),
                    role="learner",
                    lti_roles=["Learner"],
                ),
            )
        return recorded.course_id

    def stored(course_id: int) -> str | None:
        with services.session_factory() as session:
            return session.get(Course, course_id).context_memberships_url

    first, second = "https://lms.example/nrps/1", "https://lms.example/nrps/2?type_id=1"
    course_id = record(first)
    assert stored(course_id) == first and writes_in(statements)
    record(first)  # the same launch again: one read, no write
    assert writes_in(statements) == [] and len(statements) == 1
    record(None)  # a launch without the roster service keeps the URL, and writes nothing
    assert writes_in(statements) == [] and stored(course_id) == first
    record(second)  # a new URL is written
    assert writes_in(statements) and stored(course_id) == second
    # A status a sync left makes the next launch write: active again.
    with transaction(services.session_factory) as session:
        session.execute(update(Enrollment).values(status="absent"))
    record(second)
    assert writes_in(statements)
    with services.session_factory() as session:
        assert session.scalars(select(Enrollment.status)).all() == ["active"]


def test_a_launch_stores_the_memberships_url_on_the_course(
    app, client, services, canvas, canvas_lms
):
    educator_launch(client, canvas, canvas_lms)
    course_id = course_id_of(services, canvas)
    with services.session_factory() as session:
        course = session.get(Course, course_id)
        assert course.context_memberships_url == canvas_lms.memberships_url(CANVAS_CONTEXT)
    # The roster box knows the service is there, from the database (not the cache).
    token = educator_launch(client, canvas, canvas_lms)
    assert client.get("/course/roster/status", query_string={"lt": token}).get_json()["service"]
    # A sync started from the page later uses it, however long after the launch.
    canvas_lms.rosters[CANVAS_CONTEXT] = Roster(CANVAS_CONTEXT, canvas_roster())
    result = nrps.sync_course_roster(services, course_id)
    assert (result.state, result.members) == ("done", 25)


def test_a_course_without_a_memberships_url_cannot_sync(services, canvas, canvas_lms):
    _, course_id = enrol(services, platform_id_of(services, canvas), "ctx-none", "teacher")
    with pytest.raises(nrps.RosterSourceError, match="has not offered its roster service"):
        nrps.sync_course_roster(services, course_id)
    assert roster_sync.progress(services.cache, course_id).state == "failed"


# -- the one-sync-per-course lock ----------------------------------------------------------------
def test_a_second_sync_does_not_start_while_one_runs(services, canvas, canvas_lms):
    _, course_id = enrol(services, platform_id_of(services, canvas), CANVAS_CONTEXT, "teacher")
    canvas_lms.rosters[CANVAS_CONTEXT] = Roster(CANVAS_CONTEXT, canvas_roster())
    held = roster_sync.claim(services.cache, course_id)
    assert held is not None
    assert roster_sync.claim(services.cache, course_id) is None
    nrps.sync_course_roster(services, course_id, canvas_lms.memberships_url(CANVAS_CONTEXT))
    assert canvas_lms.nrps_requests == []  # the lock's holder runs, nobody else
    # The holder's job runs and frees the lock when done.
    done = nrps.sync_course_roster(
        services, course_id, canvas_lms.memberships_url(CANVAS_CONTEXT), lock_token=held
    )
    assert done.state == "done"
    assert roster_sync.claim(services.cache, course_id) is not None


# -- the web: educators sync, learners are refused --------------------------------------------
def lt_of(response) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return parse_qs(urlsplit(response.headers["Location"]).query)["lt"][0]


def educator_launch(client, canvas, canvas_lms) -> str:
    claim = {
        "context_memberships_url": canvas_lms.memberships_url(CANVAS_CONTEXT),
        "service_versions": ["2.0"],
    }
    return lt_of(launch(client, canvas, BASE_URL, roles=[INSTRUCTOR], **{NRPS: claim}))


def course_id_of(services, canvas) -> int:
    with services.session_factory() as session:
        return session.scalar(select(Course.id).where(Course.context_id == CANVAS_CONTEXT))


def test_educator_syncs_from_the_course_page_and_sees_the_result(
    app, client, services, canvas, canvas_lms
):
    canvas_lms.rosters[CANVAS_CONTEXT] = Roster(CANVAS_CONTEXT, canvas_roster(), max_limit=10)
    token = educator_launch(client, canvas, canvas_lms)
    client.delete_cookie("lti_tool_session", domain="tool.test")  # as inside a strict iframe

    page = client.get("/home", query_string={"lt": token}).get_data(as_text=True)
    assert 'id="roster"' in page and "Sync roster from the LMS" in page
    assert f'name="lt" value="{token}"' in page
    assert "Never synced" in page
    course_id = course_id_of(services, canvas)
    with services.session_factory() as session:
        assert roster_sync.course_memberships_url(session, course_id) == (
            canvas_lms.memberships_url(CANVAS_CONTEXT)
        )

    response = client.post("/course/roster/sync", data={"lt": token})
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/home" and parse_qs(location.query)["roster"] == ["started"]
    assert parse_qs(location.query)["lt"] == [token]

    status = client.get("/course/roster/status", query_string={"lt": token})
    assert status.status_code == 200
    body = status.get_json()
    assert body["sync"]["state"] == "done" and body["running"] is False
    assert (body["sync"]["pages"], body["sync"]["members"]) == (3, 25)
    assert body["learners"] == 22  # 25 - instructor - TA - the Deleted one (never known)

    page = client.get("/home", query_string={"lt": token}).get_data(as_text=True)
    assert "Done: 25 members in 3 pages" in page
    assert '<dd id="roster-learners">22</dd>' in page
    assert 'data-running="false"' in page


def test_the_page_shows_a_running_sync_and_polls_its_status(
    app, client, services, canvas, canvas_lms
):
    token = educator_launch(client, canvas, canvas_lms)
    course_id = course_id_of(services, canvas)
    assert roster_sync.claim(services.cache, course_id)
    state = roster_sync.SyncProgress(state="running", pages=2, members=1000)
    services.cache.set(f"roster-sync:{course_id}", state.to_dict())

    page = client.get("/home", query_string={"lt": token}).get_data(as_text=True)
    assert "Running: 2 pages, 1000 members so far" in page
    assert 'data-running="true"' in page
    assert "/course/roster/status?lt=" in page and "setTimeout(poll" in page
    assert 'id="roster-sync" disabled' in page

    response = client.post("/course/roster/sync", data={"lt": token})
    assert parse_qs(urlsplit(response.headers["Location"]).query)["roster"] == ["running"]
    assert canvas_lms.nrps_requests == []
    assert client.get("/course/roster/status", query_string={"lt": token}).get_json()["running"]


def test_an_interrupted_sync_is_shown_as_failed(app, client, services, canvas, canvas_lms):
    token = educator_launch(client, canvas, canvas_lms)
    course_id = course_id_of(services, canvas)
    state = roster_sync.SyncProgress(state="running", pages=2, members=1000)
    services.cache.set(f"roster-sync:{course_id}", state.to_dict())  # and no lock: it died
    body = client.get("/course/roster/status", query_string={"lt": token}).get_json()
    assert (
        body["sync"]["state"] == "failed" and "stopped before it finished" in body["sync"]["error"]
    )


def test_a_platform_refusal_is_shown_with_its_reason(app, client, services, canvas, canvas_lms):
    canvas_lms.rosters[CANVAS_CONTEXT] = Roster(CANVAS_CONTEXT, canvas_roster())
    token = educator_launch(client, canvas, canvas_lms)
    refusal = {"errors": [{"message": "Requested scope is not allowed for this developer key"}]}
    canvas_lms.fail_next(Failure(403, body=refusal))

    response = client.post("/course/roster/sync", data={"lt": token})
    assert parse_qs(urlsplit(response.headers["Location"]).query)["roster"] == ["failed"]
    page = client.get("/home", query_string={"lt": token}).get_data(as_text=True)
    assert "Failed after 0 pages" in page
    assert "HTTP 403: Requested scope is not allowed for this developer key" in page
    assert len(canvas_lms.nrps_requests) == 1  # a 403 is not retried
    assert roster_sync.claim(services.cache, course_id_of(services, canvas)) is not None


def test_a_launch_without_the_roster_service_says_so(app, client, services, moodle, moodle_lms):
    token = lt_of(launch(client, moodle, BASE_URL, shape="moodle", roles=[INSTRUCTOR]))
    response = client.post("/course/roster/sync", data={"lt": token})
    assert parse_qs(urlsplit(response.headers["Location"]).query)["roster"] == ["no_service"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "has not offered its roster service" in page


def test_learners_are_refused(app, client, services, canvas, canvas_lms):
    token = lt_of(launch(client, canvas, BASE_URL, roles=[LEARNER]))
    assert client.post("/course/roster/sync", data={"lt": token}).status_code == 403
    status = client.get("/course/roster/status", query_string={"lt": token})
    assert status.status_code == 403 and status.get_json()["error"] == "forbidden"
    assert canvas_lms.nrps_requests == []
    page = client.get("/home", query_string={"lt": token}).get_data(as_text=True)
    assert "Sync roster" not in page


def test_the_sync_form_needs_its_token(app, client, services, canvas, canvas_lms):
    educator_launch(client, canvas, canvas_lms)  # signed in by cookie too
    assert client.post("/course/roster/sync").status_code == 403  # a cross-site form has no lt
    assert client.post("/course/roster/sync", data={"lt": "forged"}).status_code == 401


def test_a_sync_finishing_between_the_two_reads_is_not_reported_failed(services):
    """The page reads the progress, then the lock; a sync that saves "done" and releases its
    lock in between is done, not failed (a worker that died leaves "running" and no lock)."""
    from lti_tool.roster import sync

    cache = services.cache
    sync._save(cache, 7, sync.SyncProgress(state=sync.RUNNING))

    class FinishesBetweenReads:
        def get(self, key):
            if key == sync._lock_key(7):
                sync._save(cache, 7, sync.SyncProgress(state=sync.DONE, pages=3))
                return None
            return cache.get(key)

    assert sync.progress(FinishesBetweenReads(), 7).state == sync.DONE
    sync._save(cache, 7, sync.SyncProgress(state=sync.RUNNING))
    died = sync.progress(cache, 7)  # no lock, still running: the worker is gone
    assert died.state == sync.FAILED and "stopped before it finished" in died.error
