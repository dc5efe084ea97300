"""The shared cache on the real backends: a nonce popped by many at once goes to exactly one.

The DatabaseCache is the embedded default, but nothing stops a deployment from running it on
PostgreSQL without Redis, so its atomicity is checked there too; and the RedisCache likewise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from redis import Redis

from lti_tool import migrate
from lti_tool.cache import Cache, DatabaseCache, RedisCache
from lti_tool.db import make_engine, make_session_factory

THREADS = 16
ROUNDS = 10


@pytest.fixture
def database_cache(pg_url) -> Iterator[DatabaseCache]:
    engine = make_engine(pg_url)
    migrate.upgrade(engine)
    yield DatabaseCache(make_session_factory(engine))
    engine.dispose()


@pytest.fixture
def redis_cache(redis_url) -> Iterator[RedisCache]:
    client = Redis.from_url(redis_url)
    yield RedisCache(client)
    client.close()


def all_at_once(count: int, action: Callable[[int], object]) -> list:
    """Run action(i) for i in range(count) in as many threads, released together."""
    barrier = threading.Barrier(count)

    def run(index: int):
        barrier.wait(timeout=30)
        return action(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def assert_pop_is_atomic(cache: Cache) -> None:
    for round_ in range(ROUNDS):
        key = f"lti1p3-nonce-{round_}"
        cache.set(key, {"round": round_}, 60)
        results = all_at_once(THREADS, lambda _i, key=key: cache.pop(key))
        assert [r for r in results if r is not None] == [{"round": round_}]
        assert cache.get(key) is None


def test_database_cache_pop_is_atomic_on_postgresql(database_cache):
    assert database_cache.session_factory.kw["bind"].dialect.name == "postgresql"
    assert_pop_is_atomic(database_cache)


def test_redis_cache_pop_is_atomic(redis_cache):
    assert_pop_is_atomic(redis_cache)


def test_database_cache_on_postgresql_basics(database_cache):
    database_cache.set("a", {"x": [1, 2]}, 60)
    database_cache.set("a", {"x": [3]}, 60)  # overwrite
    database_cache.set("forever", "kept")
    assert database_cache.get("a") == {"x": [3]}
    assert database_cache.get("forever") == "kept"
    assert database_cache.get("missing") is None
    assert database_cache.pop("missing") is None
    database_cache.delete("a")
    assert database_cache.get("a") is None
    database_cache.set("gone", 1, -1)  # already expired: never returned, swept by the next set
    assert database_cache.get("gone") is None
    assert database_cache.pop("gone") is None
    database_cache.set("gone", 1, -1)
    database_cache.set("other", 2, 60)
    assert "gone" not in database_cache.keys()  # noqa: SIM118 - keys() is the cache's own


def test_database_cache_concurrent_writers_on_postgresql(database_cache):
    """Many requests storing login state at once, while expired rows are being swept."""
    for index in range(50):
        database_cache.set(f"expired-{index}", index, -1)

    def write(index: int) -> None:
        for step in range(10):
            database_cache.set(f"shared-{step}", index, 60)  # the same keys from every thread
            database_cache.set(f"own-{index}-{step}", step, 60)
            database_cache.set(f"expired-again-{index}-{step}", step, -1)

    all_at_once(THREADS, write)
    keys = set(database_cache.keys())
    assert {f"shared-{step}" for step in range(10)} <= keys
    assert all(database_cache.get(f"own-{i}-9") == 9 for i in range(THREADS))


@pytest.mark.parametrize("backend", ["database_cache", "redis_cache"])
def test_pop_and_get_pops_some_keys_and_reads_others(backend, request):
    """A launch pops its state and nonce and reads its remembered visit in one round trip."""
    cache: Cache = request.getfixturevalue(backend)
    prefix = f"pop-and-get-{backend}-"
    cache.set_many([(prefix + "state", {"s": 1}, 60), (prefix + "visit", [1, 2], 60)])
    popped, read = cache.pop_and_get(
        [prefix + "state", prefix + "nonce"], [prefix + "visit", prefix + "mark"]
    )
    assert popped == [{"s": 1}, None]
    assert read == [[1, 2], None]
    assert cache.get(prefix + "state") is None  # popped
    assert cache.get_many([prefix + "visit", prefix + "state"]) == [[1, 2], None]  # kept
    assert cache.pop_and_get([prefix + "visit"], []) == ([[1, 2]], [])


@pytest.mark.parametrize("backend", ["database_cache", "redis_cache"])
def test_delete_if_keeps_a_value_another_writer_replaced(backend, request):
    """A refused token is dropped only if nobody has stored a new one meanwhile."""
    cache: Cache = request.getfixturevalue(backend)
    key = f"token-{backend}"
    refused = {"access_token": "old", "dropped_at": 1764633600.25}
    cache.set(key, refused, 60)
    cache.set(key, {"access_token": "new", "dropped_at": 1764637200.5}, 60)  # another process
    assert cache.delete_if(key, refused) is False
    assert cache.get(key)["access_token"] == "new"
    assert cache.delete_if(key, cache.get(key)) is True
    assert cache.get(key) is None
