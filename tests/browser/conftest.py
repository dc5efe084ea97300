"""Browser tests: the tool and its demo LMS on loopback HTTPS, driven by headless Chromium.

Why HTTPS on loopback. Inside an LMS iframe the tool is a third party: a browser sends its
cookies back only if they are `SameSite=None`, and accepts `SameSite=None` only with `Secure`.
Served over plain http the tool (rightly) sets `SameSite=Lax` cookies, which a cross-site iframe
never sends, so every framed launch would fall to the "cookies blocked" path and the tests could
not tell a blocked cookie from an http one. So one app is served over TLS with a throw-away
certificate for `localhost` and `127.0.0.1`: the demo LMS at https://localhost:PORT, the tool at
https://127.0.0.1:PORT, two different sites as in production. Chromium is told to accept that
certificate (`ignore_https_errors`); the tool verifies it for real when it fetches the LMS's keys.

Chromium comes from Debian (/usr/bin/chromium, installed by .ci/install-browser) and is driven by
Playwright with `executable_path`; Playwright never downloads a browser here. Without Chromium
the tests are skipped with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from lti_tool import migrate
from lti_tool.app import create_app
from lti_tool.db import transaction
from lti_tool.demo_lms.setup import ensure_demo_platform
from lti_tool.services import Services
from lti_tool.settings import load_settings
from tests.support.servers import Certificate, LoopbackServer, make_certificate, tls_context

CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium package
# What Chromium needs on this machine: no sandbox as root, no GPU, and no calls home (the
# network is closed; without these flags Chromium's own connections fail, many at a time).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STATE_COOKIE_PREFIX = "lti1p3-state-"
# Set to a folder to keep a screenshot of what each test saw (for a person to look at).
SCREENSHOTS = os.environ.get("BROWSER_TEST_SCREENSHOTS", "")


def _require_browser() -> None:
    """Skip without Chromium or Playwright, visibly; under CI=true fail instead."""
    in_ci = os.environ.get("CI", "").lower() == "true"
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (run .ci/install-browser, or apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing (pip install -e '.[test]')"
    if problem:
        if in_ci:
            pytest.fail(f"browser tests cannot run under CI=true: {problem}", pytrace=False)
        pytest.skip(f"browser tests need headless Chromium: {problem}")


# -- a throw-away certificate for localhost and 127.0.0.1 ---------------------------------------
# -- what the tool saw: the cookies and fields of every launch POST -----------------------------
@dataclass
class SeenLaunch:
    cookies: set[str]
    fields: set[str]

    @property
    def had_state_cookie(self) -> bool:
        return any(name.startswith(STATE_COOKIE_PREFIX) for name in self.cookies)


@dataclass
class LaunchRecorder:
    """WSGI middleware around the tool that notes what each POST /lti/launch carried."""

    app: object
    seen: list[SeenLaunch] = field(default_factory=list)

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/lti/launch" and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = BytesIO(body)
            cookies = SimpleCookie()
            cookies.load(environ.get("HTTP_COOKIE", ""))
            fields = set(parse_qs(body.decode("latin-1"), keep_blank_values=True))
            self.seen.append(SeenLaunch(set(cookies), fields))
        return self.app(environ, start_response)  # type: ignore[operator]


# -- the tool with its demo LMS, on loopback HTTPS ----------------------------------------------
@dataclass
class DemoWorld:
    tool_url: str  # https://127.0.0.1:PORT
    lms_url: str  # https://localhost:PORT, the same server under another site's name
    recorder: LaunchRecorder
    services: Services | None = None  # the tool's database, to seed accounts

    def course_page(self, storage: str = "parent") -> str:
        return f"{self.lms_url}/demo/?storage={storage}"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def demo_world(tmp_path_factory, certificate) -> Iterator[DemoWorld]:
    """create_app(demo=True) on a fresh SQLite instance folder, served over loopback HTTPS."""
    _require_browser()
    server = LoopbackServer(ssl_context=tls_context(certificate))
    tool_url = f"https://127.0.0.1:{server.port}"
    lms_url = f"https://localhost:{server.port}"
    http = requests.Session()
    http.verify = str(certificate.cert_path)
    http.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides `verify`
    instance = tmp_path_factory.mktemp("instance")
    settings = load_settings(
        environ={},
        base_url=tool_url,
        instance_path=str(instance),
        demo=True,
        demo_lms_url=lms_url,
        extra={"http": http},
    )
    services = Services(settings)
    migrate.upgrade(services.engine)
    with transaction(services.session_factory) as session:
        ensure_demo_platform(session, settings)
    app = create_app(settings, services)
    recorder = LaunchRecorder(app.wsgi_app)
    app.wsgi_app = recorder  # type: ignore[method-assign]
    server.set_app(app)
    try:
        yield DemoWorld(tool_url, lms_url, recorder, services)
    finally:
        server.stop()
        services.engine.dispose()
        http.close()


# -- headless Chromium --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def playwright_driver():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


def chromium_profile(folder: Path, *, block_cookies_of: str = "", embedded_in: str = "") -> Path:
    """A fresh Chromium profile; with third-party cookies blocked for one embedding if asked.

    Measured on Chromium 156: a plain `SameSite=None; Secure` cookie set inside a cross-site
    iframe is dropped already by default, and the "Block third-party cookies" setting
    (`profile.cookie_controls_mode` 1) still lets *partitioned* (CHIPS) cookies through, which
    is what the tool's state cookie is. To block the tool's cookies completely while it is
    embedded in the LMS, as Safari does, the profile also carries a cookie rule "block for
    site TOOL when the top-level site is LMS" (what chrome://settings/content/cookies stores):
    the tool keeps its cookies as a first party (a new window), and loses them in the LMS frame.
    """
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "Default").mkdir(parents=True)
    if block_cookies_of:
        block = 2  # CONTENT_SETTING_BLOCK
        rule = f"{_any_port(block_cookies_of)},{_any_port(embedded_in)}"
        preferences = {
            "profile": {
                "cookie_controls_mode": 1,  # "Block third-party cookies"
                "block_third_party_cookies": True,  # its older spelling
                "content_settings": {"exceptions": {"cookies": {rule: {"setting": block}}}},
            }
        }
        (folder / "Default" / "Preferences").write_text(json.dumps(preferences))
    return folder


def _any_port(url: str) -> str:
    """A Chromium content-settings pattern for a URL's scheme and host, on any port."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:*"


@pytest.fixture
def open_browser(playwright_driver, tmp_path):
    """Open a headless Chromium context (its own profile); closed after the test."""
    contexts = []

    def open_context(*, block_cookies_of: str = "", embedded_in: str = ""):
        profile = chromium_profile(
            tmp_path / f"profile-{len(contexts)}",
            block_cookies_of=block_cookies_of,
            embedded_in=embedded_in,
        )
        context = playwright_driver.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            ignore_https_errors=True,
            viewport={"width": 1100, "height": 1000},
        )
        context.set_default_timeout(15_000)
        # Assertions wait as long as actions: in CI these tests share 2 cores with the rest of
        # the suite, and the platform-storage launch alone makes six requests in the frame.
        from playwright.sync_api import expect

        expect.set_options(timeout=15_000)
        # A script error in the LMS's or the tool's pages (frames included) fails the test.
        for page in context.pages:
            page.on("pageerror", lambda error: script_errors.append(str(error)))
        context.on(
            "page", lambda page: page.on("pageerror", lambda e: script_errors.append(str(e)))
        )
        contexts.append(context)
        return context

    script_errors: list[str] = []
    yield open_context
    for context in contexts:
        context.close()
    assert script_errors == [], f"script errors in the pages: {script_errors}"
