"""Engine, sessions and the declarative Base shared by every package's models."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, MetaData, bindparam, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timestamps are stored in UTC and always come back timezone-aware (SQLite forgets)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str) -> Engine:
    """An engine that suits the URL: SQLite gets WAL and foreign keys, others a pool."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)
    _ping_when_idle(engine)
    return engine


# A pooled connection unused for longer than this is checked (a round trip) before it is handed
# out; one returned a moment ago is not (seconds).
PING_AFTER_IDLE = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Pool pre-ping, but only for connections that sat idle: the way a pooled connection dies
    (a database restart, an idle timeout, a dropped TCP session) leaves it idle, and a request
    must never fail on one. A connection busy a moment ago skips the ping: under load that is
    one round trip less per request (pool_pre_ping pings every checkout)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is not None and time.monotonic() - checked_in_at < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool drops this connection and hands out a fresh one.
            raise DisconnectionError("stale pooled connection") from exc


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def import_all_models() -> None:
    """Import every package's models so that Base.metadata knows all tables."""
    from lti_tool import cache  # noqa: F401
    from lti_tool.accounts import models as _accounts  # noqa: F401
    from lti_tool.assessment import models as _assessment  # noqa: F401
    from lti_tool.catalog import models as _catalog  # noqa: F401
    from lti_tool.credentials import models as _credentials  # noqa: F401
    from lti_tool.evidence import models as _evidence  # noqa: F401
    from lti_tool.gradebook import models as _gradebook  # noqa: F401
    from lti_tool.lti import models as _lti  # noqa: F401
    from lti_tool.outbox import models as _outbox  # noqa: F401
    from lti_tool.progress import models as _progress  # noqa: F401
    from lti_tool.roster import models as _roster  # noqa: F401


def upsert(session: Session, model: type[Base], keys: dict, values: dict) -> int:
    """Insert a row or update the one with the same unique keys; return its id.

    One statement (INSERT ... ON CONFLICT DO UPDATE), so two concurrent launches of the same
    new user cannot both insert and fail.
    """
    dialect = session.get_bind().dialect.name
    statement = _upsert_statement(dialect, model, tuple(keys), tuple(values))
    # Core execution in the session's transaction: the statement returns ids, not entities.
    return session.connection().execute(statement, {**keys, **values}).scalar_one()


@functools.lru_cache(maxsize=64)
def _upsert_statement(dialect: str, model: type[Base], keys: tuple, values: tuple):
    """The upsert of `model` with bound parameters, built once: building it (the `excluded`
    alias copies every column) cost more than running it, on every launch."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    columns = model.__table__.c
    statement = insert(model).values(
        {name: bindparam(name, type_=columns[name].type) for name in (*keys, *values)}
    )
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: statement.excluded[name] for name in values}
    ).returning(model.id)
