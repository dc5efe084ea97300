"""Do the models and the migrated database agree? Alembic's autogenerate answers.

Used by the unit tests (SQLite) and the integration tests (PostgreSQL): migrate a database,
then ask what autogenerate would still emit to bring it to `Base.metadata`. Nothing means the
migrations build exactly the schema the models describe.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from lti_tool.db import Base, import_all_models


def schema_differences(engine: Engine) -> list[Any]:
    """The operations autogenerate finds between the database behind `engine` and the models.

    Compared as migrations/env.py configures autogenerate: tables, columns, nullability,
    types, indexes, unique and foreign key constraints. Empty when they agree.
    """
    import_all_models()
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "target_metadata": Base.metadata,
                "render_as_batch": connection.dialect.name == "sqlite",
            },
        )
        return compare_metadata(context, Base.metadata)


def describe(differences: list[Any]) -> str:
    """One line per difference, for an assertion message."""
    return "\n".join(repr(d) for d in differences)
