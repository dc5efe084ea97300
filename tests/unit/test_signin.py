"""Sign-in to /assess/ and /admin/ with a local password: right and wrong passwords, lockout
after repeated failures, disabled accounts, CSRF, and `next` that never leaves the tool."""

from __future__ import annotations

import re

import pytest

from lti_tool.accounts import service as accounts
from lti_tool.accounts.models import Account
from lti_tool.app import create_app
from lti_tool.db import transaction
from lti_tool.services import Services
from lti_tool.web.signin import safe_next

PASSWORD = "correct horse battery staple"


@pytest.fixture
def assessor(services) -> Account:
    with transaction(services.session_factory) as session:
        return accounts.add_account(session, "Ada@Example.org", "Ada Assessor", password=PASSWORD)


def csrf_of(client, path: str = "/assess/login") -> str:
    page = client.get(path)
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def sign_in(client, email: str, password: str, **extra):
    form = {"email": email, "password": password, "csrf_token": csrf_of(client), **extra}
    return client.post("/assess/login", data=form)


def signed_in_id(client):
    with client.session_transaction() as s:
        return s.get("account_id")


def test_the_sign_in_page_is_accessible_html(client):
    page = client.get("/assess/login").get_data(as_text=True)
    assert '<label for="email">' in page and '<label for="password">' in page
    assert "<h1>Sign in</h1>" in page
    assert "Single sign-on" not in page  # no provider configured


def test_right_password_signs_in_case_insensitively_and_lands_on_the_portal(client, assessor):
    response = sign_in(client, "  ada@EXAMPLE.org ", PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/assess/"
    assert signed_in_id(client) == assessor.id


def test_session_cookie_works_on_its_own_over_https(client, assessor):
    response = sign_in(client, "ada@example.org", PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie
    # A top-level visit after signing in is recognised (the cookie comes back).
    assert client.get("/assess/login").get_data(as_text=True).count("You are signed in as") == 1


def test_wrong_password_is_refused_and_says_so(client, assessor):
    response = sign_in(client, "ada@example.org", "not the password at all")
    assert response.status_code == 401
    assert "Wrong e-mail address or password." in response.get_data(as_text=True)
    assert signed_in_id(client) is None


def test_unknown_email_gets_the_same_answer_as_a_wrong_password(client, assessor):
    response = sign_in(client, "nobody@example.org", PASSWORD)
    assert response.status_code == 401
    assert "Wrong e-mail address or password." in response.get_data(as_text=True)


def test_empty_fields_are_asked_for(client):
    response = sign_in(client, "", "")
    assert response.status_code == 400
    assert "Enter your e-mail address and your password." in response.get_data(as_text=True)


def test_account_is_locked_after_too_many_failures_even_for_the_right_password(
    client, assessor, settings
):
    for _ in range(settings.signin_max_failures_per_account):
        assert sign_in(client, "ada@example.org", "wrong wrong wrong").status_code == 401
    locked = sign_in(client, "ada@example.org", PASSWORD)
    assert locked.status_code == 429
    text = locked.get_data(as_text=True)
    assert "Too many failed sign-in attempts for this account" in text
    assert "15 minute(s)" in text
    assert 800 < int(locked.headers["Retry-After"]) <= 900
    assert signed_in_id(client) is None


def test_a_success_clears_the_account_failures(client, assessor, settings):
    for _ in range(settings.signin_max_failures_per_account - 1):
        sign_in(client, "ada@example.org", "wrong wrong wrong")
    assert sign_in(client, "ada@example.org", PASSWORD).status_code == 302
    for _ in range(settings.signin_max_failures_per_account - 1):
        assert sign_in(client, "ada@example.org", "wrong wrong wrong").status_code == 401


def test_one_address_is_locked_after_failures_across_many_accounts(settings, services):
    strict = settings.replace(signin_max_failures_per_address=3)
    app = create_app(strict, Services(strict))  # the same migrated database
    client = app.test_client()
    for n in range(3):
        assert sign_in(client, f"guess{n}@example.org", "whatever password").status_code == 401
    response = sign_in(client, "guess9@example.org", "whatever password")
    assert response.status_code == 429
    assert "this network address" in response.get_data(as_text=True)


def test_disabled_account_cannot_sign_in(client, assessor, services):
    with transaction(services.session_factory) as session:
        session.get(Account, assessor.id).active = False
    response = sign_in(client, "ada@example.org", PASSWORD)
    assert response.status_code == 403
    assert "This account is disabled" in response.get_data(as_text=True)
    assert signed_in_id(client) is None


def test_a_disabled_account_already_signed_in_is_no_longer_recognised(client, assessor, services):
    sign_in(client, "ada@example.org", PASSWORD)
    with transaction(services.session_factory) as session:
        session.get(Account, assessor.id).active = False
    assert "You are signed in as" not in client.get("/assess/login").get_data(as_text=True)


def test_post_without_the_csrf_token_is_refused(client, assessor):
    response = client.post("/assess/login", data={"email": "ada@example.org", "password": PASSWORD})
    assert response.status_code == 400
    assert "This form has expired or was not sent from this site" in response.get_data(
        as_text=True
    )
    assert signed_in_id(client) is None


def test_csrf_token_of_another_session_is_refused(app, assessor):
    other = app.test_client()
    token = csrf_of(other)
    client = app.test_client()
    client.get("/assess/login")
    form = {"email": "ada@example.org", "password": PASSWORD, "csrf_token": token}
    assert client.post("/assess/login", data=form).status_code == 400


def test_next_path_of_the_tool_is_followed(client, assessor):
    response = sign_in(client, "ada@example.org", PASSWORD, next="/assess/cases?x=1")
    assert response.headers["Location"] == "/assess/cases?x=1"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/assess/\r\nSet-Cookie: x=1",
        "http:/evil.example",
        "",
    ],
)
def test_open_redirect_in_next_is_refused(client, assessor, target):
    response = sign_in(client, "ada@example.org", PASSWORD, next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/assess/"
    assert safe_next(target) is None


def test_the_sign_in_form_keeps_a_safe_next_only(client):
    page = client.get("/assess/login?next=/admin/assessment/stats").get_data(as_text=True)
    assert 'name="next" value="/admin/assessment/stats"' in page
    page = client.get("/assess/login?next=https://evil.example/").get_data(as_text=True)
    assert "evil.example" not in page


def test_sign_out_needs_the_csrf_token_and_ends_the_session(client, assessor):
    sign_in(client, "ada@example.org", PASSWORD)
    assert client.post("/assess/logout").status_code == 400
    assert signed_in_id(client) == assessor.id
    token = csrf_of(client)
    response = client.post("/assess/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert signed_in_id(client) is None
    assert "You are signed out." in client.get(response.headers["Location"]).get_data(
        as_text=True
    )


def recognised(browser) -> bool:
    """Whether the tool takes this browser for Ada (an admin page names who is signed in)."""
    return "Signed in as Ada Assessor" in browser.get("/admin/assessment/stats/").get_data(
        as_text=True
    )


def test_signing_out_ends_every_session_of_the_account_a_copied_cookie_included(
    app, client, assessor
):
    sign_in(client, "ada@example.org", PASSWORD)
    other_browser = app.test_client()
    sign_in(other_browser, "ada@example.org", PASSWORD)
    copied = app.test_client()  # someone who copied the first browser's cookie
    with client.session_transaction() as original, copied.session_transaction() as copy:
        copy.update(original)
    assert recognised(copied) and recognised(other_browser)
    client.post("/assess/logout", data={"csrf_token": csrf_of(client)})
    assert not recognised(copied) and not recognised(other_browser)
    sign_in(client, "ada@example.org", PASSWORD)  # signing in again works
    assert recognised(client)


def test_a_new_password_ends_the_sessions_of_the_account(client, services, assessor):
    sign_in(client, "ada@example.org", PASSWORD)
    assert recognised(client)
    with transaction(services.session_factory) as session:
        accounts.set_password(session, "ada@example.org", "another long passphrase here")
    assert not recognised(client)


def test_every_page_shows_the_signed_in_account_and_a_sign_out_button(client, assessor):
    assert "Sign out" not in client.get("/assess/login").get_data(as_text=True)
    sign_in(client, "ada@example.org", PASSWORD)
    page = client.get("/admin/assessment/stats/").get_data(as_text=True)  # refused: not admin
    assert "Signed in as Ada Assessor" in page
    assert 'action="/assess/logout"' in page and 'name="csrf_token"' in page


def test_sign_out_by_get_is_not_allowed(client):
    assert client.get("/assess/logout").status_code == 405


def test_old_password_hashes_are_upgraded_at_sign_in(client, assessor, services):
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with transaction(services.session_factory) as session:
        session.get(Account, assessor.id).password_hash = weak
    assert sign_in(client, "ada@example.org", PASSWORD).status_code == 302
    with services.session_factory() as session:
        stored = session.get(Account, assessor.id).password_hash
    assert stored != weak and stored.startswith("$argon2id$")
    assert not accounts.hasher.check_needs_rehash(stored)
