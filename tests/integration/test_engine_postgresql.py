"""The engine's pool on the real PostgreSQL: a pooled connection that died while idle (the
server restarted, or ended it) is replaced before a request gets it, never an error."""

from __future__ import annotations

import time

from sqlalchemy import text

from lti_tool import db


def _backend_pid(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_ended_while_idle_is_replaced_without_an_error(pg_url, pg_admin, monkeypatch):
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.05)
    engine = db.make_engine(pg_url)
    try:
        pid = _backend_pid(engine)
        with pg_admin.connect() as admin:
            assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        time.sleep(0.2)  # idle for longer than PING_AFTER_IDLE: the checkout pings it
        assert _backend_pid(engine) != pid  # a fresh connection, and no error
    finally:
        engine.dispose()


def test_only_a_connection_that_sat_idle_costs_a_ping(pg_url, monkeypatch):
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.2)
    engine = db.make_engine(pg_url)
    pings = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(1) or ping(conn))
    try:
        first = _backend_pid(engine)
        assert _backend_pid(engine) == first  # reused at once: no round trip before it
        assert len(pings) == 1  # the new connection's first checkout
        time.sleep(0.3)
        assert _backend_pid(engine) == first
        assert len(pings) == 2  # idle for longer than PING_AFTER_IDLE: checked first
    finally:
        engine.dispose()
