"""Shared fixtures: a tool on a fresh SQLite database with the in-process queue, and test
platforms (Canvas-like, Moodle-like) whose keys are served over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from lti_tool import migrate
from lti_tool.app import create_app
from lti_tool.cli import main as cli_main
from lti_tool.db import transaction
from lti_tool.lti.platforms import PlatformSpec, add_platform
from lti_tool.services import Services
from lti_tool.settings import load_settings
from tests.support.platform import PlatformHub, TestPlatform

BASE_URL = "https://tool.test"


@pytest.fixture(scope="session")
def hub() -> Iterator[PlatformHub]:
    hub = PlatformHub()
    yield hub
    hub.stop()


@pytest.fixture
def settings(tmp_path, monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("LTI_TOOL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LTI_TOOL_INSTANCE_PATH", str(tmp_path / "instance"))
    return load_settings(base_url=BASE_URL, instance_path=str(tmp_path / "instance"))


@pytest.fixture
def services(settings) -> Iterator[Services]:
    services = Services(settings)
    migrate.upgrade(services.engine)
    yield services
    services.engine.dispose()


@pytest.fixture
def app(settings, services):
    app = create_app(settings, services)
    app.config["TESTING"] = False  # errors go through the real error pages
    return app


@pytest.fixture
def client(app):
    # https, like behind a real LMS: cookies are Secure and SameSite=None.
    client = app.test_client()
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "tool.test"})
    return client


def register(services: Services, platform: TestPlatform, *extra_deployments: str) -> None:
    with transaction(services.session_factory) as session:
        add_platform(
            session,
            PlatformSpec(
                issuer=platform.issuer,
                client_id=platform.client_id,
                deployment_ids=[platform.deployment_id, *extra_deployments],
                auth_login_url=f"{platform.jwks_server.url}/auth",
                auth_token_url=f"{platform.jwks_server.url}/token",
                key_set_url=platform.jwks_url,
                name=f"Test {platform.product}",
                product=platform.product,
            ),
        )


@pytest.fixture
def canvas(hub, services) -> TestPlatform:
    """A Canvas cloud-like platform (shared issuer, numeric client id), registered."""
    import uuid

    client_id = "10000000000" + str(uuid.uuid4().int)[:6]
    platform = hub.add(
        "https://canvas.instructure.com", client_id, "42:" + uuid.uuid4().hex, "canvas"
    )
    register(services, platform)
    return platform


@pytest.fixture
def moodle(hub, services) -> TestPlatform:
    """A Moodle-like platform (issuer = site URL, deployment id = tool type id), registered."""
    import uuid

    site = f"https://moodle-{uuid.uuid4().hex[:6]}.example"
    platform = hub.add(site, "moodle-" + uuid.uuid4().hex[:10], "1", "moodle")
    register(services, platform)
    return platform


@pytest.fixture
def cli(settings):
    """Run `lti-tool ...` in-process with the test's settings (from the environment)."""
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli_main, list(args), catch_exceptions=False)

    return run


@pytest.fixture
def tool_jwks(services):
    """The tool's published JWKS, read fresh on each call (fake LMSs verify assertions with it)."""
    from lti_tool.lti import keys

    def jwks() -> dict:
        with services.session_factory() as session:
            return keys.jwks(session)

    return jwks
