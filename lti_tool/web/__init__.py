"""Flask blueprints: thin adapters from HTTP to the domain's service functions."""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session
from werkzeug.routing import IntegerConverter

from lti_tool.services import Services


def services() -> Services:
    return current_app.extensions["lti_tool"]


def db() -> Session:
    """The request's database session (closed when the request ends)."""
    if "db_session" not in g:
        g.db_session = services().session_factory()
    return g.db_session


# The largest value of the tool's integer columns (ids, version numbers): PostgreSQL's INTEGER.
# SQLite's hold up to 2**63 - 1; a larger number is refused by both databases' drivers.
MAX_DATABASE_INT = 2**31 - 1


class DatabaseIntConverter(IntegerConverter):
    """`<int:...>` in the tool's URLs (an id, a version number): at most MAX_DATABASE_INT. A
    larger number cannot name anything, so its URL matches no route (404) rather than reaching
    the database, which refuses to compare a column with it (an error, not "not found")."""

    def __init__(self, map, fixed_digits=0, min=None, max=MAX_DATABASE_INT, signed=False):
        super().__init__(map, fixed_digits, min, max, signed)
