"""The public documents of an issuer: Open Badges 3.0 Profile, Achievement and the unsigned
OpenBadgeCredential; Open Badges 2.0 Issuer, BadgeClass and hosted Assertion; the status list
credential. And the stable URLs where the web layer serves each of them (one place, so a
document and the page that serves it never disagree).

Pure functions of catalog rows and settings: nothing here reads or writes the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from lti_tool.catalog.models import (
    ARTIFACTS,
    OVERVIEW,
    REFLECTION,
    Issuer,
    MicroCredentialVersion,
    Stack,
)
from lti_tool.credentials.jsonld import CREDENTIALS_V2, OB_V3
from lti_tool.credentials.proof import xsd_datetime
from lti_tool.settings import Settings

OB2_CONTEXT = "https://w3id.org/openbadges/v2"
PART_TITLES = {
    OVERVIEW: "Part 1, overview questions",
    ARTIFACTS: "Part 2, artifacts",
    REFLECTION: "Part 3, reflection",
}
EMAIL = "emailAddress"
LTI_USER = "ltiUserId"


# -- stable URLs (contract: verifiers and backpacks keep them) ---------------------------------
def badge_path(credential_id: str) -> str:
    """The path of a badge's public page."""
    return f"/badges/{credential_id}"


def credential_page_url(settings: Settings, credential_id: str) -> str:
    return settings.url(badge_path(credential_id))


def credential_json_url(settings: Settings, credential_id: str) -> str:
    return settings.url(f"/badges/{credential_id}.json")


def credential_png_url(settings: Settings, credential_id: str) -> str:
    return settings.url(f"/badges/{credential_id}.png")


def assertion_url(settings: Settings, credential_id: str) -> str:
    return settings.url(f"/badges/{credential_id}/ob2.json")


def issuer_profile_url(settings: Settings, issuer_key: str) -> str:
    return settings.url(f"/badges/issuers/{issuer_key}.json")


def issuer_ob2_url(settings: Settings, issuer_key: str) -> str:
    return settings.url(f"/badges/issuers/{issuer_key}/ob2.json")


def status_list_url(settings: Settings, list_id: int) -> str:
    return settings.url(f"/badges/status/{list_id}.json")


@dataclass(frozen=True)
class AchievementRef:
    """Where an achievement lives: a micro-credential version, or a stack."""

    path: str  # e.g. achievements/active-listening/v2 or stacks/collaboration

    @classmethod
    def of_version(cls, version: MicroCredentialVersion) -> AchievementRef:
        return cls(f"achievements/{version.micro_credential.key}/v{version.number}")

    @classmethod
    def of_stack(cls, stack: Stack) -> AchievementRef:
        return cls(f"stacks/{stack.key}")

    def json_url(self, settings: Settings) -> str:
        return settings.url(f"/badges/{self.path}.json")

    def image_url(self, settings: Settings) -> str:
        return settings.url(f"/badges/{self.path}.png")

    def badge_class_url(self, settings: Settings) -> str:
        return settings.url(f"/badges/{self.path}/ob2.json")


# -- recipient ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipient:
    """The learner as a credential names them: a salted SHA-256 of their e-mail address (or,
    when the LMS shares no e-mail, of their LTI user id on that platform)."""

    identity_type: str
    salt: str
    identity_hash: str  # sha256$<hex>

    @classmethod
    def hashed(cls, identity_type: str, value: str, salt: str) -> Recipient:
        digest = hashlib.sha256((value + salt).encode()).hexdigest()
        return cls(identity_type, salt, f"sha256${digest}")

    def matches(self, value: str) -> bool:
        """Whether `value` (an e-mail address) is the one this recipient was hashed from."""
        return Recipient.hashed(self.identity_type, value, self.salt) == self

    def ob3(self) -> dict:
        return {
            "type": "IdentityObject",
            "identityHash": self.identity_hash,
            "identityType": self.identity_type,
            "hashed": True,
            "salt": self.salt,
        }

    def ob2(self) -> dict:
        kind = "email" if self.identity_type == EMAIL else self.identity_type
        return {"type": kind, "hashed": True, "salt": self.salt, "identity": self.identity_hash}


# -- Open Badges 3.0 ---------------------------------------------------------------------------
def profile(settings: Settings, issuer: Issuer, did: str) -> dict:
    """The issuer's Profile as it appears in its credentials (id: its did:key)."""
    result: dict = {
        "id": did,
        "type": ["Profile"],
        "name": issuer.name,
        "url": issuer.url,
        "email": issuer.email,
    }
    if issuer.description:
        result["description"] = issuer.description
    if issuer.image:
        result["image"] = {"id": issuer.image, "type": "Image", "caption": f"{issuer.name} logo"}
    return result


def hosted_profile(settings: Settings, issuer: Issuer, did_document: dict) -> dict:
    """The Profile published at its stable URL, with the public key that verifies it."""
    return {
        "@context": [CREDENTIALS_V2, OB_V3],
        **profile(settings, issuer, did_document["id"]),
        "verificationMethod": did_document["verificationMethod"],
        "otherIdentifier": [
            {
                "type": "IdentifierEntry",
                "identifier": issuer_profile_url(settings, issuer.key),
                "identifierType": "identifier",
            }
        ],
    }


def criteria_narrative(version: MicroCredentialVersion) -> str:
    """What a holder has shown: the competency, the key method and each part's passing
    criteria with the rubric criteria that must be met (plain text, one point a line)."""
    lines = [
        f"Competency: {' '.join(version.competency.split())}",
        f"Key method: {' '.join(version.key_method.split())}",
        "Earned by submitting evidence that two trained assessors reviewed independently "
        "against the published rubric. Passing criteria:",
    ]
    for part in version.parts:
        title = PART_TITLES.get(part.kind, part.kind)
        passing = " ".join(part.passing.split()) or "Every required criterion is met."
        lines.append(f"{title}: {passing}")
        lines.extend(
            f"- {' '.join(criterion.text.split())}"
            for criterion in part.rubric
            if criterion.required
        )
    return "\n".join(lines)


def achievement_of_version(
    settings: Settings, version: MicroCredentialVersion, issuer_profile: dict
) -> dict:
    ref = AchievementRef.of_version(version)
    result: dict = {
        "id": ref.json_url(settings),
        "type": ["Achievement"],
        "achievementType": "MicroCredential",
        "name": version.title,
        "description": " ".join(version.competency.split()),
        "criteria": {"narrative": criteria_narrative(version)},
        "image": {
            "id": ref.image_url(settings),
            "type": "Image",
            "caption": f"Badge of the {version.title} micro-credential",
        },
        "alignment": [
            {
                "type": ["Alignment"],
                "targetName": version.title,
                "targetDescription": " ".join(version.competency.split()),
                "targetUrl": ref.json_url(settings),
                "targetType": "ceasn:Competency",
                "targetCode": version.micro_credential.key,
            }
        ],
        "creator": issuer_profile,
        "version": str(version.number),
        "humanCode": version.micro_credential.key,
    }
    if version.estimated_hours is not None:
        result["creditsAvailable"] = float(version.estimated_hours)
    return result


def achievement_of_stack(
    settings: Settings,
    stack: Stack,
    issuer_profile: dict,
    members: list[MicroCredentialVersion],
) -> dict:
    """A stack's credential; `members` are the newest versions of its micro-credentials."""
    ref = AchievementRef.of_stack(stack)
    names = ", ".join(v.title for v in members)
    rule = (
        f"all {len(members)} micro-credentials"
        if stack.needed >= len(members)
        else f"{stack.needed} of its {len(members)} micro-credentials"
    )
    result: dict = {
        "id": ref.json_url(settings),
        "type": ["Achievement"],
        "achievementType": "MicroCredential",
        "name": stack.credential_name,
        "description": " ".join((stack.credential_description or stack.description).split()),
        "criteria": {
            "narrative": f"Earned by earning {rule} of the {stack.title} stack ({names}), "
            "each assessed independently by two trained assessors."
        },
        "image": {
            "id": ref.image_url(settings),
            "type": "Image",
            "caption": f"Badge of the {stack.credential_name} credential",
        },
        "alignment": [
            {
                "type": ["Alignment"],
                "targetName": v.title,
                "targetDescription": " ".join(v.competency.split()),
                "targetUrl": AchievementRef.of_version(v).json_url(settings),
                "targetType": "ceterms:Credential",
                "targetCode": v.micro_credential.key,
            }
            for v in members
        ],
        "creator": issuer_profile,
        "humanCode": stack.key,
    }
    if stack.credential_estimated_hours is not None:
        result["creditsAvailable"] = float(stack.credential_estimated_hours)
    return result


def hosted_achievement(achievement: dict) -> dict:
    return {"@context": [CREDENTIALS_V2, OB_V3], **achievement}


@dataclass(frozen=True)
class CredentialFacts:
    """What one credential states besides its achievement and issuer."""

    credential_id: str
    recipient: Recipient
    valid_from: datetime
    valid_until: datetime | None
    evidence_narrative: str
    status_list_id: int
    status_index: int
    credits_earned: float | None = None


def open_badge_credential(
    settings: Settings, facts: CredentialFacts, issuer_profile: dict, achievement: dict
) -> dict:
    """The unsigned OpenBadgeCredential (proof.sign adds the proof)."""
    status_url = status_list_url(settings, facts.status_list_id)
    subject: dict = {
        "type": ["AchievementSubject"],
        "identifier": [facts.recipient.ob3()],
        "achievement": achievement,
    }
    if facts.credits_earned is not None:
        subject["creditsEarned"] = facts.credits_earned
    document: dict = {
        "@context": [CREDENTIALS_V2, OB_V3],
        "id": credential_page_url(settings, facts.credential_id),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": achievement["name"],
        "issuer": issuer_profile,
        "validFrom": xsd_datetime(facts.valid_from),
        "credentialSubject": subject,
        "evidence": [
            {
                "type": ["Evidence"],
                "name": "Assessed evidence",
                "narrative": facts.evidence_narrative,
            }
        ],
        "credentialStatus": {
            "id": f"{status_url}#{facts.status_index}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(facts.status_index),
            "statusListCredential": status_url,
        },
    }
    if facts.valid_until is not None:
        document["validUntil"] = xsd_datetime(facts.valid_until)
    return document


def status_list_credential(
    settings: Settings, list_id: int, issuer_did: str, encoded_list: str, valid_from: datetime
) -> dict:
    """The unsigned BitstringStatusListCredential of a list."""
    url = status_list_url(settings, list_id)
    return {
        "@context": [CREDENTIALS_V2],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer_did,
        "validFrom": xsd_datetime(valid_from),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": encoded_list,
        },
    }


# -- Open Badges 2.0 (hosted verification) -----------------------------------------------------
def ob2_issuer(settings: Settings, issuer: Issuer) -> dict:
    result: dict = {
        "@context": OB2_CONTEXT,
        "type": "Issuer",
        "id": issuer_ob2_url(settings, issuer.key),
        "name": issuer.name,
        "url": issuer.url,
        "email": issuer.email,
    }
    if issuer.description:
        result["description"] = issuer.description
    if issuer.image:
        result["image"] = issuer.image
    return result


def ob2_badge_class(settings: Settings, issuer: Issuer, achievement: dict) -> dict:
    """An OB 2.0 BadgeClass with the same name, criteria, image and alignment as the
    OB 3.0 Achievement it mirrors."""
    ref_url = achievement["id"]
    return {
        "@context": OB2_CONTEXT,
        "type": "BadgeClass",
        "id": ref_url.removesuffix(".json") + "/ob2.json",
        "name": achievement["name"],
        "description": achievement["description"],
        "image": achievement["image"]["id"],
        "criteria": {"narrative": achievement["criteria"]["narrative"]},
        "issuer": issuer_ob2_url(settings, issuer.key),
        "alignment": [
            {
                "targetName": a["targetName"],
                "targetUrl": a["targetUrl"],
                "targetDescription": a.get("targetDescription", ""),
                "targetCode": a.get("targetCode", ""),
            }
            for a in achievement.get("alignment", [])
        ],
        "tags": ["micro-credential"],
    }


def ob2_assertion(
    settings: Settings,
    credential_id: str,
    recipient: Recipient,
    badge_class_url: str,
    issued_on: datetime,
    expires: datetime | None,
    evidence_narrative: str,
    revoked: bool,
    revocation_reason: str | None,
) -> dict:
    result: dict = {
        "@context": OB2_CONTEXT,
        "type": "Assertion",
        "id": assertion_url(settings, credential_id),
        "recipient": recipient.ob2(),
        "badge": badge_class_url,
        "verification": {"type": "hosted"},
        "issuedOn": xsd_datetime(issued_on),
        "image": settings.url(f"/badges/{credential_id}/ob2.png"),
        "evidence": [{"narrative": evidence_narrative}],
        "narrative": evidence_narrative,
    }
    if expires is not None:
        result["expires"] = xsd_datetime(expires)
    if revoked:
        # OB 2.0 hosted verification: a revoked assertion says so where it is hosted.
        result["revoked"] = True
        result["revocationReason"] = revocation_reason or "Revoked by the issuer"
    return result
