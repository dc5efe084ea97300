"""LTI roles map to learner / educator / administrator, and a launch records who, where, what."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lti_tool.lti.roles import map_roles
from lti_tool.roster.models import (
    ADMINISTRATOR,
    EDUCATOR,
    LEARNER,
    Course,
    Enrollment,
    LmsUser,
    ResourceLink,
)
from tests.conftest import BASE_URL
from tests.support.platform import ADMIN, INSTRUCTOR, TA, launch
from tests.support.platform import LEARNER as LEARNER_URI

V2 = "http://purl.imsglobal.org/vocab/lis/v2/"
MEMBERSHIP = V2 + "membership#"
SYSTEM = V2 + "system/person#"
INSTITUTION = V2 + "institution/person#"


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        # Full vocabulary URIs.
        ([MEMBERSHIP + "Learner"], LEARNER),
        ([MEMBERSHIP + "Instructor"], EDUCATOR),
        ([MEMBERSHIP + "ContentDeveloper"], EDUCATOR),
        ([MEMBERSHIP + "Administrator"], EDUCATOR),  # administers this course only
        ([MEMBERSHIP + "Mentor"], LEARNER),
        # Deprecated short forms.
        (["Learner"], LEARNER),
        (["Instructor"], EDUCATOR),
        ([" Instructor "], EDUCATOR),
        # Sub-roles count as their principal role, never more.
        ([V2 + "membership/Instructor#TeachingAssistant"], EDUCATOR),
        ([V2 + "membership/Learner#Learner"], LEARNER),
        ([V2 + "membership/Learner#Instructor"], LEARNER),
        # Institution and system administrators administer the tool.
        ([INSTITUTION + "Administrator"], ADMINISTRATOR),
        ([SYSTEM + "Administrator"], ADMINISTRATOR),
        ([SYSTEM + "SysAdmin"], ADMINISTRATOR),
        ([MEMBERSHIP + "Learner", INSTITUTION + "Administrator"], ADMINISTRATOR),
        # Canvas sends a context role with institution and system roles.
        ([MEMBERSHIP + "Instructor", INSTITUTION + "Instructor", SYSTEM + "User"], EDUCATOR),
        ([MEMBERSHIP + "Learner", INSTITUTION + "Student", SYSTEM + "User"], LEARNER),
        # An institution instructor role alone gives no rights in this course.
        ([INSTITUTION + "Instructor"], LEARNER),
        # Unknown, malformed or no roles: least privilege.
        (["urn:lti:role:example/Wizard"], LEARNER),
        ([MEMBERSHIP.rstrip("#") + "X#Instructor"], LEARNER),
        (["http://example.com/roles#Instructor"], LEARNER),
        (["Instructor#TeachingAssistant"], LEARNER),
        ([None, 42], LEARNER),
        ([""], LEARNER),
        ([], LEARNER),
    ],
)
def test_map_roles(roles, expected):
    assert map_roles(roles) == expected


def test_support_role_constants_map_as_named():
    assert map_roles([LEARNER_URI]) == LEARNER
    assert map_roles([INSTRUCTOR]) == EDUCATOR
    assert map_roles([TA]) == EDUCATOR
    assert map_roles([ADMIN]) == ADMINISTRATOR


# -- what a launch records -----------------------------------------------------------------------
def _landing(client, response) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    return page.get_data(as_text=True)


def test_canvas_launch_records_user_course_link_and_enrolment(client, services, canvas):
    response = launch(client, canvas, BASE_URL, "canvas", sub="canvas-user-1")
    _landing(client, response)
    with services.session_factory() as session:
        user = session.scalars(select(LmsUser)).one()
        assert (user.subject, user.name, user.email) == (
            "canvas-user-1",
            "Jane Teacher",
            "jane@school.example",
        )
        course = session.scalars(select(Course)).one()
        assert course.platform_id == user.platform_id
        assert course.context_id == "4dde05e8ca1973bcca9bffc13e1548820eee93a3"
        assert (course.title, course.label) == ("Collaboration Stack", "COLLAB")
        assert course.deployment_id == canvas.deployment_id
        link = session.scalars(select(ResourceLink)).one()
        assert link.course_id == course.id
        assert (link.link_id, link.title) == ("6fd3b9dd-canvas-link", "Active Listening")
        assert link.lineitem_url == "https://canvas.example/api/lti/courses/567/line_items/9"
        assert link.custom == {"canvas_user_id": "1234", "canvas_course_id": "567"}
        enrolment = session.scalars(select(Enrollment)).one()
        assert (enrolment.user_id, enrolment.course_id) == (user.id, course.id)
        assert enrolment.role == LEARNER
        assert MEMBERSHIP + "Learner" in enrolment.lti_roles


def test_moodle_lineitem_url_keeps_its_query_string(client, services, moodle):
    _landing(client, launch(client, moodle, BASE_URL, "moodle"))
    with services.session_factory() as session:
        link = session.scalars(select(ResourceLink)).one()
        assert link.lineitem_url == (
            f"{moodle.issuer}/mod/lti/services.php/2/lineitems/3/lineitem?type_id=1"
        )
        course = session.scalars(select(Course)).one()
        assert (course.context_id, course.title) == ("2", "Micro-credentials 101")
        assert course.deployment_id == "1"


def test_relaunch_updates_the_role_without_duplicating_rows(client, services, moodle):
    _landing(client, launch(client, moodle, BASE_URL, "moodle", sub="7"))
    page = _landing(client, launch(client, moodle, BASE_URL, "moodle", sub="7", roles=[TA]))
    assert "Course overview for educators" in page
    with services.session_factory() as session:
        assert len(session.scalars(select(LmsUser)).all()) == 1
        assert len(session.scalars(select(Course)).all()) == 1
        assert len(session.scalars(select(ResourceLink)).all()) == 1
        enrolment = session.scalars(select(Enrollment)).one()
        assert enrolment.role == EDUCATOR
        assert enrolment.lti_roles == [TA]


def test_administrator_lands_on_the_administration_page(client, services, canvas):
    page = _landing(client, launch(client, canvas, BASE_URL, "canvas", roles=[ADMIN]))
    assert "<h1>Administration</h1>" in page
    with services.session_factory() as session:
        assert session.scalars(select(Enrollment)).one().role == ADMINISTRATOR


def test_unknown_roles_land_on_the_learner_page(client, canvas):
    page = _landing(client, launch(client, canvas, BASE_URL, "canvas", roles=["urn:x:Guest"]))
    assert "Your micro-credentials" in page
    assert "Course overview" not in page
