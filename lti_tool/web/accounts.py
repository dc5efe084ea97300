"""Who is signed in outside the LMS (assessors, the tool's administrators), and the guards
of the pages that need them.

A signed-in account is `session["account_id"]` with the account's `session_epoch` beside it
(set by the sign-in views in web/signin.py); signing out raises the epoch, so a copy of the
cookie is no longer recognised anywhere.
Administration pages also accept someone who launched the tool from an LMS with the
administrator role, since an LMS administrator runs the tool for their institution.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, g, redirect, render_template, request, session, url_for

from lti_tool.accounts.models import Account
from lti_tool.roster.models import ADMINISTRATOR
from lti_tool.web import db
from lti_tool.web.identity import current_identity

ACCOUNT_KEY = "account_id"
EPOCH_KEY = "account_epoch"


def current_account() -> Account | None:
    """The active account signed in in this browser session, if any."""
    if "account" not in g:
        account_id = session.get(ACCOUNT_KEY)
        account = db().get(Account, account_id) if account_id is not None else None
        recognised = (
            account is not None
            and account.active
            and session.get(EPOCH_KEY, 0) == (account.session_epoch or 0)
        )
        g.account = account if recognised else None
    return g.account


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def account_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Pages of the assessor portal: a signed-in account, or the sign-in page."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if current_account() is None:
            if _wants_json():
                abort(401, "Sign in first.")
            return redirect(url_for("signin.login", next=request.full_path))
        return view(*args, **kwargs)

    return guarded


def is_admin() -> bool:
    """A tool administrator account, or an LMS launch with the administrator role."""
    account = current_account()
    if account is not None and account.is_admin:
        return True
    identity = current_identity()
    return identity is not None and identity.role == ADMINISTRATOR


def _sign_in_first() -> Any:
    """Someone not signed in at all: the sign-in page, back here afterwards (a page read; a
    form sent without a session has no page to come back to). The sign-in view accepts only a
    `next` that is a path of this tool (web/signin.safe_next)."""
    if _wants_json():
        abort(401, "Sign in first.")
    if request.method in ("GET", "HEAD"):
        return redirect(url_for("signin.login", next=request.full_path.removesuffix("?")))
    return redirect(url_for("signin.login"), code=303)


def _not_an_administrator() -> Any:
    """Signed in (an account, or an LMS launch) without the administrator role: 403, saying who
    they are signed in as and how to get in."""
    account = current_account()
    identity = current_identity()
    if account is not None:
        who = f"You are signed in as {account.name} ({account.email}), which is not an "
        who += "administrator account."
    else:
        role = identity.role if identity is not None else "user"
        article = "an" if role[:1] in "aeiou" else "a"
        who = f"You opened the tool from your LMS as {article} {role}, not as an administrator."
    body = render_template(
        "admin/forbidden.html",
        who=who,
        sign_in_url=url_for("signin.login", next=request.full_path.removesuffix("?")),
    )
    return body, 403


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Administration pages: administrators only. Anyone not signed in is sent to the sign-in
    page (and back); someone signed in who is not an administrator gets a 403 page."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if is_admin():
            return view(*args, **kwargs)
        if current_account() is None and current_identity() is None:
            return _sign_in_first()
        if _wants_json():
            abort(403, "Only the tool's administrators can open this page.")
        return _not_an_administrator()

    return guarded
