"""A stand-in LTI platform for tests: its own keys, a JWKS served over loopback HTTP, and
helpers that run the real OIDC login and launch against the tool with payloads shaped like
Canvas and Moodle send them.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask.testing import FlaskClient
from werkzeug.wrappers import Request, Response

from lti_tool.demo_lms.platform import CLAIM, INSTITUTION_ROLE, ROLE, PlatformSigner
from tests.support.servers import LoopbackServer

AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
LEARNER = ROLE + "Learner"
INSTRUCTOR = ROLE + "Instructor"
TA = "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"
ADMIN = INSTITUTION_ROLE + "Administrator"


@dataclass
class TestPlatform:
    """One platform (issuer + client id) whose JWKS is served by a loopback server."""

    signer: PlatformSigner
    jwks_server: LoopbackServer
    product: str = "other"
    # Extra keys to publish (rotation tests) and a counter of JWKS fetches.
    extra_keys: list[dict] = field(default_factory=list)
    jwks_hits: int = 0

    @property
    def issuer(self) -> str:
        return self.signer.issuer

    @property
    def client_id(self) -> str:
        return self.signer.client_id

    @property
    def deployment_id(self) -> str:
        return self.signer.deployment_id

    @property
    def jwks_url(self) -> str:
        return f"{self.jwks_server.url}/jwks/{self.client_id}"

    def jwks(self) -> dict:
        keys = self.signer.jwks()["keys"] + self.extra_keys
        return {"keys": keys}

    def register_args(self) -> list[str]:
        """Arguments for `lti-tool platform add` that register this platform."""
        return [
            "--issuer",
            self.issuer,
            "--client-id",
            self.client_id,
            "--deployment-id",
            self.deployment_id,
            "--auth-login-url",
            f"{self.jwks_server.url}/auth",
            "--auth-token-url",
            f"{self.jwks_server.url}/token",
            "--key-set-url",
            self.jwks_url,
        ]

    # -- payloads ---------------------------------------------------------------------------
    def canvas_claims(
        self,
        nonce: str,
        target: str,
        *,
        sub: str | None = None,
        roles: list[str] | None = None,
        **kw: Any,
    ) -> dict:
        """A resource link launch shaped like Canvas cloud sends it."""
        sub = sub or str(uuid.uuid4())
        claims = self.signer.launch_claims(
            nonce=nonce,
            sub=sub,
            roles=roles or [LEARNER, ROLE.replace("membership#", "system/person#") + "User"],
            target_link_uri=target,
            context={
                "id": "4dde05e8ca1973bcca9bffc13e1548820eee93a3",
                "label": "COLLAB",
                "title": "Collaboration Stack",
                "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"],
            },
            resource_link={
                "id": "6fd3b9dd-canvas-link",
                "title": "Active Listening",
                "description": None,
            },
            person={
                "name": "Jane Teacher",
                "given_name": "Jane",
                "family_name": "Teacher",
                "email": "jane@school.example",
                "picture": "https://canvas.instructure.com/images/messages/avatar-50.png",
                "locale": "en",
            },
            extra={
                CLAIM + "custom": {"canvas_user_id": "1234", "canvas_course_id": "567"},
                CLAIM + "lis": {"person_sourcedid": "", "course_offering_sourcedid": ""},
                CLAIM + "tool_platform": {
                    "guid": "abc:canvas-lms",
                    "name": "School District",
                    "version": "cloud",
                    "product_family_code": "canvas",
                },
                "https://www.instructure.com/placement": "assignment_selection",
                CLAIM + "lti11_legacy_user_id": "d2f7d8f8",
                CLAIM + "lti1p1": {"user_id": "d2f7d8f8"},
                "errors": {"errors": {}},
                AGS: {
                    "scope": [
                        "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                        "https://purl.imsglobal.org/spec/lti-ags/scope/score",
                    ],
                    "lineitems": "https://canvas.example/api/lti/courses/567/line_items",
                    "lineitem": "https://canvas.example/api/lti/courses/567/line_items/9",
                },
                NRPS: {
                    "context_memberships_url": "https://canvas.example/api/lti/courses/567/names_and_roles",
                    "service_versions": ["2.0"],
                },
            },
        )
        claims.update(kw)
        return claims

    def moodle_claims(
        self, nonce: str, target: str, *, sub: str = "7", roles: list[str] | None = None, **kw: Any
    ) -> dict:
        """A resource link launch shaped like Moodle 4.x sends it."""
        claims = self.signer.launch_claims(
            nonce=nonce,
            sub=sub,
            roles=roles or [LEARNER],
            target_link_uri=target,
            context={
                "id": "2",
                "label": "MC101",
                "title": "Micro-credentials 101",
                "type": ["CourseSection"],
            },
            resource_link={"id": "3", "title": "Productive Teamwork", "description": ""},
            person={
                "given_name": "Ali",
                "family_name": "Learner",
                "name": "Ali Learner",
                "email": "ali@moodle.example",
            },
            extra={
                "https://purl.imsglobal.org/spec/lti/claim/ext": {
                    "user_username": "ali",
                    "lms": "moodle-2",
                },
                CLAIM + "lis": {"person_sourcedid": "", "course_section_sourcedid": ""},
                CLAIM + "tool_platform": {
                    "product_family_code": "moodle",
                    "version": "2024100700",
                    "guid": "moodle.example",
                    "name": "Moodle",
                },
                CLAIM + "custom": {},
                AGS: {
                    "scope": [
                        "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                        "https://purl.imsglobal.org/spec/lti-ags/scope/score",
                    ],
                    "lineitems": f"{self.issuer}/mod/lti/services.php/2/lineitems?type_id=1",
                    "lineitem": (
                        f"{self.issuer}/mod/lti/services.php/2/lineitems/3/lineitem?type_id=1"
                    ),
                },
            },
        )
        claims.update(kw)
        return claims


    def deep_linking_claims(
        self,
        nonce: str,
        target: str,
        *,
        shape: str = "canvas",
        sub: str | None = None,
        roles: list[str] | None = None,
        settings: dict[str, Any] | None = None,
        **kw: Any,
    ) -> dict:
        """A deep-linking request (LtiDeepLinkingRequest) shaped like Canvas sends it from an
        assignment or link selection placement, or like Moodle's "Select content" button.
        `settings` entries replace those of the deep_linking_settings claim (None removes)."""
        if shape == "canvas":
            base = self.canvas_claims(nonce, target, sub=sub, roles=roles or [INSTRUCTOR])
            dl_settings: dict[str, Any] = {
                "deep_link_return_url": (
                    "https://canvas.example/courses/567/deep_linking_response?modal=true"
                ),
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"],
                "accept_media_types": "application/vnd.ims.lti.v1.ltilink",
                "auto_create": True,
                "accept_multiple": True,
                "accept_lineitem": True,
                "data": "canvas-dl-" + uuid.uuid4().hex,
            }
            base["https://www.instructure.com/placement"] = "link_selection"
            base[AGS] = {
                "scope": [
                    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
                ],
                "lineitems": "https://canvas.example/api/lti/courses/567/line_items",
            }
        else:
            base = self.moodle_claims(nonce, target, sub=sub or "2", roles=roles or [INSTRUCTOR])
            dl_settings = {
                "deep_link_return_url": (
                    f"{self.issuer}/mod/lti/contentitem_return.php?course=2&id=1&sesskey=abc123"
                ),
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["frame", "iframe", "window"],
                "accept_copy_advice": False,
                "accept_multiple": True,
                "accept_unsigned": False,
                "accept_lineitem": True,
                "auto_create": False,
                "can_confirm": False,
                "title": "",
                "text": "",
                "data": "_" + uuid.uuid4().hex[:6],
            }
            base.pop(AGS, None)
        base.pop(CLAIM + "resource_link", None)
        base[CLAIM + "message_type"] = "LtiDeepLinkingRequest"
        for name, value in (settings or {}).items():
            if value is None:
                dl_settings.pop(name, None)
            else:
                dl_settings[name] = value
        base[DL_SETTINGS] = dl_settings
        base.update(kw)
        return base


class PlatformHub:
    """Several test platforms behind one loopback server (JWKS per client id)."""

    def __init__(self) -> None:
        self.server = LoopbackServer(self._wsgi)
        self.platforms: dict[str, TestPlatform] = {}

    def add(
        self, issuer: str, client_id: str, deployment_id: str, product: str = "other"
    ) -> TestPlatform:
        platform = TestPlatform(
            PlatformSigner(issuer, client_id, deployment_id), self.server, product
        )
        self.platforms[client_id] = platform
        return platform

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        match = re.fullmatch(r"/jwks/(.+)", request.path)
        if match and match.group(1) in self.platforms:
            platform = self.platforms[match.group(1)]
            platform.jwks_hits += 1
            response = Response(json.dumps(platform.jwks()), mimetype="application/json")
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Login:
    state: str
    nonce: str
    redirect_url: str


def start_login(client: FlaskClient, platform: TestPlatform, base_url: str, **extra: str) -> Login:
    """Run the tool's OIDC login as the platform would; return the state and nonce it chose."""
    params = {
        "iss": platform.issuer,
        "login_hint": "hint-" + uuid.uuid4().hex[:8],
        "target_link_uri": base_url + "/lti/launch",
        "client_id": platform.client_id,
        "lti_deployment_id": platform.deployment_id,
        **extra,
    }
    response = client.post("/lti/login", data=params)
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    location = response.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    return Login(query["state"][0], query["nonce"][0], location)


def post_launch(client: FlaskClient, id_token: str, state: str, **extra: str):
    return client.post("/lti/launch", data={"id_token": id_token, "state": state, **extra})


def launch(
    client: FlaskClient,
    platform: TestPlatform,
    base_url: str,
    shape: str = "canvas",
    **claim_overrides: Any,
):
    """A full valid login + launch; returns the launch response."""
    login = start_login(client, platform, base_url)
    claims_for = platform.canvas_claims if shape == "canvas" else platform.moodle_claims
    claims = claims_for(login.nonce, base_url + "/lti/launch", **claim_overrides)
    return post_launch(client, platform.signer.sign(claims), login.state)


def deep_link_launch(
    client: FlaskClient,
    platform: TestPlatform,
    base_url: str,
    shape: str = "canvas",
    **claim_overrides: Any,
):
    """A full valid login + deep-linking request; returns the launch response."""
    login = start_login(client, platform, base_url)
    claims = platform.deep_linking_claims(
        login.nonce, base_url + "/lti/launch", shape=shape, **claim_overrides
    )
    return post_launch(client, platform.signer.sign(claims), login.state)


def refusal_reason(response) -> str | None:
    """The reason code a refusal page names (see templates/error.html)."""
    match = re.search(r"Reason code: <code>(\w+)</code>", response.get_data(as_text=True))
    return match.group(1) if match else None
