"""Names and Role Provisioning Services 2.0: a course's members from the LMS, page by page.

The LMS gives the context memberships URL in each launch (the namesroleservice claim); the
launch records it on the course (`courses.context_memberships_url`). Members
come in pages linked by `Link: <...>; rel="next"` headers; the tool asks for `limit` members
a page (platforms may give fewer: Canvas caps it) and never holds more than one page, so a MOOC
roster costs the memory of one page. The wire format is mapped here to the roster domain's
RosterMember; writing it is roster/sync.py's business.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from lti_tool.lti.launch import MEMBERSHIP_SCOPE
from lti_tool.lti.models import Platform
from lti_tool.lti.roles import map_roles
from lti_tool.lti.service_client import ServiceClient, client_for
from lti_tool.roster.models import Course
from lti_tool.roster.sync import ACTIVE, STATUSES, RosterMember, SyncProgress, run_sync
from lti_tool.services import Services

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
DEFAULT_LIMIT = 500
# A guard against a platform whose next links go round in circles or never end.
MAX_PAGES = 10_000


class RosterSourceError(Exception):
    """The LMS cannot give this course's roster (no NRPS offered, wrong context, bad page)."""


@dataclass
class MembershipPage:
    number: int
    url: str
    context_id: str | None
    members: list[RosterMember]
    skipped: int  # members without a user id


# -- reading pages -----------------------------------------------------------------------------
def with_limit(url: str, limit: int | None) -> str:
    """The URL asking for `limit` members a page; its own query (and any limit) kept."""
    if not limit:
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "limit" for name, _ in query):
        return url
    return urlunsplit(parts._replace(query=urlencode([*query, ("limit", str(limit))])))


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def member_from_json(data: Any) -> RosterMember | None:
    """A RosterMember from an NRPS member, or None without a user id. Name and e-mail are
    optional (privacy settings hide them); a missing status means Active."""
    if not isinstance(data, dict):
        return None
    subject = data.get("user_id")
    if subject is None or str(subject).strip() == "":
        return None
    roles = data.get("roles") or []
    if isinstance(roles, str):
        roles = [roles]
    roles = [r for r in roles if isinstance(r, str)]
    status = _text(data.get("status")).capitalize() or ACTIVE
    return RosterMember(
        subject=str(subject).strip(),
        role=map_roles(roles),
        lti_roles=tuple(roles),
        name=_text(data.get("name")),
        given_name=_text(data.get("given_name")),
        family_name=_text(data.get("family_name")),
        email=_text(data.get("email")),
        status=status if status in STATUSES else ACTIVE,
    )


def membership_pages(
    client: ServiceClient, url: str, limit: int | None = DEFAULT_LIMIT
) -> Iterator[MembershipPage]:
    """Every page of a context's members, fetched one at a time as the caller asks for it."""
    next_url: str | None = with_limit(url, limit)
    seen: set[str] = set()
    number = 0
    while next_url:
        if next_url in seen or number >= MAX_PAGES:
            raise RosterSourceError(f"The LMS's member pages do not end (at {next_url}).")
        seen.add(next_url)
        response = client.get(next_url, [MEMBERSHIP_SCOPE], accept=MEDIA_TYPE)
        try:
            body = response.json()
        except ValueError as exc:
            raise RosterSourceError(f"The LMS sent a member page that is not JSON: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("members", []), list):
            raise RosterSourceError(f"The LMS sent a member page without members ({next_url}).")
        raw = body.get("members") or []
        members = [m for m in (member_from_json(item) for item in raw) if m is not None]
        context = body.get("context") if isinstance(body.get("context"), dict) else {}
        number += 1
        yield MembershipPage(
            number=number,
            url=next_url,
            context_id=str(context["id"]) if context.get("id") is not None else None,
            members=members,
            skipped=len(raw) - len(members),
        )
        link = response.links.get("next", {}).get("url")
        next_url = urljoin(response.url or next_url, link) if link else None


# -- the service a job calls -------------------------------------------------------------------
def sync_course_roster(
    services: Services,
    course_id: int,
    memberships_url: str | None = None,
    lock_token: str | None = None,
    limit: int | None = DEFAULT_LIMIT,
) -> SyncProgress:
    """Sync a course's roster from its LMS (one sync per course at a time; see run_sync), from
    `memberships_url`, else the one the course's launches recorded."""
    cache = services.cache

    def pages() -> Iterator[list[RosterMember]]:
        # Everything happens inside run_sync, so any failure is recorded as the sync's.
        with services.session_factory() as session:
            course = session.get(Course, course_id)
            if course is None:
                raise RosterSourceError(f"There is no course {course_id}.")
            url = memberships_url or course.context_memberships_url
            if not url:
                raise RosterSourceError(
                    "The LMS has not offered its roster service (Names and Role Provisioning) "
                    "in a launch of this course. Check that the tool's registration has that "
                    "scope."
                )
            platform = session.get(Platform, course.platform_id)
            if platform is None:
                raise RosterSourceError("The course's platform is no longer registered.")
            client = client_for(session, platform, cache)
            session.commit()  # the tool's key may just have been made
            context_id = course.context_id
        for page in membership_pages(client, url, limit):
            if page.context_id is not None and page.context_id != context_id:
                raise RosterSourceError(
                    f"The roster URL belongs to context {page.context_id}, not this course "
                    f"({context_id})."
                )
            if page.skipped:
                log.warning("%d members without a user id skipped", page.skipped)
            yield page.members

    return run_sync(services.session_factory, cache, course_id, pages(), lock_token)
