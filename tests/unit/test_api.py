"""/api/v1: bearer tokens per organisation, JSON errors, the OpenAPI document, and the cases of
an organisation's own assessors (blind, as in the portal)."""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate

from lti_tool.accounts import service as accounts
from lti_tool.accounts.models import Account
from lti_tool.assessment.models import Assessor
from lti_tool.db import transaction
from lti_tool.evidence.models import Attempt
from tests.support import assessment as seed
from tests.unit.test_blindness import assert_blind, learner_strings


def issue_token(services, organisation: str) -> str:
    with transaction(services.session_factory) as session:
        return accounts.create_api_token(session, organisation).plaintext


def join(services, assessor_id: int, organisation: str) -> None:
    with transaction(services.session_factory) as session:
        assessor = session.get(Assessor, assessor_id)
        assessor.account.organisation_id = accounts.organisation_named(session, organisation).id


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(services):
    """One submitted attempt assessed by an assessor of Org A and one of Org B; Org C has none."""
    seed.import_catalog(services)
    learner = seed.add_learner(services)
    a = seed.add_assessor(services, "alma@institute-a.example", "Institute A", name="Alma Ames")
    b = seed.add_assessor(services, "bo@institute-b.example", "Institute B", name="Bo Brandt")
    join(services, a, "Org A")
    join(services, b, "Org B")
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    assert {x.assessor_id for x in case.assignments} == {a, b}
    return {
        "a": a,
        "b": b,
        "code": case.code,
        "file": case.files[0].neutral_name,
        "attempt_id": attempt_id,
        "learner": learner,
        "token_a": issue_token(services, "Org A"),
        "token_b": issue_token(services, "Org B"),
        "token_c": issue_token(services, "Org C"),
    }


def get(client, path: str, token: str | None):
    return client.get(path, headers=bearer(token) if token else {})


def assert_json_error(response, status: int, fragment: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) >= {"error", "message"}
    assert fragment in body["message"], body
    return body


# -- authentication --------------------------------------------------------------------------
def test_no_token_is_401_json_with_a_bearer_challenge(client, world):
    response = get(client, "/api/v1/cases", None)
    assert_json_error(response, 401, "Authorization: Bearer <token>")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer lta_1_" + "x" * 43, "Bearer not-a-token-at-all"],
)
def test_wrong_tokens_are_refused(client, world, header):
    response = client.get("/api/v1/cases", headers={"Authorization": header})
    assert response.status_code == 401 and response.is_json


def test_a_token_with_the_right_id_and_a_wrong_secret_is_refused(client, world):
    token_id = world["token_a"].split("_")[1]
    forged = f"lta_{token_id}_" + "A" * 43
    assert_json_error(get(client, "/api/v1/cases", forged), 401, "not valid or has been revoked")


def test_a_revoked_token_is_refused(client, services, world):
    assert get(client, "/api/v1/cases", world["token_a"]).status_code == 200
    with transaction(services.session_factory) as session:
        accounts.revoke_api_token(session, int(world["token_a"].split("_")[1]))
    assert_json_error(get(client, "/api/v1/cases", world["token_a"]), 401, "revoked")


def test_a_session_cookie_is_no_way_into_the_api(client, services, world):
    with services.session_factory() as session:
        account_id = session.get(Assessor, world["a"]).account_id
    with client.session_transaction() as s:
        s["account_id"] = account_id
    assert get(client, "/api/v1/cases", None).status_code == 401


def test_unknown_routes_and_methods_answer_json(client, world):
    assert_json_error(get(client, "/api/v1/nothing-here", world["token_a"]), 404, "")
    response = client.delete("/api/v1/cases", headers=bearer(world["token_a"]))
    assert_json_error(response, 405, "")


# -- the OpenAPI document --------------------------------------------------------------------
def test_openapi_document_is_public_valid_3_1_and_describes_every_route(app, client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    validate(document)
    assert document["servers"] == [{"url": "https://tool.test/api/v1"}]
    routes = {
        (
            rule.rule.removeprefix("/api/v1")
            .replace("<int:", "{")
            .replace("<", "{")
            .replace(">", "}"),
            method.lower(),
        )
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented


# -- what an organisation sees ---------------------------------------------------------------
def test_an_organisation_lists_only_its_own_assessors(client, world):
    body = get(client, "/api/v1/assessors", world["token_a"]).get_json()
    assert body["organisation"]["name"] == "Org A"
    assert [a["id"] for a in body["assessors"]] == [world["a"]]
    assert get(client, "/api/v1/assessors", world["token_c"]).get_json()["assessors"] == []


def test_an_organisation_lists_only_the_cases_of_its_assessors(client, world):
    (item,) = get(client, "/api/v1/cases", world["token_a"]).get_json()["cases"]
    assert item["assessor_id"] == world["a"] and item["code"] == world["code"]
    assert item["state"] == "assigned"
    assert item["url"] == f"/api/v1/assessors/{world['a']}/cases/{world['code']}"
    assert get(client, "/api/v1/cases", world["token_c"]).get_json() == {"cases": []}
    filtered = get(client, f"/api/v1/cases?assessor_id={world['a']}", world["token_a"])
    assert len(filtered.get_json()["cases"]) == 1
    assert_json_error(
        get(client, f"/api/v1/cases?assessor_id={world['b']}", world["token_a"]),
        404,
        f"no assessor {world['b']}",
    )
    assert_json_error(get(client, "/api/v1/cases?assessor_id=x", world["token_a"]), 400, "number")


def test_a_case_is_blind_and_reached_only_through_ones_own_assessor(client, services, world):
    path = f"/api/v1/assessors/{world['a']}/cases/{world['code']}"
    response = get(client, path, world["token_a"])
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == world["code"] and body["assessor_id"] == world["a"]
    assert any(part["criteria"] for part in body["parts"])
    files = [f for part in body["parts"] for f in part["files"]]
    assert files[0]["url"].endswith(f"/files/{files[0]['name']}")
    others = ["Bo Brandt", "bo@institute-b.example"]
    text = response.get_data(as_text=True)
    assert_blind(text, learner_strings(services, world["learner"]) + others, path)
    # Org B's assessor is on the case, but Org A cannot go through them; Org C has nobody.
    other = f"/api/v1/assessors/{world['b']}/cases/{world['code']}"
    assert_json_error(get(client, other, world["token_a"]), 404, "no assessor")
    assert_json_error(get(client, path, world["token_c"]), 404, "no assessor")
    missing = f"/api/v1/assessors/{world['a']}/cases/NOPE-0000"
    assert_json_error(get(client, missing, world["token_a"]), 404, "You have no case")


def test_a_blind_file_downloads_under_its_neutral_name(client, world):
    path = f"/api/v1/assessors/{world['a']}/cases/{world['code']}/files/{world['file']}"
    response = get(client, path, world["token_a"])
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert world["file"] in disposition and "Zelda" not in disposition
    assert response.data.startswith(b"%PDF")
    assert get(client, path, world["token_c"]).status_code == 404
    assert_json_error(get(client, path + "x", world["token_a"]), 404, "has no file")


def test_a_disabled_assessor_account_cannot_be_acted_for(client, services, world):
    with transaction(services.session_factory) as session:
        session.get(Assessor, world["a"]).account.active = False
    path = f"/api/v1/assessors/{world['a']}/cases/{world['code']}"
    assert_json_error(get(client, path, world["token_a"]), 403, "disabled")
    assert get(client, "/api/v1/cases", world["token_a"]).get_json() == {"cases": []}


# -- reviews ---------------------------------------------------------------------------------
def post_review(client, world, who: str, body, token: str | None = None):
    return client.post(
        f"/api/v1/assessors/{world[who]}/cases/{world['code']}/review",
        data=json.dumps(body) if not isinstance(body, str) else body,
        content_type="application/json",
        headers=bearer(token or world[f"token_{who}"]),
    )


@pytest.mark.parametrize("body", ["not json", [], {"marks": "all met"}, {"marks": [1, 2]}])
def test_a_review_that_is_not_json_marks_is_a_clear_400(client, world, body):
    assert_json_error(post_review(client, world, "a", body), 400, "")


def test_incomplete_marks_list_their_problems(client, world):
    marks = seed.marks({("overview", "context"): False})
    marks[0]["feedback"] = ""
    body = assert_json_error(post_review(client, world, "a", {"marks": marks[:3]}), 400, "")
    assert body["problems"]["overview/context"].startswith("Write feedback")
    assert "reflection/evidence-of-impact" in body["problems"]


def test_two_agreeing_reviews_through_the_api_decide_the_case(client, services, world):
    first = post_review(client, world, "a", {"marks": seed.marks()})
    assert first.status_code == 201, first.get_data(as_text=True)
    assert first.get_json()["role"] in ("first", "second")
    assert all(mark["feedback"] is None for mark in first.get_json()["marks"])
    again = post_review(client, world, "a", {"marks": seed.marks()})
    assert_json_error(again, 409, "submitted your review")
    # Org B cannot submit for Org A's assessor, only for its own.
    as_b = post_review(client, world, "a", {"marks": seed.marks()}, world["token_b"])
    assert as_b.status_code == 404
    assert post_review(client, world, "b", {"marks": seed.marks()}).status_code == 201
    with services.session_factory() as session:
        assert session.get(Attempt, world["attempt_id"]).decision == "earned"
    (item,) = get(client, "/api/v1/cases", world["token_b"]).get_json()["cases"]
    assert item["state"] == "submitted"


def test_a_case_shows_only_the_assessors_own_marks(client, world):
    post_review(client, world, "a", {"marks": seed.marks({("overview", "context"): False})})
    path = f"/api/v1/assessors/{world['b']}/cases/{world['code']}"
    body = get(client, path, world["token_b"]).get_json()
    criteria = [c for part in body["parts"] for c in part["criteria"]]
    assert all(c["met"] is None and c["feedback"] is None for c in criteria)
    assert "Feedback on context" not in json.dumps(body)


def test_using_a_token_records_its_last_use(client, services, world):
    get(client, "/api/v1/cases", world["token_a"])
    with services.session_factory() as session:
        tokens = {t.organisation.name: t for t in accounts.list_api_tokens(session)}
        assert tokens["Org A"].last_used_at is not None
        assert tokens["Org C"].last_used_at is None
        assert session.query(Account).count() == 2


def test_no_api_response_or_file_names_the_learner(client, services, world):
    secrets = learner_strings(services, world["learner"])
    base = f"/api/v1/assessors/{world['a']}/cases/{world['code']}"
    paths = ["/api/v1/assessors", "/api/v1/cases", base, f"{base}/files/{world['file']}"]
    bodies = {path: get(client, path, world["token_a"]).data for path in paths}
    bodies["review"] = post_review(client, world, "a", {"marks": seed.marks()}).data
    bodies["after review"] = get(client, base, world["token_a"]).data
    for where, body in bodies.items():
        assert_blind(body.decode("latin-1"), secrets, where)


# -- guessing tokens -------------------------------------------------------------------------
def client_allowing(services, failures: int):
    """A client of an app that locks an address after `failures` wrong tokens (same database)."""
    from lti_tool.app import create_app
    from lti_tool.services import Services

    strict = Services(services.settings.replace(api_max_failures_per_address=failures))
    return create_app(strict.settings, strict).test_client(), strict


def test_an_address_that_guesses_tokens_is_refused_for_a_while(services, world):
    client, strict = client_allowing(services, 3)
    guesser, other = {"REMOTE_ADDR": "203.0.113.7"}, {"REMOTE_ADDR": "198.51.100.2"}

    def call(token: str, environ: dict):
        return client.get("/api/v1/cases", headers=bearer(token), environ_overrides=environ)

    for n in range(3):
        assert call(f"lta_{n}_" + "x" * 43, guesser).status_code == 401
    locked = call(world["token_a"], guesser)  # even the right token, once locked
    body = assert_json_error(locked, 429, "Too many requests with a wrong or revoked API token")
    retry_after = int(locked.headers["Retry-After"])
    assert 0 < retry_after <= 15 * 60
    assert body["retry_after_seconds"] == retry_after
    assert call(world["token_a"], other).status_code == 200  # another address is not locked
    # Requests without a token are not guesses: they do not count.
    for _ in range(5):
        client.get("/api/v1/cases", environ_overrides=other)
    assert call(world["token_a"], other).status_code == 200
    strict.engine.dispose()


def test_valid_tokens_do_not_count_as_failures(services, world):
    client, strict = client_allowing(services, 2)
    for _ in range(5):
        assert get(client, "/api/v1/cases", world["token_a"]).status_code == 200
    strict.engine.dispose()


# -- start and decline -----------------------------------------------------------------------
def post_json(client, path: str, body, token: str):
    return client.post(
        path,
        data=json.dumps(body) if not isinstance(body, str) else body,
        content_type="application/json",
        headers=bearer(token),
    )


def test_starting_a_review_through_the_api_stops_the_learner_withdrawing(client, services, world):
    path = f"/api/v1/assessors/{world['a']}/cases/{world['code']}/start"
    started = post_json(client, path, {}, world["token_a"])
    assert started.status_code == 200, started.get_data(as_text=True)
    assert started.get_json() == {"assessor_id": world["a"], "code": world["code"], "started": True}
    again = post_json(client, path, {}, world["token_a"])
    assert again.get_json()["started"] is False
    (item,) = get(client, "/api/v1/cases", world["token_a"]).get_json()["cases"]
    assert item["state"] == "started"
    with services.session_factory() as session:
        assert session.get(Attempt, world["attempt_id"]).status == "in_review"
    # Org B cannot start Org A's assessor's work.
    assert_json_error(post_json(client, path, {}, world["token_b"]), 404, "no assessor")


def test_declining_through_the_api_needs_a_reason_and_hands_the_case_on(client, services, world):
    path = f"/api/v1/assessors/{world['a']}/cases/{world['code']}/decline"
    for body in ["not json", {}, {"reason": "  "}, {"reason": 7}, []]:
        assert_json_error(post_json(client, path, body, world["token_a"]), 400, "reason")
    too_long = {"reason": "x" * 2001}
    assert_json_error(post_json(client, path, too_long, world["token_a"]), 400, "under 2000")
    assert_json_error(post_json(client, path, {"reason": "x"}, world["token_c"]), 404, "")
    declined = post_json(client, path, {"reason": "I taught at this school."}, world["token_a"])
    assert declined.status_code == 200, declined.get_data(as_text=True)
    assert declined.get_json()["declined"] is True
    assert get(client, "/api/v1/cases", world["token_a"]).get_json() == {"cases": []}
    case_path = f"/api/v1/assessors/{world['a']}/cases/{world['code']}"
    assert_json_error(get(client, case_path, world["token_a"]), 404, "You have no case")
    case = seed.case_of(services, world["attempt_id"])
    (gone,) = [x for x in case.assignments if x.assessor_id == world["a"]]
    assert gone.state == "declined" and gone.decline_reason == "I taught at this school."
    # Nobody else is eligible here: the case waits, visibly, rather than going back to them.
    assert case.staffing_needed


def test_a_submitted_review_cannot_be_declined_through_the_api(client, world):
    assert post_review(client, world, "a", {"marks": seed.marks()}).status_code == 201
    path = f"/api/v1/assessors/{world['a']}/cases/{world['code']}/decline"
    response = post_json(client, path, {"reason": "late"}, world["token_a"])
    assert_json_error(response, 409, "cannot be declined now")
