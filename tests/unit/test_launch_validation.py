"""Every way a login or launch can be wrong is refused with a 4xx page naming the reason.

Each test drives the real OIDC login and launch through the tool with a test platform that
signs its own id_tokens and serves its JWKS over loopback HTTP; only the one thing under test
is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from lti_tool.demo_lms.platform import PlatformSigner
from lti_tool.lti.models import Platform
from lti_tool.roster.models import Course, LmsUser
from tests.conftest import BASE_URL, register
from tests.support.platform import TestPlatform as LtiPlatform
from tests.support.platform import (
    launch,
    post_launch,
    refusal_reason,
    start_login,
)

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
TARGET = BASE_URL + "/lti/launch"


# -- helpers ---------------------------------------------------------------------------------
def fresh_client(app):
    """Another browser: same tool, no cookies."""
    client = app.test_client()
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "tool.test"})
    return client


def launch_with(
    client,
    platform: LtiPlatform,
    mutate: Callable[[dict], None] | None = None,
    *,
    sign: Callable[[dict], str] | None = None,
):
    """Log in, build a Canvas-shaped launch, let `mutate` spoil it, sign it, post it."""
    login = start_login(client, platform, BASE_URL)
    claims = platform.canvas_claims(login.nonce, TARGET)
    if mutate is not None:
        mutate(claims)
    token = (sign or platform.signer.sign)(claims)
    return post_launch(client, token, login.state)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_token(header: dict, claims: dict, signature: Callable[[bytes], bytes]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(signature(signing_input.encode()))}"


def assert_refused(response, reason: str, status: int) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code == status, text[:800]
    assert refusal_reason(response) == reason, text[:800]


def assert_launched(response) -> None:
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    assert urlsplit(response.headers["Location"]).path == "/home"


# -- a valid launch, for contrast --------------------------------------------------------------
def test_valid_launch_is_accepted(client, canvas):
    assert_launched(launch_with(client, canvas))


# -- signature and keys ----------------------------------------------------------------------
def test_token_signed_by_another_key_with_the_platforms_kid_is_refused(client, canvas):
    impostor = PlatformSigner(canvas.issuer, canvas.client_id, canvas.deployment_id)
    response = launch_with(
        client, canvas, sign=lambda c: impostor.sign(c, headers={"kid": canvas.signer.kid})
    )
    assert_refused(response, "bad_signature", 401)


def test_tampered_token_is_refused(client, canvas):
    def tamper(claims: dict) -> str:
        header, _, signature = canvas.signer.sign(claims).split(".")
        claims[CLAIM + "roles"] = ["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"]
        return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"

    assert_refused(launch_with(client, canvas, sign=tamper), "bad_signature", 401)


def test_unknown_kid_is_refused_after_exactly_one_refetch(client, canvas):
    assert_launched(launch_with(client, canvas))  # the platform's JWKS is now cached
    hits = canvas.jwks_hits
    stranger = PlatformSigner(canvas.issuer, canvas.client_id, canvas.deployment_id)
    response = launch_with(client, canvas, sign=stranger.sign)
    assert_refused(response, "unknown_kid", 401)
    assert canvas.jwks_hits == hits + 1


def test_platform_that_rotated_its_key_still_launches(client, canvas):
    assert_launched(launch_with(client, canvas))  # the old JWKS is now cached
    hits = canvas.jwks_hits
    rotated = PlatformSigner(canvas.issuer, canvas.client_id, canvas.deployment_id)
    canvas.extra_keys = rotated.jwks()["keys"]
    assert_launched(launch_with(client, canvas, sign=rotated.sign))
    assert canvas.jwks_hits == hits + 1
    # The refetched set is cached: the next launch with the new key fetches nothing.
    assert_launched(launch_with(client, canvas, sign=rotated.sign))
    assert canvas.jwks_hits == hits + 1


def test_key_of_a_sibling_canvas_instance_is_not_accepted(client, hub, services, canvas):
    """Canvas cloud shares one issuer: another institution's key must not verify our launch."""
    sibling = hub.add(canvas.issuer, "20000000000" + uuid.uuid4().hex[:6], "7:abc", "canvas")
    register(services, sibling)
    response = launch_with(client, canvas, sign=sibling.signer.sign)
    assert_refused(response, "unknown_kid", 401)


def test_alg_none_is_refused(client, canvas):
    header = {"alg": "none", "typ": "JWT", "kid": canvas.signer.kid}
    response = launch_with(client, canvas, sign=lambda c: hand_made_token(header, c, lambda _: b""))
    assert_refused(response, "bad_algorithm", 401)


def test_hs256_signed_with_the_public_key_is_refused(client, canvas):
    """The classic confusion attack: HMAC keyed with the platform's public key."""
    public_key = jwt.PyJWK.from_dict(canvas.jwks()["keys"][0]).key
    public_pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": canvas.signer.kid}
    response = launch_with(
        client,
        canvas,
        sign=lambda c: hand_made_token(
            header, c, lambda data: hmac.new(public_pem, data, hashlib.sha256).digest()
        ),
    )
    assert_refused(response, "bad_algorithm", 401)


# -- issuer, audience, deployment --------------------------------------------------------------
def test_wrong_issuer_is_refused(client, canvas):
    response = launch_with(client, canvas, lambda c: c.update(iss="https://evil.example"))
    assert_refused(response, "wrong_issuer", 401)


def test_wrong_audience_is_refused(client, canvas):
    response = launch_with(
        client, canvas, lambda c: c.update(aud="another-tool", azp="another-tool")
    )
    assert_refused(response, "wrong_audience", 401)


def test_several_audiences_without_matching_azp_are_refused(client, canvas):
    response = launch_with(
        client, canvas, lambda c: c.update(aud=[canvas.client_id, "other"], azp="other")
    )
    assert_refused(response, "wrong_audience", 401)


def test_unknown_deployment_is_refused(client, canvas):
    response = launch_with(client, canvas, lambda c: c.update({CLAIM + "deployment_id": "9:x"}))
    assert_refused(response, "unknown_deployment", 403)


def test_platform_with_two_deployments_accepts_both(client, hub, services):
    platform = hub.add("https://lms.example", "client-" + uuid.uuid4().hex[:8], "dep-a")
    register(services, platform, "dep-b")
    for deployment in ("dep-a", "dep-b"):
        response = launch_with(
            client, platform, lambda c, d=deployment: c.update({CLAIM + "deployment_id": d})
        )
        assert_launched(response)
    response = launch_with(client, platform, lambda c: c.update({CLAIM + "deployment_id": "c"}))
    assert_refused(response, "unknown_deployment", 403)


def test_two_canvas_instances_sharing_the_issuer_launch_and_are_kept_apart(
    client, hub, services, canvas
):
    other = hub.add(canvas.issuer, "30000000000" + uuid.uuid4().hex[:6], "9:def", "canvas")
    register(services, other)
    # Same sub and same context id on both instances: still two people and two courses.
    for platform in (canvas, other):
        login = start_login(client, platform, BASE_URL)
        claims = platform.canvas_claims(login.nonce, TARGET, sub="same-sub")
        assert_launched(post_launch(client, platform.signer.sign(claims), login.state))
    with services.session_factory() as session:
        platforms = {
            p.client_id: p.id
            for p in session.scalars(select(Platform).where(Platform.issuer == canvas.issuer))
        }
        assert set(platforms) == {canvas.client_id, other.client_id}
        users = session.scalars(select(LmsUser).where(LmsUser.subject == "same-sub")).all()
        assert sorted(u.platform_id for u in users) == sorted(platforms.values())
        courses = session.scalars(select(Course)).all()
        assert sorted(c.platform_id for c in courses) == sorted(platforms.values())


# -- time --------------------------------------------------------------------------------------
def test_expired_token_is_refused(client, canvas):
    now = int(time.time())
    response = launch_with(client, canvas, lambda c: c.update(iat=now - 900, exp=now - 600))
    assert_refused(response, "expired", 401)


def test_token_issued_in_the_future_is_refused(client, canvas):
    now = int(time.time())
    response = launch_with(client, canvas, lambda c: c.update(iat=now + 600, exp=now + 900))
    assert_refused(response, "issued_in_future", 401)


def test_small_clock_skew_is_tolerated(client, canvas):
    now = int(time.time())
    assert_launched(launch_with(client, canvas, lambda c: c.update(iat=now + 20)))


def test_token_not_valid_before_a_future_time_is_refused(client, canvas):
    now = int(time.time())
    response = launch_with(client, canvas, lambda c: c.update(nbf=now + 600))
    assert_refused(response, "issued_in_future", 401)


@pytest.mark.parametrize("claim", ["exp", "iat"])
def test_token_without_a_required_claim_is_refused(client, canvas, claim):
    response = launch_with(client, canvas, lambda c: c.pop(claim))
    assert_refused(response, "missing_claim", 401)
    assert claim in response.get_data(as_text=True)


def test_token_with_a_time_that_is_not_a_number_is_refused(client, canvas):
    response = launch_with(client, canvas, lambda c: c.update(exp="tomorrow"))
    assert_refused(response, "invalid_token", 401)


def test_extra_header_parameters_and_a_certificate_chain_are_accepted(client, canvas):
    # Platforms may add header parameters of their own, or the key's certificate chain.
    chain = [base64.b64encode(b"c" * 1500).decode(), base64.b64encode(b"d" * 1500).decode()]
    sign = lambda c: canvas.signer.sign(c, headers={"x5c": chain, "x-vendor": "1"})  # noqa: E731
    assert_launched(launch_with(client, canvas, sign=sign))


def test_critical_header_extension_the_tool_does_not_know_is_refused(client, canvas):
    # RFC 7515 4.1.11: a "crit" extension the recipient does not understand makes it invalid.
    sign = lambda c: canvas.signer.sign(c, headers={"crit": ["x-ext"], "x-ext": 1})  # noqa: E731
    assert_refused(launch_with(client, canvas, sign=sign), "invalid_token", 401)


# -- nonce and state ---------------------------------------------------------------------------
def test_the_login_nonce_is_random_and_tells_nothing_of_the_server(client, canvas):
    nonces = [start_login(client, canvas, BASE_URL).nonce for _ in range(3)]
    assert len(set(nonces)) == 3 and all(len(nonce) >= 43 for nonce in nonces)
    # pylti1p3's own nonce ends with a uuid1: this server's MAC address, in the platform's logs.
    assert not any(f"{uuid.getnode():012x}" in nonce for nonce in nonces)


def test_replayed_nonce_is_refused(client, canvas):
    login = start_login(client, canvas, BASE_URL)
    token = canvas.signer.sign(canvas.canvas_claims(login.nonce, TARGET))
    assert_launched(post_launch(client, token, login.state))
    second = start_login(client, canvas, BASE_URL)
    assert_refused(post_launch(client, token, second.state), "replayed_nonce", 400)


def test_nonce_of_another_login_is_refused(client, canvas):
    first = start_login(client, canvas, BASE_URL)
    second = start_login(client, canvas, BASE_URL)
    token = canvas.signer.sign(canvas.canvas_claims(first.nonce, TARGET))
    assert_refused(post_launch(client, token, second.state), "nonce_mismatch", 400)


def test_unknown_state_is_refused(client, canvas):
    login = start_login(client, canvas, BASE_URL)
    token = canvas.signer.sign(canvas.canvas_claims(login.nonce, TARGET))
    response = post_launch(client, token, "state-" + str(uuid.uuid4()))
    assert_refused(response, "state_not_found", 400)


def test_reused_state_is_refused(client, canvas):
    login = start_login(client, canvas, BASE_URL)
    token = canvas.signer.sign(canvas.canvas_claims(login.nonce, TARGET))
    assert_launched(post_launch(client, token, login.state))
    assert_refused(post_launch(client, token, login.state), "state_not_found", 400)


def test_missing_state_is_refused(client, canvas):
    login = start_login(client, canvas, BASE_URL)
    token = canvas.signer.sign(canvas.canvas_claims(login.nonce, TARGET))
    response = client.post("/lti/launch", data={"id_token": token})
    assert_refused(response, "missing_state", 400)


def test_state_cookie_of_another_value_is_refused(app, client, canvas):
    login = start_login(client, canvas, BASE_URL)
    token = canvas.signer.sign(canvas.canvas_claims(login.nonce, TARGET))
    other = fresh_client(app)
    other.set_cookie("lti1p3-" + login.state, "state-" + str(uuid.uuid4()))
    assert_refused(post_launch(other, token, login.state), "state_mismatch", 400)


def test_missing_cookie_without_platform_storage_offers_a_new_window(app, client, canvas):
    params = {
        "iss": canvas.issuer,
        "login_hint": "hint-42",
        "target_link_uri": TARGET,
        "client_id": canvas.client_id,
        "lti_deployment_id": canvas.deployment_id,
        "lti_message_hint": "message-hint-7",
    }
    login = start_login(client, canvas, BASE_URL, **params)
    token = canvas.signer.sign(canvas.canvas_claims(login.nonce, TARGET))
    browser_without_cookies = fresh_client(app)
    response = post_launch(browser_without_cookies, token, login.state)
    assert_refused(response, "cookies_blocked", 400)
    match = re.search(
        r'<a[^>]*href="([^"]+)"[^>]*target="_blank"[^>]*>Open the tool in a new window',
        response.get_data(as_text=True),
    )
    assert match, response.get_data(as_text=True)
    retry = html.unescape(match.group(1))
    assert urlsplit(retry).path == "/lti/login"
    assert parse_qs(urlsplit(retry).query) == {k: [v] for k, v in params.items()}
    # Following the link starts a fresh login towards the platform with the same hints.
    again = browser_without_cookies.get(retry)
    assert again.status_code == 302
    redirect = parse_qs(urlsplit(again.headers["Location"]).query)
    assert redirect["login_hint"] == ["hint-42"]
    assert redirect["lti_message_hint"] == ["message-hint-7"]


def _storage_login(client, platform: LtiPlatform) -> tuple[str, str, str]:
    """A login where the platform offers postMessage storage; returns state, nonce, secret."""
    response = client.post(
        "/lti/login",
        data={
            "iss": platform.issuer,
            "login_hint": "hint",
            "target_link_uri": TARGET,
            "client_id": platform.client_id,
            "lti_storage_target": "_parent",
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    next_url = json.loads(re.search(r"var next = (\"[^\"]*\");", page).group(1))
    query = parse_qs(urlsplit(next_url).query)
    secret = json.loads(re.search(r"secret = (\"[^\"]*\");", page).group(1))
    return query["state"][0], query["nonce"][0], secret


def test_missing_cookie_with_platform_storage_launches_with_the_stored_secret(app, canvas):
    state, nonce, secret = _storage_login(fresh_client(app), canvas)
    token = canvas.signer.sign(canvas.canvas_claims(nonce, TARGET))
    browser = fresh_client(app)  # the cookie set at login never comes back
    first = post_launch(browser, token, state)
    assert first.status_code == 200
    assert "lti.get_data" in first.get_data(as_text=True)
    assert_launched(post_launch(browser, token, state, lti_storage_secret=secret))


def test_platform_storage_secret_of_another_login_is_refused(app, canvas):
    state, nonce, _secret = _storage_login(fresh_client(app), canvas)
    token = canvas.signer.sign(canvas.canvas_claims(nonce, TARGET))
    response = post_launch(fresh_client(app), token, state, lti_storage_secret="guessed")
    assert_refused(response, "state_mismatch", 400)


# -- message ----------------------------------------------------------------------------------
def test_missing_message_type_is_refused(client, canvas):
    response = launch_with(client, canvas, lambda c: c.pop(CLAIM + "message_type"))
    assert_refused(response, "missing_message_type", 400)


def test_unsupported_message_type_is_refused(client, canvas):
    response = launch_with(
        client,
        canvas,
        lambda c: c.update({CLAIM + "message_type": "LtiSubmissionReviewRequest"}),
    )
    assert_refused(response, "unsupported_message_type", 400)


@pytest.mark.parametrize("version", ["1.1.0", None])
def test_unsupported_version_is_refused(client, canvas, version):
    def spoil(claims: dict) -> None:
        if version is None:
            del claims[CLAIM + "version"]
        else:
            claims[CLAIM + "version"] = version

    assert_refused(launch_with(client, canvas, spoil), "unsupported_version", 400)


def test_resource_link_launch_without_sub_is_refused(client, canvas):
    response = launch_with(client, canvas, lambda c: c.pop("sub"))
    assert_refused(response, "missing_sub", 400)


def test_launch_without_id_token_is_refused(client, canvas):
    login = start_login(client, canvas, BASE_URL)
    response = client.post("/lti/launch", data={"state": login.state})
    assert_refused(response, "missing_id_token", 400)


def test_malformed_id_token_is_refused_not_crashed(client, canvas):
    login = start_login(client, canvas, BASE_URL)
    response = post_launch(client, "not-a-jwt", login.state)
    assert 400 <= response.status_code < 500
    assert refusal_reason(response)


# -- login -------------------------------------------------------------------------------------
def test_login_from_unregistered_issuer_is_refused(client):
    response = client.post(
        "/lti/login",
        data={"iss": "https://unknown.example", "login_hint": "h", "client_id": "abc"},
    )
    assert_refused(response, "unknown_platform", 403)


def test_login_with_unregistered_client_id_of_a_known_issuer_is_refused(client, canvas):
    response = client.post(
        "/lti/login",
        data={"iss": canvas.issuer, "login_hint": "h", "client_id": "99999"},
    )
    assert_refused(response, "unknown_platform", 403)


def test_login_without_client_id_is_refused_when_the_issuer_is_shared(
    client, hub, services, canvas
):
    other = hub.add(canvas.issuer, "40000000000" + uuid.uuid4().hex[:6], "1:abc", "canvas")
    register(services, other)
    response = client.post("/lti/login", data={"iss": canvas.issuer, "login_hint": "h"})
    assert_refused(response, "unknown_platform", 403)


def test_login_without_login_hint_is_refused(client, canvas):
    response = client.post("/lti/login", data={"iss": canvas.issuer, "client_id": canvas.client_id})
    assert_refused(response, "missing_login_hint", 400)


def test_login_by_get_redirects_to_the_platform(client, moodle):
    response = client.get(
        "/lti/login",
        query_string={"iss": moodle.issuer, "login_hint": "7", "client_id": moodle.client_id},
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{moodle.jwks_server.url}/auth"
    )
    query = parse_qs(location.query)
    assert query["redirect_uri"] == [TARGET]
    assert query["client_id"] == [moodle.client_id]
    assert query["response_mode"] == ["form_post"]


def test_moodle_launch_is_accepted(client, moodle):
    assert_launched(launch(client, moodle, BASE_URL, "moodle"))


def test_login_without_issuer_is_refused(client, canvas):
    response = client.post("/lti/login", data={"login_hint": "h", "client_id": canvas.client_id})
    assert_refused(response, "missing_issuer", 400)


def test_login_for_another_tools_target_link_is_refused(client, canvas):
    response = client.post(
        "/lti/login",
        data={
            "iss": canvas.issuer,
            "login_hint": "h",
            "client_id": canvas.client_id,
            "target_link_uri": "https://other-tool.example/lti/launch",
        },
    )
    assert_refused(response, "foreign_target_link", 400)


def test_platform_error_instead_of_id_token_is_shown(client, canvas):
    login = start_login(client, canvas, BASE_URL)
    response = client.post(
        "/lti/launch",
        data={
            "state": login.state,
            "error": "login_required",
            "error_description": "The user is not logged in",
        },
    )
    assert_refused(response, "platform_error", 400)
    assert "login_required" in response.get_data(as_text=True)


def test_unreachable_platform_keys_are_reported_not_crashed(client, hub, services):
    platform = hub.add("https://lms-nokeys.example", "nokeys-" + uuid.uuid4().hex[:6], "1")
    register(services, platform)
    hub.platforms.pop(platform.client_id)  # its JWKS URL now answers 404
    response = launch_with(client, platform)
    assert_refused(response, "platform_keys_unavailable", 502)
