"""Turn a validated id_token body into what the tool records (Canvas and Moodle quirks included)."""

from __future__ import annotations

from typing import Any

from lti_tool.lti.launch import AGS_CLAIM, CLAIM, NRPS_CLAIM
from lti_tool.lti.roles import map_roles
from lti_tool.roster.service import CourseInfo, LinkInfo, PersonInfo, Visit


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


# The size of courses.context_memberships_url: a longer URL is not kept (never a failed launch).
MEMBERSHIPS_URL_MAX = 1000


def memberships_url_from_claims(body: dict[str, Any]) -> str | None:
    """The NRPS context_memberships_url of a launch (an http(s) URL), else None."""
    claim = body.get(NRPS_CLAIM)
    if not isinstance(claim, dict):
        return None
    url = claim.get("context_memberships_url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return None
    return url if len(url) <= MEMBERSHIPS_URL_MAX else None


def visit_from_claims(platform_id: int, body: dict[str, Any]) -> Visit:
    """What a validated launch says about who, where and through which link."""
    roles = body.get(CLAIM + "roles") or []
    if not isinstance(roles, list):
        roles = [roles]
    person = None
    if body.get("sub"):
        person = PersonInfo(
            subject=str(body["sub"]),
            name=_text(body.get("name")),
            given_name=_text(body.get("given_name")),
            family_name=_text(body.get("family_name")),
            email=_text(body.get("email")),
        )
    context = body.get(CLAIM + "context") or {}
    course = None
    if isinstance(context, dict) and context.get("id"):
        course = CourseInfo(
            context_id=str(context["id"]),
            title=_text(context.get("title")),
            label=_text(context.get("label")),
            context_memberships_url=memberships_url_from_claims(body),
        )
    link_claim = body.get(CLAIM + "resource_link") or {}
    link = None
    if isinstance(link_claim, dict) and link_claim.get("id"):
        ags = body.get(AGS_CLAIM) or {}
        custom = body.get(CLAIM + "custom") or {}
        link = LinkInfo(
            link_id=str(link_claim["id"]),
            title=_text(link_claim.get("title")),
            lineitem_url=ags.get("lineitem") if isinstance(ags, dict) else None,
            custom=custom if isinstance(custom, dict) else {},
        )
    return Visit(
        platform_id=platform_id,
        deployment_id=str(body.get(CLAIM + "deployment_id", "")),
        person=person,
        course=course,
        link=link,
        role=map_roles(roles),
        lti_roles=[r for r in roles if isinstance(r, str)],
    )


def visit_names(body: dict[str, Any]) -> tuple[str, str, str] | None:
    """(subject, context id, link id) as visit_from_claims reads them, from claims that may not
    be verified yet: None unless all three are there."""
    context = body.get(CLAIM + "context")
    link = body.get(CLAIM + "resource_link")
    if not (body.get("sub") and isinstance(context, dict) and isinstance(link, dict)):
        return None
    if not (context.get("id") and link.get("id")):
        return None
    return str(body["sub"]), str(context["id"]), str(link["id"])


def client_id_of(body: dict[str, Any]) -> str | None:
    """The client id an id_token names: its audience, or its azp among several audiences."""
    aud = body.get("aud")
    if isinstance(aud, list):
        aud = aud[0] if len(aud) == 1 else body.get("azp")
    return aud if isinstance(aud, str) else None
