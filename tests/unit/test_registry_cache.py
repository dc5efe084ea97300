"""Platform registrations are reused by a process for a few seconds (lti_tool.lti.adapters), and
that never keeps a new platform or deployment out, nor a removed one in for longer."""

import time

from lti_tool.db import transaction
from lti_tool.lti import adapters
from lti_tool.lti.models import Platform
from lti_tool.lti.platforms import add_deployment, find_platform
from tests.conftest import BASE_URL
from tests.support.platform import CLAIM, launch, refusal_reason


def test_a_deployment_added_after_a_launch_is_accepted_at_once(client, services, canvas):
    assert launch(client, canvas, BASE_URL).status_code == 303  # the platform is now kept
    with transaction(services.session_factory) as session:
        platform = find_platform(session, canvas.issuer, canvas.client_id)
        add_deployment(session, platform, "42:added-later")
    response = launch(client, canvas, BASE_URL, **{CLAIM + "deployment_id": "42:added-later"})
    assert response.status_code == 303, refusal_reason(response)


def test_an_unknown_deployment_is_still_refused(client, canvas):
    assert launch(client, canvas, BASE_URL).status_code == 303
    response = launch(client, canvas, BASE_URL, **{CLAIM + "deployment_id": "42:never-added"})
    assert refusal_reason(response) == "unknown_deployment"


def test_a_removed_platform_is_refused_once_the_reuse_time_is_over(
    client, services, canvas, cli, monkeypatch
):
    monkeypatch.setattr(adapters, "REGISTRY_TTL", 0.3)
    assert launch(client, canvas, BASE_URL).status_code == 303
    with transaction(services.session_factory) as session:
        platform_id = find_platform(session, canvas.issuer, canvas.client_id).id
    assert cli("platform", "remove", str(platform_id)).exit_code == 0
    time.sleep(0.4)
    response = client.post(
        "/lti/login",
        data={
            "iss": canvas.issuer,
            "client_id": canvas.client_id,
            "login_hint": "someone",
            "target_link_uri": BASE_URL + "/lti/launch",
        },
    )
    assert response.status_code == 403
    assert refusal_reason(response) == "unknown_platform"
    with services.session_factory() as session:
        assert session.get(Platform, platform_id) is None


def test_the_public_key_of_the_tool_key_is_derived_once():
    adapters.public_pem.cache_clear()
    from lti_tool.demo_lms.platform import new_private_pem

    pem = new_private_pem()
    first = adapters.public_pem(pem)
    assert adapters.public_pem(pem) == first
    assert adapters.public_pem.cache_info().hits == 1


def test_a_platform_removed_during_the_reuse_time_is_refused_not_a_500(
    client, services, canvas, cli
):
    """Within REGISTRY_TTL a worker may still validate a removed platform's launch; recording it
    then fails on the missing platform, and the person gets the clear refusal."""
    from tests.support.platform import post_launch, start_login

    login = start_login(client, canvas, BASE_URL)  # the registration is now reused
    with transaction(services.session_factory) as session:
        platform_id = find_platform(session, canvas.issuer, canvas.client_id).id
    assert cli("platform", "remove", str(platform_id)).exit_code == 0
    claims = canvas.canvas_claims(login.nonce, BASE_URL + "/lti/launch")
    response = post_launch(client, canvas.signer.sign(claims), login.state)
    assert response.status_code == 403
    assert refusal_reason(response) == "unknown_platform"
