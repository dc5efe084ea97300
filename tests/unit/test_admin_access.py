"""Who gets into the administration pages: nobody signed in is sent to the sign-in page and
back (never off-site); a signed-in account or LMS user who is not an administrator gets a 403
page saying who they are signed in as."""

from __future__ import annotations

import re
from dataclasses import asdict
from urllib.parse import parse_qs, urlsplit

import pytest

from lti_tool.accounts import service as accounts
from lti_tool.db import transaction
from lti_tool.roster.models import ADMINISTRATOR, EDUCATOR, LEARNER
from lti_tool.web.identity import Identity
from tests.unit.test_signin import sign_in

PASSWORD = "correct horse battery staple"
ADMIN_PAGES = [
    "/admin/assessors",
    "/admin/assessment",
    "/admin/assessment/stats/",
    "/admin/grades",
    "/admin/badges",
]


@pytest.fixture
def people(services):
    with transaction(services.session_factory) as session:
        accounts.add_account(session, "root@tool.test", "Rhea Root", is_admin=True,
                             password=PASSWORD)  # fmt: skip
        accounts.add_account(session, "plain@tool.test", "Pat Plain", is_admin=False,
                             password=PASSWORD)  # fmt: skip


def next_of(response) -> str | None:
    location = urlsplit(response.headers["Location"])
    assert location.path == "/assess/login"
    return parse_qs(location.query).get("next", [None])[0]


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_nobody_signed_in_is_sent_to_sign_in_with_the_way_back(client, page):
    response = client.get(page)
    assert response.status_code == 302
    assert next_of(response) == page


def test_the_way_back_keeps_the_query_and_leads_there_after_signing_in(client, people):
    page = "/admin/assessment/stats/?from=2026-01-01&to=2026-01-31"
    back = next_of(client.get(page))
    assert back == page
    signed_in = sign_in(client, "root@tool.test", PASSWORD, next=back)
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == page
    assert client.get(page).status_code == 200


@pytest.mark.parametrize(
    "target", ["https://evil.example/admin/grades", "//evil.example/admin/grades",
               "/\\evil.example", "javascript:alert(1)"],  # fmt: skip
)
def test_the_way_back_cannot_lead_off_site(client, people, target):
    signed_in = sign_in(client, "root@tool.test", PASSWORD, next=target)
    assert signed_in.headers["Location"] == "/assess/"
    login_page = client.get("/assess/login", query_string={"next": target})
    assert "evil.example" not in login_page.get_data(as_text=True)


def test_a_form_sent_without_a_session_goes_to_sign_in_and_does_nothing(client):
    response = client.post("/admin/assessors", data={"email": "x@y.example", "name": "X"})
    assert response.status_code == 303
    assert next_of(response) is None  # a POST has no page to come back to
    assert client.get("/admin/assessors").status_code == 302


def test_json_clients_get_401_not_a_redirect(client):
    response = client.get("/admin/grades", headers={"Accept": "application/json"})
    assert response.status_code == 401


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_a_signed_in_account_that_is_not_an_admin_gets_a_clear_403(client, people, page):
    sign_in(client, "plain@tool.test", PASSWORD)
    response = client.get(page)
    assert response.status_code == 403
    text = response.get_data(as_text=True)
    assert "<h1>Administrators only</h1>" in text
    assert "You are signed in as Pat Plain (plain@tool.test)" in text
    assert "not an administrator account" in text
    assert f'href="/assess/login?next={page}"' in text  # sign in as someone else, come back


@pytest.mark.parametrize(("role", "said"), [(LEARNER, "a learner"), (EDUCATOR, "an educator")])
def test_an_lms_user_who_is_not_an_administrator_gets_a_clear_403(client, role, said):
    identity = Identity(1, None, None, None, role, "launch-1", "LtiResourceLinkRequest")
    with client.session_transaction() as s:
        s["identity"] = asdict(identity)
    response = client.get("/admin/assessment")
    assert response.status_code == 403
    assert f"You opened the tool from your LMS as {said}" in response.get_data(as_text=True)
    with client.session_transaction() as s:
        s["identity"] = asdict(identity) | {"role": ADMINISTRATOR}
    assert client.get("/admin/assessment").status_code == 200


# -- the one CSRF check of administration forms (web/csrf.check_admin_form) ----------------------
ADD_ASSESSOR = {"email": "eve@inst-e.example", "name": "Eve", "institution": "E", "capacity": "2"}


def assessor_emails(services) -> list[str]:
    from lti_tool.assessment import assessors as pool

    with services.session_factory() as session:
        return [a.email for a in pool.list_assessors(session)]


def test_an_admin_accounts_form_needs_the_sessions_csrf_token(client, services, people, app):
    from tests.unit.test_assess_portal import lms_token

    sign_in(client, "root@tool.test", PASSWORD)
    page = client.get("/admin/assessors").get_data(as_text=True)
    assert 'name="csrf_token"' in page and 'name="lt"' not in page
    # A cross-site form: the browser sends the cookie, but not the page's token; a valid launch
    # token of an LMS administrator is no way around it for a signed-in account.
    for forged in ({}, {"csrf_token": "made-up"}, {"lt": lms_token(app, ADMINISTRATOR)}):
        refused = client.post("/admin/assessors", data={**ADD_ASSESSOR, **forged})
        assert refused.status_code == 400, forged
    assert assessor_emails(services) == []
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    added = client.post("/admin/assessors", data={**ADD_ASSESSOR, "csrf_token": token})
    assert added.status_code == 302
    assert assessor_emails(services) == ["eve@inst-e.example"]


def test_an_lms_administrators_form_carries_the_launch_token(client, services, app):
    from tests.unit.test_assess_portal import lms_token

    token = lms_token(app, ADMINISTRATOR)
    page = client.get("/admin/assessors", query_string={"lt": token}).get_data(as_text=True)
    assert f'name="lt" value="{token}"' in page  # no cookie needed inside the LMS iframe
    # A learner's own (valid) launch token does not make a form an administrator's.
    learner = client.post("/admin/assessors", data={**ADD_ASSESSOR, "lt": lms_token(app, LEARNER)})
    assert learner.status_code == 403
    made_up = client.post("/admin/assessors", data={**ADD_ASSESSOR, "lt": "made-up"})
    assert made_up.status_code == 303  # nobody signed in: to the sign-in page, nothing done
    assert assessor_emails(services) == []
    added = client.post("/admin/assessors", data={**ADD_ASSESSOR, "lt": token})
    assert added.status_code == 302
    assert assessor_emails(services) == ["eve@inst-e.example"]
