"""Helpers of the portal and admin page tests: sign an account in, read the CSRF token of a
page, post a form as a browser on the tool's own site does."""

from __future__ import annotations

import re

from flask import Blueprint

from lti_tool.db import transaction

REFERER = "https://tool.test/"


def ensure_signin_endpoint(app) -> None:
    """web/signin.py (the sign-in engineer's) may not be on this branch yet: a stand-in
    `signin.login` endpoint, so that account_required can redirect to it."""
    if "signin" not in app.blueprints:
        stand_in = Blueprint("signin", __name__)
        stand_in.add_url_rule("/signin", "login", lambda: "sign in")
        app.register_blueprint(stand_in)


def sign_in(client, account_id: int) -> None:
    with client.session_transaction() as session:
        session["account_id"] = account_id


def account_id_of(services, email: str) -> int:
    from sqlalchemy import select

    from lti_tool.accounts.models import Account

    with services.session_factory() as session:
        return session.scalar(select(Account.id).where(Account.email == email))


def add_admin(services, email: str = "admin@programme.example") -> int:
    from lti_tool.accounts.models import Account

    with transaction(services.session_factory) as session:
        account = Account(email=email, name="Programme Admin", is_admin=True)
        session.add(account)
        session.flush()
        return account.id


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def post_form(client, url: str, page_url: str, data: dict):
    """GET the page for its CSRF token, then POST the form to url."""
    page = client.get(page_url)
    assert page.status_code == 200, page.get_data(as_text=True)
    token = csrf_of(page.get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **data}, headers={"Referer": REFERER})
