"""CSRF protection for the forms of pages used outside the LMS (sign-in, portal, admin).

One mechanism: Flask-WTF's signed, session-bound token. Templates put `{{ csrf_field() }}` in
each form (administration forms: `{{ admin_form_fields() }}`) and the view calls `check_csrf()`
(administration views: `check_admin_form()`) before acting on a POST. Not global: LMS launches
are cross-site POSTs by design, and pages inside an LMS iframe may have no cookie (they carry
the `lt` token).

An LMS administrator inside an iframe may have no cookie, and so no session to hold the token:
their forms carry the launch's signed `lt` token instead, which another site cannot know.
"""

from __future__ import annotations

from flask import Flask, abort, request
from flask_wtf.csrf import generate_csrf, validate_csrf
from markupsafe import Markup
from wtforms import ValidationError

from lti_tool.roster.models import ADMINISTRATOR
from lti_tool.web.accounts import current_account
from lti_tool.web.identity import TOKEN_PARAM, current_identity, identity_of_token, token_of

FIELD = "csrf_token"
REFUSED = (
    "This form has expired or was not sent from this site. Go back, reload the page and try again."
)
_HIDDEN = Markup('<input type="hidden" name="{}" value="{}">')


def csrf_field() -> Markup:
    return _HIDDEN.format(FIELD, generate_csrf())


def check_csrf() -> None:
    """Refuse (400) a form that does not carry this session's token."""
    try:
        validate_csrf(request.form.get(FIELD))
    except ValidationError:
        abort(400, REFUSED)


def _lms_administrator_token() -> str | None:
    """The `lt` token an LMS administrator's forms carry (None for a signed-in account)."""
    if current_account() is not None:
        return None
    identity = current_identity()
    if identity is None or identity.role != ADMINISTRATOR:
        return None
    return token_of(identity)


def admin_form_fields() -> Markup:
    """The hidden fields of an administration form: the session's CSRF token, and for an LMS
    administrator the launch's `lt` token (which also keeps them signed in without a cookie)."""
    fields = csrf_field()
    token = _lms_administrator_token()
    if token is not None:
        fields += _HIDDEN.format(TOKEN_PARAM, token)
    return fields


def check_admin_form() -> None:
    """Refuse (400) an administration form not sent from the tool's own page: a signed-in
    account's form must carry the session's CSRF token; without an account, a form carrying
    an `lt` token must carry a valid one of an LMS administrator (its cookie may be missing)."""
    token = request.form.get(TOKEN_PARAM)
    if current_account() is None and token:
        identity = identity_of_token(token)
        if identity is not None and identity.role == ADMINISTRATOR:
            return
        abort(400, REFUSED)
    check_csrf()


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(
        csrf_field=csrf_field, csrf_token=generate_csrf, admin_form_fields=admin_form_fields
    )
