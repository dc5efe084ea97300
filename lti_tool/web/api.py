"""/api/v1: the external assessment API of an assessment organisation.

Every request but the OpenAPI document carries the organisation's bearer token
(`Authorization: Bearer lta_...`, from `lti-tool api-token create`). The organisation acts for
its own assessors only, and reaches each case through the same service functions as the portal
(assessment.service), so the rules of blindness and independence are the portal's. Every error
is JSON: {"error": ..., "message": ...} (app.py turns HTTP errors under /api/ into JSON).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, current_app, g, jsonify, request, send_file, url_for
from flask.blueprints import BlueprintSetupState

from lti_tool.accounts.models import Organisation
from lti_tool.accounts.service import organisation_of_token
from lti_tool.accounts.throttle import FailureLimit, make_limiter
from lti_tool.assessment import service as assessment
from lti_tool.assessment.models import Assessor
from lti_tool.web import db, services
from lti_tool.web.openapi import openapi_document

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

PUBLIC_ENDPOINTS = {"api.openapi"}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    return value


def _as_json(view: Any) -> dict:
    return _json_value(dataclasses.asdict(view))


def _error(status: int, message: str, **extra: Any):
    names = {
        400: "Bad Request",
        403: "Forbidden",
        404: "Not Found",
        409: "Conflict",
        429: "Too Many Requests",
    }
    body = {"error": names.get(status, "Error"), "message": message, **extra}
    return jsonify(body), status


@blueprint.record_once
def _setup(state: BlueprintSetupState) -> None:
    settings = state.app.extensions["lti_tool"].settings
    state.app.extensions["api_token_failures"] = FailureLimit(
        make_limiter(settings.redis_url or "memory://"),
        "lti-tool-api-token-address",
        "address",
        settings.api_max_failures_per_address,
        settings.api_lockout_minutes,
    )


def _token_failures() -> FailureLimit:
    return current_app.extensions["api_token_failures"]


@blueprint.before_request
def _authenticate():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        abort(
            401,
            "Send your organisation's API token in the header 'Authorization: Bearer <token>' "
            "(an administrator creates one with 'lti-tool api-token create --org NAME').",
        )
    # Guessing tokens: an address that sent too many wrong ones is refused whatever it sends.
    address = request.remote_addr or "unknown"
    lockout = _token_failures().locked(address)
    if lockout is not None:
        response, status = _error(
            429,
            "Too many requests with a wrong or revoked API token from this address. Try again "
            f"in {lockout.retry_after_seconds} second(s).",
            retry_after_seconds=lockout.retry_after_seconds,
        )
        response.headers["Retry-After"] = str(lockout.retry_after_seconds)
        return response, status
    organisation = organisation_of_token(db(), presented.strip())
    if organisation is None:
        _token_failures().record_failure(address)
        abort(401, "This API token is not valid or has been revoked.")
    db().commit()  # the token's last use
    g.api_organisation = organisation
    return None


@blueprint.after_request
def _challenge(response):
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="lti-tool api"'
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@blueprint.errorhandler(assessment.AssessmentError)
def _assessment_error(exc: assessment.AssessmentError):
    db().rollback()
    if isinstance(exc, assessment.InvalidReview):
        return _error(exc.status, exc.message, problems=exc.problems)
    return _error(exc.status, exc.message)


def _organisation() -> Organisation:
    return g.api_organisation


def _own_assessors() -> list[Assessor]:
    return assessment.assessors_of_organisation(db(), _organisation().id)


def _own_assessor(assessor_id: int) -> Assessor:
    assessor = next((a for a in _own_assessors() if a.id == assessor_id), None)
    if assessor is None:
        abort(404, f"Your organisation has no assessor {assessor_id}.")
    if not assessor.account.active:
        abort(403, f"The account of assessor {assessor_id} is disabled.")
    return assessor


@blueprint.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(services().settings.url("/api/v1")))


@blueprint.get("/assessors")
def assessors():
    return {
        "organisation": {"id": _organisation().id, "name": _organisation().name},
        "assessors": [
            {
                "id": a.id,
                "name": a.account.name,
                "email": a.account.email,
                "status": a.status,
                "account_active": a.account.active,
            }
            for a in _own_assessors()
        ],
    }


@blueprint.get("/cases")
def cases():
    wanted = request.args.get("assessor_id")
    if wanted is not None and not (wanted.isascii() and wanted.isdigit()):
        abort(400, "assessor_id must be the number of one of your assessors.")
    chosen = [_own_assessor(int(wanted))] if wanted else _own_assessors()
    listed = []
    for assessor in chosen:
        if not assessor.account.active:
            continue
        for summary in assessment.list_cases_for(db(), assessor):
            item = {"assessor_id": assessor.id, **_as_json(summary)}
            item["url"] = url_for("api.case", assessor_id=assessor.id, code=summary.code)
            listed.append(item)
    return {"cases": listed}


@blueprint.get("/assessors/<int:assessor_id>/cases/<code>")
def case(assessor_id: int, code: str):
    assessor = _own_assessor(assessor_id)
    view = assessment.case_view(db(), assessor, code)
    body = {"assessor_id": assessor.id, **_as_json(view)}
    for part in body["parts"]:
        for file in part["files"]:
            file["url"] = url_for(
                "api.case_file", assessor_id=assessor.id, code=view.code, name=file["name"]
            )
    body["review_url"] = url_for("api.review", assessor_id=assessor.id, code=view.code)
    return body


@blueprint.get("/assessors/<int:assessor_id>/cases/<code>/files/<name>")
def case_file(assessor_id: int, code: str, name: str):
    assessor = _own_assessor(assessor_id)
    stream, record = assessment.open_blind_file(db(), services().storage, assessor, code, name)
    return send_file(
        stream,
        mimetype=record.media_type,
        as_attachment=True,
        download_name=record.neutral_name,
        max_age=0,
    )


@blueprint.post("/assessors/<int:assessor_id>/cases/<code>/review")
def review(assessor_id: int, code: str):
    assessor = _own_assessor(assessor_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("marks"), list):
        abort(
            400,
            'The body must be JSON: {"marks": [{"part": ..., "criterion_key": ..., "met": '
            'true|false, "feedback": "..."}]} with Content-Type: application/json.',
        )
    if not all(isinstance(mark, dict) for mark in body["marks"]):
        abort(400, "Each mark must be a JSON object.")
    submitted = assessment.submit_review(db(), services().settings, assessor, code, body["marks"])
    result = {
        "assessor_id": assessor.id,
        "code": code.strip().upper(),
        "role": submitted.role,
        "submitted_at": submitted.submitted_at.isoformat(),
        "marks": [
            {
                "part": mark.part_kind,
                "criterion_key": mark.criterion_key,
                "met": mark.met,
                "feedback": mark.feedback,
            }
            for mark in submitted.marks
        ],
    }
    db().commit()
    return result, 201


@blueprint.post("/assessors/<int:assessor_id>/cases/<code>/start")
def start(assessor_id: int, code: str):
    """The assessor opens the work (the portal's Start button): the learner can no longer
    withdraw. Idempotent: `started` says whether this request started it."""
    assessor = _own_assessor(assessor_id)
    started = assessment.start_review(db(), assessor, code)
    db().commit()
    return {"assessor_id": assessor.id, "code": code.strip().upper(), "started": started}


@blueprint.post("/assessors/<int:assessor_id>/cases/<code>/decline")
def decline(assessor_id: int, code: str):
    """A conflict of interest the assessor recognises: the case goes to another assessor."""
    assessor = _own_assessor(assessor_id)
    body = request.get_json(silent=True)
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        abort(
            400,
            'The body must be JSON: {"reason": "..."} saying why the assessor declines (a '
            "conflict of interest they recognise), with Content-Type: application/json.",
        )
    assessment.decline(db(), services().settings, assessor, code, reason)
    db().commit()
    return {"assessor_id": assessor.id, "code": code.strip().upper(), "declined": True}
