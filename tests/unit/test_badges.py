"""Open Badges issuing: the signed Open Badges 3.0 credential (content, recipient, proof, status
entry), issuer keys and did:key, idempotent issuance, stack credentials by "all" and "N of M",
revocation through the status list, expiry, and the bundled-contexts-only JSON-LD loader."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import timedelta

import pytest
from pyld import jsonld
from sqlalchemy import func, select

from lti_tool.credentials import documents, proof, status
from lti_tool.credentials import jsonld as bundled
from lti_tool.credentials import service as badges
from lti_tool.credentials.models import IssuedCredential, IssuerKey, StatusList
from lti_tool.db import transaction, utcnow
from lti_tool.evidence.models import Attempt
from lti_tool.outbox import service as outbox
from lti_tool.outbox.models import OutboxMessage
from tests.unit.badges_support import (
    SAMPLE_KEYS,
    add_learner,
    add_platform,
    earned_attempt,
    issue,
    load_catalogs,
    stack_id,
)


@pytest.fixture
def learner(services):
    load_catalogs(services)
    return add_learner(services, add_platform(services))


def credential(services, credential_id: str) -> IssuedCredential:
    with services.session_factory() as session:
        found = session.get(IssuedCredential, credential_id)
        session.expunge_all()
        return found


# -- the credential ----------------------------------------------------------------------------
def test_an_earned_micro_credential_is_a_signed_open_badge_3(services, learner):
    issued = issue(services, learner, "active-listening")
    document = issued.credential.document

    assert document["@context"] == [bundled.CREDENTIALS_V2, bundled.OB_V3]
    assert document["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert document["id"] == f"https://tool.test/badges/{issued.credential.id}"
    assert document["issuer"]["type"] == ["Profile"]
    assert document["issuer"]["name"] == "Collaborative Schools Network"
    assert document["issuer"]["email"] == "credentials@collab-schools.example"
    assert document["issuer"]["id"].startswith("did:key:z6Mk")
    achievement = document["credentialSubject"]["achievement"]
    assert achievement["achievementType"] == "MicroCredential"
    assert achievement["name"] == "Active Listening"
    assert achievement["creditsAvailable"] == 12.0  # estimated_hours
    assert achievement["id"] == "https://tool.test/badges/achievements/active-listening/v1.json"
    assert (
        achievement["image"]["id"]
        == "https://tool.test/badges/achievements/active-listening/v1.png"
    )
    narrative = achievement["criteria"]["narrative"]
    assert "The educator listens to a colleague" in narrative  # the competency
    assert "All three criteria must be met." in narrative  # a part's passing criteria
    assert "paraphrasing (reflecting the speaker's meaning" in narrative  # a required criterion
    assert achievement["alignment"][0]["targetType"] == "ceasn:Competency"
    assert document["validFrom"].endswith("Z")
    assert "validUntil" not in document  # the default: badges do not expire

    method = proof.verify(document)
    assert method == f"{document['issuer']['id']}#{document['issuer']['id'][8:]}"
    assert document["proof"]["cryptosuite"] == "eddsa-rdfc-2022"
    assert document["proof"]["type"] == "DataIntegrityProof"
    assert document["proof"]["proofPurpose"] == "assertionMethod"


def test_the_recipient_is_a_salted_hash_of_their_email_never_the_address(services, learner):
    document = issue(services, learner, "active-listening").credential.document
    (identity,) = document["credentialSubject"]["identifier"]
    assert identity["type"] == "IdentityObject"
    assert identity["identityType"] == "emailAddress"
    assert identity["hashed"] is True
    salted = hashlib.sha256((learner.email + identity["salt"]).encode()).hexdigest()
    assert identity["identityHash"] == f"sha256${salted}"
    assert learner.email not in str(document)
    assert learner.name not in str(document)
    other = add_learner(services, learner.platform_id, "Grace Hopper")
    second = issue(services, other, "active-listening").credential.document
    assert second["credentialSubject"]["identifier"][0]["salt"] != identity["salt"]


def test_a_learner_without_email_is_identified_by_a_hash_of_their_lti_user_id(services, learner):
    nameless = add_learner(services, learner.platform_id, "No Mail", email="")
    (identity,) = issue(services, nameless, "active-listening").credential.document[
        "credentialSubject"
    ]["identifier"]
    assert identity["identityType"] == "ltiUserId"
    assert identity["identityHash"].startswith("sha256$")


def test_evidence_tells_how_it_was_assessed_not_what_was_submitted(services, learner):
    document = issue(services, learner, "active-listening").credential.document
    (evidence,) = document["evidence"]
    assert evidence["type"] == ["Evidence"]
    assert "two trained assessors" in evidence["narrative"]
    assert "confidential" in evidence["narrative"]
    assert "id" not in evidence  # no link to the learner's files


def test_any_change_to_a_signed_credential_breaks_its_proof(services, learner):
    document = issue(services, learner, "active-listening").credential.document
    for change in (
        lambda d: d["credentialSubject"]["achievement"].update(name="Something Else"),
        lambda d: d.update(validFrom="2020-01-01T00:00:00Z"),
        lambda d: d["credentialSubject"]["identifier"][0].update(salt="0" * 32),
    ):
        tampered = copy.deepcopy(document)
        change(tampered)
        with pytest.raises(proof.ProofError, match="Invalid signature"):
            proof.verify(tampered)
    # Another key than the issuer's cannot stand in for it.
    forged = copy.deepcopy(document)
    other = proof.Signer.from_pem(proof.new_private_pem())
    forged = proof.sign(forged, other, utcnow())
    with pytest.raises(proof.ProofError, match="does not belong to the credential's issuer"):
        proof.verify(forged)


def test_each_issuer_has_one_ed25519_key_whose_did_key_resolves_offline(services, learner):
    issue(services, learner, "active-listening")
    issue(services, learner, "exit-tickets")  # another issuer (North Board)
    with services.session_factory() as session:
        keys = session.scalars(select(IssuerKey)).all()
        assert len(keys) == 2
        for key in keys:
            assert key.private_pem.startswith("-----BEGIN PRIVATE KEY-----")
            public = proof.public_key_of_verification_method(
                proof.verification_method(key.public_multibase)
            )
            signer = proof.Signer.from_pem(key.private_pem)
            assert public.public_bytes_raw() == signer.private_key.public_key().public_bytes_raw()
            assert proof.did_document(key.public_multibase)["assertionMethod"] == [
                f"{key.did}#{key.public_multibase}"
            ]


# -- once only ---------------------------------------------------------------------------------
def test_issuing_again_for_the_same_attempt_or_micro_credential_returns_the_first(
    services, learner
):
    attempt = earned_attempt(services, learner, "active-listening")
    first = issue(services, learner, "active-listening", attempt_id=attempt)
    again = issue(services, learner, "active-listening", attempt_id=attempt)
    other_attempt = issue(services, learner, "active-listening")
    assert first.created and not again.created and not other_attempt.created
    assert again.credential.id == other_attempt.credential.id == first.credential.id
    with services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(IssuedCredential)) == 1
        assert badges.public_url_for_attempt(session, attempt, "https://tool.test/") == (
            f"https://tool.test/badges/{first.credential.id}"
        )
        assert badges.public_url_for_attempt(session, attempt + 1, "https://tool.test") is None


def test_an_attempt_that_was_not_earned_gets_no_badge(services, learner):
    attempt_id = earned_attempt(services, learner, "active-listening")
    with transaction(services.session_factory) as session:
        attempt = session.get(Attempt, attempt_id)
        attempt.status = attempt.decision = "revise"
    with transaction(services.session_factory) as session:
        with pytest.raises(badges.BadgeError, match="was not earned"):
            badges.issue_micro_credential(session, services, attempt_id=attempt_id)
        with pytest.raises(badges.BadgeError, match="no attempt"):
            badges.issue_micro_credential(session, services, attempt_id=attempt_id + 99)


# -- stacks ------------------------------------------------------------------------------------
def test_the_stack_credential_is_issued_once_all_members_are_earned(services, learner):
    for key in SAMPLE_KEYS[:3]:
        assert issue(services, learner, key).stack_credentials == []
    last = issue(services, learner, SAMPLE_KEYS[3])
    (stack_credential,) = last.stack_credentials
    assert stack_credential.stack_id == stack_id(services, "collaboration")
    document = stack_credential.document
    achievement = document["credentialSubject"]["achievement"]
    assert achievement["name"] == "Collaborative Educator"
    assert achievement["creditsAvailable"] == 61.0
    assert achievement["id"] == "https://tool.test/badges/stacks/collaboration.json"
    assert [a["targetName"] for a in achievement["alignment"]] == [
        "Active Listening", "Effective Leadership", "Productive Teamwork", "Resolving Conflicts"
    ]  # fmt: skip
    assert "all 4 micro-credentials" in achievement["criteria"]["narrative"]
    proof.verify(document)
    # A retry of the last issuance issues nothing more.
    again = issue(services, learner, SAMPLE_KEYS[3], attempt_id=last.credential.attempt_id)
    assert again.stack_credentials == [] and not again.created


def test_an_n_of_m_stack_is_complete_with_n_members(services, learner):
    # The small catalog's "assessment" stack needs 1 of its 2 micro-credentials.
    issued = issue(services, learner, "exit-tickets")
    names = [c.name for c in issued.stack_credentials]
    assert names == ["Assessment Practitioner"]
    assert issue(services, learner, "questioning").stack_credentials == []


def test_a_revoked_member_does_not_count_towards_a_stack(services, learner):
    first = issue(services, learner, SAMPLE_KEYS[0])
    with transaction(services.session_factory) as session:
        badges.revoke(session, services.settings, first.credential.id, "Plagiarism", "admin")
    for key in SAMPLE_KEYS[1:]:
        assert issue(services, learner, key).stack_credentials == []


# -- status list and revocation ----------------------------------------------------------------
def test_each_credential_has_a_random_entry_in_a_published_status_list(services, learner):
    entries = [issue(services, learner, key).credential.document["credentialStatus"]
               for key in SAMPLE_KEYS[:3]]  # fmt: skip
    for entry in entries:
        assert entry["type"] == "BitstringStatusListEntry"
        assert entry["statusPurpose"] == "revocation"
        assert entry["statusListCredential"] == "https://tool.test/badges/status/1.json"
        assert entry["id"] == f"{entry['statusListCredential']}#{entry['statusListIndex']}"
        assert 0 <= int(entry["statusListIndex"]) < status.MIN_ENTRIES
    assert len({e["statusListIndex"] for e in entries}) == 3
    with services.session_factory() as session:
        listed = badges.status_list_credential(session, services.settings, 1)
    assert listed["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    proof.verify(listed)
    bits = status.decode(listed["credentialSubject"]["encodedList"])
    assert len(bits) * 8 >= 131_072
    assert not any(bits)


def test_revoking_sets_the_bit_resigns_the_list_and_the_status_reads_revoked(services, learner):
    issued = issue(services, learner, "active-listening").credential
    other = issue(services, learner, "effective-leadership").credential
    with transaction(services.session_factory) as session:
        assert badges.status_of(session, issued) == badges.VALID
        badges.revoke(
            session,
            services.settings,
            issued.id,
            "  Evidence was not the learner's own ",
            "Admin A",
        )
    with services.session_factory() as session:
        revoked = session.get(IssuedCredential, issued.id)
        assert revoked.revocation_reason == "Evidence was not the learner's own"
        assert revoked.revoked_by == "Admin A"
        assert badges.status_of(session, revoked) == badges.REVOKED
        assert badges.status_of(session, session.get(IssuedCredential, other.id)) == badges.VALID
        listed = badges.status_list_credential(session, services.settings, 1)
    proof.verify(listed)
    bits = status.decode(listed["credentialSubject"]["encodedList"])
    assert status.is_set(bits, issued.status_index)
    assert not status.is_set(bits, other.status_index)
    assert sum(bin(b).count("1") for b in bits) == 1


def test_revocation_needs_a_reason_and_happens_once(services, learner):
    issued = issue(services, learner, "active-listening").credential
    with transaction(services.session_factory) as session:
        with pytest.raises(badges.BadgeError, match="needs a reason"):
            badges.revoke(session, services.settings, issued.id, "   ", "admin")
        with pytest.raises(LookupError):
            badges.revoke(session, services.settings, "0" * 32, "reason", "admin")
        badges.revoke(session, services.settings, issued.id, "reason", "admin")
    with (
        transaction(services.session_factory) as session,
        pytest.raises(badges.BadgeError, match="already revoked"),
    ):
        badges.revoke(session, services.settings, issued.id, "again", "admin")


def test_a_status_list_is_most_significant_bit_first_gzip_base64url():
    bits = status.set_bit(status.empty(), 0)
    bits = status.set_bit(bits, 131_071)
    assert bits[0] == 0x80 and bits[-1] == 0x01
    encoded = status.encode(bits)
    assert encoded.startswith("u") and "=" not in encoded and "+" not in encoded
    assert status.decode(encoded) == bits
    assert status.set_bit(bits, 0, False)[0] == 0
    with pytest.raises(ValueError):
        status.empty(1024)


def test_badges_expire_after_the_configured_days(services, learner):
    services.settings = services.settings.replace(badge_valid_days=365)
    issued = issue(services, learner, "active-listening").credential
    assert issued.valid_until - issued.valid_from == timedelta(days=365)
    assert issued.document["validUntil"] == proof.xsd_datetime(issued.valid_until)
    proof.verify(issued.document)
    with services.session_factory() as session:
        row = session.get(IssuedCredential, issued.id)
        assert badges.status_of(session, row) == badges.VALID
        later = issued.valid_until + timedelta(seconds=1)
        assert badges.status_of(session, row, now=later) == badges.EXPIRED


# -- the JSON-LD loader ------------------------------------------------------------------------
def test_contexts_come_from_the_package_and_nothing_is_fetched():
    for url in bundled.BUNDLED:
        assert "@context" in bundled.bundled_context(url)
    with pytest.raises(jsonld.JsonLdError):
        bundled.document_loader("https://example.org/some-context.jsonld")
    document = {"@context": ["https://example.org/not-bundled"], "name": "x"}
    with pytest.raises(jsonld.JsonLdError):
        bundled.canonize(document)


def test_an_issuer_keeps_using_a_status_list_until_it_is_half_full(services, learner):
    issue(services, learner, "active-listening")
    with transaction(services.session_factory) as session:
        status_list = session.scalars(select(StatusList)).one()
        status_list.assigned = status_list.size // 2  # as if half of its indexes were used
    issued = issue(services, learner, "effective-leadership").credential
    with services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(StatusList)) == 2
    assert issued.document["credentialStatus"]["statusListCredential"].endswith("/2.json")
    assert (
        documents.status_list_url(services.settings, 2) == "https://tool.test/badges/status/2.json"
    )


# -- the outbox seam ---------------------------------------------------------------------------
def outbox_messages(services) -> dict[str, dict]:
    with services.session_factory() as session:
        return {m.key: m.payload for m in session.scalars(select(OutboxMessage))}


def test_badge_requested_issues_the_badge_then_asks_for_the_grade_and_stack_scores(
    services, learner
):
    for key in SAMPLE_KEYS[:3]:
        issue(services, learner, key)
    attempt_id = earned_attempt(services, learner, SAMPLE_KEYS[3])
    with transaction(services.session_factory) as session:
        outbox.post(session, "badge.requested", f"badge.requested:{attempt_id}",
                    {"attempt_id": attempt_id})  # fmt: skip
    # Without Redis the message is delivered in-process once the transaction commits.
    with services.session_factory() as session:
        badge = session.scalars(
            select(IssuedCredential).where(IssuedCredential.attempt_id == attempt_id)
        ).one()
        stack_badge = session.scalars(
            select(IssuedCredential).where(IssuedCredential.stack_id.is_not(None))
        ).one()
        requested = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "badge.requested")
        ).one()
        assert requested.status == "delivered"
    messages = outbox_messages(services)
    assert messages[f"grade.decided:{attempt_id}"] == {"attempt_id": attempt_id}
    assert messages[f"grade.stack_earned:{stack_badge.id}"] == {
        "user_id": learner.id,
        "stack_id": stack_id(services, "collaboration"),
        "credential_id": stack_badge.id,
    }
    # The handler run again (a retry after a lost acknowledgement) changes nothing.
    before = outbox_messages(services)
    with transaction(services.session_factory) as session:
        badges.handle_badge_requested(session, services, {"attempt_id": attempt_id})
    assert outbox_messages(services) == before
    with services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(IssuedCredential)) == 5
        assert badges.public_url_for_attempt(session, attempt_id, "https://tool.test") == (
            f"https://tool.test/badges/{badge.id}"
        )


def test_the_credential_carries_nothing_of_the_submitted_work(services, learner):
    secret = "My co-teacher Ms Jones at Riverside Elementary"
    attempt_id = earned_attempt(
        services, learner, "active-listening",
        snapshot={"answers": {"setting": secret}, "links": ["https://drive.example/private"]},
    )  # fmt: skip
    document = issue(
        services, learner, "active-listening", attempt_id=attempt_id
    ).credential.document
    text = json.dumps(document)
    assert secret not in text and "drive.example" not in text
    assert "attempt 1" in document["evidence"][0]["narrative"]
