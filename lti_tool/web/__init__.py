"""Flask blueprints: thin adapters from HTTP to the domain's service functions."""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session

from lti_tool.services import Services


def services() -> Services:
    return current_app.extensions["lti_tool"]


def db() -> Session:
    """The request's database session (closed when the request ends)."""
    if "db_session" not in g:
        g.db_session = services().session_factory()
    return g.db_session
