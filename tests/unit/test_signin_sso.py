"""Single sign-on through a real OpenID Connect provider (oidc-provider-mock, served over
loopback HTTP): the tool discovers it, redirects to it, exchanges the code, verifies the
signed id_token and links or refuses the person."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from oidc_provider_mock import run_server_in_thread

from lti_tool.accounts import service as accounts
from lti_tool.accounts.models import Account
from lti_tool.app import create_app
from lti_tool.db import transaction
from lti_tool.services import Services


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def sso_app(settings, provider):
    configured = settings.replace(
        oidc_issuer=provider,
        oidc_client_id="lti-tool-test",
        oidc_client_secret="client-secret",
        oidc_provider_name="Example University",
    )
    services = Services(configured)
    from lti_tool import migrate

    migrate.upgrade(services.engine)
    app = create_app(configured, services)
    yield app
    services.engine.dispose()


@pytest.fixture
def sso_client(sso_app):
    client = sso_app.test_client()
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "tool.test"})
    return client


def add_account(app, email: str, **fields) -> int:
    with transaction(app.extensions["lti_tool"].session_factory) as session:
        account = accounts.add_account(session, email, "Sam Single")
        for name, value in fields.items():
            setattr(account, name, value)
        session.flush()
        return account.id


def provider_user(provider: str, sub: str, **claims) -> None:
    requests.put(f"{provider}/users/{sub}", json=claims, timeout=5).raise_for_status()


def sso_sign_in(client, provider: str, sub: str, next_path: str | None = None):
    """What a browser does: start, let the provider sign `sub` in, come back with the code."""
    start = client.get("/assess/login/sso", query_string={"next": next_path} if next_path else {})
    assert start.status_code == 302, start.get_data(as_text=True)
    authorize = start.headers["Location"]
    assert authorize.startswith(provider + "/oauth2/authorize")
    query = parse_qs(urlsplit(authorize).query)
    assert query["redirect_uri"] == ["https://tool.test/assess/login/sso/callback"]
    assert query["code_challenge_method"] == ["S256"] and query["nonce"]
    answer = requests.post(authorize, data={"sub": sub}, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    return client.get(back.path, query_string=back.query)


def signed_in_id(client):
    with client.session_transaction() as s:
        return s.get("account_id")


def test_the_login_page_offers_the_provider(sso_client):
    page = sso_client.get("/assess/login?next=/assess/cases").get_data(as_text=True)
    assert "Sign in with Example University" in page
    assert "/assess/login/sso?next=/assess/cases" in page


def test_verified_email_links_the_account_and_the_subject_signs_in_from_then_on(
    sso_app, sso_client, provider
):
    account_id = add_account(sso_app, "sam@example.org")
    provider_user(provider, "sub-sam", email="Sam@Example.org", email_verified=True)
    response = sso_sign_in(sso_client, provider, "sub-sam", next_path="/assess/cases")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == "/assess/cases"
    assert signed_in_id(sso_client) == account_id
    with sso_app.extensions["lti_tool"].session_factory() as session:
        account = session.get(Account, account_id)
        assert (account.oidc_issuer, account.oidc_subject) == (provider, "sub-sam")
        assert account.last_signed_in_at is not None

    # Later the provider's e-mail changes: the stored issuer and subject still find the account.
    provider_user(provider, "sub-sam", email="samuel@elsewhere.example", email_verified=True)
    other = sso_app.test_client()
    other.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "tool.test"})
    assert sso_sign_in(other, provider, "sub-sam").status_code == 302
    assert signed_in_id(other) == account_id


def test_unknown_person_is_refused_clearly(sso_client, provider):
    provider_user(provider, "sub-stranger", email="stranger@example.org", email_verified=True)
    response = sso_sign_in(sso_client, provider, "sub-stranger")
    assert response.status_code == 403
    text = response.get_data(as_text=True)
    assert "there is no assessor or administrator account for stranger@example.org" in text
    assert signed_in_id(sso_client) is None


def test_unverified_email_does_not_link(sso_app, sso_client, provider):
    add_account(sso_app, "unverified@example.org")
    provider_user(provider, "sub-unverified", email="unverified@example.org", email_verified=False)
    response = sso_sign_in(sso_client, provider, "sub-unverified")
    assert response.status_code == 403
    assert "has not verified the e-mail" in response.get_data(as_text=True)
    assert signed_in_id(sso_client) is None


def test_an_account_linked_to_another_subject_is_not_taken_over(sso_app, sso_client, provider):
    add_account(sso_app, "taken@example.org", oidc_issuer=provider, oidc_subject="sub-original")
    provider_user(provider, "sub-impostor", email="taken@example.org", email_verified=True)
    response = sso_sign_in(sso_client, provider, "sub-impostor")
    assert response.status_code == 403
    assert "already linked to another single sign-on identity" in response.get_data(as_text=True)


def test_disabled_account_is_refused(sso_app, sso_client, provider):
    add_account(sso_app, "off@example.org", active=False)
    provider_user(provider, "sub-off", email="off@example.org", email_verified=True)
    response = sso_sign_in(sso_client, provider, "sub-off")
    assert response.status_code == 403
    assert "This account is disabled" in response.get_data(as_text=True)
    assert signed_in_id(sso_client) is None


def test_open_redirect_in_next_is_dropped(sso_app, sso_client, provider):
    add_account(sso_app, "nx@example.org")
    provider_user(provider, "sub-nx", email="nx@example.org", email_verified=True)
    response = sso_sign_in(sso_client, provider, "sub-nx", next_path="//evil.example/")
    assert response.headers["Location"] == "/assess/"


def test_a_callback_with_a_forged_state_is_refused(sso_client):
    response = sso_client.get("/assess/login/sso/callback?code=abc&state=forged")
    assert response.status_code == 401
    assert "Single sign-on failed" in response.get_data(as_text=True)
    assert signed_in_id(sso_client) is None


def test_the_provider_refusing_is_shown(sso_client, provider):
    start = sso_client.get("/assess/login/sso")
    denied = requests.post(
        start.headers["Location"], data={"action": "deny"}, allow_redirects=False, timeout=5
    )
    back = urlsplit(denied.headers["Location"])
    response = sso_client.get(back.path, query_string=back.query)
    assert response.status_code == 401
    assert "cancelled or refused" in response.get_data(as_text=True)


def test_without_a_provider_sso_is_not_found(client):
    response = client.get("/assess/login/sso")
    assert response.status_code == 404
    assert "Single sign-on is not configured" in response.get_data(as_text=True)


def test_an_unreachable_provider_is_a_clear_502(settings):
    configured = settings.replace(oidc_issuer="http://127.0.0.1:9", oidc_client_id="x")
    services = Services(configured)
    from lti_tool import migrate

    migrate.upgrade(services.engine)
    client = create_app(configured, services).test_client()
    response = client.get("/assess/login/sso")
    assert response.status_code == 502
    assert "cannot be reached" in response.get_data(as_text=True)
