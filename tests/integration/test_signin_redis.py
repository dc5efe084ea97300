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
