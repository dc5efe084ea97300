"""Login and launch as production runs them: PostgreSQL for the roster, Redis for login state.

Canvas- and Moodle-shaped launches, a login on one app instance finished on another (as two
gunicorn processes would), and many simultaneous first launches of one user.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from lti_tool.app import create_app
from lti_tool.cache import RedisCache
from lti_tool.lti.launch import state_key
from tests.conftest import BASE_URL
from tests.support.platform import INSTRUCTOR, post_launch, refusal_reason, start_login

LAUNCH_URL = BASE_URL + "/lti/launch"
PREFIX = RedisCache.__init__.__defaults__[0]  # the cache's key prefix in Redis


def https_client(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "tool.test"})
    return client


def claims_for(platform, shape: str, nonce: str, **overrides) -> dict:
    make = platform.canvas_claims if shape == "canvas" else platform.moodle_claims
    return make(nonce, LAUNCH_URL, **overrides)


def rows(pg_url: str, sql: str, **params) -> list:
    """Read the tool's PostgreSQL database directly, outside the app."""
    engine = create_engine(pg_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql), params))
    finally:
        engine.dispose()


def redis_keys(redis_url: str) -> set[str]:
    client = Redis.from_url(redis_url)
    try:
        return {key.decode() for key in client.keys("*")}
    finally:
        client.close()


@pytest.mark.parametrize(
    ("shape", "roles", "role", "page_text"),
    [
        ("canvas", None, "learner", "Your micro-credentials"),
        ("moodle", [INSTRUCTOR], "educator", "Course overview for educators"),
    ],
)
def test_launch_keeps_login_state_in_redis_and_roster_in_postgresql(
    request, client, services, pg_url, redis_url, shape, roles, role, page_text
):
    assert services.engine.dialect.name == "postgresql"
    assert isinstance(services.cache, RedisCache)
    platform = request.getfixturevalue(shape)
    sub = "sub-" + uuid.uuid4().hex[:8]

    login = start_login(client, platform, BASE_URL)
    keys = redis_keys(redis_url)
    assert PREFIX + state_key(login.state) in keys
    nonce_keys = {key for key in keys if login.nonce in key}
    assert nonce_keys and all(key.startswith(PREFIX) for key in nonce_keys)
    assert rows(pg_url, "SELECT key FROM cache_entries") == []  # nothing in the database cache

    id_token = platform.signer.sign(claims_for(platform, shape, login.nonce, sub=sub, roles=roles))
    response = post_launch(client, id_token, login.state)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert page_text in page.get_data(as_text=True)

    # State and nonce are single use: both are gone from Redis.
    keys = redis_keys(redis_url)
    assert PREFIX + state_key(login.state) not in keys
    assert not {key for key in keys if login.nonce in key}

    # The same launch posted again is refused, and so is its id_token under a new login.
    replay = post_launch(client, id_token, login.state)
    assert replay.status_code in (400, 401, 403)
    assert refusal_reason(replay) == "state_not_found"
    second = start_login(client, platform, BASE_URL)
    replay = post_launch(client, id_token, second.state)
    assert replay.status_code in (400, 401, 403)
    assert refusal_reason(replay) == "replayed_nonce"

    users = rows(pg_url, "SELECT id, subject FROM lms_users")
    assert [user.subject for user in users] == [sub]
    courses = rows(pg_url, "SELECT id, context_id FROM courses")
    assert len(courses) == 1
    enrolments = rows(pg_url, "SELECT user_id, course_id, role FROM enrollments")
    assert [tuple(e) for e in enrolments] == [(users[0].id, courses[0].id, role)]
    assert len(rows(pg_url, "SELECT id FROM resource_links")) == 1


def test_login_on_one_instance_and_launch_on_another(settings, services, canvas, pg_url):
    """Two create_app calls with the same settings stand in for two gunicorn processes."""
    app_a, app_b = create_app(settings), create_app(settings)
    services_a, services_b = app_a.extensions["lti_tool"], app_b.extensions["lti_tool"]
    assert services_a is not services_b
    try:
        client_a, client_b = https_client(app_a), https_client(app_b)
        login = start_login(client_a, canvas, BASE_URL)
        # The browser carries instance A's cookies to instance B (same host behind a balancer).
        for cookie in client_a._cookies.values():
            client_b.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)

        id_token = canvas.signer.sign(canvas.canvas_claims(login.nonce, LAUNCH_URL))
        response = post_launch(client_b, id_token, login.state)
        assert response.status_code == 303, response.get_data(as_text=True)[:2000]
        landing = response.headers["Location"]
        for client in (client_b, client_a):  # either instance serves the landing page
            page = client.get(landing)
            assert page.status_code == 200
            assert "Jane Teacher" in page.get_data(as_text=True)
        assert len(rows(pg_url, "SELECT id FROM lms_users")) == 1
    finally:
        services_a.engine.dispose()
        services_b.engine.dispose()


def test_simultaneous_first_launches_of_one_user_make_one_user_and_one_enrolment(
    app, canvas, pg_url
):
    threads = 12
    sub = "sub-" + uuid.uuid4().hex[:8]
    clients = [https_client(app) for _ in range(threads)]
    logins = [start_login(client, canvas, BASE_URL) for client in clients]
    tokens = [
        canvas.signer.sign(canvas.canvas_claims(login.nonce, LAUNCH_URL, sub=sub))
        for login in logins
    ]
    barrier = threading.Barrier(threads)

    def launch(index: int):
        barrier.wait(timeout=30)
        return post_launch(clients[index], tokens[index], logins[index].state)

    with ThreadPoolExecutor(threads) as pool:
        responses = list(pool.map(launch, range(threads)))

    assert [r.status_code for r in responses] == [303] * threads, [
        r.get_data(as_text=True)[:500] for r in responses if r.status_code != 303
    ]
    assert len(rows(pg_url, "SELECT id FROM lms_users WHERE subject = :s", s=sub)) == 1
    assert len(rows(pg_url, "SELECT id FROM courses")) == 1
    assert len(rows(pg_url, "SELECT id FROM resource_links")) == 1
    assert len(rows(pg_url, "SELECT user_id FROM enrollments")) == 1
