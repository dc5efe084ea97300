"""Visits recorded lately, remembered in the shared cache for a minute.

A person who relaunches the same link saying exactly what the database already holds costs,
without this, one database read per launch (unchanged_visit). The usual launch is such a
repeat, so the launch first looks here: one cache read, no database. Whatever differs from the
remembered launch (a name, a role, the deployment, the link's title or custom parameters)
falls through to the database as before.

How stale it may be, and why that is bounded:
- a remembered visit lasts RECENT_VISIT_TTL seconds from the database read that confirmed it,
  and never past the user's last launch time plus LAST_LAUNCH_RESOLUTION (so that time is
  kept exactly as without this memory);
- a roster sync of the course changes the course's mark (forget_course_visits) after each
  commit: every visit remembered in that course is then void, so a launch after a sync that
  marked its enrolment inactive makes it active again at once (should the cache lose that
  mark, visits remembered before the sync count again, for what is left of their minute);
- what another launch changed in a row two visits share (a user's name reported differently
  in two courses, say) may be left as the other launch wrote it for at most RECENT_VISIT_TTL.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lti_tool.cache import Cache
from lti_tool.roster.service import LAST_LAUNCH_RESOLUTION, RecordedVisit, Visit

RECENT_VISIT_TTL = 60
# Longer than any remembered visit lives, so that a changed mark is never forgotten before the
# visits remembered under the old one.
COURSE_MARK_TTL = 3600


@dataclass(frozen=True)
class Recall:
    """What the cache said about a visit, and what remembering it later needs."""

    key: str
    fingerprint: str
    course_mark: Any  # the course's mark when read: remembered with it, void once it changes
    read_at: float
    recorded: RecordedVisit | None  # the ids, when this exact visit was recorded lately


def _digest(parts: list[Any]) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _course_mark_key(platform_id: int, context_id: str) -> str:
    return "course-visits:" + _digest([platform_id, context_id])


def _fingerprint(visit: Visit) -> str:
    """Everything unchanged_visit compares, so a remembered visit matches only the same launch."""
    person, course, link = visit.person, visit.course, visit.link
    assert person is not None and course is not None and link is not None
    return _digest(
        [
            visit.platform_id,
            visit.deployment_id,
            [person.subject, person.name, person.given_name, person.family_name, person.email],
            [course.context_id, course.title, course.label, course.context_memberships_url],
            [link.link_id, link.title, link.lineitem_url, link.custom],
            visit.role,
            visit.lti_roles,
        ]
    )


def visit_keys(platform_id: int, context_id: str, subject: str, link_id: str) -> list[str]:
    """The cache keys recall_visit reads for such a visit: the visit's, the course's mark."""
    return [
        "recent-visit:" + _digest([platform_id, context_id, subject, link_id]),
        _course_mark_key(platform_id, context_id),
    ]


def recall_visit(
    cache: Cache, visit: Visit, read: Mapping[str, Any] | None = None
) -> Recall | None:
    """Look the visit up; None for a launch without person, course and link, which is never
    remembered. `read`: cache values already read (visit_keys named before the launch was
    verified); without both keys there, one cache round trip."""
    if visit.person is None or visit.course is None or visit.link is None:
        return None
    keys = visit_keys(
        visit.platform_id, visit.course.context_id, visit.person.subject, visit.link.link_id
    )
    if read is not None and all(key in read for key in keys):
        remembered, mark = (read[key] for key in keys)
    else:
        remembered, mark = cache.get_many(keys)
    key = keys[0]
    fingerprint = _fingerprint(visit)
    now = time.time()
    recorded = None
    if (
        isinstance(remembered, dict)
        and remembered.get("fingerprint") == fingerprint
        and remembered.get("course_mark") == mark
        and remembered.get("until", 0) > now
    ):
        user_id, course_id, link_id = remembered["ids"]
        recorded = RecordedVisit(user_id, course_id, link_id, visit.role)
    return Recall(key, fingerprint, mark, now, recorded)


def remember_visit(cache: Cache, recall: Recall, recorded: RecordedVisit) -> None:
    """Remember a visit the database has just confirmed or recorded (after its commit)."""
    if recorded.last_launch_at is None or recorded.resource_link_id is None:
        return
    until = min(
        recall.read_at + RECENT_VISIT_TTL,
        recorded.last_launch_at.timestamp() + LAST_LAUNCH_RESOLUTION.total_seconds(),
    )
    ttl = int(until - time.time())
    if ttl < 1:
        return
    value = {
        "fingerprint": recall.fingerprint,
        "course_mark": recall.course_mark,
        "until": until,
        "ids": [recorded.user_id, recorded.course_id, recorded.resource_link_id],
    }
    cache.set(recall.key, value, ttl)


def forget_course_visits(cache: Cache, platform_id: int, context_id: str) -> None:
    """Void every visit remembered in the course: call it after a change to the course's users
    or enrolments other than a launch's has been committed (a roster sync)."""
    cache.set(_course_mark_key(platform_id, context_id), secrets.token_hex(8), COURSE_MARK_TTL)
