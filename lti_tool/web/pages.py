"""Landing pages per role, the front page, and the health check."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from sqlalchemy import text

from lti_tool.lti.models import Platform
from lti_tool.roster.models import ADMINISTRATOR, EDUCATOR, Course, LmsUser, ResourceLink
from lti_tool.web import db, services
from lti_tool.web.identity import TOKEN_PARAM, current_identity

blueprint = Blueprint("pages", __name__)

ROLE_TEMPLATES = {
    ADMINISTRATOR: "home/administrator.html",
    EDUCATOR: "home/educator.html",
}


@blueprint.route("/")
def index():
    return render_template("index.html", settings=services().settings)


@blueprint.route("/home")
def home():
    """Where a launch lands: the page for the person's role in this course."""
    identity = current_identity()
    if identity is None:
        abort(401, "You are not signed in to the tool. Open it again from your course in the LMS.")
    session = db()
    user = session.get(LmsUser, identity.user_id) if identity.user_id else None
    course = session.get(Course, identity.course_id) if identity.course_id else None
    link = (
        session.get(ResourceLink, identity.resource_link_id) if identity.resource_link_id else None
    )
    platform = session.get(Platform, identity.platform_id)
    template = ROLE_TEMPLATES.get(identity.role, "home/learner.html")
    return render_template(
        template,
        identity=identity,
        user=user,
        course=course,
        link=link,
        platform=platform,
        token_param=TOKEN_PARAM,
    )


@blueprint.route("/health")
def health():
    """Liveness and readiness: 200 when the database (and Redis, if configured) answer."""
    svc = services()
    report: dict[str, object] = {}
    healthy = True
    try:
        db().execute(text("SELECT 1"))
        report["database"] = {"ok": True, "backend": svc.engine.dialect.name}
    except Exception as exc:  # any failure means "not ready", reported, never a 500
        healthy = False
        report["database"] = {"ok": False, "error": str(exc).splitlines()[0]}
    if svc.redis is None:
        report["redis"] = {"ok": True, "configured": False, "queue": "in-process"}
    else:
        try:
            svc.redis.ping()
            from rq import Worker

            report["redis"] = {
                "ok": True,
                "configured": True,
                "workers": len(Worker.all(connection=svc.redis)),
            }
        except Exception as exc:
            healthy = False
            report["redis"] = {"ok": False, "configured": True, "error": str(exc).splitlines()[0]}
    report["status"] = "ok" if healthy else "unavailable"
    return report, 200 if healthy else 503
