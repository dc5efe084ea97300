"""The assessor portal, /assess/: my cases, one case (rubric beside the blind evidence), start,
mark, decline, download a blind file. A thin adapter: every rule of blindness and independence
is in lti_tool.assessment.service, which the API calls too.

Signed-in accounts only (web.accounts.account_required), and only those with an assessor
profile (403 otherwise). A paused assessor still reaches the cases they hold.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for

from lti_tool.assessment import service
from lti_tool.assessment.models import Assessor
from lti_tool.web import db, services
from lti_tool.web.accounts import account_required, current_account
from lti_tool.web.csrf import check_csrf

blueprint = Blueprint("assess", __name__, url_prefix="/assess")

MET = "met"
NOT_MET = "not_met"


def assessor_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """A signed-in account with an assessor profile (g.assessor), else 403."""

    @account_required
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        account = current_account()
        assert account is not None  # account_required
        assessor = service.assessor_for_account(db(), account.id)
        if assessor is None:
            abort(403, "This account is not an assessor. Ask the programme's administrator.")
        g.assessor = assessor
        return view(*args, **kwargs)

    return guarded


def _assessor() -> Assessor:
    return g.assessor


def _refuse(exc: service.AssessmentError):
    abort(exc.status, exc.message)


@blueprint.get("/")
@assessor_required
def my_cases():
    """The assessor's cases, open ones first by due date."""
    cases = service.list_cases_for(db(), _assessor())
    return render_template(
        "assess/cases.html",
        cases=cases,
        paused=not _assessor().active,
        declined=request.args.get("declined"),
    )


def _render_case(code: str, problems: dict[str, str] | None = None, given=None, status=200):
    try:
        view = service.case_view(db(), _assessor(), code)
    except service.AssessmentError as exc:
        _refuse(exc)
    return (
        render_template(
            "assess/case.html",
            case=view,
            problems=problems or {},
            given=given or {},
            MET=MET,
            NOT_MET=NOT_MET,
        ),
        status,
    )


@blueprint.get("/cases/<code>")
@assessor_required
def case_page(code: str):
    return _render_case(code)


@blueprint.post("/cases/<code>/start")
@assessor_required
def start(code: str):
    check_csrf()
    session = db()
    try:
        service.start_review(session, _assessor(), code)
        session.commit()
    except service.AssessmentError as exc:
        session.rollback()
        _refuse(exc)
    return redirect(url_for("assess.case_page", code=code) + "#review")


def _marks_from_form(view: service.CaseView) -> tuple[list[dict], dict[str, dict]]:
    """The form's marks as the service takes them, and what was typed (to show it again)."""
    marks, given = [], {}
    for criterion in view.criteria_to_mark:
        name = f"{criterion.part}/{criterion.key}"
        choice = request.form.get(f"met:{name}")
        feedback = request.form.get(f"feedback:{name}", "")
        given[name] = {"choice": choice, "feedback": feedback}
        marks.append(
            {
                "part": criterion.part,
                "criterion_key": criterion.key,
                "met": {MET: True, NOT_MET: False}.get(choice or ""),
                "feedback": feedback,
            }
        )
    return marks, given


@blueprint.post("/cases/<code>/review")
@assessor_required
def submit(code: str):
    check_csrf()
    session = db()
    try:
        view = service.case_view(session, _assessor(), code)
        marks, given = _marks_from_form(view)
        service.submit_review(session, services().settings, _assessor(), code, marks)
        session.commit()
    except service.InvalidReview as exc:
        session.rollback()
        return _render_case(code, exc.problems, given, status=400)
    except service.AssessmentError as exc:
        session.rollback()
        _refuse(exc)
    return redirect(url_for("assess.case_page", code=code) + "#submitted")


@blueprint.post("/cases/<code>/decline")
@assessor_required
def decline(code: str):
    check_csrf()
    if request.form.get("confirm") != "yes":
        abort(400, "Tick the box to confirm that you have a conflict of interest with this case.")
    session = db()
    try:
        service.decline(
            session, services().settings, _assessor(), code, request.form.get("reason", "")
        )
        session.commit()
    except service.AssessmentError as exc:
        session.rollback()
        _refuse(exc)
    return redirect(url_for("assess.my_cases", declined=code))


@blueprint.get("/cases/<code>/files/<name>")
@assessor_required
def blind_file(code: str, name: str):
    """A blind file, downloaded under its neutral name."""
    try:
        stream, found = service.open_blind_file(db(), services().storage, _assessor(), code, name)
    except service.AssessmentError as exc:
        _refuse(exc)
    except FileNotFoundError:
        abort(404, "This file is missing from storage. Tell the programme's administrator.")

    def chunks():
        with stream:
            while chunk := stream.read(1024 * 1024):
                yield chunk

    return Response(
        chunks(),
        mimetype=found.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{found.neutral_name}"',
            "Content-Length": str(found.size),
            "Cache-Control": "no-store",
        },
    )
