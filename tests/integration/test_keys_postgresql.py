"""The tool's first signing key, made by many first launches at once, is made exactly once."""

from __future__ import annotations

from sqlalchemy import func, select

from lti_tool import migrate
from lti_tool.db import make_engine, make_session_factory, transaction
from lti_tool.lti import keys
from lti_tool.lti.models import ToolKey
from tests.integration.test_cache_postgresql import all_at_once


def test_concurrent_first_use_makes_one_active_key(pg_url):
    engine = make_engine(pg_url)
    migrate.upgrade(engine)
    factory = make_session_factory(engine)

    def first_use(_: int) -> str:
        with transaction(factory) as session:
            return keys.active_key(session).kid

    kids = all_at_once(12, first_use)
    assert len(set(kids)) == 1
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(ToolKey)) == 1
        # Rotation still works with the one-active-key index in place.
        with transaction(factory) as writer:
            new = keys.rotate(writer)
        actives = session.scalars(select(ToolKey.kid).where(ToolKey.active.is_(True))).all()
        assert actives == [new.kid]
    engine.dispose()
