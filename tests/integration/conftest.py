"""Integration fixtures: the machine's real PostgreSQL and Redis.

Each test gets a brand-new PostgreSQL database, dropped afterwards, and a Redis database
number that this run claimed for itself, flushed before each test: two runs at once (two
developers, or CI beside a developer) never see each other's rows or keys.

When a service does not answer, the tests that need it are skipped with the reason; with
CI=true they fail instead, so a CI run can never pass by skipping them.

Addresses can be changed with TEST_POSTGRES_URL (an admin URL that may CREATE DATABASE) and
TEST_REDIS_URL (a server URL without a database number).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.conftest import BASE_URL

HERE = Path(__file__).resolve().parent
PG_CANDIDATES = (
    [os.environ["TEST_POSTGRES_URL"]]
    if os.environ.get("TEST_POSTGRES_URL")
    else [
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "postgresql+psycopg://root@127.0.0.1:5432/test",
    ]
)
REDIS_SERVER = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
# Database numbers this suite may claim (Redis has 16 by default); 0 is left to people.
REDIS_DBS = range(15, 7, -1)
REDIS_CLAIM_KEY = "lti-tool-tests:claimed-db:{}"
REDIS_CLAIM_TTL = 3600
DB_PREFIX = "lti_it_"
STALE_AFTER = 6 * 3600  # a database left by a killed run is dropped by a run this much later
RUN_ID = f"{int(time.time())}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> None:
    """Skip with the reason, or fail under CI=true where a missing service is an error."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


# -- PostgreSQL ------------------------------------------------------------------------------
MAY_CREATE_DATABASES = "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user"


def _admin_engine(url: str) -> Engine:
    return create_engine(
        url, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"connect_timeout": 3}
    )


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An engine on the maintenance database, as a role that may create databases."""
    errors = []
    for url in PG_CANDIDATES:
        engine = _admin_engine(url)
        try:
            with engine.connect() as connection:
                may_create = connection.execute(text(MAY_CREATE_DATABASES)).scalar()
        except Exception as exc:  # unreachable or refused: try the next role
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            errors.append(f"{make_url(url).username}: {reason}")
            engine.dispose()
            continue
        if not may_create:
            errors.append(f"{make_url(url).username}: may not create databases")
            engine.dispose()
            continue
        _drop_stale_databases(engine)
        yield engine
        engine.dispose()
        return
    where = make_url(PG_CANDIDATES[0])
    unavailable(
        f"PostgreSQL not reachable at {where.host}:{where.port or 5432} "
        f"(database {where.database}; {'; '.join(errors)})"
    )


def _drop_stale_databases(engine: Engine) -> None:
    """Drop the databases of runs that were killed before they could clean up."""
    with engine.connect() as connection:
        names = connection.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE :prefix"),
            {"prefix": DB_PREFIX + "%"},
        ).scalars()
        for name in list(names):
            try:
                started = int(name[len(DB_PREFIX) :].split("_")[0])
            except ValueError:
                continue
            if time.time() - started > STALE_AFTER:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


_numbers = count(1)


@pytest.fixture
def pg_url(pg_admin: Engine) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database of this test alone (dropped afterwards)."""
    name = f"{DB_PREFIX}{RUN_ID}_{next(_numbers)}"
    with pg_admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    with pg_admin.connect() as connection:
        # FORCE ends connections a test's engines may still hold in their pools.
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- Redis -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_db() -> Iterator[int]:
    """A Redis database number claimed for this run (a key in db 0 says whose it is)."""
    control = Redis.from_url(REDIS_SERVER + "/0", socket_connect_timeout=3, socket_timeout=5)
    try:
        control.ping()
    except Exception as exc:
        unavailable(f"Redis not reachable at {REDIS_SERVER} ({str(exc).strip()})")
    for number in REDIS_DBS:
        key = REDIS_CLAIM_KEY.format(number)
        if control.set(key, RUN_ID, nx=True, ex=REDIS_CLAIM_TTL):
            break
    else:
        unavailable(f"Redis at {REDIS_SERVER}: databases {list(REDIS_DBS)} are all in use")
    yield number
    Redis.from_url(f"{REDIS_SERVER}/{number}").flushdb()
    if control.get(key) == RUN_ID.encode():
        control.delete(key)
    control.close()


@pytest.fixture
def redis_url(redis_db: int) -> str:
    """The URL of this run's Redis database, emptied for this test."""
    url = f"{REDIS_SERVER}/{redis_db}"
    client = Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


# -- the tool on both ------------------------------------------------------------------------
@pytest.fixture
def settings(settings, pg_url: str, redis_url: str, monkeypatch):
    """The unit tests' settings, but on PostgreSQL and Redis, as production runs."""
    monkeypatch.setenv("LTI_TOOL_DATABASE_URL", pg_url)
    monkeypatch.setenv("LTI_TOOL_REDIS_URL", redis_url)
    from lti_tool.settings import load_settings

    return load_settings(base_url=BASE_URL, instance_path=settings.instance_path)
