"""Who is signed in outside the LMS (assessors, the tool's administrators), and the guards
of the pages that need them.

A signed-in account is `session["account_id"]` (set by the sign-in views in web/signin.py).
Administration pages also accept someone who launched the tool from an LMS with the
administrator role, since an LMS administrator runs the tool for their institution.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, g, redirect, request, session, url_for

from lti_tool.accounts.models import Account
from lti_tool.roster.models import ADMINISTRATOR
from lti_tool.web import db
from lti_tool.web.identity import current_identity

ACCOUNT_KEY = "account_id"


def current_account() -> Account | None:
    """The active account signed in in this browser session, if any."""
    if "account" not in g:
        account_id = session.get(ACCOUNT_KEY)
        account = db().get(Account, account_id) if account_id is not None else None
        g.account = account if account is not None and account.active else None
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


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Administration pages: refused (403) to everyone but administrators."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not is_admin():
            abort(403, "Only the tool's administrators can open this page.")
        return view(*args, **kwargs)

    return guarded
