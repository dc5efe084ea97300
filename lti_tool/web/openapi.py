"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json (a contract: the
test validates it and checks that it names every route of the API blueprint)."""

from __future__ import annotations

from typing import Any

DATE_TIME = {"type": "string", "format": "date-time"}
NULLABLE_DATE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _objects(**types: str) -> dict:
    """An array of objects whose properties have these simple types."""
    properties = {name: {"type": kind} for name, kind in types.items()}
    return {"type": "array", "items": {"type": "object", "properties": properties}}


def _error_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _json_response(description: str, schema: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


TOO_MANY = {
    **_error_response(
        "Too many wrong or revoked tokens from this client address: refused, whatever the "
        "token, until Retry-After seconds have passed (also in retry_after_seconds)."
    ),
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer"},
        }
    },
}
UNAUTHORISED = {
    "401": _error_response("No token, or a token that is not valid or has been revoked."),
    "429": TOO_MANY,
}
ERRORS = {
    **UNAUTHORISED,
    "404": _error_response("No such assessor in your organisation, or no such case or file."),
}
ASSESSOR_ID = {
    "name": "assessor_id",
    "in": "path",
    "required": True,
    "description": "One of your organisation's assessors (GET /assessors).",
    "schema": {"type": "integer"},
}
CODE = {
    "name": "code",
    "in": "path",
    "required": True,
    "description": "The case code (carries no identity).",
    "schema": {"type": "string"},
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "The HTTP status name."},
            "message": {"type": "string", "description": "What went wrong, for a person."},
            "problems": {
                "type": "object",
                "description": "Invalid reviews: 'part/criterion_key' -> what to fix.",
                "additionalProperties": {"type": "string"},
            },
            "retry_after_seconds": {
                "type": "integer",
                "description": "429 only: seconds to wait (as the Retry-After header).",
            },
        },
    },
    "DeclineRequest": {
        "type": "object",
        "required": ["reason"],
        "properties": {
            "reason": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2000,
                "description": "Why the assessor declines: a conflict of interest they "
                "recognise. Kept with the assignment for the programme's administrators.",
            }
        },
    },
    "CaseAction": {
        "type": "object",
        "required": ["assessor_id", "code"],
        "properties": {
            "assessor_id": {"type": "integer"},
            "code": {"type": "string"},
            "started": {
                "type": "boolean",
                "description": "start: true when this request started the review, false when "
                "it was started already (or submitted).",
            },
            "declined": {"type": "boolean", "description": "decline: always true."},
        },
    },
    "Assessor": {
        "type": "object",
        "required": ["id", "name", "email", "status", "account_active"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "email": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "paused"]},
            "account_active": {"type": "boolean"},
        },
    },
    "CaseSummary": {
        "type": "object",
        "required": ["assessor_id", "code", "title", "adjudication", "state", "due_at", "url"],
        "properties": {
            "assessor_id": {"type": "integer"},
            "code": {"type": "string"},
            "title": {"type": "string", "description": "The micro-credential."},
            "adjudication": {
                "type": "boolean",
                "description": "True: a third review of the disputed criteria only.",
            },
            "state": {"type": "string", "enum": ["assigned", "started", "submitted"]},
            "assigned_at": DATE_TIME,
            "due_at": DATE_TIME,
            "decision_due_at": NULLABLE_DATE_TIME,
            "reminded": {"type": "boolean"},
            "url": {"type": "string"},
        },
    },
    "Criterion": {
        "type": "object",
        "required": ["part", "key", "text", "required", "to_mark"],
        "properties": {
            "part": {"type": "string"},
            "key": {"type": "string"},
            "text": {"type": "string"},
            "required": {"type": "boolean"},
            "to_mark": {"type": "boolean"},
            "met": {"type": ["boolean", "null"], "description": "Your own submitted mark."},
            "feedback": {"type": ["string", "null"]},
        },
    },
    "BlindFile": {
        "type": "object",
        "required": ["name", "media_type", "size", "url"],
        "properties": {
            "name": {"type": "string", "description": "A neutral name, e.g. artifact-1.pdf."},
            "requirement_key": {"type": "string"},
            "requirement": {"type": "string"},
            "media_type": {"type": "string"},
            "size": {"type": "integer"},
            "metadata_removed": {"type": "boolean"},
            "url": {"type": "string"},
        },
    },
    "Part": {
        "type": "object",
        "required": ["kind", "title", "answers", "files", "links", "criteria"],
        "properties": {
            "kind": {"type": "string", "enum": ["overview", "artifacts", "reflection"]},
            "title": {"type": "string"},
            "instructions": {"type": "string"},
            "passing": {"type": "string"},
            "answers": _objects(prompt="string", text="string", words="integer"),
            "files": {"type": "array", "items": _ref("BlindFile")},
            "links": _objects(url="string", title="string", requirement="string"),
            "criteria": {"type": "array", "items": _ref("Criterion")},
        },
    },
    "Case": {
        "type": "object",
        "required": ["assessor_id", "code", "title", "state", "parts", "review_url"],
        "properties": {
            "assessor_id": {"type": "integer"},
            "code": {"type": "string"},
            "title": {"type": "string"},
            "competency": {"type": "string"},
            "key_method": {"type": "string"},
            "method_components": {"type": "array", "items": {"type": "string"}},
            "adjudication": {"type": "boolean"},
            "state": {"type": "string", "enum": ["assigned", "started", "submitted"]},
            "assigned_at": DATE_TIME,
            "due_at": DATE_TIME,
            "decision_due_at": NULLABLE_DATE_TIME,
            "collaboration": {"type": "string"},
            "parts": {"type": "array", "items": _ref("Part")},
            "submitted": {"type": "boolean"},
            "can_start": {"type": "boolean"},
            "can_submit": {"type": "boolean"},
            "can_decline": {"type": "boolean"},
            "similar": {
                "type": "array",
                "description": "Submissions of the same micro-credential this one nearly "
                "matches, by case code (null: never assessed); flagged, never blocked.",
                "items": {
                    "type": "object",
                    "properties": {
                        "case_code": {"type": ["string", "null"]},
                        "percent": {"type": "integer"},
                        "parts": {
                            "type": "array",
                            "items": {
                                "type": "array",
                                "prefixItems": [{"type": "string"}, {"type": "integer"}],
                            },
                        },
                        "declared_collaboration": {"type": "boolean"},
                    },
                },
            },
            "review_url": {"type": "string"},
        },
    },
    "Mark": {
        "type": "object",
        "required": ["part", "criterion_key", "met"],
        "properties": {
            "part": {"type": "string"},
            "criterion_key": {"type": "string"},
            "met": {"type": "boolean"},
            "feedback": {
                "type": ["string", "null"],
                "description": "Required when not met; dropped when met.",
            },
        },
    },
    "ReviewRequest": {
        "type": "object",
        "required": ["marks"],
        "properties": {
            "marks": {
                "type": "array",
                "description": "Every criterion of the rubric (an adjudicator: the disputed "
                "ones only, those with to_mark true).",
                "items": _ref("Mark"),
            }
        },
    },
    "Review": {
        "type": "object",
        "required": ["assessor_id", "code", "role", "submitted_at", "marks"],
        "properties": {
            "assessor_id": {"type": "integer"},
            "code": {"type": "string"},
            "role": {"type": "string", "enum": ["first", "second", "adjudicator"]},
            "submitted_at": DATE_TIME,
            "marks": {"type": "array", "items": _ref("Mark")},
        },
    },
}


def openapi_document(server_url: str) -> dict:
    """The document, with the tool's own /api/v1 URL as its server."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Micro-credentials external assessment API",
            "version": "1.0.0",
            "description": "For assessment organisations: the blind cases assigned to your "
            "assessors, their files, and their reviews. The same rules as the assessor portal: "
            "a case is reached only through one of your assessors' own assignments, never "
            "shows who the learner is, and never shows another assessor's review.",
        },
        "servers": [{"url": server_url}],
        "security": [{"bearerToken": []}],
        "components": {
            "securitySchemes": {
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token of your organisation: lti-tool api-token create.",
                }
            },
            "schemas": SCHEMAS,
        },
        "paths": {
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document."}},
                }
            },
            "/assessors": {
                "get": {
                    "operationId": "listAssessors",
                    "summary": "Your organisation and its assessors",
                    "responses": {
                        "200": {
                            "description": "The assessors whose cases you can reach.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "organisation": {"type": "object"},
                                            "assessors": {
                                                "type": "array",
                                                "items": _ref("Assessor"),
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        **UNAUTHORISED,
                    },
                }
            },
            "/cases": {
                "get": {
                    "operationId": "listCases",
                    "summary": "The cases assigned to your assessors",
                    "description": "Open work first by due date, then submitted reviews.",
                    "parameters": [
                        {
                            "name": "assessor_id",
                            "in": "query",
                            "required": False,
                            "description": "Only this assessor's cases.",
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "One entry per assignment.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "cases": {
                                                "type": "array",
                                                "items": _ref("CaseSummary"),
                                            }
                                        },
                                    }
                                }
                            },
                        },
                        "400": _error_response("assessor_id is not a number."),
                        **ERRORS,
                    },
                }
            },
            "/assessors/{assessor_id}/cases/{code}": {
                "get": {
                    "operationId": "getCase",
                    "summary": "One blind case: evidence, rubric, the assessor's own marks",
                    "parameters": [ASSESSOR_ID, CODE],
                    "responses": {"200": _json_response("The case.", "Case"), **ERRORS},
                }
            },
            "/assessors/{assessor_id}/cases/{code}/files/{name}": {
                "get": {
                    "operationId": "getCaseFile",
                    "summary": "Download a blind file of the case",
                    "parameters": [
                        ASSESSOR_ID,
                        CODE,
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "description": "The file's neutral name (Case.parts[].files[].name).",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The file, as an attachment under its neutral name.",
                            "content": {
                                "application/octet-stream": {
                                    "schema": {"type": "string", "format": "binary"}
                                }
                            },
                        },
                        **ERRORS,
                    },
                }
            },
            "/assessors/{assessor_id}/cases/{code}/review": {
                "post": {
                    "operationId": "submitReview",
                    "summary": "Submit the assessor's review (once)",
                    "parameters": [ASSESSOR_ID, CODE],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("ReviewRequest")}},
                    },
                    "responses": {
                        "201": _json_response("The review as recorded.", "Review"),
                        "400": _error_response(
                            "Not a JSON body, or marks that do not make a review (see problems)."
                        ),
                        "403": _error_response("The assessor's account is disabled."),
                        "409": _error_response("The review was submitted already."),
                        **ERRORS,
                    },
                }
            },
            "/assessors/{assessor_id}/cases/{code}/start": {
                "post": {
                    "operationId": "startReview",
                    "summary": "Start the review (the learner can no longer withdraw)",
                    "description": "As the portal's Start button; safe to repeat.",
                    "parameters": [ASSESSOR_ID, CODE],
                    "responses": {
                        "200": _json_response("Started (now, or before).", "CaseAction"),
                        "403": _error_response("The assessor's account is disabled."),
                        **ERRORS,
                    },
                }
            },
            "/assessors/{assessor_id}/cases/{code}/decline": {
                "post": {
                    "operationId": "declineCase",
                    "summary": "Decline the case (conflict of interest); it goes to someone else",
                    "description": "The assessor never gets the case back. Not after their "
                    "review is submitted.",
                    "parameters": [ASSESSOR_ID, CODE],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("DeclineRequest")}},
                    },
                    "responses": {
                        "200": _json_response("Declined.", "CaseAction"),
                        "400": _error_response("Not a JSON body with a reason, or too long."),
                        "403": _error_response("The assessor's account is disabled."),
                        "409": _error_response("The review was submitted: too late to decline."),
                        **ERRORS,
                    },
                }
            },
        },
    }
