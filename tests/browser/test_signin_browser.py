"""An administrator signs in to the tool opened on its own (not in an LMS iframe), in headless
Chromium over HTTPS: the session cookie (Secure, SameSite=None, Partitioned) comes back on the
next pages, and signing out ends the session."""

from __future__ import annotations

import pytest

from lti_tool.accounts import service as accounts
from lti_tool.db import transaction
from tests.browser.conftest import DemoWorld

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CI=true) with the reason
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

PASSWORD = "a long browser password"


@pytest.fixture(scope="module")
def admin_email(demo_world: DemoWorld) -> str:
    with transaction(demo_world.services.session_factory) as session:
        accounts.add_account(
            session, "browser-admin@example.org", "Bri Admin", is_admin=True, password=PASSWORD
        )
    return "browser-admin@example.org"


def test_sign_in_on_its_own_keeps_the_session_and_signs_out(demo_world, open_browser, admin_email):
    context = open_browser()
    page = context.pages[0]
    # Not signed in: the admin page sends the browser to the sign-in page, and back after it.
    page.goto(f"{demo_world.tool_url}/admin/assessment/stats/")
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    assert page.url == f"{demo_world.tool_url}/assess/login?next=/admin/assessment/stats/"
    page.get_by_label("E-mail address").fill(admin_email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong e-mail address or password.")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(
        page.get_by_role("heading", name="Assessment consistency and turnaround")
    ).to_be_visible()
    assert page.url == f"{demo_world.tool_url}/admin/assessment/stats/"
    (cookie,) = [c for c in context.cookies(demo_world.tool_url) if c["name"] == "lti_tool_session"]
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "None"

    # The cookie comes back on a later top-level visit: still signed in.
    page.goto(f"{demo_world.tool_url}/admin/assessment/stats/?from=2026-01-01&to=2026-01-31")
    expect(page.locator("header")).to_contain_text("Signed in as Bri Admin")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    page.goto(f"{demo_world.tool_url}/admin/assessment/stats/")
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
