"""Courses mapped to stacks and links to micro-credentials: by a launch whose custom claim names
one, by the educator on the course page, and the whole Deep Linking round trip with the demo LMS
(request, pick, signed response checked against the tool's JWKS over HTTP, new link, launch)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from sqlalchemy import event, select

from lti_tool import migrate
from lti_tool.app import create_app
from lti_tool.catalog import mapping
from lti_tool.catalog.models import CourseStack, LinkCredential
from lti_tool.db import transaction
from lti_tool.demo_lms import setup as demo_setup
from lti_tool.demo_lms import store as demo_store
from lti_tool.lti.launch import CLAIM
from lti_tool.roster.models import Course, ResourceLink
from lti_tool.services import Services
from lti_tool.settings import load_settings
from tests.conftest import BASE_URL
from tests.support.platform import AGS, INSTRUCTOR, LEARNER, launch
from tests.support.servers import LoopbackServer
from tests.unit.catalog_support import SAMPLE, import_paths

LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
CUSTOM = CLAIM + "custom"


@pytest.fixture
def catalog(services):
    import_paths(services, SAMPLE)


def token_of(response) -> str:
    return parse_qs(urlsplit(response.headers["Location"]).query)["lt"][0]


def link_row(services, link_id: str) -> tuple[int, int]:
    """(resource link pk, course pk) of an LMS link id."""
    with services.session_factory() as session:
        link = session.scalars(select(ResourceLink).where(ResourceLink.link_id == link_id)).one()
        return link.id, link.course_id


# -- launches map links ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["canvas", "moodle"])
def test_a_launch_naming_a_micro_credential_maps_the_link_and_course(
    client, catalog, services, canvas, moodle, shape
):
    platform = canvas if shape == "canvas" else moodle
    custom = {"micro_credential": "productive-teamwork", "stack": "collaboration"}
    response = launch(client, platform, BASE_URL, shape, **{CUSTOM: custom})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    link_id = "6fd3b9dd-canvas-link" if shape == "canvas" else "3"
    link_pk, course_pk = link_row(services, link_id)
    with services.session_factory() as session:
        assert mapping.link_credential_key(session, link_pk) == "productive-teamwork"
        assert mapping.course_stack_keys(session, course_pk) == ["collaboration"]
        row = session.scalars(select(CourseStack)).one()
        assert row.mapped_by == "launch"
        holdings = mapping.course_holdings(session, course_pk)
        assert [s.key for s in holdings.stacks] == ["collaboration"]
        assert [(lk.link_id, lk.credential_key) for lk in holdings.links] == [
            (link_id, "productive-teamwork")
        ]
        # The platform sent a line item with the launch: none is needed.
        assert mapping.links_needing_line_items(session) == []


def test_the_stack_defaults_to_the_only_one_holding_the_micro_credential(
    client, catalog, services, moodle
):
    launch(client, moodle, BASE_URL, "moodle", **{CUSTOM: {"micro_credential": "active-listening"}})
    link_pk, course_pk = link_row(services, "3")
    with services.session_factory() as session:
        assert session.scalars(select(LinkCredential)).one().stack.key == "collaboration"
        assert mapping.course_stack_keys(session, course_pk) == ["collaboration"]


def test_launching_again_writes_nothing_and_a_removed_stack_stays_removed(
    client, catalog, services, canvas
):
    custom = {"micro_credential": "active-listening", "stack": "collaboration"}
    launch(client, canvas, BASE_URL, "canvas", **{CUSTOM: custom})
    link_pk, course_pk = link_row(services, "6fd3b9dd-canvas-link")
    with transaction(services.session_factory) as session:
        assert mapping.unmap_course_from_stack(session, course_pk, "collaboration")
    writes: list[str] = []

    def note(conn, cursor, statement, *args):
        is_write = statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        if is_write and ("link_credentials" in statement or "course_stacks" in statement):
            writes.append(statement)

    event.listen(services.engine, "before_cursor_execute", note)
    try:
        again = launch(client, canvas, BASE_URL, "canvas", **{CUSTOM: custom})
    finally:
        event.remove(services.engine, "before_cursor_execute", note)
    assert again.status_code == 303
    assert writes == []
    with services.session_factory() as session:
        assert mapping.course_stack_keys(session, course_pk) == []
        assert mapping.link_credential_key(session, link_pk) == "active-listening"


def test_a_link_pointed_at_another_micro_credential_is_remapped(client, catalog, services, canvas):
    launch(client, canvas, BASE_URL, "canvas", **{CUSTOM: {"micro_credential": "active-listening"}})
    launch(
        client, canvas, BASE_URL, "canvas", **{CUSTOM: {"micro_credential": "resolving-conflicts"}}
    )
    link_pk, _ = link_row(services, "6fd3b9dd-canvas-link")
    with services.session_factory() as session:
        assert mapping.link_credential_key(session, link_pk) == "resolving-conflicts"
        assert len(session.scalars(select(LinkCredential)).all()) == 1


def test_an_unknown_micro_credential_does_not_stop_the_launch(client, catalog, services, canvas):
    response = launch(
        client, canvas, BASE_URL, "canvas", **{CUSTOM: {"micro_credential": "no-such-thing"}}
    )
    assert response.status_code == 303
    with services.session_factory() as session:
        assert session.scalars(select(LinkCredential)).all() == []


def test_a_launch_without_custom_maps_nothing(client, catalog, services, canvas):
    assert launch(client, canvas, BASE_URL, "canvas").status_code == 303
    with services.session_factory() as session:
        assert session.scalars(select(LinkCredential)).all() == []
        assert session.scalars(select(CourseStack)).all() == []


def test_a_link_without_a_line_item_is_recorded_as_needing_one(client, catalog, services, canvas):
    ags = {
        "scope": [LINEITEM_SCOPE, "https://purl.imsglobal.org/spec/lti-ags/scope/score"],
        "lineitems": "https://canvas.example/api/lti/courses/567/line_items",
    }
    custom = {"micro_credential": "effective-leadership", "stack": "collaboration"}
    launch(client, canvas, BASE_URL, "canvas", **{CUSTOM: custom, AGS: ags})
    link_pk, course_pk = link_row(services, "6fd3b9dd-canvas-link")
    with services.session_factory() as session:
        (needed,) = mapping.links_needing_line_items(session)
    assert needed.resource_link_id == link_pk
    assert needed.link_id == "6fd3b9dd-canvas-link"
    assert needed.course_id == course_pk
    assert needed.lineitems_url == ags["lineitems"]
    assert needed.label == "Active Listening"  # the link's title in the LMS
    assert (needed.score_maximum, needed.resource_id, needed.tag) == (
        100,
        "effective-leadership",
        "micro-credential",
    )
    # The AGS code creates it and says so; a later launch (still without it) asks no more.
    with transaction(services.session_factory) as session:
        assert mapping.line_item_created(session, link_pk, ags["lineitems"] + "/77")
        assert not mapping.line_item_created(session, link_pk, ags["lineitems"] + "/78")
    launch(client, canvas, BASE_URL, "canvas", **{CUSTOM: custom, AGS: ags})
    with services.session_factory() as session:
        assert mapping.links_needing_line_items(session) == []
        row = session.scalars(select(LinkCredential)).one()
        assert row.created_lineitem_url == ags["lineitems"] + "/77"


def test_no_line_item_is_asked_for_without_the_lineitem_scope(client, catalog, services, canvas):
    ags = {
        "scope": ["https://purl.imsglobal.org/spec/lti-ags/scope/score"],
        "lineitems": "https://canvas.example/api/lti/courses/567/line_items",
    }
    custom = {"micro_credential": "effective-leadership"}
    launch(client, canvas, BASE_URL, "canvas", **{CUSTOM: custom, AGS: ags})
    with services.session_factory() as session:
        assert mapping.links_needing_line_items(session) == []
        assert session.scalars(select(LinkCredential)).one().line_item_needed is False


# -- the service --------------------------------------------------------------------------------
def test_mapping_service_rules(client, catalog, services, canvas):
    launch(client, canvas, BASE_URL, "canvas")
    _, course_pk = link_row(services, "6fd3b9dd-canvas-link")
    with transaction(services.session_factory) as session:
        assert mapping.map_course_to_stack(session, course_pk, "collaboration") is True
        assert mapping.map_course_to_stack(session, course_pk, "collaboration") is False
        with pytest.raises(mapping.MappingError):
            mapping.map_course_to_stack(session, course_pk, "no-such-stack")
        with pytest.raises(ValueError):
            mapping.map_course_to_stack(session, course_pk, "collaboration", "by-magic")
        assert mapping.unmap_course_from_stack(session, course_pk, "collaboration") is True
        assert mapping.unmap_course_from_stack(session, course_pk, "collaboration") is False
        picks = mapping.resolve_picks(
            session, ["collaboration"], [("collaboration", "active-listening")]
        )
        assert len(picks) == 4 and picks[0].stack_title == "Collaboration"
        with pytest.raises(mapping.MappingError):
            mapping.resolve_picks(session, [], [("collaboration", "nope")])
        with pytest.raises(mapping.MappingError):
            mapping.resolve_picks(session, [], [("nope", "active-listening")])


# -- the educator's course page -----------------------------------------------------------------
def test_the_educator_page_lists_the_mapped_stacks(client, catalog, canvas):
    custom = {"micro_credential": "active-listening", "stack": "collaboration"}
    launch(client, canvas, BASE_URL, "canvas", **{CUSTOM: custom})  # a learner maps the link
    educator = launch(client, canvas, BASE_URL, "canvas", roles=[INSTRUCTOR])
    page = client.get(educator.headers["Location"])
    text = html.unescape(page.get_data(as_text=True))
    assert "Micro-credentials in this course" in text
    assert 'id="course-stack-collaboration"' in text
    for title in ("Active Listening", "Effective Leadership", "Resolving Conflicts"):
        assert title in text
    assert "In your LMS as: Active Listening" in text
    assert "Remove Collaboration from this course" in text


def test_an_educator_maps_and_unmaps_the_course_from_its_page(client, catalog, services, moodle):
    educator = launch(client, moodle, BASE_URL, "moodle", roles=[INSTRUCTOR])
    token = token_of(educator)
    page = html.unescape(client.get(educator.headers["Location"]).get_data(as_text=True))
    assert "No stack is mapped to this course yet" in page
    assert '<option value="collaboration">' in page
    added = client.post("/course/stacks", data={"lt": token, "stack": "collaboration"})
    assert added.status_code == 303
    assert added.headers["Location"].endswith("#micro-credentials")
    with services.session_factory() as session:
        course = session.scalars(select(Course).where(Course.context_id == "2")).one()
        assert mapping.course_stack_keys(session, course.id) == ["collaboration"]
        assert session.scalars(select(CourseStack)).one().mapped_by == "educator"
    shown = html.unescape(client.get(added.headers["Location"]).get_data(as_text=True))
    assert "The stack was added to this course" in shown
    assert 'id="course-stack-collaboration"' in shown
    again = client.post("/course/stacks", data={"lt": token, "stack": "collaboration"})
    assert "stacks=unchanged" in again.headers["Location"]
    unknown = client.post("/course/stacks", data={"lt": token, "stack": "nope"})
    assert "stacks=unknown" in unknown.headers["Location"]
    removed = client.post(
        "/course/stacks", data={"lt": token, "stack": "collaboration", "action": "remove"}
    )
    assert "stacks=removed" in removed.headers["Location"]
    with services.session_factory() as session:
        assert mapping.course_stack_keys(session, course.id) == []


def test_a_learner_cannot_map_and_a_token_only_changes_its_own_course(
    client, catalog, services, canvas, moodle
):
    learner = launch(client, canvas, BASE_URL, "canvas", roles=[LEARNER])
    response = client.post(
        "/course/stacks", data={"lt": token_of(learner), "stack": "collaboration"}
    )
    assert response.status_code == 403
    # The session cookie alone (what a cross-site form would carry) is refused.
    launch(client, moodle, BASE_URL, "moodle", roles=[INSTRUCTOR])
    assert client.post("/course/stacks", data={"stack": "collaboration"}).status_code == 403
    assert client.post("/course/stacks", data={"lt": "forged", "stack": "x"}).status_code == 403
    # The educator's token changes the educator's course, whatever else the form says.
    educator = launch(client, moodle, BASE_URL, "moodle", roles=[INSTRUCTOR])
    with services.session_factory() as session:
        canvas_course = session.scalars(select(Course).where(Course.context_id != "2")).one()
    client.post(
        "/course/stacks",
        data={"lt": token_of(educator), "stack": "collaboration", "course_id": canvas_course.id},
    )
    with services.session_factory() as session:
        rows = session.scalars(select(CourseStack)).all()
        assert [r.course_id for r in rows] != [canvas_course.id]
        assert len(rows) == 1
    assert (
        client.get(learner.headers["Location"])
        .get_data(as_text=True)
        .count("micro-credentials-heading")
        == 0
    )


# -- the demo LMS round trip ------------------------------------------------------------------
@dataclass
class DemoWorld:
    url: str
    services: Services


@pytest.fixture
def demo(tmp_path) -> Iterator[DemoWorld]:
    """The tool with its demo LMS, served over loopback HTTP: the LMS fetches the tool's JWKS
    (and the tool the LMS's) over real HTTP, as real ones do."""
    server = LoopbackServer()
    settings = load_settings(
        environ={}, base_url=server.url, instance_path=str(tmp_path / "instance"), demo=True
    )
    services = Services(settings)
    migrate.upgrade(services.engine)
    with transaction(services.session_factory) as session:
        demo_setup.ensure_demo_platform(session, settings)
    import_paths(services, SAMPLE)
    server.set_app(create_app(settings, services))
    try:
        yield DemoWorld(server.url, services)
    finally:
        server.stop()
        services.engine.dispose()


FORM = re.compile(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', re.S)
FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def submit_auto_form(http: requests.Session, page: requests.Response) -> requests.Response:
    """What the browser does with an auto-submitting form page."""
    match = FORM.search(page.text)
    assert match, page.text[:800]
    fields = {html.unescape(n): html.unescape(v) for n, v in FIELD.findall(match.group(2))}
    return http.post(urljoin(page.url, html.unescape(match.group(1))), data=fields, timeout=30)


def course_page_link(page: str, attribute: str, value: str) -> str:
    """The login URL of a course page button, as its "new window" twin (no platform storage:
    this client is not a browser frame and cannot answer postMessages)."""
    match = re.search(
        rf'<a class="button" href="([^"]+)" target="tool-frame" {attribute}="{value}"', page
    )
    assert match, f"no {attribute}={value} on the course page"
    url = urlsplit(html.unescape(match.group(1)))
    query = {k: v for k, v in parse_qs(url.query).items() if k != "lti_storage_target"}
    return url._replace(query=urlencode(query, doseq=True)).geturl()


def test_demo_lms_deep_linking_round_trip(demo):
    http = requests.Session()
    http.trust_env = False
    course = http.get(demo.url + "/demo/", timeout=30)
    assert "Add micro-credentials (Deep Linking)" in course.text
    assert 'data-deep-link="lee"' not in course.text  # learners are not offered it

    # The instructor starts it: OIDC login, the LMS's signed LtiDeepLinkingRequest, the picker.
    login = http.get(course_page_link(course.text, "data-deep-link", "ada"), timeout=30)
    picker = submit_auto_form(http, login)
    assert picker.status_code == 200, picker.text[:800]
    assert urlsplit(picker.url).path == "/catalog/pick"
    assert "Active Listening" in picker.text
    token = parse_qs(urlsplit(picker.url).query)["lt"][0]

    # Two picks: the tool posts its signed response to the LMS, which checks and adds them.
    answer = http.post(
        demo.url + "/catalog/pick",
        data={
            "lt": token,
            "credential": ["collaboration:active-listening", "collaboration:resolving-conflicts"],
        },
        timeout=30,
    )
    assert answer.status_code == 200
    done = submit_auto_form(http, answer)
    assert done.status_code == 200, done.text[:800]
    assert urlsplit(done.url).path == "/demo/deep-link-return"
    assert "2 activities added to the course" in html.unescape(done.text)

    # The same response again is refused: its nonce was seen, its request answered.
    replay = submit_auto_form(http, answer)
    assert replay.status_code == 400
    assert "replayed_nonce" in replay.text

    # The course page lists the new links with their custom parameters and gradebook columns.
    course = http.get(demo.url + "/demo/", timeout=30)
    added = demo_store.added_links(demo.services.settings)
    assert [a["custom"] for a in added] == [
        {"micro_credential": "active-listening", "stack": "collaboration"},
        {"micro_credential": "resolving-conflicts", "stack": "collaboration"},
    ]
    assert "micro_credential=active-listening" in course.text
    assert "Resolving Conflicts, out of 100" in course.text

    # A learner launches the new link: it lands, mapped to its micro-credential.
    new_link = added[1]
    login = http.get(
        course_page_link(course.text, "data-launch", f"lee@{new_link['id']}"), timeout=30
    )
    home = submit_auto_form(http, login)
    assert home.status_code == 200, home.text[:800]
    assert "Resolving Conflicts" in home.text
    with demo.services.session_factory() as session:
        link = session.scalars(
            select(ResourceLink).where(ResourceLink.link_id == new_link["id"])
        ).one()
        assert link.custom == new_link["custom"]
        assert mapping.link_credential_key(session, link.id) == "resolving-conflicts"
        assert mapping.course_stack_keys(session, link.course_id) == ["collaboration"]


def test_demo_lms_refuses_a_forged_or_foreign_response(demo):
    from lti_tool.demo_lms.platform import PlatformSigner

    http = requests.Session()
    http.trust_env = False
    settings = demo.services.settings
    data = demo_store.new_deep_link_request(settings, "ada")
    # Signed by someone else's key, with the claims right: the tool's JWKS does not know it.
    stranger = PlatformSigner(demo_setup.CLIENT_ID, "x", demo_setup.DEPLOYMENT_ID)
    import time

    now = int(time.time())
    claims = {
        "iss": demo_setup.CLIENT_ID,
        "aud": demo_setup.issuer(settings),
        "iat": now,
        "exp": now + 600,
        "nonce": "n-1",
        CLAIM + "message_type": "LtiDeepLinkingResponse",
        CLAIM + "version": "1.3.0",
        CLAIM + "deployment_id": demo_setup.DEPLOYMENT_ID,
        "https://purl.imsglobal.org/spec/lti-dl/claim/data": data,
        "https://purl.imsglobal.org/spec/lti-dl/claim/content_items": [],
    }
    forged = http.post(
        demo.url + "/demo/deep-link-return", data={"JWT": stranger.sign(claims)}, timeout=30
    )
    assert forged.status_code == 400
    assert "unknown_kid" in forged.text
    assert http.post(demo.url + "/demo/deep-link-return", data={}, timeout=30).status_code == 400
    # A learner is not offered Deep Linking, and the LMS refuses to start it for one.
    course = http.get(demo.url + "/demo/", timeout=30).text
    login_url = course_page_link(course, "data-deep-link", "ada").replace(
        "login_hint=ada", "login_hint=lee"
    )
    refused = http.get(login_url, timeout=30)
    assert refused.status_code == 400
    assert "only the course" in refused.text
