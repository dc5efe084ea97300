"""Progress: the state machine, stack completion, the educator's course grid (filters, pages,
CSV, a query count that does not grow with the roster), who may see what, and the learner's
landing page. Rows are seeded through the progress service (the evidence package, which will
move states in real use, does not exist yet)."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import event, select

from lti_tool.catalog import mapping
from lti_tool.catalog.models import MicroCredential, MicroCredentialVersion
from lti_tool.db import transaction
from lti_tool.lti.launch import CLAIM
from lti_tool.progress import service as progress
from lti_tool.progress.models import CredentialProgress
from lti_tool.progress.service import (
    DRAFT,
    EARNED,
    IN_REVIEW,
    NOT_STARTED,
    REVISE,
    SUBMITTED,
    Filters,
    TransitionError,
    set_state,
)
from lti_tool.roster.models import LEARNER as LEARNER_ROLE
from lti_tool.roster.models import Course, Enrollment, LmsUser
from tests.conftest import BASE_URL
from tests.support.platform import INSTRUCTOR, launch
from tests.unit.catalog_support import SAMPLE, SMALL, import_paths

CANVAS_CONTEXT = "4dde05e8ca1973bcca9bffc13e1548820eee93a3"
SAMPLE_KEYS = ("active-listening", "effective-leadership", "productive-teamwork",
               "resolving-conflicts")  # fmt: skip


@pytest.fixture
def catalog(services):
    import_paths(services, SAMPLE)


# -- helpers --------------------------------------------------------------------------------------
def token_of(response) -> str:
    return parse_qs(urlsplit(response.headers["Location"]).query)["lt"][0]


def course_id_of(services, context_id: str = CANVAS_CONTEXT) -> int:
    with services.session_factory() as session:
        return session.scalars(select(Course.id).where(Course.context_id == context_id)).one()


def credential_ids(services) -> dict[str, int]:
    with services.session_factory() as session:
        return dict(session.execute(select(MicroCredential.key, MicroCredential.id)).all())


def user_id_of(services, subject: str) -> int:
    with services.session_factory() as session:
        return session.scalars(select(LmsUser.id).where(LmsUser.subject == subject)).one()


def add_learners(services, course_id: int, names: list[str], status: str = "active") -> list[int]:
    """Learners enrolled in the course (as a roster sync would record them), in `names` order."""
    with transaction(services.session_factory) as session:
        platform_id = session.get(Course, course_id).platform_id
        ids = []
        for name in names:
            user = LmsUser(
                platform_id=platform_id,
                subject=f"sub-{course_id}-{name}",
                name=name,
                email=f"{name.lower().replace(' ', '.')}@school.example",
            )
            session.add(user)
            session.flush()
            session.add(
                Enrollment(
                    user_id=user.id,
                    course_id=course_id,
                    role=LEARNER_ROLE,
                    lti_roles=[],
                    status=status,
                )
            )
            ids.append(user.id)
    return ids


def move(services, user_id: int, key: str, *states: str, **kw) -> None:
    """Walk a learner through states for one micro-credential, as the evidence package will."""
    ids = credential_ids(services)
    with transaction(services.session_factory) as session:
        for state in states:
            set_state(session, user_id, ids[key], state, **kw)


EARN = (DRAFT, SUBMITTED, IN_REVIEW, EARNED)


@pytest.fixture
def course(client, catalog, services, canvas):
    """A Canvas course mapped to the collaboration stack, an educator's launch into it."""
    educator = launch(client, canvas, BASE_URL, "canvas", roles=[INSTRUCTOR], sub="teacher-1")
    assert educator.status_code == 303
    course_id = course_id_of(services)
    with transaction(services.session_factory) as session:
        mapping.map_course_to_stack(session, course_id, "collaboration")
    return {"id": course_id, "token": token_of(educator), "home": educator.headers["Location"]}


def page_text(client, url: str, **params) -> str:
    response = client.get(url, query_string=params or None)
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    return html.unescape(response.get_data(as_text=True))


# -- states and transitions -----------------------------------------------------------------------
def test_a_learner_moves_through_the_states_and_earned_is_final(course, services):
    (user,) = add_learners(services, course["id"], ["Ada"])
    ids = credential_ids(services)
    listening = ids["active-listening"]
    with transaction(services.session_factory) as session:
        assert progress.state_of(session, user, listening) == NOT_STARTED
        first = set_state(session, user, listening, DRAFT)
        assert (first.previous, first.state, first.changed) == (NOT_STARTED, DRAFT, True)
        for state in (SUBMITTED, IN_REVIEW, REVISE, DRAFT, SUBMITTED, EARNED):
            assert set_state(session, user, listening, state).changed
        assert progress.state_of(session, user, listening) == EARNED
        # A retried job that says "earned" again is harmless; nothing takes it back.
        assert set_state(session, user, listening, EARNED).changed is False
        for state in (DRAFT, SUBMITTED, IN_REVIEW, REVISE):
            with pytest.raises(TransitionError):
                set_state(session, user, listening, state)
        with pytest.raises(TransitionError):
            set_state(session, user, listening, NOT_STARTED)
        with pytest.raises(TransitionError):
            set_state(session, user, listening, "lost")
        # Out of order: no decision before a submission, no review of a draft.
        leadership = ids["effective-leadership"]
        with pytest.raises(TransitionError):
            set_state(session, user, leadership, EARNED)
        set_state(session, user, leadership, DRAFT)
        with pytest.raises(TransitionError):
            set_state(session, user, leadership, IN_REVIEW)
        with pytest.raises(TransitionError):
            set_state(session, user, leadership, REVISE)
    with services.session_factory() as session:
        rows = session.scalars(select(CredentialProgress).order_by(CredentialProgress.id)).all()
        assert [(r.micro_credential_id, r.state) for r in rows] == [
            (listening, EARNED),
            (leadership, DRAFT),
        ]


def test_state_changes_stamp_time_due_dates_and_versions(course, services):
    (user,) = add_learners(services, course["id"], ["Ada"])
    ids = credential_ids(services)
    teamwork = ids["productive-teamwork"]
    with services.session_factory() as session:
        version = session.scalars(
            select(MicroCredentialVersion.id).where(
                MicroCredentialVersion.micro_credential_id == teamwork
            )
        ).first()
        other_version = session.scalars(
            select(MicroCredentialVersion.id).where(
                MicroCredentialVersion.micro_credential_id == ids["active-listening"]
            )
        ).first()
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    planned = start + timedelta(days=10)
    due = start + timedelta(days=20)
    with transaction(services.session_factory) as session:
        set_state(session, user, teamwork, DRAFT, version_id=version, next_step_due=planned,
                  when=start)  # fmt: skip
        # Saving the draft again: same state, nothing stamped, the plan kept.
        assert not set_state(session, user, teamwork, DRAFT, when=start + timedelta(days=1)).changed
        row = session.scalars(select(CredentialProgress)).one()
        assert (row.state_changed_at, row.next_step_due) == (start, planned)
        assert row.version_id == version
        set_state(session, user, teamwork, SUBMITTED, next_step_due=due, when=start + timedelta(2))
        with pytest.raises(ValueError):
            set_state(session, user, teamwork, IN_REVIEW, version_id=other_version)
    with services.session_factory() as session:
        row = session.scalars(select(CredentialProgress)).one()
        assert row.state == SUBMITTED
        assert row.state_changed_at == start + timedelta(days=2)
        assert row.next_step_due == due
        assert row.version_id == version  # the learner keeps the version they started


def test_a_concurrent_first_move_is_not_lost(course, services, monkeypatch):
    """Two first moves at once: the one whose insert conflicts re-reads the row and moves on
    from the state the other wrote (its transition checked), instead of failing."""
    (user,) = add_learners(services, course["id"], ["Ada"])
    listening = credential_ids(services)["active-listening"]
    move(services, user, "active-listening", DRAFT)  # the other process got there first
    real = progress._locked_row
    calls = []

    def not_yet_seen(session, *args):
        calls.append(args)
        return None if len(calls) == 1 else real(session, *args)

    monkeypatch.setattr(progress, "_locked_row", not_yet_seen)
    with transaction(services.session_factory) as session:
        change = set_state(session, user, listening, SUBMITTED)
    assert (change.previous, change.state, change.changed) == (DRAFT, SUBMITTED, True)
    assert len(calls) == 2
    with services.session_factory() as session:
        assert progress.state_of(session, user, listening) == SUBMITTED
        assert len(session.scalars(select(CredentialProgress)).all()) == 1


def test_earning_counts_in_every_course_of_the_platform(client, course, services, canvas):
    """The state belongs to the learner (per platform), not to the course they earned it in."""
    other = launch(
        client, canvas, BASE_URL, "canvas", roles=[INSTRUCTOR], sub="teacher-1",
        **{CLAIM + "context": {"id": "mooc-run-2", "label": "RUN2", "title": "Run 2"}},
    )  # fmt: skip
    run2 = course_id_of(services, "mooc-run-2")
    (ada,) = add_learners(services, course["id"], ["Ada"])
    with transaction(services.session_factory) as session:
        mapping.map_course_to_stack(session, run2, "collaboration")
        session.add(Enrollment(user_id=ada, course_id=run2, role=LEARNER_ROLE, lti_roles=[]))
    move(services, ada, "active-listening", *EARN)
    text = page_text(client, "/course/progress", lt=token_of(other))
    assert "Run 2" in text
    with services.session_factory() as session:
        report = progress.course_progress(session, run2)
    assert report.learners[0].states["active-listening"] == EARNED
    assert report.state_counts[EARNED] == 1


# -- stack completion -----------------------------------------------------------------------------
def test_stack_completion_by_all_and_by_n_of_m(client, services, canvas):
    import_paths(services, SMALL)
    launch(client, canvas, BASE_URL, "canvas", roles=[INSTRUCTOR])
    course_id = course_id_of(services)
    with transaction(services.session_factory) as session:
        mapping.map_course_to_stack(session, course_id, "assessment")  # 1 of 2
        mapping.map_course_to_stack(session, course_id, "foundations")  # all of 2
    ada, bo, cy = add_learners(services, course_id, ["Ada", "Bo", "Cy"])
    move(services, ada, "exit-tickets", *EARN)  # in both stacks
    move(services, ada, "routines", *EARN)
    move(services, bo, "questioning", *EARN)
    move(services, bo, "routines", DRAFT)
    move(services, cy, "exit-tickets", DRAFT, SUBMITTED, IN_REVIEW)
    with services.session_factory() as session:
        report = progress.course_progress(session, course_id)
        assert [s.key for s in report.layout.stacks] == ["assessment", "foundations"]
        assert [(s.completion_rule, s.needed) for s in report.layout.stacks] == [
            ("n_of_m", 1),
            ("all", 2),
        ]
        # exit-tickets is in both stacks and is one column.
        assert [c.key for c in report.layout.credentials] == [
            "exit-tickets",
            "questioning",
            "routines",
        ]
        rows = {r.name: r for r in report.learners}
        assert rows["Ada"].stacks["assessment"].complete
        assert rows["Ada"].stacks["foundations"].complete
        assert rows["Ada"].stacks["assessment"].earned == 1
        assert rows["Bo"].stacks["assessment"].complete
        assert not rows["Bo"].stacks["foundations"].complete
        assert rows["Bo"].stacks["foundations"].earned == 0
        assert not rows["Cy"].stacks["assessment"].complete
        assert report.stack_completions == {"assessment": 2, "foundations": 1}
        overview = progress.learner_overview(session, bo, course_id)
        assessment, foundations = overview.stacks
        assert (assessment.progress.shown, assessment.progress.needed) == (1, 1)
        assert assessment.progress.percent == 100
        assert (foundations.progress.earned, foundations.progress.needed) == (0, 2)
        assert [m.state for m in foundations.members] == [NOT_STARTED, DRAFT]


# -- the course grid ------------------------------------------------------------------------------
NAMES = [f"Learner {i:02d}" for i in range(1, 31)]


def test_course_progress_pages_filters_and_counts(course, services):
    users = add_learners(services, course["id"], list(reversed(NAMES)))
    by_name = dict(zip(reversed(NAMES), users, strict=True))
    move(services, by_name["Learner 03"], "active-listening", DRAFT)
    move(services, by_name["Learner 07"], "active-listening", DRAFT, SUBMITTED)
    move(services, by_name["Learner 07"], "resolving-conflicts", DRAFT)
    move(services, by_name["Learner 12"], "effective-leadership", DRAFT, SUBMITTED, REVISE)
    for name in ("Learner 20", "Learner 21"):
        for key in SAMPLE_KEYS:
            move(services, by_name[name], key, *EARN)
    with services.session_factory() as session:

        def names(**kw) -> list[str]:
            filters = Filters(**{k: v for k, v in kw.items() if k in ("state", "credential",
                                                                       "search")})  # fmt: skip
            page = kw.get("page", 1)
            report = progress.course_progress(session, course["id"], filters, page, kw.get("n", 10))
            return [r.name for r in report.learners]

        first = progress.course_progress(session, course["id"], page_size=10)
        assert (first.total_learners, first.matching, first.pages) == (30, 30, 3)
        assert [r.name for r in first.learners] == NAMES[:10]  # by name, not by insertion
        assert names(page=3) == NAMES[20:]
        assert names(page=99) == NAMES[20:]  # past the end: the last page
        assert names(page=0) == NAMES[:10]
        row = {r.name: r for r in first.learners}["Learner 07"]
        assert row.states == {
            "active-listening": SUBMITTED,
            "effective-leadership": NOT_STARTED,
            "productive-teamwork": NOT_STARTED,
            "resolving-conflicts": DRAFT,
        }
        assert row.stacks["collaboration"].earned == 0
        assert row.email == "learner.07@school.example"
        # Course-wide counts: 30 learners x 4 micro-credentials.
        assert first.state_counts == {
            NOT_STARTED: 120 - 12,
            DRAFT: 2,
            SUBMITTED: 1,
            IN_REVIEW: 0,
            REVISE: 1,
            EARNED: 8,
        }
        assert first.credential_counts["active-listening"][DRAFT] == 1
        assert first.credential_counts["active-listening"][NOT_STARTED] == 30 - 4
        assert first.stack_completions == {"collaboration": 2}
        # Filters: a state anywhere, a state of one micro-credential, not started, a name.
        assert names(state=DRAFT) == ["Learner 03", "Learner 07"]
        assert names(state=DRAFT, credential="active-listening") == ["Learner 03"]
        assert names(state=SUBMITTED, credential="resolving-conflicts") == []
        assert names(state=REVISE) == ["Learner 12"]
        assert names(state=EARNED, credential="productive-teamwork") == [
            "Learner 20",
            "Learner 21",
        ]
        assert len(names(state=NOT_STARTED, n=100)) == 28  # all but the two who earned all four
        assert "Learner 07" not in names(state=NOT_STARTED, credential="active-listening", n=100)
        assert names(search="learner 2", n=100) == [n for n in NAMES if "2" in n]
        assert names(search="LEARNER.21@school") == ["Learner 21"]
        assert names(search="21 learner") == ["Learner 21"]  # every word, any order
        assert names(search="%") == []  # wildcards are text
        filtered = progress.course_progress(
            session, course["id"], Filters(state=EARNED), page_size=1, page=2
        )
        assert (filtered.matching, filtered.pages, filtered.page) == (2, 2, 2)
        assert [r.name for r in filtered.learners] == ["Learner 21"]
        assert filtered.total_learners == 30
        # What the course does not know is dropped, not an error.
        stale = progress.course_progress(
            session, course["id"], Filters(state="lost", credential="nope"), page_size=5
        )
        assert stale.filters == Filters() and stale.matching == 30


def test_the_educator_page_shows_the_grid_with_filters_and_pages(client, course, services):
    users = add_learners(services, course["id"], NAMES[:3] + ["=cmd|' /C calc'!A0"])
    move(services, users[0], "active-listening", *EARN)
    move(services, users[1], "effective-leadership", DRAFT, SUBMITTED, REVISE)
    home = page_text(client, course["home"])
    link = re.search(r'id="progress-link" href="([^"]+)"', home)
    assert link and "lt=" in link.group(1)
    assert "Nothing is mapped yet" not in home
    text = page_text(client, link.group(1))
    assert 'id="progress-grid"' in text
    for title in ("Active Listening", "Effective Leadership", "Productive Teamwork",
                  "Resolving Conflicts", "Collaboration"):  # fmt: skip
        assert title in text
    assert '<span class="state state-earned">Earned</span>' in text
    assert '<span class="state state-revise">Revise and resubmit</span>' in text
    assert '<progress max="4" value="1" aria-label="Collaboration: 1 of 4 earned">' in text
    assert "4 learners known" in text
    assert "Learners 1–4 of 4." in text
    # Filtered to one micro-credential and a state: that column only, the matching learner.
    shown = page_text(
        client,
        "/course/progress",
        lt=course["token"],
        state=REVISE,
        credential="effective-leadership",
    )
    assert "Learner 02" in shown and "Learner 01" not in shown
    grid = shown[shown.index('id="progress-grid"') :]
    assert "Active Listening" not in grid.split("</thead>")[0]
    assert "matching the filters" in shown
    # Pages: every link keeps the token and the filters.
    paged = html.unescape(
        client.get("/course/progress", query_string={"lt": course["token"], "size": 25}).get_data(
            as_text=True
        )
    )
    assert "Page 1 of" not in paged  # 4 learners, one page
    many = add_learners(services, course["id"], [f"Zed {i:03d}" for i in range(60)])
    assert len(many) == 60
    first = page_text(client, "/course/progress", lt=course["token"], size=25, q="zed")
    assert "Page 1 of 3" in first
    next_link = re.search(r'href="([^"]+)" rel="next"', first).group(1)
    query = parse_qs(urlsplit(next_link).query)
    assert query == {"lt": [course["token"]], "q": ["zed"], "size": ["25"], "page": ["2"]}
    second = page_text(client, next_link)
    assert "Page 2 of 3" in second and "Zed 025" in second and "Zed 024" not in second
    csv_link = re.search(r'id="csv-download" href="([^"]+)"', first).group(1)
    assert parse_qs(urlsplit(csv_link).query)["q"] == ["zed"]


# -- the query count ------------------------------------------------------------------------------
def count_queries(services, call) -> tuple[int, object]:
    statements: list[str] = []

    def note(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(services.engine, "before_cursor_execute", note)
    try:
        result = call()
    finally:
        event.remove(services.engine, "before_cursor_execute", note)
    return len(statements), result


def seed_roster(services, course_id: int, n: int, start: int) -> None:
    users = add_learners(services, course_id, [f"Member {start + i:04d}" for i in range(n)])
    ids = credential_ids(services)
    paths = [(), (DRAFT,), (DRAFT, SUBMITTED), (DRAFT, SUBMITTED, IN_REVIEW),
             (DRAFT, SUBMITTED, REVISE), EARN]  # fmt: skip
    with transaction(services.session_factory) as session:
        for i, user in enumerate(users):
            for j, key in enumerate(SAMPLE_KEYS):
                for state in paths[(i + j) % len(paths)]:
                    set_state(session, user, ids[key], state)


def test_the_query_count_does_not_grow_with_the_roster(client, course, services):
    token = course["token"]

    def page():
        response = client.get("/course/progress", query_string={"lt": token})
        assert response.status_code == 200
        return response.get_data(as_text=True)

    def filtered():
        query = {"lt": token, "state": SUBMITTED, "q": "member", "page": 2, "size": 25}
        response = client.get("/course/progress", query_string=query)
        assert response.status_code == 200
        return response.get_data(as_text=True)

    def export():
        response = client.get("/course/progress.csv", query_string={"lt": token})
        assert response.status_code == 200
        return response.get_data(as_text=True)

    seed_roster(services, course["id"], 20, 0)
    small_page, text = count_queries(services, page)
    assert "20 learners known" in text
    small_filtered, _ = count_queries(services, filtered)
    small_csv, body = count_queries(services, export)
    assert body.count("\r\n") == 21

    seed_roster(services, course["id"], 380, 20)
    large_page, text = count_queries(services, page)
    assert "400 learners known" in text and "Page 1 of 8" in text
    large_filtered, _ = count_queries(services, filtered)
    large_csv, body = count_queries(services, export)
    assert body.count("\r\n") == 401

    assert large_page == small_page
    assert large_filtered == small_filtered
    assert large_csv == small_csv
    assert small_page <= 8, small_page


# -- CSV ------------------------------------------------------------------------------------------
def test_csv_export_lists_every_matching_learner(client, course, services):
    users = add_learners(services, course["id"], ["Bea", "Al", "=HYPERLINK(1)"])
    add_learners(services, course["id"], ["Gone"], status="deleted")
    move(services, users[0], "active-listening", *EARN)
    move(services, users[0], "productive-teamwork", DRAFT)
    for key in SAMPLE_KEYS:
        move(services, users[1], key, *EARN)
    response = client.get("/course/progress.csv", query_string={"lt": course["token"]})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.is_streamed
    assert response.headers["Content-Disposition"] == 'attachment; filename="progress-COLLAB.csv"'
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == [
        "Learner", "Email", "Enrolment", "Active Listening", "Effective Leadership",
        "Productive Teamwork", "Resolving Conflicts", "Collaboration: earned",
        "Collaboration: needed", "Collaboration: complete",
    ]  # fmt: skip
    assert rows[1:] == [
        ["'=HYPERLINK(1)", "'=hyperlink(1)@school.example", "active",
         "Not started", "Not started", "Not started", "Not started", "0", "4", "no"],
        ["Al", "al@school.example", "active", "Earned", "Earned", "Earned", "Earned", "4", "4",
         "yes"],
        ["Bea", "bea@school.example", "active", "Earned", "Not started", "Draft", "Not started",
         "1", "4", "no"],
        ["Gone", "gone@school.example", "deleted", "Not started", "Not started", "Not started",
         "Not started", "0", "4", "no"],
    ]  # fmt: skip
    # The same filters as the page.
    only = client.get(
        "/course/progress.csv",
        query_string={"lt": course["token"], "state": DRAFT, "credential": "productive-teamwork"},
    )
    assert [r[0] for r in csv.reader(io.StringIO(only.get_data(as_text=True)))] == [
        "Learner",
        "Bea",
    ]
    # The domain streams in chunks of `batch` learners.
    with services.session_factory() as session:
        chunks = list(progress.course_progress_csv(session, course["id"], batch=2))
    assert len(chunks) == 3  # header, 2 learners, 2 learners
    assert chunks[1].count("\r\n") == 2


# -- who may see what -----------------------------------------------------------------------------
def test_learners_and_other_courses_are_refused(client, course, services, canvas, moodle):
    learner = launch(client, canvas, BASE_URL, "canvas", sub="learner-1")
    token = token_of(learner)
    assert client.get("/course/progress", query_string={"lt": token}).status_code == 403
    assert client.get("/course/progress.csv", query_string={"lt": token}).status_code == 403
    # An educator of another course (another platform) cannot name this one.
    other = launch(client, moodle, BASE_URL, "moodle", roles=[INSTRUCTOR])
    other_token = token_of(other)
    for path in ("/course/progress", "/course/progress.csv"):
        asked = {"lt": other_token, "course": course["id"]}
        assert client.get(path, query_string=asked).status_code == 403
    # Their own page shows their own course, where the canvas learner is not.
    own = page_text(client, "/course/progress", lt=other_token, course=course_id_of(services, "2"))
    assert "Micro-credentials 101" in own and "Jane Teacher" not in own
    # The educator of this course sees the learner; nobody signed in sees nothing.
    assert "Jane Teacher" in page_text(client, "/course/progress", lt=course["token"])
    anonymous = client.application.test_client()
    assert anonymous.get("/course/progress").status_code == 401
    assert anonymous.get("/course/progress", query_string={"lt": "forged"}).status_code == 401
    # The learner's home has no link to the grid.
    assert "progress-link" not in page_text(client, learner.headers["Location"])


def test_the_learner_page_shows_their_stacks_states_and_next_steps(
    client, course, services, canvas
):
    me = launch(client, canvas, BASE_URL, "canvas", sub="learner-me")
    launch(client, canvas, BASE_URL, "canvas", sub="learner-other")
    mine, theirs = user_id_of(services, "learner-me"), user_id_of(services, "learner-other")
    due = datetime(2026, 5, 4, tzinfo=UTC)
    move(services, mine, "active-listening", *EARN)
    move(services, mine, "effective-leadership", DRAFT, SUBMITTED, next_step_due=due)
    move(services, mine, "productive-teamwork", DRAFT, SUBMITTED, REVISE)
    move(services, theirs, "resolving-conflicts", *EARN)
    text = page_text(client, me.headers["Location"])
    assert (
        '<label for="stack-collaboration-bar">1 of 4 micro-credentials earned toward '
        "Collaborative Educator</label>" in text
    )
    assert '<progress id="stack-collaboration-bar" max="4" value="1">25%</progress>' in text

    def item(key: str) -> str:
        start = text.index(f'id="credential-collaboration-{key}"')
        return text[start : text.index("</li>", start)]

    assert "Earned" in item("active-listening")
    assert "Submitted" in item("effective-leadership")
    assert "A decision is due by 04 May 2026." in item("effective-leadership")
    assert "Revise and resubmit" in item("productive-teamwork")
    assert "resubmit all your evidence" in item("productive-teamwork")
    # The other learner earned this one: not this learner's state.
    assert "Not started" in item("resolving-conflicts")
    assert "start your evidence" in item("resolving-conflicts")
    other = page_text(client, launch(client, canvas, BASE_URL, "canvas", sub="learner-other")
                      .headers["Location"])  # fmt: skip
    assert '<progress id="stack-collaboration-bar" max="4" value="1">' in other
    assert "Revise and resubmit" not in other and "Submitted" not in other


def test_the_learner_page_without_a_stack_says_so(client, catalog, canvas):
    learner = launch(client, canvas, BASE_URL, "canvas")
    text = page_text(client, learner.headers["Location"])
    assert "no micro-credential stack yet" in text
    assert "<progress" not in text


def test_an_administrator_launch_links_to_the_course_progress(client, course, canvas):
    from tests.support.platform import ADMIN

    admin = launch(client, canvas, BASE_URL, "canvas", roles=[ADMIN], sub="admin-1")
    assert admin.status_code == 303
    home = page_text(client, admin.headers["Location"])
    link = re.search(r'id="progress-link" href="([^"]+)"', home)
    assert link, "the administrator's page links to the course progress"
    assert "Learners' progress" in page_text(client, link.group(1))
