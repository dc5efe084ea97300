"""Open Badges on the web: the public verification page and documents at their stable URLs
(OB 3.0 JSON, baked PNGs, OB 2.0 hosted assertion, badge class and issuer, achievements, status
list), the learner's "My badges" page and name choice, revocation by administrators (page and
CLI), and who may do what."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from lti_tool.credentials import images, proof, status
from lti_tool.credentials.documents import Recipient
from tests.unit.badges_support import (
    SAMPLE_KEYS,
    add_learner,
    add_platform,
    issue,
    load_catalogs,
    path_of,
    token_for,
)


@pytest.fixture
def learner(services):
    load_catalogs(services)
    return add_learner(services, add_platform(services))


@pytest.fixture
def badge(services, learner):
    return issue(services, learner, "active-listening").credential


def revoke_form(client, app, badge, learner, reason="Evidence was copied", role="administrator"):
    token = token_for(app, learner, role=role)
    return client.post(f"/admin/badges/{badge.id}/revoke", data={"lt": token, "reason": reason})


# -- the public page ---------------------------------------------------------------------------
def test_the_public_page_shows_the_badge_issuer_criteria_and_a_live_status(client, badge):
    page = client.get(f"/badges/{badge.id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "<h1>Active Listening</h1>" in text
    assert "Collaborative Schools Network" in text
    assert "The educator listens to a colleague" in text  # criteria from the competency
    assert "All three criteria must be met." in text
    assert 'id="status">Valid</span>' in text
    assert 'alt="Badge: Active Listening"' in text
    assert "Ada Lovelace" not in text  # the learner did not choose to show their name
    assert "The holder chose not to show their name." in text


def test_the_recipient_name_shows_only_once_the_learner_chose_it(client, app, badge, learner):
    token = token_for(app, learner)
    saved = client.post("/badges/mine/settings", data={"lt": token, "show_name": "yes"})
    assert saved.status_code == 302
    assert "Ada Lovelace" in client.get(f"/badges/{badge.id}").get_data(as_text=True)
    client.post("/badges/mine/settings", data={"lt": token})  # unticked
    assert "Ada Lovelace" not in client.get(f"/badges/{badge.id}").get_data(as_text=True)


def test_the_linkedin_link_carries_the_certification_fields(client, badge):
    text = client.get(f"/badges/{badge.id}").get_data(as_text=True)
    start = text.index("https://www.linkedin.com/profile/add?")
    url = text[start : text.index('"', start)].replace("&amp;", "&")
    fields = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert fields["startTask"] == "CERTIFICATION_NAME"
    assert fields["name"] == "Active Listening"
    assert fields["organizationName"] == "Collaborative Schools Network"
    assert fields["issueYear"] == str(badge.valid_from.year)
    assert fields["issueMonth"] == str(badge.valid_from.month)
    assert fields["certUrl"] == f"https://tool.test/badges/{badge.id}"
    assert fields["certId"] == badge.id
    assert 'id="badge-link"' in text and "Copy link" in text  # copy link, labelled field
    assert f'href="https://tool.test/badges/{badge.id}.png" download' in text


def test_unknown_badges_are_a_clear_404(client):
    page = client.get("/badges/" + "0" * 32)
    assert page.status_code == 404
    assert "There is no badge at this address" in page.get_data(as_text=True)
    assert client.get("/badges/not-an-id").status_code == 404
    missing = client.get("/badges/" + "0" * 32 + ".json")
    assert missing.status_code == 404
    assert missing.get_json()["message"] == "There is no badge with this id."
    assert client.get("/badges/issuers/nobody.json").status_code == 404
    assert client.get("/badges/achievements/active-listening/v99.json").status_code == 404
    assert client.get("/badges/status/99.json").status_code == 404


# -- documents ---------------------------------------------------------------------------------
def test_the_json_is_the_signed_credential_as_issued(client, badge):
    response = client.get(f"/badges/{badge.id}.json")
    assert response.status_code == 200
    assert response.mimetype == "application/ld+json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    document = response.get_json(force=True)
    assert document == badge.document
    proof.verify(document)


def test_the_png_is_baked_with_the_credential_and_the_ob2_png_with_the_assertion(client, badge):
    ob3 = client.get(f"/badges/{badge.id}.png")
    assert ob3.mimetype == "image/png"
    assert "attachment" in ob3.headers["Content-Disposition"]
    baked = json.loads(images.read_baked(ob3.data, images.OB3_KEYWORD))
    assert baked == badge.document
    proof.verify(baked)
    assert images.read_baked(ob3.data, images.OB2_KEYWORD) is None  # one credential per image
    ob2 = client.get(f"/badges/{badge.id}/ob2.png")
    assertion = json.loads(images.read_baked(ob2.data, images.OB2_KEYWORD))
    assert assertion["id"] == f"https://tool.test/badges/{badge.id}/ob2.json"


def test_open_badges_2_hosted_assertion_badge_class_and_issuer_resolve(client, badge, learner):
    assertion = client.get(f"/badges/{badge.id}/ob2.json").get_json(force=True)
    assert assertion["@context"] == "https://w3id.org/openbadges/v2"
    assert assertion["type"] == "Assertion"
    assert assertion["verification"] == {"type": "hosted"}
    recipient = assertion["recipient"]
    assert recipient["type"] == "email" and recipient["hashed"] is True
    assert Recipient("emailAddress", recipient["salt"], recipient["identity"]).matches(
        learner.email
    )
    badge_class = client.get(path_of(assertion["badge"])).get_json(force=True)
    assert badge_class["type"] == "BadgeClass"
    assert badge_class["name"] == "Active Listening"
    assert client.get(path_of(badge_class["image"])).mimetype == "image/png"
    issuer = client.get(path_of(badge_class["issuer"])).get_json(force=True)
    assert issuer["type"] == "Issuer"
    assert issuer["email"] == "credentials@collab-schools.example"


def test_issuer_profile_achievements_and_stack_are_published(client, badge):
    profile = client.get("/badges/issuers/collab-schools.json").get_json(force=True)
    assert profile["id"] == badge.document["issuer"]["id"]
    assert profile["type"] == ["Profile"]
    (method,) = profile["verificationMethod"]
    assert method["type"] == "Multikey"
    assert method["publicKeyMultibase"] == profile["id"].removeprefix("did:key:")
    did = client.get("/badges/issuers/collab-schools/did.json").get_json(force=True)
    assert did["id"] == profile["id"]
    achievement = client.get("/badges/achievements/active-listening/v1.json").get_json(force=True)
    assert achievement == {
        "@context": badge.document["@context"],
        **badge.document["credentialSubject"]["achievement"],
    }
    stack = client.get("/badges/stacks/collaboration.json").get_json(force=True)
    assert stack["name"] == "Collaborative Educator"
    assert stack["achievementType"] == "MicroCredential"
    assert client.get("/badges/stacks/collaboration.png").mimetype == "image/png"
    assert client.get("/badges/stacks/collaboration/ob2.json").get_json(force=True)["type"] == (
        "BadgeClass"
    )
    image = client.get("/badges/achievements/active-listening/v1.png")
    assert image.mimetype == "image/png" and image.data.startswith(b"\x89PNG")


def test_the_status_list_is_served_signed_and_changes_on_revocation(client, app, badge, learner):
    url = path_of(badge.document["credentialStatus"]["statusListCredential"])
    before = client.get(url).get_json(force=True)
    proof.verify(before)
    assert not status.is_set(
        status.decode(before["credentialSubject"]["encodedList"]), badge.status_index
    )
    assert revoke_form(client, app, badge, learner).status_code == 302
    after = client.get(url).get_json(force=True)
    proof.verify(after)
    assert status.is_set(
        status.decode(after["credentialSubject"]["encodedList"]), badge.status_index
    )


# -- revocation --------------------------------------------------------------------------------
def test_an_administrator_revokes_with_a_reason_and_the_page_says_revoked(
    client, app, badge, learner
):
    token = token_for(app, learner, role="administrator")
    listing = client.get(f"/admin/badges?lt={token}")
    assert listing.status_code == 200
    assert f'id="badge-{badge.id}"' in listing.get_data(as_text=True)
    done = revoke_form(client, app, badge, learner, reason="Evidence was copied")
    assert done.status_code == 302 and "notice=revoked" in done.headers["Location"]
    text = client.get(f"/badges/{badge.id}").get_data(as_text=True)
    assert 'id="status">Revoked</span>' in text
    assert "Evidence was copied" in text
    assertion = client.get(f"/badges/{badge.id}/ob2.json").get_json(force=True)
    assert assertion["revoked"] is True
    assert assertion["revocationReason"] == "Evidence was copied"
    again = revoke_form(client, app, badge, learner)
    assert again.status_code == 400


def test_only_administrators_of_the_learners_platform_may_revoke(
    client, app, services, badge, learner
):
    assert client.get("/admin/badges").headers["Location"] == "/assess/login?next=/admin/badges"
    assert client.get(f"/admin/badges?lt={token_for(app, learner)}").status_code == 403
    assert revoke_form(client, app, badge, learner, role="learner").status_code == 403
    assert revoke_form(client, app, badge, learner, role="educator").status_code == 403
    elsewhere = add_learner(services, add_platform(services), "Other Admin")
    assert revoke_form(client, app, badge, elsewhere).status_code == 403
    other_listing = client.get(f"/admin/badges?lt={token_for(app, elsewhere, 'administrator')}")
    assert badge.id not in other_listing.get_data(as_text=True)
    blank = revoke_form(client, app, badge, learner, reason="   ")
    assert blank.status_code == 400
    assert "needs a reason" in blank.get_data(as_text=True)
    assert 'id="status">Valid</span>' in client.get(f"/badges/{badge.id}").get_data(as_text=True)


def test_the_cli_revokes_with_a_reason_or_says_why_not(cli, client, badge):
    missing_reason = cli("badge", "revoke", badge.id)
    assert missing_reason.exit_code != 0
    unknown = cli("badge", "revoke", "0" * 32, "--reason", "test")
    assert unknown.exit_code == 1 and "no badge" in unknown.output
    done = cli("badge", "revoke", badge.id, "--reason", "Issued to the wrong learner")
    assert done.exit_code == 0, done.output
    assert f"revoked badge {badge.id}" in done.output
    assert 'id="status">Revoked</span>' in client.get(f"/badges/{badge.id}").get_data(as_text=True)
    twice = cli("badge", "revoke", badge.id, "--reason", "again")
    assert twice.exit_code == 1 and "already revoked" in twice.output


# -- my badges ---------------------------------------------------------------------------------
def test_my_badges_lists_what_the_learner_earned_across_courses_and_nothing_else(
    client, app, services, learner
):
    for key in SAMPLE_KEYS:
        issue(services, learner, key)
    other = add_learner(services, learner.platform_id, "Grace Hopper")
    theirs = issue(services, other, "exit-tickets").credential
    page = client.get(f"/badges/mine?lt={token_for(app, learner)}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for name in ("Active Listening", "Resolving Conflicts", "Collaborative Educator"):
        assert name in text
    assert "Stack credential" in text
    assert theirs.id not in text and "Exit Tickets" not in text
    assert "?lt=" in text or 'name="lt"' in text  # the form keeps the sign-in inside the LMS


def test_my_badges_needs_a_launch_that_names_the_learner(client, app, learner):
    assert client.get("/badges/mine").status_code == 401
    anonymous = token_for(app, learner, anonymous=True)
    assert client.get(f"/badges/mine?lt={anonymous}").status_code == 403
    assert client.post("/badges/mine/settings", data={"show_name": "yes"}).status_code == 401
    empty = client.get(f"/badges/mine?lt={token_for(app, learner)}").get_data(as_text=True)
    assert "You have not earned a badge yet." in empty


def test_a_tool_administrator_account_manages_every_platforms_badges(client, services, badge):
    from lti_tool.accounts.models import Account
    from lti_tool.db import transaction

    with transaction(services.session_factory) as session:
        admin = Account(email="admin@tool.example", name="Tool Admin", is_admin=True)
        assessor = Account(email="assessor@tool.example", name="An Assessor", is_admin=False)
        session.add_all([admin, assessor])
        session.flush()
        admin_id, assessor_id = admin.id, assessor.id
    with client.session_transaction() as cookie:
        cookie["account_id"] = assessor_id
    assert client.get("/admin/badges").status_code == 403
    with client.session_transaction() as cookie:
        cookie["account_id"] = admin_id
    listing = client.get("/admin/badges").get_data(as_text=True)
    assert badge.id in listing
    # A form from elsewhere (the browser sends the cookie, not the page's CSRF token) is
    # refused: without the token, with a made-up one, or with a launch token made up instead.
    revoke = f"/admin/badges/{badge.id}/revoke"
    for forged in ({}, {"csrf_token": "made-up"}, {"lt": "made-up"}):
        refused = client.post(revoke, data={"reason": "Duplicate", **forged})
        assert refused.status_code == 400
        assert "not sent from this site" in refused.get_data(as_text=True)
    assert "Revoked" not in client.get(f"/badges/{badge.id}").get_data(as_text=True)
    csrf_token = re.search(r'name="csrf_token" value="([^"]+)"', listing).group(1)
    done = client.post(revoke, data={"reason": "Duplicate", "csrf_token": csrf_token})
    assert done.status_code == 302
    with services.session_factory() as session:
        from lti_tool.credentials.models import IssuedCredential

        assert session.get(IssuedCredential, badge.id).revoked_by == "admin@tool.example"


def test_an_issuer_profile_read_before_any_badge_keeps_its_key(client, learner):
    first = client.get("/badges/issuers/east-university.json").get_json(force=True)
    second = client.get("/badges/issuers/east-university.json").get_json(force=True)
    assert first["id"] == second["id"]
    assert first["id"].startswith("did:key:z6Mk")


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of each chunk of a PNG, read by hand as a backpack would."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        chunks.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + length]))
        at += 12 + length
    return chunks


def test_the_baked_png_holds_one_uncompressed_itxt_chunk_per_spec(client, badge):
    data = client.get(f"/badges/{badge.id}.png").data
    itxt = [body for kind, body in png_chunks(data) if kind == b"iTXt"]
    assert len(itxt) == 1
    keyword, rest = itxt[0].split(b"\x00", 1)
    assert keyword == b"openbadgecredential"
    assert rest[:2] == b"\x00\x00"  # compression flag 0 (uncompressed), method 0
    _language, _translated, text = rest[2:].split(b"\x00", 2)
    assert json.loads(text.decode("utf-8")) == badge.document
    assert png_chunks(data)[-1][0] == b"IEND"


def test_the_learners_landing_page_links_to_their_badges(client, app, learner):
    token = token_for(app, learner)
    text = client.get(f"/home?lt={token}").get_data(as_text=True)
    assert f'href="/badges/mine?lt={token}"' in text
