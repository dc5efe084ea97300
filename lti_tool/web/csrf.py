"""CSRF protection for the forms of pages used outside the LMS (sign-in, portal, admin).

Flask-WTF's signed, session-bound token: templates put `{{ csrf_field() }}` in each form and the
view calls `check_csrf()` before acting on a POST. Not global: LMS launches are cross-site POSTs
by design, and pages inside an LMS iframe may have no cookie (they carry the `lt` token).
"""

from __future__ import annotations

from flask import Flask, abort, request
from flask_wtf.csrf import generate_csrf, validate_csrf
from markupsafe import Markup
from wtforms import ValidationError

FIELD = "csrf_token"


def csrf_field() -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">').format(FIELD, generate_csrf())


def check_csrf() -> None:
    """Refuse (400) a form that does not carry this session's token."""
    try:
        validate_csrf(request.form.get(FIELD))
    except ValidationError:
        abort(
            400,
            "This form has expired or was not sent from this site. Go back, reload the page and "
            "try again.",
        )


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(csrf_field=csrf_field, csrf_token=generate_csrf)
