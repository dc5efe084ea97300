"""LTI Dynamic Registration (1EdTech LTI-DR 1.0), the tool's side, free of Flask.

The platform opens GET /lti/register?openid_configuration=URL&registration_token=TOKEN. The tool
fetches the platform's OpenID configuration, posts its own client registration to the
platform's registration endpoint with the token as Bearer, and stores what the platform
answered (client id, deployment id) with the endpoints of the configuration. Every failure is a
DynamicRegistrationError whose message an LMS administrator can act on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from sqlalchemy.orm import Session, sessionmaker

from lti_tool.db import transaction
from lti_tool.lti.canvas import SCOPES, canvas_configuration
from lti_tool.lti.models import Platform
from lti_tool.lti.platforms import (
    PlatformSpec,
    RegistrationError,
    add_deployment,
    add_platform,
    check_url,
    find_platform,
)
from lti_tool.settings import Settings

PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
CANVAS_EXTENSION = "https://canvas.instructure.com/lti/"
REQUIRED_FIELDS = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "registration_endpoint",
)
# What the tool asks to receive in every launch: enough to name the person (Moodle turns
# name/email claims into its "share name/email" settings, Canvas into its privacy level).
CLAIMS = ["iss", "sub", "name", "given_name", "family_name", "email"]
# Where each message should appear, in the names Moodle, Canvas and the spec use. Only those
# the platform lists are sent; a platform that lists none gets the spec's standard name.
WANTED_PLACEMENTS = {
    "LtiDeepLinkingRequest": [
        "ContentArea",
        "AddContentMenu",
        "link_selection",
        "assignment_selection",
    ],
    "LtiResourceLinkRequest": ["course_navigation"],
}
DEFAULT_PLACEMENTS = {"LtiDeepLinkingRequest": ["ContentArea"], "LtiResourceLinkRequest": []}
TIMEOUT = (5, 20)  # seconds to connect, seconds between bytes
MAX_BODY = 1_000_000  # an openid-configuration or registration answer is a few kilobytes
PRODUCT_LABELS = {"moodle": "Moodle", "canvas": "Canvas"}


class DynamicRegistrationError(RegistrationError):
    """Registration failed; `status` is the HTTP status to answer, `reason` a stable code."""

    def __init__(self, message: str, reason: str, status: int = 502) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class PlatformConfiguration:
    """The parts of the platform's openid-configuration the tool relies on."""

    url: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    registration_endpoint: str
    product: str
    scopes_supported: list[str] | None
    lti: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Registered:
    """What was stored, for the page that tells the administrator."""

    platform_id: int
    name: str
    issuer: str
    client_id: str
    deployment_id: str | None
    product: str
    # "platform" (new platform), "deployment" (new deployment of a known platform) or
    # "nothing" (both were known already).
    added: str


def register_platform(
    session_factory: sessionmaker[Session],
    settings: Settings,
    openid_configuration: str,
    registration_token: str | None,
    http: requests.Session | None = None,
) -> Registered:
    """The whole exchange: fetch the configuration, register, store."""
    allow_http = not settings.is_production
    with _http(http) as session:
        config = fetch_configuration(session, openid_configuration, registration_token, allow_http)
        answer = post_registration(
            session, config, tool_registration(settings, config), registration_token
        )
    with transaction(session_factory) as db:
        return store_registration(db, config, answer)


# -- the platform's configuration -----------------------------------------------------------
def fetch_configuration(
    http: requests.Session, url: str, registration_token: str | None, allow_http: bool = True
) -> PlatformConfiguration:
    """GET and validate the openid-configuration; its issuer must live on the URL's host."""
    try:
        check_url(url, "the openid_configuration parameter", allow_http=allow_http)
    except RegistrationError as exc:
        raise DynamicRegistrationError(str(exc), "bad_request", 400) from None
    headers = {"Accept": "application/json"}
    if registration_token:
        # Canvas requires the token to read its configuration; Moodle ignores it.
        headers["Authorization"] = f"Bearer {registration_token}"
    what = f"the platform's openid-configuration at {url}"
    try:
        with http.get(
            url, headers=headers, timeout=TIMEOUT, stream=True, allow_redirects=False
        ) as response:
            body = _read(response, what)
    except requests.RequestException as exc:
        raise DynamicRegistrationError(
            f"The platform could not be reached: fetching {what} failed ({_describe(exc)}).",
            "platform_unreachable",
        ) from None
    if not response.ok or response.is_redirect:
        # Only a JSON error is quoted: the URL comes from the query string, and the page must
        # not become a window onto whatever else this server can reach.
        raise DynamicRegistrationError(
            f"The platform answered HTTP {response.status_code} for {what}: "
            f"{_error_text(response, body, quote_text=False)}",
            "configuration_unavailable",
        )
    data = _json_object(body, response, what)
    return _parse_configuration(url, data, allow_http)


def _parse_configuration(url: str, data: dict, allow_http: bool) -> PlatformConfiguration:
    missing = [
        name
        for name in REQUIRED_FIELDS
        if not isinstance(data.get(name), str) or not data[name].strip()
    ]
    if missing:
        raise DynamicRegistrationError(
            f"The platform's openid-configuration lacks {', '.join(missing)}, so the tool "
            "cannot register with it. Is this URL the platform's LTI openid-configuration?",
            "configuration_incomplete",
        )
    values = {name: data[name].strip() for name in REQUIRED_FIELDS}
    for name, value in values.items():
        try:
            check_url(value, f"the configuration's {name}", allow_http=allow_http)
        except RegistrationError as exc:
            raise DynamicRegistrationError(
                f"The platform's openid-configuration is not usable: {exc}",
                "configuration_invalid",
            ) from None
    # LTI-DR 3.5.1: the issuer must share the host of the configuration URL, or any site could
    # pass itself off as another platform's issuer.
    issuer_host = (urlsplit(values["issuer"]).hostname or "").lower()
    url_host = (urlsplit(url).hostname or "").lower()
    if issuer_host != url_host:
        raise DynamicRegistrationError(
            f"Refused: the platform claims the issuer {values['issuer']}, whose host "
            f"({issuer_host}) is not the host of its openid-configuration URL ({url_host}).",
            "issuer_mismatch",
            400,
        )
    # Moodle 3.10 spelled the key with a trailing space.
    lti = data.get(PLATFORM_CONFIGURATION) or data.get(PLATFORM_CONFIGURATION + " ")
    lti = lti if isinstance(lti, dict) else {}
    family = str(lti.get("product_family_code") or "").strip().lower()
    scopes = data.get("scopes_supported")
    return PlatformConfiguration(
        url=url,
        product=family if family in PRODUCT_LABELS else "other",
        scopes_supported=[str(s) for s in scopes] if isinstance(scopes, list) else None,
        lti=lti,
        **values,
    )


# -- the tool's registration request --------------------------------------------------------
def tool_registration(settings: Settings, config: PlatformConfiguration) -> dict[str, Any]:
    """The client registration (OIDC dynamic client registration + LTI tool configuration)."""
    launch = settings.url("/lti/launch")
    supported = config.scopes_supported
    scopes = [scope for scope in SCOPES if supported is None or scope in supported]
    tool: dict[str, Any] = {
        "domain": urlsplit(settings.public_url).netloc,
        "target_link_uri": launch,
        "description": canvas_configuration(settings)["description"],
        "claims": CLAIMS,
        "messages": _messages(settings, config),
    }
    if config.product == "canvas":
        tool[CANVAS_EXTENSION + "privacy_level"] = "public"
        tool["custom_parameters"] = canvas_configuration(settings)["custom_fields"]
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": settings.url("/lti/login"),
        "redirect_uris": [launch],
        "client_name": settings.tool_name,
        "client_uri": settings.public_url,
        "jwks_uri": settings.url("/lti/jwks"),
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(scopes),
        TOOL_CONFIGURATION: tool,
    }


def _messages(settings: Settings, config: PlatformConfiguration) -> list[dict[str, Any]]:
    """Deep linking first, so that a placement both could take goes to deep linking."""
    messages = []
    for kind in ("LtiDeepLinkingRequest", "LtiResourceLinkRequest"):
        supported = _supported_placements(config.lti, kind)
        if supported is None:
            placements = DEFAULT_PLACEMENTS[kind]
        else:
            placements = [p for p in WANTED_PLACEMENTS[kind] if p in supported]
        message: dict[str, Any] = {
            "type": kind,
            "target_link_uri": settings.url("/lti/launch"),
            "label": settings.tool_name,
        }
        if placements:
            message["placements"] = placements
        if "course_navigation" in placements:
            # As in the Canvas JSON: off in course menus until an admin turns it on.
            message[CANVAS_EXTENSION + "course_navigation/default_enabled"] = False
            message[CANVAS_EXTENSION + "visibility"] = "admins"
        messages.append(message)
    return messages


def _supported_placements(lti: dict[str, Any], kind: str) -> set[str] | None:
    """Placements the platform lists for a message type (Canvas) or for all (Moodle)."""
    entries = lti.get("messages_supported")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("type") == kind:
            placements = entry.get("placements")
            if isinstance(placements, list):
                return {str(p) for p in placements}
    placements = lti.get("placements")
    return {str(p) for p in placements} if isinstance(placements, list) else None


def post_registration(
    http: requests.Session,
    config: PlatformConfiguration,
    body: dict[str, Any],
    registration_token: str | None,
) -> dict[str, Any]:
    """POST the registration; return the platform's answer (client_id, tool configuration)."""
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if registration_token:
        headers["Authorization"] = f"Bearer {registration_token}"
    endpoint = config.registration_endpoint
    what = f"the platform's registration endpoint {endpoint}"
    try:
        with http.post(
            endpoint,
            data=json.dumps(body),
            headers=headers,
            timeout=TIMEOUT,
            stream=True,
            allow_redirects=False,
        ) as response:
            answer = _read(response, what)
    except requests.RequestException as exc:
        raise DynamicRegistrationError(
            f"The platform could not be reached: posting to {what} failed ({_describe(exc)}).",
            "platform_unreachable",
        ) from None
    if not response.ok or response.is_redirect:
        client_error = 400 <= response.status_code < 500
        raise DynamicRegistrationError(
            f"The platform refused the registration (HTTP {response.status_code}): "
            f"{_error_text(response, answer)}",
            "registration_refused",
            400 if client_error else 502,
        )
    return _json_object(answer, response, what)


# -- storing what the platform answered -----------------------------------------------------
def store_registration(
    session: Session, config: PlatformConfiguration, answer: dict[str, Any]
) -> Registered:
    """Add the platform (or, for a known issuer + client id, the new deployment)."""
    client_id = str(answer.get("client_id") or "").strip()
    if not client_id:
        raise DynamicRegistrationError(
            "The platform accepted the registration but its answer has no client_id, so the "
            "tool cannot recognise its launches.",
            "answer_incomplete",
        )
    tool = answer.get(TOOL_CONFIGURATION)
    raw_deployment = tool.get("deployment_id") if isinstance(tool, dict) else None
    deployment_id = str(raw_deployment).strip() if raw_deployment is not None else ""
    if len(client_id) > 255 or len(deployment_id) > 255:
        raise DynamicRegistrationError(
            "The platform answered a client id or deployment id longer than 255 characters.",
            "answer_invalid",
        )
    platform = find_platform(session, config.issuer, client_id)
    if platform is not None:
        added = "nothing"
        if deployment_id and deployment_id not in platform.deployment_ids:
            add_deployment(session, platform, deployment_id)
            added = "deployment"
        return _registered(platform, deployment_id, added)
    spec = PlatformSpec(
        issuer=config.issuer,
        client_id=client_id,
        auth_login_url=config.authorization_endpoint,
        auth_token_url=config.token_endpoint,
        key_set_url=config.jwks_uri,
        deployment_ids=[deployment_id] if deployment_id else [],
        name=_platform_name(config),
        product=config.product,
    )
    platform = add_platform(session, spec, awaiting_deployment=not deployment_id)
    return _registered(platform, deployment_id, "platform")


def _registered(platform: Platform, deployment_id: str, added: str) -> Registered:
    return Registered(
        platform_id=platform.id,
        name=platform.name,
        issuer=platform.issuer,
        client_id=platform.client_id,
        deployment_id=deployment_id or None,
        product=platform.product,
        added=added,
    )


def _platform_name(config: PlatformConfiguration) -> str:
    label = PRODUCT_LABELS.get(config.product, "LTI platform")
    account = config.lti.get(CANVAS_EXTENSION + "account_name")
    where = str(account).strip() if account else urlsplit(config.issuer).netloc
    return f"{label} ({where})"[:200]


# -- HTTP helpers ---------------------------------------------------------------------------
@contextmanager
def _http(http: requests.Session | None) -> Iterator[requests.Session]:
    if http is not None:
        yield http
        return
    with requests.Session() as session:
        yield session


def _read(response: requests.Response, what: str) -> bytes:
    """The body, refusing more than MAX_BODY bytes (the URL comes from the query string)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(65536):
        size += len(chunk)
        if size > MAX_BODY:
            raise DynamicRegistrationError(
                f"{what[0].upper()}{what[1:]} sent more than {MAX_BODY} bytes; refused.",
                "answer_too_large",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes, response: requests.Response, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        raise DynamicRegistrationError(
            f"{what[0].upper()}{what[1:]} did not answer JSON (HTTP {response.status_code}, "
            f"{kind}).",
            "not_json",
        ) from None
    if not isinstance(data, dict):
        raise DynamicRegistrationError(
            f"{what[0].upper()}{what[1:]} answered JSON that is not an object.", "not_json"
        )
    return data


def _error_text(response: requests.Response, body: bytes, quote_text: bool = True) -> str:
    """The platform's own explanation: Moodle sends plain text, Canvas and others JSON."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        keys = ("error", "error_description", "errorMessage", "message", "errors")
        parts = [
            value if isinstance(value, str) else json.dumps(value)
            for key in keys
            if (value := data.get(key))
        ]
        text = " ".join(parts) or json.dumps(data)
    elif quote_text:
        text = _snippet(body)
    else:
        text = ""
    return _clip(text) or response.reason or "no explanation given"


def _snippet(body: bytes) -> str:
    text = re.sub(r"<[^>]*>", " ", body.decode("utf-8", "replace"))
    return _clip(text) or "(empty body)"


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer within {TIMEOUT[0]}s to connect or {TIMEOUT[1]}s to respond"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__
