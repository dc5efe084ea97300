"""A small shared cache for values that may be lost: login state, nonces, platform keys, tokens.

Redis in production, so that every gunicorn process and host sees the same login state; the
database in the embedded default, so that the dev server and the tests need no Redis.
Values are JSON. `pop` is atomic in both, which is what makes a nonce single-use.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Protocol

from redis import Redis
from sqlalchemy import String, Text, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from lti_tool.db import Base, UTCDateTime, utcnow


class Cache(Protocol):
    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any, ttl: int | None = None) -> None: ...

    def pop(self, key: str) -> Any:
        """Return the value and remove it, atomically: only one caller ever gets it."""

    def add(self, key: str, value: Any, ttl: int) -> bool:
        """Set the key only if it is absent (or expired), atomically: True for the one caller
        that set it. What a lock with expiry needs (one roster sync per course, say)."""

    def delete(self, key: str) -> None: ...

    def delete_if(self, key: str, value: Any) -> bool:
        """Delete the key only if it still holds this value, atomically (a token another
        process has already replaced is kept): True if it was deleted."""

    def set_many(self, entries: list[tuple[str, Any, int | None]]) -> None:
        """Set several (key, value, ttl) at once: one round trip to Redis (a login writes its
        nonce and its state together)."""

    def pop_many(self, keys: list[str]) -> list[Any]:
        """pop() each key (each atomically) in one round trip to Redis; values in key order."""

    def get_many(self, keys: list[str]) -> list[Any]:
        """get() each key in one round trip to Redis; values in key order."""

    def pop_and_get(self, pop: list[str], get: list[str]) -> tuple[list[Any], list[Any]]:
        """pop_many(pop) and get_many(get) in one round trip to Redis (a launch pops its state
        and nonce, and reads what it needs next, together)."""


class CacheEntry(Base):
    __tablename__ = "cache_entries"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[Any] = mapped_column(UTCDateTime, nullable=True, index=True)


class RedisCache:
    def __init__(self, client: Redis, prefix: str = "lti-tool:cache:") -> None:
        self.client = client
        self.prefix = prefix

    def get(self, key: str) -> Any:
        raw = self.client.get(self.prefix + key)
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        self.client.set(self.prefix + key, json.dumps(value), ex=ttl)

    def pop(self, key: str) -> Any:
        raw = self.client.getdel(self.prefix + key)
        return None if raw is None else json.loads(raw)

    def add(self, key: str, value: Any, ttl: int) -> bool:
        return bool(self.client.set(self.prefix + key, json.dumps(value), ex=ttl, nx=True))

    def delete(self, key: str) -> None:
        self.client.delete(self.prefix + key)

    _DELETE_IF = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
        "else return 0 end"
    )

    def delete_if(self, key: str, value: Any) -> bool:
        return bool(self.client.eval(self._DELETE_IF, 1, self.prefix + key, json.dumps(value)))

    def set_many(self, entries: list[tuple[str, Any, int | None]]) -> None:
        pipeline = self.client.pipeline(transaction=False)
        for key, value, ttl in entries:
            pipeline.set(self.prefix + key, json.dumps(value), ex=ttl)
        pipeline.execute()

    def pop_many(self, keys: list[str]) -> list[Any]:
        pipeline = self.client.pipeline(transaction=False)
        for key in keys:
            pipeline.getdel(self.prefix + key)
        return [None if raw is None else json.loads(raw) for raw in pipeline.execute()]

    def get_many(self, keys: list[str]) -> list[Any]:
        raws = self.client.mget([self.prefix + key for key in keys])
        return [None if raw is None else json.loads(raw) for raw in raws]

    def pop_and_get(self, pop: list[str], get: list[str]) -> tuple[list[Any], list[Any]]:
        pipeline = self.client.pipeline(transaction=False)
        for key in pop:
            pipeline.getdel(self.prefix + key)
        if get:
            pipeline.mget([self.prefix + key for key in get])
        results = pipeline.execute()
        popped = [None if raw is None else json.loads(raw) for raw in results[: len(pop)]]
        read = [None if raw is None else json.loads(raw) for raw in results[-1]] if get else []
        return popped, read


class DatabaseCache:
    """The cache as a table, for the embedded default (SQLite, no Redis)."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    def get(self, key: str) -> Any:
        with self.session_factory() as session:
            entry = session.get(CacheEntry, key)
            if entry is None or (entry.expires_at and entry.expires_at <= utcnow()):
                return None
            return json.loads(entry.value)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        expires_at = utcnow() + timedelta(seconds=ttl) if ttl else None
        row = {"key": key, "value": json.dumps(value), "expires_at": expires_at}
        with self.session_factory() as session:
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            statement = insert(CacheEntry).values(**row)
            statement = statement.on_conflict_do_update(
                index_elements=[CacheEntry.key],
                set_={
                    "value": statement.excluded.value,
                    "expires_at": statement.excluded.expires_at,
                },
            )
            session.execute(statement)
            session.execute(delete(CacheEntry).where(CacheEntry.expires_at < utcnow()))
            session.commit()

    def pop(self, key: str) -> Any:
        with self.session_factory() as session:
            row = session.execute(
                delete(CacheEntry)
                .where(CacheEntry.key == key)
                .returning(CacheEntry.value, CacheEntry.expires_at)
            ).first()
            session.commit()
        if row is None or (row.expires_at and row.expires_at <= utcnow()):
            return None
        return json.loads(row.value)

    def add(self, key: str, value: Any, ttl: int) -> bool:
        now = utcnow()
        row = {"key": key, "value": json.dumps(value), "expires_at": now + timedelta(seconds=ttl)}
        with self.session_factory() as session:
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            # An expired entry does not count: remove it first, in the same transaction.
            session.execute(
                delete(CacheEntry).where(CacheEntry.key == key, CacheEntry.expires_at <= now)
            )
            added = session.execute(
                insert(CacheEntry)
                .values(**row)
                .on_conflict_do_nothing(index_elements=[CacheEntry.key])
                .returning(CacheEntry.key)
            ).first()
            session.commit()
        return added is not None

    def delete(self, key: str) -> None:
        with self.session_factory() as session:
            session.execute(delete(CacheEntry).where(CacheEntry.key == key))
            session.commit()

    def delete_if(self, key: str, value: Any) -> bool:
        with self.session_factory() as session:
            deleted = session.execute(
                delete(CacheEntry)
                .where(CacheEntry.key == key, CacheEntry.value == json.dumps(value))
                .returning(CacheEntry.key)
            ).first()
            session.commit()
        return deleted is not None

    def set_many(self, entries: list[tuple[str, Any, int | None]]) -> None:
        for key, value, ttl in entries:
            self.set(key, value, ttl)

    def pop_many(self, keys: list[str]) -> list[Any]:
        return [self.pop(key) for key in keys]

    def get_many(self, keys: list[str]) -> list[Any]:
        return [self.get(key) for key in keys]

    def pop_and_get(self, pop: list[str], get: list[str]) -> tuple[list[Any], list[Any]]:
        return self.pop_many(pop), self.get_many(get)

    def keys(self) -> list[str]:
        with self.session_factory() as session:
            return list(session.scalars(select(CacheEntry.key)))
