"""/admin/grades: administrators see the failed scores with the platform's answer and retry
them; an LMS administrator sees their own platform only; nobody else gets in; the Retry form
cannot be posted from elsewhere."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from lti_tool.accounts.models import Account
from lti_tool.db import transaction
from lti_tool.gradebook import delivery
from lti_tool.gradebook.models import DELIVERED, FAILED
from tests.conftest import BASE_URL
from tests.support.advantage import Failure
from tests.support.gradebook import PENDING_STATE, launch_learner, score_row, set_score
from tests.support.platform import ADMIN, INSTRUCTOR, LEARNER, launch
from tests.unit import test_ags_line_items

catalog = test_ags_line_items.catalog
canvas_lms = test_ags_line_items.canvas_lms
moodle_lms = test_ags_line_items.moodle_lms
REFUSAL = {"errors": [{"message": "User not found in course or is not a student"}]}


@pytest.fixture
def failed(services, client, catalog, canvas, canvas_lms):
    """A Canvas learner whose score Canvas refused."""
    ada = launch_learner(client, canvas, canvas_lms, "ada-canvas")
    set_score(services, ada, PENDING_STATE)
    canvas_lms.fail_score_posts(Failure(422, body=REFUSAL))
    delivery.deliver_due(services)
    assert score_row(services, ada).status == FAILED
    return ada


def token_after_launch(client, platform, roles, shape="canvas") -> str:
    response = launch(client, platform, BASE_URL, shape, roles=roles, sub="staff-" + roles[0][-5:])
    return parse_qs(urlsplit(response.headers["Location"]).query)["lt"][0]


def test_an_lms_administrator_sees_the_refusal_and_retries_it(
    services, client, canvas, canvas_lms, failed
):
    token = token_after_launch(client, canvas, [ADMIN])
    page = client.get("/admin/grades", query_string={"lt": token})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "HTTP 422" in html and "User not found in course" in html
    assert "Jane Teacher" in html  # the learner, as the LMS named them

    home = client.get("/home", query_string={"lt": token}).get_data(as_text=True)
    assert 'id="grades-link"' in home

    row = score_row(services, failed)
    retried = client.post("/admin/grades/retry", data={"lt": token, "score": row.id})
    assert retried.status_code == 303
    assert parse_qs(urlsplit(retried.headers["Location"]).query)["retried"] == ["1"]
    assert score_row(services, failed).status == DELIVERED  # in-process: delivered right away
    assert canvas_lms.result(failed.lineitem_url, failed.subject)["gradingProgress"] == "Pending"
    after = client.get(retried.headers["Location"]).get_data(as_text=True)
    assert 'id="no-problems"' in after and "1 score sent again" in after


@pytest.mark.parametrize("roles", [[LEARNER], [INSTRUCTOR]])
def test_learners_and_educators_are_refused(client, canvas, canvas_lms, failed, roles):
    token = token_after_launch(client, canvas, roles)
    assert client.get("/admin/grades", query_string={"lt": token}).status_code == 403
    posted = client.post("/admin/grades/retry", data={"lt": token, "all": "1"})
    assert posted.status_code == 403


def test_nobody_signed_in_is_sent_to_sign_in_and_cannot_retry(client, services, failed):
    with client.session_transaction() as cookie:
        cookie.clear()  # the fixture's launch left a learner signed in
    page = client.get("/admin/grades")
    assert page.status_code == 302
    assert page.headers["Location"] == "/assess/login?next=/admin/grades"
    posted = client.post("/admin/grades/retry", data={"all": "1"})
    assert posted.status_code == 303 and posted.headers["Location"] == "/assess/login"
    assert score_row(services, failed).status == FAILED


def test_an_lms_administrator_sees_and_retries_only_their_own_platform(
    services, client, moodle, failed
):
    token = token_after_launch(client, moodle, [ADMIN], "moodle")
    html = client.get("/admin/grades", query_string={"lt": token}).get_data(as_text=True)
    assert "User not found in course" not in html and 'id="no-problems"' in html
    client.post("/admin/grades/retry", data={"lt": token, "all": "1"})
    assert score_row(services, failed).status == FAILED


def test_a_tool_administrator_sees_every_platform_and_the_form_needs_its_token(
    services, client, failed
):
    with transaction(services.session_factory) as session:
        account = Account(email="root@tool.test", name="Root", is_admin=True)
        session.add(account)
        session.flush()
        account_id = account.id
    with client.session_transaction() as cookie:
        cookie["account_id"] = account_id
    html = client.get("/admin/grades").get_data(as_text=True)
    assert "User not found in course" in html
    # Without the page's CSRF token (a form posted from another site): refused, also with a
    # made-up token or a made-up launch token.
    for forged in ({}, {"csrf_token": "made-up"}, {"lt": "made-up"}):
        refused = client.post("/admin/grades/retry", data={"all": "1", **forged})
        assert refused.status_code == 400
        assert "not sent from this site" in refused.get_data(as_text=True)
    assert score_row(services, failed).status == FAILED
    csrf_token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    retried = client.post("/admin/grades/retry", data={"all": "1", "csrf_token": csrf_token})
    assert retried.status_code == 303
    assert score_row(services, failed).status == DELIVERED


def test_a_retry_without_a_score_says_what_is_missing(client, canvas, failed):
    token = token_after_launch(client, canvas, [ADMIN])
    response = client.post("/admin/grades/retry", data={"lt": token, "score": "x"})
    assert response.status_code == 400
    assert "which score" in response.get_data(as_text=True)


def test_a_gradebook_column_the_lms_refused_to_create_is_shown_with_its_answer(
    client, catalog, services, canvas, canvas_lms, moodle
):
    canvas_lms.fail_line_item_posts(
        *[Failure(403, body={"errors": [{"message": "Tool not allowed to create columns"}]})] * 3
    )
    test_ags_line_items.launch_mapped(client, canvas, canvas_lms)
    token = token_after_launch(client, canvas, [ADMIN])
    html = client.get("/admin/grades", query_string={"lt": token}).get_data(as_text=True)
    assert 'id="pending-line-items"' in html
    assert "HTTP 403" in html and "Tool not allowed to create columns" in html
    # The administrator of another platform does not see it.
    other = token_after_launch(client, moodle, [ADMIN], "moodle")
    html = client.get("/admin/grades", query_string={"lt": other}).get_data(as_text=True)
    assert 'id="no-line-items"' in html and "Tool not allowed" not in html
