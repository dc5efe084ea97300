"""Administration of assessment: /admin/assessors (the pool: add, certify, pause, resume) and
/admin/assessment (cases waiting for an assessor, cases at risk of missing their decision
date). Administrators only (web.accounts.admin_required).

Forms are checked by web/csrf.check_admin_form, as every administration form.
"""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for

from lti_tool import jobs
from lti_tool.assessment import assessors as pool
from lti_tool.assessment.models import Assessor
from lti_tool.assessment.oversight import oversight
from lti_tool.roster.models import ADMINISTRATOR
from lti_tool.web import db, services
from lti_tool.web.accounts import admin_required
from lti_tool.web.csrf import check_admin_form
from lti_tool.web.identity import TOKEN_PARAM, token_of

blueprint = Blueprint("assessment_admin", __name__, url_prefix="/admin")


def _token_args() -> dict:
    token = request.values.get(TOKEN_PARAM)
    return {TOKEN_PARAM: token} if token else {}


def _pool_page(message: str | None = None, error: str | None = None, status: int = 200):
    return (
        render_template(
            "assess/admin_assessors.html",
            assessors=pool.list_assessors(db()),
            message=message,
            error=error,
            form=request.form if error else {},
            token_args=_token_args(),
        ),
        status,
    )


@blueprint.get("/assessors")
@admin_required
def assessors_page():
    return _pool_page(message=request.args.get("done"))


def _changed(message: str):
    """Commit, let waiting cases find the assessor, and show the pool again."""
    db().commit()
    jobs.enqueue(services(), jobs.assign_waiting_cases)
    return redirect(url_for("assessment_admin.assessors_page", done=message, **_token_args()))


@blueprint.post("/assessors")
@admin_required
def add_assessor():
    check_admin_form()
    form = request.form
    try:
        capacity = int(form.get("capacity", "5"))
    except ValueError:
        return _pool_page(error="The weekly capacity is a whole number of cases.", status=400)
    specs = [s.strip() for s in form.get("certify", "").replace(",", " ").split() if s.strip()]
    try:
        added = pool.add_assessor(
            db(),
            form.get("email", ""),
            form.get("name", ""),
            form.get("institution", ""),
            capacity,
            specs,
            form.get("organisation") or None,
        )
    except pool.AssessorError as exc:
        db().rollback()
        return _pool_page(error=str(exc), status=400)
    return _changed(f"Added {added.account.email}.")


def _assessor(assessor_id: int) -> Assessor:
    found = db().get(Assessor, assessor_id)
    if found is None:
        abort(404, "There is no such assessor.")
    return found


@blueprint.post("/assessors/<int:assessor_id>/certify")
@admin_required
def certify(assessor_id: int):
    check_admin_form()
    assessor = _assessor(assessor_id)
    spec = request.form.get("certify", "").strip()
    try:
        added = pool.certify(db(), assessor, spec)
    except pool.AssessorError as exc:
        db().rollback()
        return _pool_page(error=str(exc), status=400)
    what = "certified" if added else "was already certified"
    return _changed(f"{assessor.account.email} {what} for {spec}.")


@blueprint.post("/assessors/<int:assessor_id>/<any(pause, resume):action>")
@admin_required
def pause_or_resume(assessor_id: int, action: str):
    check_admin_form()
    assessor = _assessor(assessor_id)
    pool.set_paused(db(), assessor.account.email, action == "pause")
    return _changed(f"{assessor.account.email} {'paused' if action == 'pause' else 'resumed'}.")


@blueprint.get("/assessment")
@admin_required
def assessment_page():
    """Cases waiting for an assessor and cases at risk of missing their decision date."""
    report = oversight(db(), services().settings)
    return render_template(
        "assess/admin_assessment.html",
        report=report,
        at_risk_days=services().settings.assessment_at_risk_business_days,
        token_args=_token_args(),
    )


@blueprint.app_context_processor
def _assessment_admin_links() -> dict:
    def assessment_admin_urls(identity) -> dict[str, str] | None:
        """Links of the LMS administrator's landing page to these pages (with the lt token)."""
        if identity is None or identity.role != ADMINISTRATOR:
            return None
        args = {TOKEN_PARAM: token_of(identity)}
        return {
            "assessors": url_for("assessment_admin.assessors_page", **args),
            "assessment": url_for("assessment_admin.assessment_page", **args),
        }

    return {"assessment_admin_urls": assessment_admin_urls}
