"""Progress pages: the educator's grid of learners x micro-credentials (with filters, pages and
a CSV download), and what the learner's landing page shows of their own progress.

The course is always the one of the sign-in (the `lt` token or the session): an educator or
administrator sees their course only (another course's id in the URL is refused, 403), and a
learner sees only their own states, never the grid (403). Every link carries the `lt` token so
the pages work inside an LMS iframe that refuses the tool's cookie.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, abort, render_template, request, stream_with_context, url_for

from lti_tool.progress import service as progress
from lti_tool.roster.models import COURSE_ROLES, LEARNER, Course
from lti_tool.web import db
from lti_tool.web.identity import (
    TOKEN_PARAM,
    Identity,
    current_identity,
    require_course_manager,
    token_of,
)

blueprint = Blueprint("progress", __name__)

PAGE_SIZES = (25, 50, 100, 200)


def _course_of_educator() -> tuple[Identity, int]:
    """The sign-in and its course, for the course's educators and administrators only."""
    identity = require_course_manager(
        current_identity(), "Only the course's educators can see their learners' progress."
    )
    asked = request.args.get("course")
    if asked is not None and asked != str(identity.course_id):
        abort(403, "You can only see the progress of the course you opened the tool from.")
    return identity, identity.course_id


def _filters() -> progress.Filters:
    args = request.args
    return progress.Filters(
        state=args.get("state") or None,
        credential=args.get("credential") or None,
        search=args.get("q", ""),
    )


def _int_arg(name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except ValueError:
        return default


def _query(token: str, filters: progress.Filters, size: int) -> dict[str, Any]:
    """The query string of a link that keeps the sign-in and the filters."""
    args: dict[str, Any] = {TOKEN_PARAM: token}
    if filters.state:
        args["state"] = filters.state
    if filters.credential:
        args["credential"] = filters.credential
    if filters.search:
        args["q"] = filters.search
    if size != progress.DEFAULT_PAGE_SIZE:
        args["size"] = size
    return args


@blueprint.route("/course/progress")
def course_page():
    """Learners x micro-credentials of the course's stacks, one page of learners at a time."""
    identity, course_id = _course_of_educator()
    size = _int_arg("size", progress.DEFAULT_PAGE_SIZE)
    size = size if size in PAGE_SIZES else progress.DEFAULT_PAGE_SIZE
    session = db()
    report = progress.course_progress(
        session, course_id, _filters(), page=_int_arg("page", 1), page_size=size
    )
    token = token_of(identity)
    args = _query(token, report.filters, size)

    def page_url(number: int) -> str:
        return url_for("progress.course_page", **args, page=number)

    columns = report.layout.credentials
    chosen = report.layout.credential(report.filters.credential)
    if chosen is not None:
        columns = (chosen,)
    return render_template(
        "progress/course.html",
        identity=identity,
        course=session.get(Course, course_id),
        report=report,
        columns=columns,
        labels=progress.STATE_LABELS,
        states=progress.STATES,
        page_sizes=PAGE_SIZES,
        size=size,
        token=token,
        token_param=TOKEN_PARAM,
        page_url=page_url,
        csv_url=url_for("progress.course_csv", **args),
        home_url=url_for("pages.home", **{TOKEN_PARAM: token}),
    )


@blueprint.route("/course/progress.csv")
def course_csv():
    """The same learners (every page, the same filters) as CSV, streamed batch by batch."""
    _identity, course_id = _course_of_educator()
    session = db()
    course = session.get(Course, course_id)
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", (course.label or course.context_id) if course else "")
    chunks = progress.course_progress_csv(session, course_id, _filters())
    return Response(
        stream_with_context(chunks),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="progress-{name.strip("-")}.csv"',
            "Cache-Control": "no-store",
        },
    )


@blueprint.app_context_processor
def _progress_helpers() -> dict:
    def progress_url(identity: Identity | None) -> str | None:
        """The educator page's link to the progress grid (None for anyone else)."""
        if identity is None or identity.role not in COURSE_ROLES or identity.course_id is None:
            return None
        return url_for("progress.course_page", **{TOKEN_PARAM: token_of(identity)})

    def learner_progress(identity: Identity | None) -> progress.LearnerOverview | None:
        """The learner's own stacks and states in the course they launched from."""
        if (
            identity is None
            or identity.role != LEARNER
            or identity.user_id is None
            or identity.course_id is None
        ):
            return None
        return progress.learner_overview(db(), identity.user_id, identity.course_id)

    return {"progress_url": progress_url, "learner_progress": learner_progress}
