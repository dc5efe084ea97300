"""The LTI Advantage service client against a fake platform on loopback: its token endpoint
verifies the tool's client assertion with the tool's JWKS (signature, iss/sub/aud/exp, jti), and
its service endpoint can be told to fail with 500, 429 + Retry-After, 401, 403 or a stall."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid

import jwt
import pytest

from lti_tool.cache import CacheEntry
from lti_tool.db import utcnow
from lti_tool.lti import keys
from lti_tool.lti.service_client import (
    TRANSPORT_ERRORS,
    PlatformAccess,
    RetryPolicy,
    ServiceClient,
    ServiceError,
    SigningKey,
    Transport,
    client_assertion,
    token_cache_key,
    token_requests,
    with_query,
)
from tests.support.advantage import NRPS_SCOPE, SCORE_SCOPE, Failure, FakeAdvantagePlatform
from tests.support.servers import LoopbackServer, make_certificate, tls_context

LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
FAST = RetryPolicy(attempts=4, base_delay=0.2, max_delay=2.0, max_total_wait=10.0, read_timeout=2)


@pytest.fixture
def tool_key(services):
    with services.session_factory() as session:
        key = keys.active_key(session)
        session.commit()
        return SigningKey(kid=key.kid, private_pem=key.private_pem)


@pytest.fixture
def platforms(tool_jwks):
    made: list[FakeAdvantagePlatform] = []

    def make(**kw) -> FakeAdvantagePlatform:
        kw.setdefault("client_id", "client-" + uuid.uuid4().hex[:8])
        platform = FakeAdvantagePlatform(tool_jwks, **kw)
        made.append(platform)
        return platform

    yield make
    for platform in made:
        platform.stop()


@pytest.fixture
def platform(platforms) -> FakeAdvantagePlatform:
    return platforms()


class Sleeps(list):
    """Records the waits the client asks for, without waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(platform, services, tool_key, policy=FAST, **access) -> ServiceClient:
    return ServiceClient(
        access=PlatformAccess(
            issuer=platform.issuer,
            client_id=platform.client_id,
            token_url=platform.token_url,
            audience=access.get("audience"),
        ),
        key=tool_key,
        cache=services.cache,
        policy=policy,
        sleep=Sleeps(),
    )


# -- tokens ---------------------------------------------------------------------------------
def test_many_calls_and_processes_share_one_token(platform, services, tool_key):
    first = make_client(platform, services, tool_key)
    for n in range(20):
        assert first.get(platform.service_url(str(n)), [SCORE_SCOPE]).json()["ok"] is True
    # Another process (another client, same shared cache) uses the same token.
    other = make_client(platform, services, tool_key)
    other.post(platform.service_url("scores"), [SCORE_SCOPE], json={"scoreGiven": 1})
    assert platform.total_token_requests() == 1
    assert token_requests(platform.issuer, platform.client_id, [SCORE_SCOPE]) == 1
    assert platform.rejected_assertions == []
    assert len({auth for _, _, auth in platform.service_calls}) == 1


def test_the_assertion_carries_the_claims_a_platform_checks(platform, tool_key, tool_jwks):
    access = PlatformAccess(platform.issuer, platform.client_id, platform.token_url)
    token = client_assertion(access, tool_key)
    header = jwt.get_unverified_header(token)
    assert header["kid"] == tool_key.kid and header["alg"] == "RS256"
    public = jwt.PyJWK.from_dict(tool_jwks()["keys"][0]).key
    claims = jwt.decode(token, public, algorithms=["RS256"], audience=platform.token_url)
    assert claims["iss"] == claims["sub"] == platform.client_id
    assert claims["aud"] == platform.token_url
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert (
        claims["jti"]
        != jwt.decode(
            client_assertion(access, tool_key), public, algorithms=["RS256"], audience=claims["aud"]
        )["jti"]
    )


def test_a_registered_audience_is_the_assertion_audience(platforms, services, tool_key):
    platform = platforms(audience="https://lms.example/oauth2/aud")
    client = make_client(platform, services, tool_key, audience="https://lms.example/oauth2/aud")
    assert client.get(platform.service_url(), [SCORE_SCOPE]).status_code == 200
    assert platform.total_token_requests() == 1


def test_tokens_are_cached_by_issuer_client_id_and_scope_set(platforms, services, tool_key):
    # Canvas cloud: one issuer, two institutions (client ids).
    a = platforms(issuer="https://canvas.instructure.com")
    b = platforms(issuer="https://canvas.instructure.com")
    client_a = make_client(a, services, tool_key)
    client_b = make_client(b, services, tool_key)
    for _ in range(3):
        client_a.get(a.service_url(), [SCORE_SCOPE])
        client_b.get(b.service_url(), [SCORE_SCOPE])
    assert a.total_token_requests() == b.total_token_requests() == 1
    # Each used its own platform's token at once: no 401 and refresh on either.
    assert len(a.service_calls) == len(b.service_calls) == 3
    # A different scope set is another token; the same set in another order is not.
    client_a.get(a.service_url(), [SCORE_SCOPE, LINEITEM_SCOPE])
    client_a.get(a.service_url(), [LINEITEM_SCOPE, SCORE_SCOPE, SCORE_SCOPE])
    assert a.token_requests == {SCORE_SCOPE: 1, f"{LINEITEM_SCOPE} {SCORE_SCOPE}": 1}
    assert token_cache_key(a.issuer, a.client_id, [SCORE_SCOPE]) != token_cache_key(
        b.issuer, b.client_id, [SCORE_SCOPE]
    )


def test_a_token_is_kept_until_a_minute_before_it_expires(platform, services, tool_key):
    client = make_client(platform, services, tool_key)
    client.get(platform.service_url(), [SCORE_SCOPE])
    key = token_cache_key(platform.issuer, platform.client_id, [SCORE_SCOPE])
    with services.session_factory() as session:
        entry = session.get(CacheEntry, key)
        left = (entry.expires_at - utcnow()).total_seconds()
    assert 3600 - 60 - 5 < left <= 3600 - 60


def test_simultaneous_first_calls_make_one_token_request(platform, services, tool_key):
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client = make_client(platform, services, tool_key)
            barrier.wait()
            client.get(platform.service_url(), [NRPS_SCOPE, SCORE_SCOPE])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert platform.total_token_requests() == 1


def test_a_refused_assertion_is_a_token_error_with_the_platforms_words(
    platform, services, tool_key
):
    stale = SigningKey(kid="not-published", private_pem=tool_key.private_pem)
    client = make_client(platform, services, stale)
    with pytest.raises(ServiceError) as caught:
        client.get(platform.service_url(), [SCORE_SCOPE])
    error = caught.value
    assert error.stage == "token" and error.status == 401
    assert "invalid_client" in error.platform_message and "unknown kid" in str(error)
    assert platform.service_calls == []


def test_the_token_request_is_retried_on_a_server_error(platform, services, tool_key):
    platform.token_failures.append(Failure(503))
    client = make_client(platform, services, tool_key)
    assert client.get(platform.service_url(), [SCORE_SCOPE]).status_code == 200
    assert platform.total_token_requests() == 1
    assert len(client.sleep) == 1


# -- retries ----------------------------------------------------------------------------------
def test_server_errors_are_retried_with_growing_jittered_backoff(platform, services, tool_key):
    platform.fail_next(Failure(500), Failure(502), Failure(503))
    client = make_client(platform, services, tool_key)
    response = client.get(platform.service_url(), [SCORE_SCOPE])
    assert response.status_code == 200
    assert len(platform.service_calls) == 4
    first, second, third = client.sleep
    assert 0.1 <= first <= 0.2 and 0.2 <= second <= 0.4 and 0.4 <= third <= 0.8


def test_server_errors_end_in_a_typed_error_when_tries_run_out(platform, services, tool_key):
    platform.fail_next(*[Failure(500)] * 10)
    client = make_client(platform, services, tool_key)
    with pytest.raises(ServiceError) as caught:
        client.get(platform.service_url(), [SCORE_SCOPE])
    assert caught.value.status == 500
    assert caught.value.attempts == FAST.attempts
    assert "scripted failure 500" in caught.value.platform_message
    assert len(platform.service_calls) == FAST.attempts


def test_429_waits_as_long_as_retry_after_says(platform, services, tool_key):
    platform.fail_next(Failure(429, retry_after="3"))
    client = make_client(platform, services, tool_key)
    assert client.get(platform.service_url(), [SCORE_SCOPE]).status_code == 200
    assert len(client.sleep) == 1 and 3 <= client.sleep[0] <= 3 + FAST.base_delay


def test_a_retry_after_beyond_the_allowed_wait_ends_the_retries(platform, services, tool_key):
    platform.fail_next(Failure(429, retry_after="3600"))
    client = make_client(platform, services, tool_key)
    with pytest.raises(ServiceError) as caught:
        client.get(platform.service_url(), [SCORE_SCOPE])
    assert caught.value.status == 429
    assert client.sleep == [] and len(platform.service_calls) == 1


def test_a_stalled_answer_times_out_and_is_retried(platform, services, tool_key):
    platform.fail_next(Failure(200, delay=1.5))
    policy = RetryPolicy(attempts=3, base_delay=0.1, read_timeout=0.4)
    client = make_client(platform, services, tool_key, policy=policy)
    started = time.monotonic()
    assert client.get(platform.service_url(), [SCORE_SCOPE]).json()["ok"] is True
    assert time.monotonic() - started < 1.5
    assert len(platform.service_calls) == 2 and len(client.sleep) == 1


def test_an_unreachable_platform_is_a_typed_error_after_bounded_tries(services, tool_key):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    access = PlatformAccess("https://lms.example", "c", f"http://127.0.0.1:{port}/token")
    client = ServiceClient(access, tool_key, services.cache, policy=FAST, sleep=Sleeps())
    with pytest.raises(ServiceError) as caught:
        client.get(f"http://127.0.0.1:{port}/svc", [SCORE_SCOPE])
    assert caught.value.status is None and caught.value.stage == "token"
    assert caught.value.attempts == FAST.attempts and len(client.sleep) == FAST.attempts - 1


# -- 401 and other 4xx ----------------------------------------------------------------------
def test_an_expired_token_is_refreshed_once(platform, services, tool_key):
    client = make_client(platform, services, tool_key)
    client.get(platform.service_url(), [SCORE_SCOPE])
    platform.expire_tokens()  # the platform's clock ran ahead of ours
    assert client.get(platform.service_url(), [SCORE_SCOPE]).status_code == 200
    assert platform.total_token_requests() == 2
    assert len(platform.service_calls) == 3
    # The new token is the cached one now: the next call needs no new token.
    client.get(platform.service_url(), [SCORE_SCOPE])
    assert platform.total_token_requests() == 2


def test_a_second_401_is_an_error_not_a_loop(platform, services, tool_key):
    platform.fail_next(Failure(401), Failure(401), Failure(401))
    client = make_client(platform, services, tool_key)
    with pytest.raises(ServiceError) as caught:
        client.get(platform.service_url(), [SCORE_SCOPE])
    assert caught.value.status == 401
    assert len(platform.service_calls) == 2
    assert platform.total_token_requests() == 2


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_other_client_errors_are_not_retried(platform, services, tool_key, status):
    body = {"errors": [{"message": "The scope is not granted for this developer key"}]}
    platform.fail_next(Failure(status, body=body))
    client = make_client(platform, services, tool_key)
    with pytest.raises(ServiceError) as caught:
        client.post(platform.service_url(), [SCORE_SCOPE], json={"a": 1})
    assert caught.value.status == status
    assert caught.value.platform_message == "The scope is not granted for this developer key"
    assert str(status) in str(caught.value)
    assert len(platform.service_calls) == 1 and client.sleep == []
    assert platform.total_token_requests() == 1


def test_a_post_sends_json_with_its_content_type(platform, services, tool_key):
    client = make_client(platform, services, tool_key)
    response = client.post(
        platform.service_url("scores"),
        [SCORE_SCOPE],
        json={"scoreGiven": 3, "userId": "u"},
        content_type="application/vnd.ims.lis.v1.score+json",
    )
    assert response.json()["json"] == {"scoreGiven": 3, "userId": "u"}


# -- the transport of service calls -------------------------------------------------------------
def _hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    seen = environ.get("REQUEST_URI") or environ.get("RAW_URI") or environ["PATH_INFO"]
    return [json.dumps({"ok": True, "seen": seen}).encode()]


def test_the_transport_verifies_tls_against_the_ca_bundle_of_the_environment(
    tmp_path, monkeypatch
):
    """A platform signed by the CA the environment names is reached, call after call over the
    kept-alive connection; a transport made while another CA is named refuses it."""
    certificate = make_certificate(tmp_path / "ca")
    server = LoopbackServer(_hello, ssl_context=tls_context(certificate))
    try:
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate.cert_path))
        trusting = Transport(proxies={})
        for _ in range(3):
            answer = trusting.request("GET", server.url + "/x")
            assert answer.status_code == 200 and answer.json()["ok"] is True

        other = make_certificate(tmp_path / "other")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other.cert_path))
        with pytest.raises(TRANSPORT_ERRORS):
            Transport(proxies={}).request("GET", server.url + "/x")
        with pytest.raises(TRANSPORT_ERRORS):
            Transport(ca_certs=str(other.cert_path), proxies={}).request("GET", server.url + "/x")
    finally:
        server.stop()


def test_the_transport_goes_through_the_proxy_the_environment_names_unless_no_proxy(
    monkeypatch,
):
    proxy = LoopbackServer(_hello)
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        answer = Transport().request("GET", "http://platform.invalid/svc/x?a=1")
        assert answer.json()["seen"] == "http://platform.invalid/svc/x?a=1"  # asked the proxy
        monkeypatch.setenv("NO_PROXY", "platform.invalid")
        with pytest.raises(TRANSPORT_ERRORS):  # straight to a host that does not exist
            Transport().request("GET", "http://platform.invalid/svc/x", timeout=(2, 2))
    finally:
        proxy.stop()


def test_query_parameters_go_after_the_ones_a_url_has():
    moodle = "https://moodle.example/mod/lti/services.php/2/lineitems?type_id=1"
    assert with_query(moodle, {"resource_link_id": "7", "tag": None}) == (
        moodle + "&resource_link_id=7"
    )
    assert with_query("https://canvas.example/line_items", {"tag": "a b"}) == (
        "https://canvas.example/line_items?tag=a+b"
    )
    assert with_query("https://canvas.example/x", None) == "https://canvas.example/x"
