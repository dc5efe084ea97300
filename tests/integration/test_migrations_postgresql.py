"""The Alembic migrations build, on PostgreSQL, exactly the schema the models describe."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from lti_tool import migrate
from lti_tool.db import Base, import_all_models, make_engine


def schema_differences(engine: Engine) -> list:
    """What autogenerate would still emit to bring the database to the models (as env.py
    compares: tables, columns, types, indexes, constraints)."""
    import_all_models()
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def _downgrade(engine: Engine, revision: str) -> None:
    config = migrate.alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_upgrade_builds_the_models_schema_on_postgresql(pg_url):
    engine = make_engine(pg_url)
    try:
        assert engine.dialect.name == "postgresql"
        assert not migrate.is_current(engine)
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
        import_all_models()
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        assert schema_differences(engine) == []
        migrate.upgrade(engine)  # a second upgrade is a no-op
        assert migrate.is_current(engine)
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back_on_postgresql(pg_url):
    engine = make_engine(pg_url)
    try:
        migrate.upgrade(engine)
        _downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
        assert schema_differences(engine) == []
    finally:
        engine.dispose()
