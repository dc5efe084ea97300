"""A fake LTI Advantage platform on loopback: an OAuth token endpoint that checks the tool's
client assertion as a strict platform would, and service endpoints (a scripted one for the
service client's tests, NRPS with Link-header paging in Canvas and Moodle shapes, AGS line
items containers in both shapes that record what they receive and can be made to fail, and AGS
score endpoints that keep each learner's result as Canvas or Moodle does).
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from werkzeug.wrappers import Request, Response

from tests.support.servers import LoopbackServer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
NRPS_MEDIA_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
LINEITEM_MEDIA_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEM_CONTAINER_MEDIA_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
RESULT_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
RESULT_CONTAINER_MEDIA_TYPE = "application/vnd.ims.lis.v2.resultcontainer+json"
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
SCORE_MEDIA_TYPE = "application/vnd.ims.lis.v1.score+json"
CANVAS_SUBMISSION = "https://canvas.instructure.com/lti/submission"


@dataclass
class Failure:
    """What the scripted service endpoint does instead of answering 200, once."""

    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0  # seconds to stall before answering (a timeout on the client's side)
    body: dict | None = None
    applied: bool = False  # do the work anyway, then fail to say so (line item posts)


@dataclass
class Roster:
    """The members of one context, served by the NRPS endpoint."""

    context_id: str
    members: list[dict]
    shape: str = "canvas"  # canvas: absolute next links; moodle: relative links, from=offset
    max_limit: int | None = None  # the platform's own cap on `limit` (Canvas caps it)
    page_delay: float = 0.0  # seconds each page takes (a slow LMS)


@dataclass
class FakeAdvantagePlatform:
    """One platform (issuer + client id) whose token endpoint verifies the tool's assertions
    against the tool's JWKS (`tool_jwks` returns it)."""

    tool_jwks: Callable[[], dict]
    client_id: str = "fake-client"
    issuer: str = "https://lms.example"
    audience: str | None = None  # what `aud` must be; the token URL when None
    expires_in: int = 3600
    allowed_scopes: tuple[str, ...] = (NRPS_SCOPE, SCORE_SCOPE, LINEITEM_SCOPE, RESULT_SCOPE)
    server: LoopbackServer = field(init=False)
    token_requests: Counter = field(default_factory=Counter)  # scope string -> count
    rejected_assertions: list[str] = field(default_factory=list)
    service_calls: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, auth
    failures: list[Failure] = field(default_factory=list)
    token_failures: list[Failure] = field(default_factory=list)
    rosters: dict[str, Roster] = field(default_factory=dict)
    nrps_requests: list[str] = field(default_factory=list)
    tokens: dict[str, dict] = field(default_factory=dict)  # token -> {"scopes", "expires"}
    # AGS line items, per context: what exists, every POST and GET received, scripted failures
    # of the POSTs.
    line_items: dict[str, list[dict]] = field(default_factory=dict)
    line_item_posts: list[dict] = field(default_factory=list)
    line_item_gets: list[str] = field(default_factory=list)
    line_item_failures: list[Failure] = field(default_factory=list)
    # AGS scores: how results are kept ("canvas": a timestamp older than the stored one is
    # refused with 400, comments pile up; "moodle": 409 unless strictly newer, scoreGiven nulled
    # unless FullyGraded, the feedback replaced by the post's comment, blank without one),
    # the result per (line item path, userId), every post received, scripted failures.
    score_shape: str = "canvas"
    results: dict[tuple[str, str], dict] = field(default_factory=dict)
    score_posts: list[dict] = field(default_factory=list)
    score_failures: list[Failure] = field(default_factory=list)
    accepted_scores: list[dict] = field(default_factory=list)  # the posts a result took
    result_gets: list[str] = field(default_factory=list)
    score_delay: float = 0.0  # seconds each score post takes (a slow LMS)
    seen_jti: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.server = LoopbackServer(self.wsgi)

    # -- addresses ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def service_url(self, name: str = "thing") -> str:
        return f"{self.url}/svc/{name}"

    def memberships_url(self, context_id: str) -> str:
        return f"{self.url}/nrps/{context_id}/memberships"

    def lineitems_url(self, context_id: str, shape: str = "canvas") -> str:
        """The line items container of a context: Canvas's plain, Moodle's with a query."""
        if shape == "canvas":
            return f"{self.url}/ags/{context_id}/line_items"
        return f"{self.url}/ags/{context_id}/lineitems?type_id=1"

    def stop(self) -> None:
        # In the background: a werkzeug server takes up to half a second to notice.
        threading.Thread(target=self.server.stop, daemon=True).start()

    # -- scripting ------------------------------------------------------------------------
    def fail_next(self, *failures: Failure) -> None:
        with self.lock:
            self.failures.extend(failures)

    def fail_line_item_posts(self, *failures: Failure) -> None:
        with self.lock:
            self.line_item_failures.extend(failures)

    def fail_score_posts(self, *failures: Failure) -> None:
        with self.lock:
            self.score_failures.extend(failures)

    def lineitem_url(self, context_id: str, number: int, shape: str | None = None) -> str:
        """A line item's URL in the platform's shape (Moodle's carries a query string)."""
        if (shape or self.score_shape) == "canvas":
            return f"{self.url}/ags/{context_id}/line_items/{number}"
        return f"{self.url}/ags/{context_id}/lineitems/{number}/lineitem?type_id=1"

    def result(self, lineitem_url: str, user_id: str) -> dict | None:
        """What the platform holds for a learner on a line item (None: nothing yet)."""
        from urllib.parse import urlsplit

        with self.lock:
            found = self.results.get((urlsplit(lineitem_url).path, user_id))
            return json.loads(json.dumps(found)) if found is not None else None

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (the platform's clock says they expired)."""
        with self.lock:
            self.tokens.clear()

    def total_token_requests(self) -> int:
        return sum(self.token_requests.values())

    # -- WSGI -----------------------------------------------------------------------------
    def wsgi(self, environ, start_response):
        request = Request(environ)
        if request.path == "/token" and request.method == "POST":
            response = self._token(request)
        elif request.path.startswith("/svc/"):
            response = self._service(request)
        elif request.path.startswith("/nrps/"):
            response = self._nrps(request)
        elif request.path.startswith("/ags/") and request.path.endswith("/scores"):
            response = self._score(request)
        elif request.path.startswith("/ags/") and request.path.endswith("/results"):
            response = self._results(request)
        elif request.path.startswith("/ags/"):
            response = self._line_items(request)
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)

    def _oauth_error(self, error: str, description: str, status: int = 400) -> Response:
        self.rejected_assertions.append(f"{error}: {description}")
        body = {"error": error, "error_description": description}
        return Response(json.dumps(body), status=status, mimetype="application/json")

    def _token(self, request: Request) -> Response:
        with self.lock:
            failure = self.token_failures.pop(0) if self.token_failures else None
        if failure is not None:
            return self._failure(failure)
        form = request.form
        if form.get("grant_type") != "client_credentials":
            return self._oauth_error("unsupported_grant_type", "client_credentials only")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return self._oauth_error("invalid_request", "wrong client_assertion_type")
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            return self._oauth_error("invalid_client", f"unreadable assertion: {exc}", 401)
        if header.get("alg") != "RS256":
            return self._oauth_error("invalid_client", f"alg {header.get('alg')} not allowed", 401)
        keys = {k["kid"]: k for k in self.tool_jwks()["keys"]}
        if header.get("kid") not in keys:
            return self._oauth_error("invalid_client", f"unknown kid {header.get('kid')}", 401)
        key = jwt.PyJWK.from_dict(keys[header["kid"]]).key
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                audience=self.audience or self.token_url,
                issuer=self.client_id,
                options={"require": ["iss", "sub", "aud", "iat", "exp", "jti"]},
            )
        except jwt.PyJWTError as exc:
            return self._oauth_error("invalid_client", f"assertion refused: {exc}", 401)
        if claims["sub"] != self.client_id:
            return self._oauth_error("invalid_client", "sub is not the client id", 401)
        if claims["exp"] - claims["iat"] > 3600 or claims["iat"] > time.time() + 60:
            return self._oauth_error("invalid_client", "assertion lifetime is not acceptable")
        scopes = form.get("scope", "").split()
        with self.lock:
            if claims["jti"] in self.seen_jti:
                return self._oauth_error("invalid_client", "jti already used", 401)
            self.seen_jti.add(claims["jti"])
            unknown = set(scopes) - set(self.allowed_scopes)
            if not scopes or unknown:
                return self._oauth_error("invalid_scope", f"scopes not granted: {sorted(unknown)}")
            self.token_requests[" ".join(sorted(scopes))] += 1
            token = secrets.token_urlsafe(16)
            self.tokens[token] = {"scopes": set(scopes), "expires": time.time() + self.expires_in}
        body = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": " ".join(scopes),
        }
        return Response(json.dumps(body), mimetype="application/json")

    def _authorised(self, request: Request, scope: str) -> bool:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        with self.lock:
            token = self.tokens.get(auth[len("Bearer ") :])
        return bool(token and token["expires"] > time.time() and scope in token["scopes"])

    def _failure(self, failure: Failure) -> Response:
        if failure.delay:
            time.sleep(failure.delay)
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
        body = failure.body or {"errors": [{"message": f"scripted failure {failure.status}"}]}
        return Response(
            json.dumps(body), status=failure.status, headers=headers, mimetype="application/json"
        )

    def _service(self, request: Request) -> Response:
        with self.lock:
            self.service_calls.append(
                (request.method, request.path, request.headers.get("Authorization", ""))
            )
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None and failure.status != 401:
            return self._failure(failure)
        if failure is not None or not self._authorised(request, SCORE_SCOPE):
            body = {"errors": [{"message": "Invalid access token"}]}
            return Response(json.dumps(body), status=401, mimetype="application/json")
        echo = {"ok": True, "path": request.path, "query": request.args.to_dict()}
        if request.data:
            echo["json"] = json.loads(request.data)
        return Response(json.dumps(echo), mimetype="application/json")

    def _nrps(self, request: Request) -> Response:
        with self.lock:
            self.nrps_requests.append(request.full_path)
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            return self._failure(failure)
        parts = request.path.strip("/").split("/")
        roster = self.rosters.get(parts[1]) if len(parts) == 3 else None
        if roster is None:
            return Response("no such context", status=404)
        if not self._authorised(request, NRPS_SCOPE):
            body = {"errors": [{"message": "Invalid access token"}]}
            return Response(json.dumps(body), status=401, mimetype="application/json")
        if NRPS_MEDIA_TYPE not in request.headers.get("Accept", ""):
            return Response("not acceptable", status=406)
        if roster.page_delay:
            time.sleep(roster.page_delay)
        limit = int(request.args.get("limit") or 10)
        if roster.max_limit:
            limit = min(limit, roster.max_limit)
        if roster.shape == "canvas":
            offset = (int(request.args.get("page") or 1) - 1) * limit
        else:
            offset = int(request.args.get("from") or 0)
        chunk = roster.members[offset : offset + limit]
        headers = {}
        if offset + limit < len(roster.members):
            if roster.shape == "canvas":
                page = offset // limit + 2
                query = urlencode({"page": page, "per_page": limit, "limit": limit})
                headers["Link"] = (
                    f'<{self.memberships_url(roster.context_id)}?{query}>; rel="next", '
                    f'<{self.memberships_url(roster.context_id)}?page=1>; rel="first", '
                    f"<{self.memberships_url(roster.context_id)}?page="
                    f'{math.ceil(len(roster.members) / limit)}>; rel="last"'
                )
            else:
                query = urlencode({"limit": limit, "from": offset + limit})
                headers["Link"] = f'<memberships?{query}>; rel="next"'
        body: dict[str, Any] = {
            "id": request.url,
            "context": {"id": roster.context_id, "label": "C", "title": "Course"},
            "members": chunk,
        }
        return Response(json.dumps(body), headers=headers, content_type=NRPS_MEDIA_TYPE)

    def _line_items(self, request: Request) -> Response:
        """A line items container (GET filtered as AGS allows, POST a new line item)."""
        parts = request.path.strip("/").split("/")
        if len(parts) != 3 or parts[2] not in ("line_items", "lineitems"):
            return Response("no such container", status=404)
        context, shape = parts[1], ("canvas" if parts[2] == "line_items" else "moodle")
        if not self._authorised(request, LINEITEM_SCOPE):
            body = {"errors": [{"message": "Invalid access token"}]}
            return Response(json.dumps(body), status=401, mimetype="application/json")
        if request.method == "GET":
            with self.lock:
                self.line_item_gets.append(request.full_path)
                items = list(self.line_items.get(context, []))
            filters = {
                "resourceLinkId": request.args.get("resource_link_id"),
                "resourceId": request.args.get("resource_id"),
                "tag": request.args.get("tag"),
            }
            found = [
                item
                for item in items
                if all(value is None or item.get(name) == value for name, value in filters.items())
            ]
            return Response(json.dumps(found), content_type=LINEITEM_CONTAINER_MEDIA_TYPE)
        if request.method != "POST":
            return Response("method not allowed", status=405)
        try:
            body = json.loads(request.data)
        except ValueError:
            body = None
        with self.lock:
            self.line_item_posts.append(
                {
                    "path": request.path,
                    "query": request.query_string.decode(),
                    "content_type": request.headers.get("Content-Type", ""),
                    "accept": request.headers.get("Accept", ""),
                    "json": body,
                }
            )
            failure = self.line_item_failures.pop(0) if self.line_item_failures else None
        if failure is not None and not failure.applied:
            return self._failure(failure)
        if request.headers.get("Content-Type") != LINEITEM_MEDIA_TYPE:
            return Response("unsupported media type", status=415)
        fields = body if isinstance(body, dict) else {}
        maximum = fields.get("scoreMaximum")
        if not isinstance(fields.get("label"), str) or not (
            isinstance(maximum, int | float) and maximum > 0
        ):
            body = {"errors": [{"message": "label and a positive scoreMaximum are required"}]}
            return Response(json.dumps(body), status=400, mimetype="application/json")
        with self.lock:
            items = self.line_items.setdefault(context, [])
            number = len(items) + 1
            if shape == "canvas":
                item_id = f"{self.url}/ags/{context}/line_items/{number}"
            else:
                item_id = f"{self.url}/ags/{context}/lineitems/{number}/lineitem?type_id=1"
            item = {"id": item_id, **fields}
            items.append(item)
        if failure is not None:
            return self._failure(failure)
        return Response(json.dumps(item), status=201, content_type=LINEITEM_MEDIA_TYPE)

    def _results(self, request: Request) -> Response:
        """A line item's results (GET, `user_id` filtering as Canvas does)."""
        if request.method != "GET":
            return Response("method not allowed", status=405)
        if not self._authorised(request, RESULT_SCOPE):
            body = {"errors": [{"message": "Invalid access token"}]}
            return Response(json.dumps(body), status=401, mimetype="application/json")
        lineitem = request.path[: -len("/results")]
        wanted = request.args.get("user_id")
        with self.lock:
            self.result_gets.append(request.full_path)
            held = [(user, r) for (item, user), r in self.results.items() if item == lineitem]
        found = [
            {
                "id": f"{self.url}{lineitem}/results/{user}",
                "scoreOf": f"{self.url}{lineitem}",
                "userId": user,
                "resultScore": result.get("scoreGiven"),
                "resultMaximum": result.get("scoreMaximum"),
            }
            for user, result in held
            if (wanted is None or user == wanted) and result.get("scoreGiven") is not None
        ]
        return Response(json.dumps(found), content_type=RESULT_CONTAINER_MEDIA_TYPE)

    def _score(self, request: Request) -> Response:
        """A line item's scores endpoint: POST one learner's score, kept as the shape says."""
        from datetime import datetime

        if request.method != "POST":
            return Response("method not allowed", status=405)
        if self.score_delay:
            time.sleep(self.score_delay)
        if not self._authorised(request, SCORE_SCOPE):
            body = {"errors": [{"message": "Invalid access token"}]}
            return Response(json.dumps(body), status=401, mimetype="application/json")
        try:
            score = json.loads(request.data)
        except ValueError:
            score = None
        if not isinstance(score, dict) or not score.get("userId") or not score.get("timestamp"):
            body = {"errors": [{"message": "userId and timestamp are required"}]}
            return Response(json.dumps(body), status=400, mimetype="application/json")
        lineitem = request.path[: -len("/scores")]
        key = (lineitem, str(score["userId"]))
        with self.lock:
            self.score_posts.append(
                {
                    "lineitem": lineitem,
                    "query": request.query_string.decode(),
                    "content_type": request.headers.get("Content-Type", ""),
                    "json": score,
                }
            )
            failure = self.score_failures.pop(0) if self.score_failures else None
        if failure is not None and not failure.applied:
            return self._failure(failure)
        if request.headers.get("Content-Type") != SCORE_MEDIA_TYPE:
            return Response("unsupported media type", status=415)
        stamp = datetime.fromisoformat(score["timestamp"])
        if stamp.tzinfo is None:
            body = {"errors": [{"message": "timestamp without a zone"}]}
            return Response(json.dumps(body), status=400, mimetype="application/json")
        with self.lock:
            held = self.results.get(key)
            if held is not None:
                before = datetime.fromisoformat(held["timestamp"])
                if self.score_shape == "canvas" and stamp < before:
                    message = (
                        f"Provided timestamp of {score['timestamp']} before last updated "
                        f"timestamp of {held['timestamp']}"
                    )
                    body = {"errors": [{"message": message}]}
                    return Response(json.dumps(body), status=400, mimetype="application/json")
                if self.score_shape != "canvas" and stamp <= before:
                    return Response(
                        json.dumps({"message": "Score not newer"}),
                        status=409,
                        mimetype="application/json",
                    )
            result = dict(held or {"comments": [], "submissions": []})
            result.update(
                timestamp=score["timestamp"],
                activityProgress=score.get("activityProgress"),
                gradingProgress=score.get("gradingProgress"),
                scoreGiven=score.get("scoreGiven"),
                scoreMaximum=score.get("scoreMaximum"),
            )
            if self.score_shape == "canvas":
                if score.get("comment"):
                    result["comments"] = [*result["comments"], score["comment"]]
                extension = score.get(CANVAS_SUBMISSION)
                # Canvas: new_submission defaults to true (a new attempt on every post).
                if not isinstance(extension, dict) or extension.get("new_submission", True):
                    extension = extension if isinstance(extension, dict) else {}
                    result["submissions"] = [
                        *result["submissions"],
                        {k: extension.get(k) for k in ("submission_type", "submission_data")},
                    ]
            else:
                if score.get("gradingProgress") != "FullyGraded":
                    result["scoreGiven"] = None
                result["feedback"] = score.get("comment") or ""
            self.results[key] = result
            self.accepted_scores.append({"lineitem": lineitem, **score})
        if failure is not None:
            return self._failure(failure)
        body = {"resultUrl": f"{self.url}{lineitem}/results/{score['userId']}"}
        return Response(json.dumps(body), mimetype="application/json")


# -- member lists shaped like the platforms send them --------------------------------------------
def canvas_member(n: int, role: str = "Learner", **extra: Any) -> dict:
    member = {
        "status": "Active",
        "name": f"Canvas Person {n}",
        "picture": "https://canvas.instructure.com/images/messages/avatar-50.png",
        "given_name": "Canvas",
        "family_name": f"Person {n}",
        "email": f"person{n}@school.example",
        "lis_person_sourcedid": f"SIS{n}",
        "user_id": f"canvas-{n:05d}-5f0c",
        "lti11_legacy_user_id": f"legacy{n}",
        "roles": [MEMBERSHIP + role],
    }
    member.update(extra)
    return member


def moodle_member(n: int, role: str = "Learner", **extra: Any) -> dict:
    member = {
        "user_id": str(n),
        "lis_person_sourcedid": "",
        "roles": [MEMBERSHIP + role],
        "name": f"Moodle User{n}",
        "given_name": "Moodle",
        "family_name": f"User{n}",
        "email": f"user{n}@moodle.example",
        "status": "Active",
    }
    member.update(extra)
    return member


def attach_fake_lms(services, test_platform) -> FakeAdvantagePlatform:
    """Fake LMS services for a registered test platform: its token URL now points there, and
    the fake checks client assertions against the tool's own JWKS."""
    from sqlalchemy import update

    from lti_tool.db import transaction
    from lti_tool.lti import keys
    from lti_tool.lti.models import Platform

    def tool_jwks() -> dict:
        with services.session_factory() as session:
            return keys.jwks(session)

    fake = FakeAdvantagePlatform(
        tool_jwks, client_id=test_platform.client_id, issuer=test_platform.issuer
    )
    with transaction(services.session_factory) as session:
        session.execute(
            update(Platform)
            .where(
                Platform.issuer == test_platform.issuer,
                Platform.client_id == test_platform.client_id,
            )
            .values(auth_token_url=fake.token_url)
        )
    return fake
