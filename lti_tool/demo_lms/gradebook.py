"""The demo LMS's gradebook: LTI Advantage Assignment and Grade Services as a platform serves
them, so that scores and badge links the tool returns show up in the demo course.

- Token endpoint (OAuth 2 client_credentials, RFC 7523): the tool's client assertion is checked
  against the tool's public JWKS, fetched over HTTP like any LMS does (issuer and subject the
  client id this LMS gave the tool, audience the token URL, fresh, single-use `jti`).
- Line items: one per course link that carries a gradebook column (every Deep Linking item with
  a `lineItem`), listed in the container; the tool may create more.
- Scores: kept per line item and learner as Moodle does it (a timestamp not strictly newer is
  refused with 409; a score that is not FullyGraded has no scoreGiven; the comment is the
  feedback).
"""

from __future__ import annotations

import math
import secrets
import time
from datetime import datetime
from typing import Any

import jwt

from lti_tool.demo_lms import setup, store
from lti_tool.demo_lms.returns import DeepLinkReturnError, _tool_key
from lti_tool.settings import Settings

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPES = (LINEITEM_SCOPE, SCORE_SCOPE)
# The values of a Score's progress fields (AGS 2.0); a platform refuses any other.
ACTIVITY = ("Initialized", "Started", "InProgress", "Submitted", "Completed")
GRADING = ("FullyGraded", "Pending", "PendingManual", "Failed", "NotReady")
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
LINEITEM_MEDIA_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
CONTAINER_MEDIA_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
TOKEN_LIFETIME = 3600
LEEWAY = 30


class AgsError(Exception):
    """A refused AGS or token request: the HTTP status and the message for the tool."""

    def __init__(self, status: int, message: str, error: str = "invalid_request") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error


# -- URLs -------------------------------------------------------------------------------------
def token_url(settings: Settings) -> str:
    return setup.lms(settings, "/demo/token")


def lineitems_url(settings: Settings) -> str:
    return setup.lms(settings, "/demo/ags/lineitems")


def lineitem_url(settings: Settings, item_id: str) -> str:
    return setup.lms(settings, f"/demo/ags/lineitems/{item_id}")


def ags_claim(settings: Settings, link: dict) -> dict:
    """The AGS endpoint claim of a launch of `link`: the container, and the link's own line
    item when it has a gradebook column."""
    claim: dict[str, Any] = {"scope": list(SCOPES), "lineitems": lineitems_url(settings)}
    if link.get("line_item"):
        claim["lineitem"] = lineitem_url(settings, link["id"])
    return claim


# -- tokens -----------------------------------------------------------------------------------
def issue_token(settings: Settings, form: dict[str, str]) -> dict:
    """An access token for a valid client_credentials request (AgsError otherwise)."""
    if form.get("grant_type") != "client_credentials":
        raise AgsError(400, "only client_credentials is granted", "unsupported_grant_type")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise AgsError(400, "client_assertion_type must be the JWT bearer type")
    assertion = form.get("client_assertion", "")
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise AgsError(
            401, f"the client assertion cannot be read: {exc}", "invalid_client"
        ) from exc
    try:
        key = _tool_key(settings, str(header.get("kid") or ""), str(header.get("alg") or ""))
        claims = jwt.decode(
            assertion,
            key,
            algorithms=["RS256", "RS384", "RS512"],
            audience=token_url(settings),
            issuer=setup.CLIENT_ID,
            leeway=LEEWAY,
            options={"require": ["iss", "sub", "aud", "iat", "exp", "jti"]},
        )
    except (DeepLinkReturnError, jwt.PyJWTError) as exc:
        raise AgsError(401, f"the client assertion is refused: {exc}", "invalid_client") from exc
    if claims["sub"] != setup.CLIENT_ID:
        raise AgsError(401, "the assertion's sub is not the client id", "invalid_client")
    if not store.first_use_of_nonce(settings, "jti:" + str(claims["jti"]), float(claims["exp"])):
        raise AgsError(401, "this client assertion was used before", "invalid_client")
    scopes = [s for s in str(form.get("scope", "")).split() if s]
    if not scopes or set(scopes) - set(SCOPES):
        raise AgsError(400, f"scopes not granted: {scopes}", "invalid_scope")
    token = secrets.token_urlsafe(24)
    store.add_access_token(settings, token, scopes, time.time() + TOKEN_LIFETIME)
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME,
        "scope": " ".join(scopes),
    }


def check_token(settings: Settings, authorization: str, scope: str) -> None:
    if not authorization.startswith("Bearer "):
        raise AgsError(401, "an access token is required", "invalid_token")
    if not store.token_grants(settings, authorization[len("Bearer ") :], scope):
        raise AgsError(
            401, "the access token is unknown, expired or lacks the scope", "invalid_token"
        )


# -- line items and scores -------------------------------------------------------------------------
def line_items(settings: Settings) -> list[dict]:
    """Every gradebook column of the course (links with a line item, and created ones)."""
    items = []
    for link in setup.all_links(settings):
        if link.get("line_item"):
            item = link["line_item"]
            items.append(
                {
                    "id": lineitem_url(settings, link["id"]),
                    "label": item.get("label") or link["title"],
                    "scoreMaximum": item.get("scoreMaximum") or 100,
                    "resourceId": item.get("resourceId"),
                    "tag": item.get("tag"),
                    "resourceLinkId": link["id"],
                }
            )
    for item_id, item in store.created_line_items(settings).items():
        items.append({**item, "id": lineitem_url(settings, item_id)})
    return items


def create_line_item(settings: Settings, body: Any) -> dict:
    if not isinstance(body, dict) or not isinstance(body.get("label"), str):
        raise AgsError(400, "a line item needs a label")
    maximum = body.get("scoreMaximum")
    if not (_number(maximum) and maximum > 0):
        raise AgsError(400, "a line item needs a positive scoreMaximum")
    item_id = "created-" + secrets.token_hex(4)
    fields = {
        k: body.get(k) for k in ("label", "scoreMaximum", "resourceId", "tag", "resourceLinkId")
    }
    store.add_line_item(settings, item_id, fields)
    return {**fields, "id": lineitem_url(settings, item_id)}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def known_line_item(settings: Settings, item_id: str) -> bool:
    return any(item["id"] == lineitem_url(settings, item_id) for item in line_items(settings))


def record_score(settings: Settings, item_id: str, body: Any) -> None:
    """Keep a learner's score on a line item, as Moodle does (409 unless strictly newer)."""
    if not known_line_item(settings, item_id):
        raise AgsError(404, f"no line item {item_id}")
    if not isinstance(body, dict) or not body.get("userId") or not body.get("timestamp"):
        raise AgsError(400, "a score needs userId and timestamp")
    if not isinstance(body["userId"], str):
        raise AgsError(400, "userId must be a string")
    try:
        stamp = datetime.fromisoformat(str(body["timestamp"]))
    except ValueError as exc:
        raise AgsError(400, "timestamp is not ISO 8601") from exc
    if stamp.tzinfo is None:
        raise AgsError(400, "timestamp needs a zone")
    for name, allowed in (("activityProgress", ACTIVITY), ("gradingProgress", GRADING)):
        if body.get(name) not in allowed:
            raise AgsError(400, f"{name} must be one of {', '.join(allowed)}")
    given, maximum = body.get("scoreGiven"), body.get("scoreMaximum")
    if given is not None and not (_number(given) and given >= 0):
        raise AgsError(400, "scoreGiven must be a number, 0 or more")
    if (given is not None or maximum is not None) and not (_number(maximum) and maximum > 0):
        raise AgsError(400, "scoreMaximum must be a positive number (required with scoreGiven)")
    if not isinstance(body.get("comment") or "", str):
        raise AgsError(400, "comment must be a string")
    graded = body["gradingProgress"] == "FullyGraded"
    result = {
        "timestamp": stamp.isoformat(),
        "activityProgress": body["activityProgress"],
        "gradingProgress": body["gradingProgress"],
        "scoreGiven": body.get("scoreGiven") if graded else None,
        "scoreMaximum": body.get("scoreMaximum"),
        "comment": str(body.get("comment") or ""),
    }
    if not store.put_result(settings, item_id, str(body["userId"]), result):
        raise AgsError(409, "the score's timestamp is not newer than the one held")


def gradebook(settings: Settings) -> dict:
    """What the gradebook page shows: columns, people, and each cell's result."""
    people = {f"demo-user-{p.key}": p for p in setup.PEOPLE}
    learners = [p for p in setup.PEOPLE if not setup.teaches(p)]
    columns = line_items(settings)
    results = store.results(settings)
    rows = []
    for person in learners:
        cells = []
        for column in columns:
            item_id = column["id"].rsplit("/", 1)[-1]
            cells.append(results.get(item_id, {}).get(f"demo-user-{person.key}"))
        rows.append((person, cells))
    return {"columns": columns, "rows": rows, "people": people}
