"""The demo LMS's side of Deep Linking: check the tool's LtiDeepLinkingResponse as a real LMS
does, and turn its content items into links of the demo course.

The tool's keys are fetched over HTTP from its public JWKS URL (as a real LMS does, no back
door into the tool); the JWT must be signed by one of them, issued by the client id this LMS
gave the tool, meant for this LMS, fresh, with a nonce never seen before, the deployment this
LMS knows, and the `data` of a request this LMS is waiting on (each request is answered once).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests

from lti_tool.demo_lms import setup, store
from lti_tool.demo_lms.platform import CLAIM
from lti_tool.settings import Settings

DL_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/"
ALGORITHMS = ("RS256", "RS384", "RS512")
MAX_AGE = 600  # seconds: an older response is refused as stale
LEEWAY = 30
HTTP_TIMEOUT = 10


@dataclass
class DeepLinkReturnError(Exception):
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def _refuse(reason: str, message: str) -> DeepLinkReturnError:
    return DeepLinkReturnError(reason, message)


def tool_jwks_url(settings: Settings) -> str:
    """Where the tool publishes its keys (what an admin registers in a real LMS)."""
    return settings.url("/lti/jwks")


def _tool_key(settings: Settings, kid: str, alg: str) -> Any:
    http = settings.extra.get("http") or requests.Session()
    url = tool_jwks_url(settings)
    try:
        response = http.get(url, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        keyset = response.json()
    except (requests.RequestException, ValueError) as exc:
        message = f"The tool's keys ({url}) could not be read: {exc}"
        raise _refuse("tool_keys_unavailable", message) from exc
    keys = keyset.get("keys") if isinstance(keyset, dict) else None
    found = next((k for k in keys or [] if isinstance(k, dict) and k.get("kid") == kid), None)
    if found is None:
        raise _refuse("unknown_kid", f"The tool's published keys have no key {kid!r}.")
    try:
        return jwt.PyJWK.from_dict({**found, "alg": alg}).key
    except jwt.PyJWTError as exc:
        raise _refuse("unknown_kid", f"The tool's key {kid!r} cannot be read: {exc}") from exc


def verify_response(settings: Settings, token: str) -> dict[str, Any]:
    """The response's claims, once every check passed (DeepLinkReturnError otherwise)."""
    if not token:
        raise _refuse("missing_jwt", "The tool sent no JWT.")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _refuse("invalid_jwt", f"The tool's JWT cannot be read: {exc}") from exc
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise _refuse("bad_algorithm", f"The JWT is signed with {alg!r}, not RS256/384/512.")
    if not kid:
        raise _refuse("unknown_kid", "The JWT header names no key (kid).")
    key = _tool_key(settings, kid, alg)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=setup.issuer(settings),
            issuer=setup.CLIENT_ID,
            leeway=LEEWAY,
            options={"require": ["exp", "iat", "iss", "aud", "nonce"]},
        )
    except jwt.InvalidSignatureError as exc:
        raise _refuse("bad_signature", "The JWT's signature does not verify.") from exc
    except jwt.InvalidAudienceError as exc:
        raise _refuse("wrong_audience", "The JWT is not meant for this LMS.") from exc
    except jwt.InvalidIssuerError as exc:
        raise _refuse("wrong_issuer", "The JWT is not issued by this LMS's tool.") from exc
    except jwt.ExpiredSignatureError as exc:
        raise _refuse("expired", "The JWT has expired.") from exc
    except jwt.PyJWTError as exc:
        raise _refuse("invalid_jwt", f"The JWT is not valid: {exc}") from exc
    now = time.time()
    if not now - MAX_AGE <= claims["iat"] <= now + LEEWAY:
        raise _refuse("stale", "The JWT was not issued just now (iat).")
    if claims.get(CLAIM + "message_type") != "LtiDeepLinkingResponse":
        raise _refuse("wrong_message_type", "The JWT is not an LtiDeepLinkingResponse.")
    if claims.get(CLAIM + "version") != "1.3.0":
        raise _refuse("wrong_version", "The JWT is not LTI 1.3.0.")
    if claims.get(CLAIM + "deployment_id") != setup.DEPLOYMENT_ID:
        raise _refuse("wrong_deployment", "The JWT names another deployment.")
    if not store.first_use_of_nonce(settings, str(claims["nonce"]), float(claims["exp"])):
        raise _refuse("replayed_nonce", "This response was already received (nonce seen).")
    if store.take_deep_link_request(settings, claims.get(DL_CLAIM + "data")) is None:
        raise _refuse(
            "unknown_request",
            "The response's data does not match a content selection this LMS is waiting on "
            "(already answered, expired, or never asked).",
        )
    return claims


def accept_deep_link_response(settings: Settings, token: str) -> list[dict[str, Any]]:
    """Verify the response and add each LTI resource link it carries to the demo course."""
    claims = verify_response(settings, token)
    items = claims.get(DL_CLAIM + "content_items") or []
    if not isinstance(items, list):
        raise _refuse("invalid_content_items", "content_items is not a list.")
    tool_host = urlsplit(settings.public_url).netloc
    links = []
    for item in items:
        if not isinstance(item, dict) or item.get("type") != "ltiResourceLink":
            continue  # this course only takes LTI resource links (accept_types)
        url = item.get("url") or settings.url("/lti/launch")
        if urlsplit(url).netloc != tool_host:
            raise _refuse("foreign_url", f"The item {item.get('title')!r} points off the tool.")
        custom = item.get("custom") if isinstance(item.get("custom"), dict) else {}
        line_item = item.get("lineItem") if isinstance(item.get("lineItem"), dict) else None
        links.append(
            {
                "id": "demo-dl-" + secrets.token_hex(6),
                "title": str(item.get("title") or "Untitled activity"),
                "text": str(item.get("text") or ""),
                "url": url,
                "custom": {str(k): str(v) for k, v in custom.items()},
                "line_item": line_item,
                "added_at": time.time(),
            }
        )
    store.add_links(settings, links)
    return links
