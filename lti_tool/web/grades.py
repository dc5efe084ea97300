"""/admin/grades: scores on their way to the LMS gradebooks, the ones that gave up with the
platform's answer, and a Retry button (one score, or every failed one).

Administrators only (web.accounts.admin_required): a tool administrator account sees every
platform; someone who launched the tool with an LMS administrator role sees the scores of
their own platform only (Canvas institutions share one issuer and must not see each other's).
The Retry form is checked by web/csrf.check_admin_form, as every administration form.
"""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for

from lti_tool import jobs
from lti_tool.db import transaction
from lti_tool.gradebook import delivery
from lti_tool.lti import ags
from lti_tool.roster.models import ADMINISTRATOR
from lti_tool.web import MAX_DATABASE_INT, services
from lti_tool.web.accounts import admin_required, current_account
from lti_tool.web.csrf import check_admin_form
from lti_tool.web.identity import TOKEN_PARAM, current_identity, token_of

blueprint = Blueprint("grades", __name__)


def _tool_admin() -> bool:
    account = current_account()
    return account is not None and account.is_admin


def _platform_scope() -> int | None:
    """None for a tool administrator account (every platform), else the launch's platform."""
    if _tool_admin():
        return None
    identity = current_identity()
    assert identity is not None  # admin_required let in an LMS administrator
    return identity.platform_id


@blueprint.route("/admin/grades")
@admin_required
def grades():
    scope = _platform_scope()
    with services().session_factory() as db_session:
        report = delivery.overview(db_session, scope)
    return render_template(
        "admin/grades.html",
        report=report,
        line_items=ags.pending_line_items(services(), scope),
        notice=request.args.get("retried"),
    )


@blueprint.route("/admin/grades/retry", methods=["POST"])
@admin_required
def retry():
    """Put one failed score (`score`), or all of them (`all`), back to pending and deliver."""
    check_admin_form()
    ids: list[int] | None = None
    if not request.form.get("all"):
        try:
            score_id = int(request.form.get("score", ""))
        except ValueError:
            score_id = 0
        if not 0 < score_id <= MAX_DATABASE_INT:  # not the id of a score
            abort(400, "Say which score to retry (or retry them all).")
        ids = [score_id]
    svc = services()
    with transaction(svc.session_factory) as db_session:
        count = delivery.retry_failed(db_session, ids, _platform_scope())
    if count:
        jobs.request_score_delivery(svc)
    query = {"retried": str(count)}
    if request.form.get(TOKEN_PARAM):
        query[TOKEN_PARAM] = request.form[TOKEN_PARAM]
    return redirect(url_for("grades.grades", **query), code=303)


@blueprint.app_context_processor
def _grades_link() -> dict:
    def grades_url(identity) -> str | None:
        """The grades page for an LMS administrator's landing page (None for anyone else)."""
        if identity is None or identity.role != ADMINISTRATOR:
            return None
        return url_for("grades.grades", **{TOKEN_PARAM: token_of(identity)})

    return {"grades_url": grades_url}
