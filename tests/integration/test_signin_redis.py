"""Sign-in lockout as production runs it: failures counted in Redis are seen by every process
(two app instances stand for two gunicorn workers), accounts in PostgreSQL."""

from __future__ import annotations

import re

from redis import Redis

from lti_tool.accounts import service as accounts
from lti_tool.app import create_app
from lti_tool.db import transaction
from lti_tool.services import Services

PASSWORD = "correct horse battery staple"


def attempt(app, password: str):
    client = app.test_client()
    page = client.get("/assess/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"email": "ada@example.org", "password": password, "csrf_token": token}
    return client.post("/assess/login", data=form)


def test_failures_on_one_process_lock_the_account_on_another(settings, services, redis_url):
    with transaction(services.session_factory) as session:
        accounts.add_account(session, "ada@example.org", "Ada", password=PASSWORD)
    first = create_app(settings, services)
    second = create_app(settings, Services(settings))
    for n in range(settings.signin_max_failures_per_account):
        app = first if n % 2 == 0 else second
        assert attempt(app, "wrong wrong wrong").status_code == 401
    assert attempt(second, PASSWORD).status_code == 429
    assert attempt(first, PASSWORD).status_code == 429
    assert any(key.startswith(b"LIMITS") for key in Redis.from_url(redis_url).keys("*"))


def test_a_right_password_signs_in_on_postgresql_and_redis(settings, services):
    with transaction(services.session_factory) as session:
        accounts.add_account(session, "ada@example.org", "Ada", password=PASSWORD)
    response = attempt(create_app(settings, services), PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/assess/"


def test_api_token_failures_on_one_process_lock_the_address_on_another(settings, services):
    with transaction(services.session_factory) as session:
        token = accounts.create_api_token(session, "Org A").plaintext
    strict = settings.replace(api_max_failures_per_address=4)
    first = create_app(strict, Services(strict)).test_client()
    second = create_app(strict, Services(strict)).test_client()
    guesser = {"REMOTE_ADDR": "203.0.113.9"}
    for n in range(4):
        client = first if n % 2 == 0 else second
        wrong = {"Authorization": f"Bearer lta_{n}_" + "x" * 43}
        assert (
            client.get("/api/v1/cases", headers=wrong, environ_overrides=guesser).status_code == 401
        )
    right = {"Authorization": f"Bearer {token}"}
    for client in (first, second):
        locked = client.get("/api/v1/cases", headers=right, environ_overrides=guesser)
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert first.get("/api/v1/cases", headers=right).status_code == 200  # another address
