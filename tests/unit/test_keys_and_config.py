"""The tool's published keys and their rotation, the Canvas configuration, cookies, health."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import jwt
import pytest

from lti_tool.app import create_app
from lti_tool.lti import keys
from lti_tool.services import Services
from tests.conftest import BASE_URL
from tests.support.platform import launch, post_launch, start_login

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def published(client, path: str = "/lti/jwks") -> dict[str, dict]:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return {key["kid"]: key for key in response.get_json()["keys"]}


def cli_line(result) -> str:
    """The one line a failed command prints."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


# -- JWKS --------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/lti/jwks", "/.well-known/jwks.json"])
def test_jwks_publishes_public_keys_only(client, path):
    published_keys = published(client, path)
    assert len(published_keys) == 1
    (key,) = published_keys.values()
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["use"] == "sig"
    assert key["n"] and key["e"]
    assert not PRIVATE_MEMBERS & set(key)


def test_both_jwks_urls_publish_the_same_keys(client):
    assert published(client, "/lti/jwks") == published(client, "/.well-known/jwks.json")


def test_published_key_verifies_what_the_tool_signs(client, services):
    with services.session_factory() as session:
        active = keys.active_key(session)
        session.commit()
        token = jwt.encode(
            {"iss": "tool", "iat": int(time.time())},
            active.private_pem,
            algorithm="RS256",
            headers={"kid": active.kid},
        )
    public = published(client)[jwt.get_unverified_header(token)["kid"]]
    assert jwt.decode(token, jwt.PyJWK.from_dict(public).key, algorithms=["RS256"])["iss"] == "tool"


def test_keys_are_made_once_and_kept(client):
    assert published(client) == published(client)


# -- rotation ----------------------------------------------------------------------------------
def _active_kid(services) -> str:
    with services.session_factory() as session:
        return keys.active_key(session).kid


def test_rotate_adds_an_active_key_and_keeps_the_previous_one_published(client, services, cli):
    (old,) = published(client)
    result = cli("keys", "rotate")
    assert result.exit_code == 0, result.output
    now = published(client)
    assert old in now and len(now) == 2
    new = _active_kid(services)
    assert new != old and new in now
    assert new in result.output
    listing = cli("keys", "list").output
    assert f"{new}\tactive" in listing
    assert f"{old}\tpublished" in listing


def test_retire_removes_a_previous_key_from_the_jwks(client, services, cli):
    (old,) = published(client)
    assert cli("keys", "rotate").exit_code == 0
    result = cli("keys", "retire", old)
    assert result.exit_code == 0, result.output
    assert set(published(client)) == {_active_kid(services)}
    assert f"{old}\tretired" in cli("keys", "list").output


def test_retiring_the_active_key_fails_with_one_line(client, cli):
    (active,) = published(client)
    result = cli("keys", "retire", active)
    assert result.exit_code != 0
    assert "rotate" in cli_line(result)
    assert set(published(client)) == {active}


def test_retiring_an_unknown_key_fails_with_one_line(client, cli):
    before = published(client)
    result = cli("keys", "retire", "no-such-kid")
    assert result.exit_code != 0
    assert "no-such-kid" in cli_line(result)
    assert published(client) == before


def test_launch_still_works_after_rotation(client, cli, canvas):
    assert cli("keys", "rotate").exit_code == 0
    response = launch(client, canvas, BASE_URL)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]


# -- Canvas developer key JSON -----------------------------------------------------------------
def _urls(value) -> list[str]:
    if isinstance(value, dict):
        return [u for v in value.values() for u in _urls(v)]
    if isinstance(value, list):
        return [u for v in value for u in _urls(v)]
    return [value] if isinstance(value, str) and value.startswith("http") else []


def _canvas_json(settings, base_url: str) -> dict:
    settings = settings.replace(base_url=base_url)
    app = create_app(settings, Services(settings))
    response = app.test_client().get("/lti/canvas.json")
    assert response.status_code == 200
    return response.get_json()


def test_canvas_json_is_built_from_the_base_url(settings):
    base = "https://badges.example.edu/tool"
    config = _canvas_json(settings, base)
    assert config["target_link_uri"] == base + "/lti/launch"
    assert config["oidc_initiation_url"] == base + "/lti/login"
    assert config["public_jwk_url"] == base + "/lti/jwks"
    tool_urls = [u for u in _urls(config) if not u.startswith("http://purl.imsglobal.org")]
    tool_urls = [u for u in tool_urls if not u.startswith("https://purl.imsglobal.org")]
    assert tool_urls and all(u.startswith(base + "/") for u in tool_urls), tool_urls
    (extension,) = config["extensions"]
    assert extension["domain"] == "badges.example.edu"
    assert extension["privacy_level"] in ("public", "name_only", "email_only", "anonymous")
    assert extension["privacy_level"] == "public"  # names and emails identify learners


def test_canvas_json_lists_the_advantage_scopes(settings):
    scopes = set(_canvas_json(settings, BASE_URL)["scopes"])
    assert {
        "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
        "https://purl.imsglobal.org/spec/lti-ags/scope/score",
        "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
        "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
    } <= scopes


def test_canvas_json_has_deep_linking_placements(settings):
    config = _canvas_json(settings, BASE_URL)
    placements = {p["placement"]: p for p in config["extensions"][0]["settings"]["placements"]}
    for name in ("link_selection", "assignment_selection"):
        assert placements[name]["message_type"] == "LtiDeepLinkingRequest"
        assert placements[name]["target_link_uri"] == BASE_URL + "/lti/launch"


def test_canvas_json_urls_are_served_by_the_tool(client):
    config = client.get("/lti/canvas.json").get_json()
    assert client.get(urlsplit(config["public_jwk_url"]).path).status_code == 200
    login = client.get(urlsplit(config["oidc_initiation_url"]).path)
    assert login.status_code == 400  # served, and refuses a login without parameters
    assert client.get(urlsplit(config["target_link_uri"]).path).status_code == 405


# -- cookies -----------------------------------------------------------------------------------
def _set_cookie(response, prefix: str) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(prefix)]
    assert len(headers) == 1, response.headers.getlist("Set-Cookie")
    return headers[0]


def _assert_cross_site(header: str) -> None:
    attributes = {part.strip().split("=")[0].lower(): part for part in header.split(";")}
    assert "secure" in attributes, header
    assert attributes.get("samesite", "").strip() == "SameSite=None", header
    assert "partitioned" in attributes, header
    assert "httponly" in attributes, header


def test_state_cookie_over_https_is_cross_site(client, canvas):
    response = client.post(
        "/lti/login",
        data={"iss": canvas.issuer, "login_hint": "h", "client_id": canvas.client_id},
    )
    assert response.status_code == 302
    _assert_cross_site(_set_cookie(response, "lti1p3-state-"))


def test_state_cookie_is_cross_site_behind_a_tls_proxy(app, canvas):
    """LTI_TOOL_BASE_URL is https but the proxy talks plain http to the tool."""
    login = app.test_client().post(
        "/lti/login",
        base_url="http://tool.test",
        data={"iss": canvas.issuer, "login_hint": "h", "client_id": canvas.client_id},
    )
    assert login.request.scheme == "http"
    assert login.status_code == 302
    _assert_cross_site(_set_cookie(login, "lti1p3-state-"))


def test_session_cookie_over_https_is_cross_site(client, canvas):
    response = launch(client, canvas, BASE_URL)
    assert response.status_code == 303
    _assert_cross_site(_set_cookie(response, "lti_tool_session="))


def test_launch_cookie_round_trip_over_https(client, canvas):
    login = start_login(client, canvas, BASE_URL)
    cookie = client.get_cookie("lti1p3-" + login.state)
    assert cookie is not None and cookie.value == login.state


# -- health ------------------------------------------------------------------------------------
def test_health_reports_the_database(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["database"]["backend"] == "sqlite"
    assert body["redis"]["configured"] is False


def test_successful_launch_drops_the_state_cookie(client, canvas):
    login = start_login(client, canvas, BASE_URL)
    claims = canvas.canvas_claims(login.nonce, BASE_URL + "/lti/launch")
    response = post_launch(client, canvas.signer.sign(claims), login.state)
    assert response.status_code == 303
    assert client.get_cookie("lti1p3-" + login.state) is None
    _assert_cross_site(_set_cookie(response, "lti1p3-" + login.state + "="))
