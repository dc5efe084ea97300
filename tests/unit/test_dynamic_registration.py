"""LTI Dynamic Registration against fake Moodle- and Canvas-shaped platforms served over HTTP.

The fake platform answers like the real ones do: Moodle 4.x's openid-configuration (issuer =
site URL, placements listed once for every message) and plain-text errors; Canvas's
configuration (Bearer token required, placements per message type, account name) and JSON
errors, and a registration answer without a deployment id.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from werkzeug.wrappers import Request, Response

from lti_tool.db import transaction
from lti_tool.demo_lms.platform import PlatformSigner
from lti_tool.lti import registration
from lti_tool.lti.canvas import SCOPES
from lti_tool.lti.platforms import find_platform, list_platforms
from lti_tool.lti.registration import PLATFORM_CONFIGURATION, TOOL_CONFIGURATION
from tests.conftest import BASE_URL
from tests.support import platform as support
from tests.support.platform import INSTRUCTOR, launch, refusal_reason
from tests.support.servers import LoopbackServer

TOKEN = "registration-token-" + "x" * 20
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
CLOSE_MESSAGE = '(window.opener || window.parent).postMessage({subject: "org.imsglobal.lti.close"}'

MOODLE_PATHS = {
    "config": "/mod/lti/openid-configuration.php",
    "authorization_endpoint": "/mod/lti/auth.php",
    "token_endpoint": "/mod/lti/token.php",
    "jwks_uri": "/mod/lti/certs.php",
    "registration_endpoint": "/mod/lti/openid-registration.php",
}
CANVAS_PATHS = {
    "config": "/api/lti/security/openid-configuration",
    "authorization_endpoint": "/api/lti/authorize_redirect",
    "token_endpoint": "/login/oauth2/token",
    "jwks_uri": "/api/lti/security/jwks",
    "registration_endpoint": "/api/lti/registrations",
}


class FakePlatform:
    """A Moodle- or Canvas-shaped platform: openid-configuration, registration, JWKS."""

    def __init__(self, server: LoopbackServer, shape: str = "moodle") -> None:
        self.shape = shape
        self.paths = MOODLE_PATHS if shape == "moodle" else CANVAS_PATHS
        self.server = server
        server.set_app(self._wsgi)
        self.url = self.server.url
        self.client_id = (
            "Moodle" + uuid.uuid4().hex[:10] if shape == "moodle" else "10000000000" + "042"
        )
        self.signer = PlatformSigner(self.url, self.client_id, "1")
        self.next_deployment = 1
        self.registrations: list[dict[str, Any]] = []
        self.config_headers: list[dict[str, str]] = []
        # Tests change these to make the platform misbehave.
        self.overrides: dict[str, Any] = {}
        self.scopes_supported = list(SCOPES) + ["openid"]

    @property
    def config_url(self) -> str:
        return self.url + self.paths["config"]

    def register_url(self, token: str = TOKEN) -> str:
        return "/lti/register?" + urlencode(
            {"openid_configuration": self.config_url, "registration_token": token}
        )

    def as_test_platform(self, deployment_id: str) -> support.TestPlatform:
        """The launch side of this platform, for tests/support/platform.py's helpers."""
        self.signer.deployment_id = deployment_id
        return support.TestPlatform(self.signer, self.server, self.shape)

    def configuration(self) -> dict[str, Any]:
        endpoints = {name: self.url + path for name, path in self.paths.items() if name != "config"}
        common = {
            "issuer": self.url,
            **endpoints,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "scopes_supported": self.scopes_supported,
            "response_types_supported": ["id_token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "iss", "name", "given_name", "family_name", "email"],
        }
        if self.shape == "moodle":
            common["subject_types_supported"] = ["public", "pairwise"]
            common[PLATFORM_CONFIGURATION] = {
                "product_family_code": "moodle",
                "version": "4.5.1 (Build: 20241209)",
                "messages_supported": ["LtiResourceLinkRequest", "LtiDeepLinkingRequest"],
                "placements": ["AddContentMenu"],
                "variables": ["basic-lti-launch-request", "ResourceLink.id", "User.id"],
            }
        else:
            common["subject_types_supported"] = ["public"]
            common["authorization_server"] = "127.0.0.1"
            common[PLATFORM_CONFIGURATION] = {
                "product_family_code": "canvas",
                "version": "vCloud",
                "messages_supported": [
                    {
                        "type": "LtiResourceLinkRequest",
                        "placements": ["account_navigation", "course_navigation", "link_selection"],
                    },
                    {
                        "type": "LtiDeepLinkingRequest",
                        "placements": ["assignment_selection", "link_selection", "editor_button"],
                    },
                ],
                "variables": ["ResourceLink.id", "Canvas.user.id"],
                "https://canvas.instructure.com/lti/account_name": "Test University",
            }
        common.update(self.overrides)
        return {k: v for k, v in common.items() if v is not None}

    # -- HTTP ----------------------------------------------------------------------------
    def _wsgi(self, environ, start_response):
        request = Request(environ)
        response = self._route(request)
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        if request.path == self.paths["config"]:
            self.config_headers.append(dict(request.headers))
            if self.overrides.get("_sleep"):
                time.sleep(self.overrides["_sleep"])
            if self.overrides.get("_html"):
                return Response("<html><body>Maintenance</body></html>", mimetype="text/html")
            if self.shape == "canvas" and request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return _json({"errors": [{"message": "Invalid access token"}]}, 401)
            return _json(self.configuration())
        if request.path == self.paths["registration_endpoint"] and request.method == "POST":
            return self._register(request)
        if request.path == self.paths["jwks_uri"]:
            return _json(self.signer.jwks())
        return Response("not found", status=404)

    def _register(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            if self.shape == "moodle":  # Moodle answers its error codes as plain text
                return Response("invalid_registration_token", status=401)
            return _json({"errorMessage": "JWT did not include expected contents"}, 401)
        body = request.get_json(force=True)
        problems = _check_registration(body)
        if problems:
            return Response("; ".join(problems), status=400)
        self.registrations.append(body)
        answer = {**body, "client_id": self.client_id}
        if self.shape == "moodle":  # Moodle answers with the tool type id as deployment id
            answer[TOOL_CONFIGURATION] = {
                **body[TOOL_CONFIGURATION],
                "deployment_id": str(self.next_deployment),
            }
            self.next_deployment += 1
        return _json(answer)


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


def _check_registration(body: dict[str, Any]) -> list[str]:
    """What a platform checks (Moodle's registration_helper, Canvas's Lti::IMS::Registration)
    plus that every URL is built from the tool's base URL."""
    expected = {
        "application_type": "web",
        "response_types": ["id_token"],
        "initiate_login_uri": f"{BASE_URL}/lti/login",
        "redirect_uris": [f"{BASE_URL}/lti/launch"],
        "jwks_uri": f"{BASE_URL}/lti/jwks",
        "token_endpoint_auth_method": "private_key_jwt",
    }
    problems = [f"bad {key}" for key, value in expected.items() if body.get(key) != value]
    if sorted(body.get("grant_types", [])) != ["client_credentials", "implicit"]:
        problems.append("bad grant_types")
    if not body.get("client_name"):
        problems.append("missing client_name")
    tool = body.get(TOOL_CONFIGURATION) or {}
    if tool.get("domain") != "tool.test" or tool.get("target_link_uri") != f"{BASE_URL}/lti/launch":
        problems.append("bad lti-tool-configuration")
    if "sub" not in tool.get("claims", []):
        problems.append("claims lack sub")
    return problems


@pytest.fixture(scope="module")
def site_server() -> Iterator[LoopbackServer]:
    """One loopback server for the module (stopping one takes half a second)."""
    server = LoopbackServer()
    yield server
    server.stop()


@pytest.fixture
def moodle_site(site_server) -> FakePlatform:
    return FakePlatform(site_server, "moodle")


@pytest.fixture
def canvas_site(site_server) -> FakePlatform:
    return FakePlatform(site_server, "canvas")


def _platforms(services) -> list[dict[str, Any]]:
    with transaction(services.session_factory) as session:
        return [
            {
                "issuer": p.issuer,
                "client_id": p.client_id,
                "deployment_ids": p.deployment_ids,
                "auth_login_url": p.auth_login_url,
                "auth_token_url": p.auth_token_url,
                "key_set_url": p.key_set_url,
                "product": p.product,
                "name": p.name,
            }
            for p in list_platforms(session)
        ]


def _message(page) -> str:
    """The explanation on an error page, tags stripped."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.get_data(as_text=True)))


# -- success ------------------------------------------------------------------------------
def test_moodle_registration_stores_platform_and_deployment(client, services, moodle_site):
    page = client.get(moodle_site.register_url())
    assert page.status_code == 200, page.get_data(as_text=True)
    [stored] = _platforms(services)
    assert stored == {
        "issuer": moodle_site.url,
        "client_id": moodle_site.client_id,
        "deployment_ids": ["1"],
        "auth_login_url": moodle_site.url + "/mod/lti/auth.php",
        "auth_token_url": moodle_site.url + "/mod/lti/token.php",
        "key_set_url": moodle_site.url + "/mod/lti/certs.php",
        "product": "moodle",
        "name": "Moodle (" + moodle_site.url.split("://")[1] + ")",
    }
    text = page.get_data(as_text=True)
    for shown in (stored["name"], moodle_site.url, moodle_site.client_id):
        assert shown in text
    assert "<code>1</code>" in text
    assert CLOSE_MESSAGE in text
    # What the platform received: every URL from the tool's base URL, the scopes it offers,
    # both messages, and Moodle's placement for deep linking.
    [body] = moodle_site.registrations
    assert body["scope"].split() == SCOPES
    tool = body[TOOL_CONFIGURATION]
    assert [m["type"] for m in tool["messages"]] == [
        "LtiDeepLinkingRequest",
        "LtiResourceLinkRequest",
    ]
    deep_linking = tool["messages"][0]
    assert deep_linking["target_link_uri"] == f"{BASE_URL}/lti/launch"
    assert deep_linking["placements"] == ["AddContentMenu"]
    assert {"name", "email"} <= set(tool["claims"])
    assert "custom_parameters" not in tool  # Canvas variables would reach Moodle verbatim
    assert moodle_site.config_headers[0]["Authorization"] == f"Bearer {TOKEN}"


def test_second_registration_of_the_same_client_adds_a_deployment(client, services, moodle_site):
    assert client.get(moodle_site.register_url()).status_code == 200
    page = client.get(moodle_site.register_url())
    assert page.status_code == 200, page.get_data(as_text=True)
    [stored] = _platforms(services)
    assert stored["deployment_ids"] == ["1", "2"]
    assert "added the new deployment" in page.get_data(as_text=True)


def test_registration_asks_only_for_scopes_the_platform_offers(client, services, moodle_site):
    moodle_site.scopes_supported = [s for s in SCOPES if s != NRPS] + ["openid"]
    assert client.get(moodle_site.register_url()).status_code == 200
    [body] = moodle_site.registrations
    assert NRPS not in body["scope"].split()
    assert len(body["scope"].split()) == len(SCOPES) - 1


def test_canvas_registration_uses_canvas_placements_and_waits_for_a_deployment(
    client, services, canvas_site
):
    page = client.get(canvas_site.register_url())
    assert page.status_code == 200, page.get_data(as_text=True)
    [stored] = _platforms(services)
    assert stored["product"] == "canvas"
    assert stored["name"] == "Canvas (Test University)"
    assert stored["client_id"] == canvas_site.client_id
    assert stored["deployment_ids"] == []
    text = page.get_data(as_text=True)
    assert "none yet" in text and CLOSE_MESSAGE in text
    tool = canvas_site.registrations[0][TOOL_CONFIGURATION]
    deep_linking, resource_link = tool["messages"]
    assert deep_linking["placements"] == ["link_selection", "assignment_selection"]
    assert resource_link["placements"] == ["course_navigation"]
    assert resource_link["https://canvas.instructure.com/lti/visibility"] == "admins"
    assert tool["https://canvas.instructure.com/lti/privacy_level"] == "public"
    assert tool["custom_parameters"]["canvas_user_id"] == "$Canvas.user.id"
    # Until Canvas's deployment is known, its launches are refused, naming the deployment.
    response = launch(client, canvas_site.as_test_platform("7:abc"), BASE_URL, "canvas")
    assert response.status_code == 403
    assert refusal_reason(response) == "unknown_deployment"
    assert "7:abc" in response.get_data(as_text=True)


def test_launch_from_the_newly_registered_platform_works(client, services, moodle_site):
    assert client.get(moodle_site.register_url()).status_code == 200
    platform = moodle_site.as_test_platform("1")
    response = launch(client, platform, BASE_URL, "moodle", roles=[INSTRUCTOR])
    assert response.status_code == 303, response.get_data(as_text=True)
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "Micro-credentials 101" in page.get_data(as_text=True)


# -- failures -----------------------------------------------------------------------------
def test_wrong_token_is_refused_by_the_platform_with_its_message(client, services, moodle_site):
    page = client.get(moodle_site.register_url(token="not-the-token"))
    assert page.status_code == 400
    assert refusal_reason(page) == "registration_refused"
    message = _message(page)
    assert "refused the registration (HTTP 401)" in message
    assert "invalid_registration_token" in message
    assert _platforms(services) == []


def test_canvas_json_error_text_is_shown(client, services, canvas_site):
    # Canvas reads its configuration with the token: a wrong token fails there first.
    page = client.get(canvas_site.register_url(token="not-the-token"))
    assert page.status_code == 502
    assert refusal_reason(page) == "configuration_unavailable"
    assert "Invalid access token" in _message(page)


def test_unreachable_openid_configuration_gives_a_clear_page(client, services):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mod/lti/openid-configuration.php"
    page = client.get("/lti/register?" + urlencode({"openid_configuration": url}))
    assert page.status_code == 502
    assert refusal_reason(page) == "platform_unreachable"
    assert "could not be reached" in _message(page)
    assert url in _message(page)


def test_slow_platform_times_out(client, services, moodle_site, monkeypatch):
    monkeypatch.setattr(registration, "TIMEOUT", (2, 0.3))
    moodle_site.overrides["_sleep"] = 1.0
    page = client.get(moodle_site.register_url())
    assert page.status_code == 502
    assert refusal_reason(page) == "platform_unreachable"
    assert "no answer within" in _message(page)


def test_configuration_without_registration_endpoint_is_refused(client, services, moodle_site):
    moodle_site.overrides["registration_endpoint"] = None
    page = client.get(moodle_site.register_url())
    assert page.status_code == 502
    assert refusal_reason(page) == "configuration_incomplete"
    assert "lacks registration_endpoint" in _message(page)
    assert moodle_site.registrations == [] and _platforms(services) == []


def test_configuration_that_is_not_json_is_refused(client, services, moodle_site):
    moodle_site.overrides["_html"] = True
    page = client.get(moodle_site.register_url())
    assert page.status_code == 502
    assert refusal_reason(page) == "not_json"
    assert "did not answer JSON (HTTP 200, text/html" in _message(page)
    assert "Maintenance" not in _message(page)  # nothing of a non-JSON body is echoed


def test_issuer_on_another_host_is_refused(client, services, moodle_site):
    moodle_site.overrides["issuer"] = "https://moodle.example"
    page = client.get(moodle_site.register_url())
    assert page.status_code == 400
    assert refusal_reason(page) == "issuer_mismatch"
    assert "https://moodle.example" in _message(page)
    assert moodle_site.registrations == [] and _platforms(services) == []


def test_malformed_openid_configuration_parameter_is_a_bad_request(client, services):
    page = client.get("/lti/register?openid_configuration=not-a-url")
    assert page.status_code == 400
    assert refusal_reason(page) == "bad_request"


def test_without_parameters_the_page_explains_what_to_paste(client):
    page = client.get("/lti/register")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f"{BASE_URL}/lti/register" in text
    assert "Manage tools" in text and "Canvas" in text
    assert "org.imsglobal.lti.close" not in text


def test_platform_is_stored_once_per_issuer_and_client(services, moodle_site):
    """The domain function on its own: a known deployment adds nothing."""
    config = registration._parse_configuration(
        moodle_site.config_url, moodle_site.configuration(), allow_http=True
    )
    answer = {"client_id": "abc", TOOL_CONFIGURATION: {"deployment_id": 3}}
    with transaction(services.session_factory) as session:
        first = registration.store_registration(session, config, answer)
        again = registration.store_registration(session, config, answer)
        assert find_platform(session, moodle_site.url, "abc").deployment_ids == ["3"]
    assert (first.added, again.added) == ("platform", "nothing")
    assert first.deployment_id == "3"
