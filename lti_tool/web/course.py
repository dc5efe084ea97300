"""The educator's course tools: sync the roster from the LMS and follow its progress.

Only educators and administrators of the course they launched from may use these; learners get
403. The sync form carries the `lt` token, so it works where the browser refuses the tool's
cookies (inside an LMS iframe), and a cross-site form cannot forge it.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, redirect, request, url_for

from lti_tool import jobs
from lti_tool.roster import sync as roster_sync
from lti_tool.roster.models import ACTIVE, COURSE_ROLES
from lti_tool.web import db, services
from lti_tool.web.identity import (
    TOKEN_PARAM,
    Identity,
    current_identity,
    require_course_manager,
    token_of,
)

blueprint = Blueprint("course", __name__)
log = logging.getLogger(__name__)


def _educator(identity: Identity | None) -> Identity:
    return require_course_manager(identity, "Only the course's educators can do this.")


def _home(token: str, notice: str) -> Any:
    return redirect(url_for("pages.home", **{TOKEN_PARAM: token, "roster": notice}) + "#roster")


def status_of(identity: Identity) -> dict:
    """The roster box's facts as JSON: last sync's progress, learners known, and how many
    enrolments are not active (inactive, deleted or absent in the LMS)."""
    cache = services().cache
    course_id = identity.course_id
    assert course_id is not None
    state = roster_sync.progress(cache, course_id)
    session = db()
    counts = roster_sync.status_counts(session, course_id)
    return {
        "sync": state.to_dict() if state else None,
        "running": bool(state and state.active),
        "learners": roster_sync.learner_count(session, course_id),
        "not_active": sum(n for status, n in counts.items() if status != ACTIVE),
        "service": roster_sync.course_memberships_url(session, course_id) is not None,
    }


@blueprint.route("/course/roster/sync", methods=["POST"])
def sync_roster():
    """Start a roster sync (at most one per course at a time) and go back to the course page."""
    identity = _educator(current_identity())
    if not request.form.get(TOKEN_PARAM):
        abort(403, "Send this form from the tool's course page.")
    token = request.form[TOKEN_PARAM]
    svc = services()
    course_id = identity.course_id
    assert course_id is not None
    url = roster_sync.course_memberships_url(db(), course_id)
    if url is None:
        return _home(token, "no_service")
    lock = roster_sync.claim(svc.cache, course_id)
    if lock is None:
        return _home(token, "running")
    roster_sync.mark_queued(svc.cache, course_id)
    try:
        jobs.enqueue(
            svc,
            jobs.sync_roster,
            course_id,
            url,
            lock,
            job_timeout=jobs.SYNC_ROSTER_TIMEOUT,
        )
    except Exception as exc:
        # In-process (no Redis) the sync ran here and recorded its failure; with Redis, the
        # queue was unreachable: free the lock so the educator can try again.
        log.warning("roster sync of course %s failed: %s", course_id, exc)
        roster_sync.release(svc.cache, course_id, lock)
        return _home(token, "failed")
    return _home(token, "started")


@blueprint.route("/course/roster/status")
def roster_status():
    """JSON progress of the course's roster sync, polled by the course page while it runs."""
    identity = current_identity()
    if identity is None or identity.role not in COURSE_ROLES or identity.course_id is None:
        status = 401 if identity is None else 403
        message = "Only the course's educators can see this."
        return {"error": "forbidden", "message": message}, status
    return status_of(identity), 200, {"Cache-Control": "no-store"}


@blueprint.app_context_processor
def _roster_box() -> dict:
    def roster_box(identity: Identity | None) -> dict | None:
        """What the educator page's roster box shows (None for anyone else)."""
        if identity is None or identity.role not in COURSE_ROLES or identity.course_id is None:
            return None
        facts = status_of(identity)
        facts["token"] = token_of(identity)
        facts["token_param"] = TOKEN_PARAM
        return facts

    return {"roster_box": roster_box}
