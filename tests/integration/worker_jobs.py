"""Jobs that only the integration tests enqueue (a worker imports them by name)."""

from __future__ import annotations

import os

from sqlalchemy import text

from lti_tool.jobs import worker_services


def database_backend_pid() -> str:
    """The job's process and the PostgreSQL backend serving its database connection."""
    with worker_services().engine.connect() as connection:
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    return f"{os.getpid()}:{backend}"
