"""The migrations build, on SQLite, exactly the schema the models describe."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, Table, inspect

from lti_tool import migrate
from lti_tool.db import Base, import_all_models, make_engine
from tests.support.schema import describe, schema_differences


def test_migrated_sqlite_database_matches_the_models(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    try:
        assert not migrate.is_current(engine)
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
        import_all_models()
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        differences = schema_differences(engine)
        assert differences == [], describe(differences)
        migrate.upgrade(engine)  # a second upgrade changes nothing
        assert migrate.is_current(engine)
    finally:
        engine.dispose()


def test_the_comparison_sees_a_schema_that_drifted(tmp_path):
    """The check above can fail: a table or column the models do not know is reported."""
    engine = make_engine(f"sqlite:///{tmp_path / 'drift.sqlite3'}")
    try:
        migrate.upgrade(engine)
        extra = MetaData()
        Table("stray", extra, Column("id", Integer, primary_key=True))
        extra.create_all(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE platforms ADD COLUMN color VARCHAR(20)")
        found = describe(schema_differences(engine))
        assert "stray" in found
        assert "color" in found
    finally:
        engine.dispose()


def test_the_comparison_sees_a_missing_column(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'missing.sqlite3'}")
    try:
        migrate.upgrade(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE courses DROP COLUMN label")
        assert "label" in describe(schema_differences(engine))
    finally:
        engine.dispose()
