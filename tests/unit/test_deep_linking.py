"""Deep Linking 2.0: a Canvas- or Moodle-shaped LtiDeepLinkingRequest opens the catalog picker;
the picks come back as a signed LtiDeepLinkingResponse the platform can verify with the tool's
JWKS, built from the signed launch only (never from the form)."""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from lti_tool.catalog import mapping
from lti_tool.lti.deep_linking import CONTENT_ITEMS_CLAIM, DATA_CLAIM
from lti_tool.lti.launch import CLAIM
from tests.conftest import BASE_URL
from tests.support.platform import (
    DL_SETTINGS,
    INSTRUCTOR,
    LEARNER,
    TA,
    deep_link_launch,
    launch,
    refusal_reason,
)
from tests.unit.catalog_support import SAMPLE, import_paths

MEMBERS = ("active-listening", "effective-leadership", "productive-teamwork", "resolving-conflicts")
TITLES = ("Active Listening", "Effective Leadership", "Productive Teamwork", "Resolving Conflicts")


@pytest.fixture
def catalog(services):
    import_paths(services, SAMPLE)


@pytest.fixture(params=["canvas", "moodle"])
def shaped(request, canvas, moodle):
    """(platform, shape): each test runs against a Canvas- and a Moodle-shaped platform."""
    return (canvas, "canvas") if request.param == "canvas" else (moodle, "moodle")


def token_of(response) -> str:
    return parse_qs(urlsplit(response.headers["Location"]).query)["lt"][0]


def open_picker(client, platform, shape, **overrides):
    """A deep-linking launch; returns (its claims, the lt token, the picker page)."""
    captured = {}
    original = platform.deep_linking_claims

    def capture(*args, **kwargs):
        claims = original(*args, **kwargs)
        captured.update(claims)
        return claims

    platform.deep_linking_claims = capture  # type: ignore[method-assign]
    try:
        response = deep_link_launch(client, platform, BASE_URL, shape, **overrides)
    finally:
        del platform.deep_linking_claims
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    assert urlsplit(response.headers["Location"]).path == "/catalog/pick"
    page = client.get(response.headers["Location"])
    return captured, token_of(response), page


def returned_form(response) -> tuple[str, str]:
    """The auto-posting form's action and its JWT field."""
    text = response.get_data(as_text=True)
    action = re.search(r'<form method="post" action="([^"]+)" id="deep-link-return"', text)
    token = re.search(r'<input type="hidden" name="JWT" value="([^"]+)"', text)
    assert action and token, text[:800]
    return html.unescape(action.group(1)), html.unescape(token.group(1))


def verify_with_jwks(client, token: str, platform) -> dict:
    """Check the response as the platform does: the tool's published key, iss, aud, times."""
    header = jwt.get_unverified_header(token)
    keys = client.get("/lti/jwks").get_json()["keys"]
    key = next(k for k in keys if k["kid"] == header["kid"])
    return jwt.decode(
        token,
        jwt.PyJWK.from_dict(key).key,
        algorithms=["RS256"],
        audience=platform.issuer,
        issuer=platform.client_id,
        options={"require": ["exp", "iat", "iss", "aud", "nonce"]},
    )


def test_picker_lists_the_sample_stack(client, catalog, shaped):
    platform, shape = shaped
    _claims, _token, page = open_picker(client, platform, shape)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Add micro-credentials to your course" in text
    assert 'type="search"' in text
    assert "Collaboration" in text
    for key, title in zip(MEMBERS, TITLES, strict=True):
        assert title in text
        assert f'value="collaboration:{key}"' in text
    assert 'name="stack" value="collaboration"' in text


def test_two_picks_return_a_signed_response_to_the_return_url(client, catalog, shaped):
    platform, shape = shaped
    claims, token, _page = open_picker(client, platform, shape)
    request_settings = claims[DL_SETTINGS]
    response = client.post(
        "/catalog/pick",
        data={
            "lt": token,
            "action": "add",
            "credential": ["collaboration:active-listening", "collaboration:resolving-conflicts"],
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    action, jwt_value = returned_form(response)
    assert action == request_settings["deep_link_return_url"]
    assert "document.forms[0].submit()" in response.get_data(as_text=True)

    body = verify_with_jwks(client, jwt_value, platform)
    header = jwt.get_unverified_header(jwt_value)
    assert header["alg"] == "RS256" and header["kid"]
    assert body["iss"] == platform.client_id
    assert body["aud"] in (platform.issuer, [platform.issuer])
    assert body[CLAIM + "deployment_id"] == platform.deployment_id
    assert body[CLAIM + "message_type"] == "LtiDeepLinkingResponse"
    assert body[CLAIM + "version"] == "1.3.0"
    assert body["nonce"] and body["nonce"] != claims["nonce"]
    assert body["exp"] > body["iat"]
    assert body[DATA_CLAIM] == request_settings["data"]
    items = body[CONTENT_ITEMS_CLAIM]
    assert [i["title"] for i in items] == ["Active Listening", "Resolving Conflicts"]
    for item, key in zip(items, ("active-listening", "resolving-conflicts"), strict=True):
        assert item["type"] == "ltiResourceLink"
        assert item["url"] == BASE_URL + "/lti/launch"
        assert item["text"].startswith("The educator")
        assert item["lineItem"] == {
            "label": item["title"],
            "scoreMaximum": 100,
            "resourceId": key,
            "tag": "micro-credential",
        }
        assert item["custom"] == {"micro_credential": key, "stack": "collaboration"}


def test_a_second_response_has_a_fresh_nonce(client, catalog, canvas):
    _claims, token, _page = open_picker(client, canvas, "canvas")
    form = {"lt": token, "credential": "collaboration:active-listening"}
    first = verify_with_jwks(
        client, returned_form(client.post("/catalog/pick", data=form))[1], canvas
    )
    second = verify_with_jwks(
        client, returned_form(client.post("/catalog/pick", data=form))[1], canvas
    )
    assert first["nonce"] != second["nonce"]
    # Random, not a uuid1: that would carry this server's MAC address to the platform.
    assert f"{uuid.getnode():012x}" not in first["nonce"] + second["nonce"]


def test_a_whole_stack_adds_every_member_and_maps_the_course(client, catalog, services, moodle):
    _claims, token, _page = open_picker(client, moodle, "moodle")
    response = client.post(
        "/catalog/pick",
        data={
            "lt": token,
            "stack": "collaboration",
            "credential": "collaboration:active-listening",
        },
    )
    body = verify_with_jwks(client, returned_form(response)[1], moodle)
    keys = [i["custom"]["micro_credential"] for i in body[CONTENT_ITEMS_CLAIM]]
    assert keys == list(MEMBERS)  # each once, in the stack's order
    with services.session_factory() as session:
        from lti_tool.roster.models import Course

        course = session.query(Course).filter_by(context_id="2").one()
        assert mapping.course_stack_keys(session, course.id) == ["collaboration"]


def test_one_item_only_refuses_two_picks_with_a_clear_400(client, catalog, shaped):
    platform, shape = shaped
    _claims, token, page = open_picker(client, platform, shape, settings={"accept_multiple": False})
    assert "One item only" in page.get_data(as_text=True)
    response = client.post(
        "/catalog/pick",
        data={
            "lt": token,
            "credential": ["collaboration:active-listening", "collaboration:resolving-conflicts"],
        },
    )
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "accepts only one item" in text
    assert 'name="JWT"' not in text
    # One pick is fine.
    one = client.post(
        "/catalog/pick", data={"lt": token, "credential": "collaboration:active-listening"}
    )
    assert one.status_code == 200
    assert len(verify_with_jwks(client, returned_form(one)[1], platform)[CONTENT_ITEMS_CLAIM]) == 1


def test_absent_accept_multiple_means_one_item(client, catalog, canvas):
    _claims, token, _page = open_picker(
        client, canvas, "canvas", settings={"accept_multiple": None}
    )
    response = client.post("/catalog/pick", data={"lt": token, "stack": "collaboration"})
    assert response.status_code == 400


def test_string_flags_are_understood(client, catalog, moodle):
    _claims, token, _page = open_picker(
        client, moodle, "moodle", settings={"accept_multiple": "true", "accept_lineitem": "false"}
    )
    response = client.post("/catalog/pick", data={"lt": token, "stack": "collaboration"})
    items = verify_with_jwks(client, returned_form(response)[1], moodle)[CONTENT_ITEMS_CLAIM]
    assert len(items) == 4
    assert all("lineItem" not in item for item in items)


def test_no_line_items_when_the_platform_ignores_them(client, catalog, canvas):
    _claims, token, page = open_picker(
        client, canvas, "canvas", settings={"accept_lineitem": False}
    )
    assert "does not create gradebook columns" in page.get_data(as_text=True)
    response = client.post(
        "/catalog/pick", data={"lt": token, "credential": "collaboration:active-listening"}
    )
    (item,) = verify_with_jwks(client, returned_form(response)[1], canvas)[CONTENT_ITEMS_CLAIM]
    assert "lineItem" not in item
    assert item["custom"]["micro_credential"] == "active-listening"


def test_data_is_echoed_unchanged_and_left_out_when_absent(client, catalog, canvas):
    data = {"opaque": ["anything", 1, None], "é": "ü"}
    _claims, token, _page = open_picker(client, canvas, "canvas", settings={"data": data})
    response = client.post("/catalog/pick", data={"lt": token, "stack": "collaboration"})
    assert verify_with_jwks(client, returned_form(response)[1], canvas)[DATA_CLAIM] == data

    _claims, token, _page = open_picker(client, canvas, "canvas", settings={"data": None})
    response = client.post("/catalog/pick", data={"lt": token, "stack": "collaboration"})
    assert DATA_CLAIM not in verify_with_jwks(client, returned_form(response)[1], canvas)


def test_cancel_returns_an_empty_response(client, catalog, moodle):
    claims, token, _page = open_picker(client, moodle, "moodle")
    response = client.post("/catalog/pick", data={"lt": token, "action": "cancel"})
    action, value = returned_form(response)
    assert action == claims[DL_SETTINGS]["deep_link_return_url"]
    assert verify_with_jwks(client, value, moodle)[CONTENT_ITEMS_CLAIM] == []


def test_nothing_picked_or_unknown_picks_are_a_400(client, catalog, canvas):
    _claims, token, _page = open_picker(client, canvas, "canvas")
    nothing = client.post("/catalog/pick", data={"lt": token, "action": "add"})
    assert nothing.status_code == 400
    assert "Pick at least one" in nothing.get_data(as_text=True)
    unknown = client.post("/catalog/pick", data={"lt": token, "credential": "collaboration:nope"})
    assert unknown.status_code == 400
    outside = client.post("/catalog/pick", data={"lt": token, "stack": "no-such-stack"})
    assert outside.status_code == 400


def test_a_request_that_does_not_accept_links_is_refused_with_a_clear_400(client, catalog, canvas):
    """pylti1p3's message validation already refuses it at launch; the picker checks again."""
    response = deep_link_launch(
        client, canvas, BASE_URL, "canvas", settings={"accept_types": ["file", "html"]}
    )
    assert response.status_code == 400
    assert refusal_reason(response) == "invalid_message"
    assert "resource link" in response.get_data(as_text=True)


def test_search_narrows_the_picker(client, catalog, canvas):
    _claims, token, _page = open_picker(client, canvas, "canvas")
    page = client.get("/catalog/pick", query_string={"lt": token, "q": "conflict"})
    text = page.get_data(as_text=True)
    assert "Resolving Conflicts" in text
    assert "Active Listening" not in text
    nothing = client.get("/catalog/pick", query_string={"lt": token, "q": "zzzz-nothing"})
    assert "Nothing in the catalog matches" in nothing.get_data(as_text=True)


@pytest.mark.parametrize("roles", [[LEARNER], ["Learner"]])
def test_a_learners_deep_linking_launch_is_refused(client, catalog, canvas, roles):
    response = deep_link_launch(client, canvas, BASE_URL, "canvas", roles=roles)
    assert response.status_code == 403
    assert refusal_reason(response) == "deep_linking_not_allowed"
    assert "Only the course's educators" in html.unescape(response.get_data(as_text=True))


def test_a_teaching_assistant_may_pick(client, catalog, moodle):
    _claims, _token, page = open_picker(client, moodle, "moodle", roles=[TA])
    assert page.status_code == 200


def test_a_forged_post_cannot_change_the_return_url(client, catalog, canvas, moodle):
    claims_a, token_a, _ = open_picker(client, canvas, "canvas")
    claims_b, _token_b, _ = open_picker(client, moodle, "moodle")
    response = client.post(
        "/catalog/pick",
        data={
            "lt": token_a,
            "credential": "collaboration:active-listening",
            # None of these is read: the signed launch decides where the response goes.
            "deep_link_return_url": "https://evil.example/steal",
            "return_url": "https://evil.example/steal",
            "data": "forged",
            "deployment_id": "forged",
        },
    )
    action, value = returned_form(response)
    assert action == claims_a[DL_SETTINGS]["deep_link_return_url"]
    assert action != claims_b[DL_SETTINGS]["deep_link_return_url"]
    body = verify_with_jwks(client, value, canvas)
    assert body[DATA_CLAIM] == claims_a[DL_SETTINGS]["data"]
    assert body[CLAIM + "deployment_id"] == canvas.deployment_id


def test_a_post_needs_a_valid_educator_token_of_a_deep_linking_launch(client, catalog, canvas):
    _claims, token, _page = open_picker(client, canvas, "canvas")
    form = {"credential": "collaboration:active-listening"}
    # The session cookie alone (a cross-site form would carry it) is not enough.
    assert client.post("/catalog/pick", data=form).status_code == 403
    # A token that is not the tool's.
    assert client.post("/catalog/pick", data={**form, "lt": token[:-4] + "AAAA"}).status_code == 403
    # A resource link launch's token (an educator's, even) cannot answer a selection.
    link = launch(client, canvas, BASE_URL, "canvas", roles=[INSTRUCTOR])
    response = client.post("/catalog/pick", data={**form, "lt": token_of(link)})
    assert response.status_code == 403
    assert client.get("/catalog/pick", query_string={"lt": token_of(link)}).status_code == 403
    # A learner's token.
    learner = launch(client, canvas, BASE_URL, "canvas", roles=[LEARNER])
    assert client.post("/catalog/pick", data={**form, "lt": token_of(learner)}).status_code == 403
    # Nobody signed in at all.
    fresh = client.application.test_client()
    assert fresh.get("/catalog/pick").status_code == 401


def test_an_expired_selection_is_refused(client, catalog, canvas, services):
    _claims, token, _page = open_picker(client, canvas, "canvas")
    from lti_tool.web.identity import _serializer

    with client.application.test_request_context():
        identity = _serializer().loads(token)
    # pylti1p3 kept the launch a day under its launch id; once gone, the selection is over.
    assert services.cache.get(identity["launch_id"]) is not None
    services.cache.delete(identity["launch_id"])
    response = client.post(
        "/catalog/pick", data={"lt": token, "credential": "collaboration:active-listening"}
    )
    assert response.status_code == 410
    assert "expired" in response.get_data(as_text=True)


def test_only_a_deep_linking_launch_keeps_its_body(client, catalog, canvas, services):
    """The picker reads a deep-linking launch's settings later; nothing reads the body of a
    resource link launch, so it is not kept (one cache write less per launch)."""
    from lti_tool.web.identity import _serializer

    _claims, picker_token, _page = open_picker(client, canvas, "canvas")
    link = launch(client, canvas, BASE_URL, "canvas", roles=[INSTRUCTOR])
    with client.application.test_request_context():
        picker = _serializer().loads(picker_token)
        resource = _serializer().loads(token_of(link))
    assert resource["message_type"] == "LtiResourceLinkRequest"
    assert services.cache.get(picker["launch_id"]) is not None
    assert services.cache.get(resource["launch_id"]) is None
