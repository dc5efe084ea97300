"""Who is using the tool after a launch: kept in the session cookie, or in a signed token.

Inside an LMS iframe the browser may refuse the tool's cookie; links then carry a short-lived
signed token (`lt`) instead, so the person stays signed in without a cookie.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from flask import abort, current_app, request, session
from itsdangerous import BadSignature, URLSafeTimedSerializer

from lti_tool.roster.models import COURSE_ROLES

TOKEN_PARAM = "lt"  # noqa: S105 - a query parameter name
TOKEN_MAX_AGE = 8 * 3600
NOT_SIGNED_IN = "You are not signed in to the tool. Open it again from your course in the LMS."


@dataclass
class Identity:
    platform_id: int
    user_id: int | None
    course_id: int | None
    resource_link_id: int | None
    role: str
    launch_id: str
    message_type: str


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="lti-identity")


def sign_in(identity: Identity) -> str:
    """Remember the identity in the session; return a token for cookie-less links."""
    data = asdict(identity)
    session.clear()
    session["identity"] = data
    return _serializer().dumps(data)


def token_of(identity: Identity) -> str:
    """The `lt` token of this request, or a new one for the same identity (cookie sign-in)."""
    return request_token() or _serializer().dumps(asdict(identity))


def request_token() -> str | None:
    """The `lt` token sent with this request: in the URL, or in a form body. A multipart body
    (an evidence upload) is streamed by its view, never parsed here: upload forms carry the
    token in their URL."""
    token = request.args.get(TOKEN_PARAM)
    if not token and request.mimetype != "multipart/form-data":
        token = request.form.get(TOKEN_PARAM)
    return token or None


def identity_of_token(token: str) -> Identity | None:
    """The identity an `lt` token carries, if the tool signed it and it has not expired."""
    try:
        return Identity(**_serializer().loads(token, max_age=TOKEN_MAX_AGE))
    except (BadSignature, TypeError):
        return None


def current_identity() -> Identity | None:
    token = request_token()
    if token:
        return identity_of_token(token)
    data = session.get("identity")
    return Identity(**data) if data else None


def require_course_manager(
    identity: Identity | None, refusal: str, *, in_course: bool = True
) -> Identity:
    """The identity of an educator or administrator of a course: 401 when nobody is signed in,
    403 with `refusal` for anyone else, 400 when `in_course` and the launch came from no
    course."""
    if identity is None:
        abort(401, NOT_SIGNED_IN)
    if identity.role not in COURSE_ROLES:
        abort(403, refusal)
    if in_course and identity.course_id is None:
        abort(400, "This launch did not come from a course.")
    return identity
