"""Issuing, revoking and showing Open Badges: the service functions the outbox handler, the
web pages and the CLI call.

Issuing is idempotent: a micro-credential once per attempt (and per learner), a stack
credential once per learner and stack, whatever the number of retries. Each issuance locks the
learner's row first (PostgreSQL), so two earned decisions of one learner handled at once cannot
both miss that together they complete a stack. The caller owns the transaction.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lti_tool.catalog.models import (
    Issuer,
    MicroCredential,
    MicroCredentialVersion,
    Stack,
    StackMember,
)
from lti_tool.catalog.service import current_versions, get_version
from lti_tool.credentials import documents, images, proof, status
from lti_tool.credentials.documents import EMAIL, LTI_USER, AchievementRef, Recipient
from lti_tool.credentials.models import (
    MICRO_CREDENTIAL,
    STACK,
    IssuedCredential,
    IssuerKey,
    LearnerBadgeSettings,
    StatusList,
)
from lti_tool.db import utcnow
from lti_tool.evidence.models import EARNED as EARNED_DECISION
from lti_tool.evidence.models import Attempt
from lti_tool.outbox import service as outbox
from lti_tool.progress.service import StackProgress
from lti_tool.roster.models import Course, LmsUser
from lti_tool.settings import Settings

if TYPE_CHECKING:
    from lti_tool.services import Services

log = logging.getLogger(__name__)

VALID = "valid"
EXPIRED = "expired"
REVOKED = "revoked"
STATUS_LABELS = {VALID: "Valid", EXPIRED: "Expired", REVOKED: "Revoked"}
GRADE_DECIDED = "grade.decided"
STACK_EARNED = "grade.stack_earned"
INDEX_TRIES = 64  # random draws for a free status index in a list at most half full


class BadgeError(ValueError):
    """A request the credentials package refuses; the message says why, for a person."""


@dataclass
class Issued:
    """What an issuance did: the credential (new or already there) and the stack credentials
    it newly completed."""

    credential: IssuedCredential
    created: bool
    stack_credentials: list[IssuedCredential] = field(default_factory=list)


# -- issuer keys -------------------------------------------------------------------------------
def issuer_key(session: Session, issuer_id: int) -> IssuerKey:
    """The issuer's Ed25519 key, made on first use (race-safe, like the tool's RSA keys)."""
    query = select(IssuerKey).where(IssuerKey.issuer_id == issuer_id)
    key = session.scalars(query).first()
    if key is not None:
        return key
    pem = proof.new_private_pem()
    multibase = proof.public_multibase(proof.load_private_pem(pem).public_key())
    try:
        with session.begin_nested():
            key = IssuerKey(issuer_id=issuer_id, private_pem=pem, public_multibase=multibase)
            session.add(key)
    except IntegrityError:
        key = session.scalars(query).one()  # another process made it at the same moment
    return key


_signers: dict[str, proof.Signer] = {}


def _signer(key: IssuerKey) -> proof.Signer:
    signer = _signers.get(key.public_multibase)
    if signer is None:
        signer = _signers[key.public_multibase] = proof.Signer.from_pem(key.private_pem)
    return signer


def issuer_profile(session: Session, settings: Settings, issuer: Issuer) -> dict:
    """The Profile embedded in the issuer's credentials (its id is the issuer's did:key)."""
    return documents.profile(settings, issuer, issuer_key(session, issuer.id).did)


def hosted_issuer_profile(session: Session, settings: Settings, issuer_key_name: str) -> dict:
    issuer = _issuer_by_key(session, issuer_key_name)
    key = issuer_key(session, issuer.id)
    return documents.hosted_profile(settings, issuer, proof.did_document(key.public_multibase))


def issuer_did_document(session: Session, issuer_key_name: str) -> dict:
    issuer = _issuer_by_key(session, issuer_key_name)
    return proof.did_document(issuer_key(session, issuer.id).public_multibase)


def ob2_issuer(session: Session, settings: Settings, issuer_key_name: str) -> dict:
    return documents.ob2_issuer(settings, _issuer_by_key(session, issuer_key_name))


def _issuer_by_key(session: Session, key: str) -> Issuer:
    issuer = session.scalars(select(Issuer).where(Issuer.key == key)).first()
    if issuer is None:
        raise LookupError(f"no issuer {key!r}")
    return issuer


# -- achievements ------------------------------------------------------------------------------
def achievement_of_version(
    session: Session, settings: Settings, version: MicroCredentialVersion
) -> dict:
    issuer = version.micro_credential.issuer
    return documents.achievement_of_version(
        settings, version, issuer_profile(session, settings, issuer)
    )


def achievement_of_stack(session: Session, settings: Settings, stack: Stack) -> dict:
    members = current_versions(session, [m.micro_credential_id for m in stack.members])
    ordered = [
        members[m.micro_credential_id] for m in stack.members if m.micro_credential_id in members
    ]
    return documents.achievement_of_stack(
        settings, stack, issuer_profile(session, settings, stack.issuer), ordered
    )


def version_by_key(session: Session, key: str, number: int) -> MicroCredentialVersion:
    version_id = session.scalar(
        select(MicroCredentialVersion.id)
        .join(MicroCredential, MicroCredential.id == MicroCredentialVersion.micro_credential_id)
        .where(MicroCredential.key == key, MicroCredentialVersion.number == number)
    )
    version = get_version(session, version_id) if version_id is not None else None
    if version is None:
        raise LookupError(f"no micro-credential {key!r} version {number}")
    return version


def stack_by_key(session: Session, key: str) -> Stack:
    stack = session.scalars(select(Stack).where(Stack.key == key)).first()
    if stack is None:
        raise LookupError(f"no stack {key!r}")
    return stack


hosted_achievement = documents.hosted_achievement
ob2_badge_class = documents.ob2_badge_class


def achievement_image(name: str, kind: str) -> bytes:
    """The generated badge image of an achievement (PNG)."""
    return images.badge_image(name, "Stack credential" if kind == STACK else "Micro-credential")


# -- status lists ------------------------------------------------------------------------------
def _sign_status_list(session: Session, settings: Settings, status_list: StatusList) -> None:
    key = issuer_key(session, status_list.issuer_id)
    document = documents.status_list_credential(
        settings, status_list.id, key.did, status.encode(status_list.bits), status_list.updated_at
    )
    status_list.credential = proof.sign(document, _signer(key), status_list.updated_at)


def _allocate_index(session: Session, settings: Settings, issuer_id: int) -> tuple[StatusList, int]:
    """A random unused index in one of the issuer's status lists (a new list when every list is
    half full, so a random draw finds a free index in a few tries)."""
    status_list = session.scalars(
        select(StatusList)
        .where(StatusList.issuer_id == issuer_id, StatusList.assigned * 2 < StatusList.size)
        .order_by(StatusList.id)
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if status_list is None:
        now = utcnow()
        status_list = StatusList(
            issuer_id=issuer_id,
            size=status.MIN_ENTRIES,
            bits=status.empty(status.MIN_ENTRIES),
            assigned=0,
            created_at=now,
            updated_at=now,
        )
        session.add(status_list)
        session.flush()
        _sign_status_list(session, settings, status_list)
    for _ in range(INDEX_TRIES):
        index = secrets.randbelow(status_list.size)
        taken = session.scalar(
            select(
                exists().where(
                    IssuedCredential.status_list_id == status_list.id,
                    IssuedCredential.status_index == index,
                )
            )
        )
        if not taken:
            status_list.assigned += 1
            return status_list, index
    raise RuntimeError(f"no free index found in status list {status_list.id}")


def status_list_credential(session: Session, settings: Settings, list_id: int) -> dict:
    """The signed BitstringStatusListCredential published at its stable URL."""
    status_list = session.get(StatusList, list_id)
    if status_list is None:
        raise LookupError(f"no status list {list_id}")
    if status_list.credential is None:
        _sign_status_list(session, settings, status_list)
    assert status_list.credential is not None
    return status_list.credential


# -- issuing -----------------------------------------------------------------------------------
def _recipient(user: LmsUser) -> Recipient:
    salt = secrets.token_hex(16)
    if user.email:
        return Recipient.hashed(EMAIL, user.email.strip().lower(), salt)
    return Recipient.hashed(LTI_USER, user.subject, salt)


def _valid_until(settings: Settings, valid_from: datetime) -> datetime | None:
    days = settings.badge_valid_days
    return valid_from + timedelta(days=days) if days > 0 else None


def _lock_learner(session: Session, user_id: int) -> LmsUser:
    user = session.scalars(select(LmsUser).where(LmsUser.id == user_id).with_for_update()).first()
    if user is None:
        raise BadgeError(f"no learner {user_id}")
    return user


def _new_credential(
    session: Session,
    settings: Settings,
    *,
    kind: str,
    user: LmsUser,
    issuer: Issuer,
    achievement: dict,
    evidence: str,
    valid_from: datetime,
    course_id: int | None,
    credits_earned: float | None,
    **ids: int | None,
) -> IssuedCredential:
    credential_id = uuid.uuid4().hex
    recipient = _recipient(user)
    status_list, index = _allocate_index(session, settings, issuer.id)
    valid_until = _valid_until(settings, valid_from)
    facts = documents.CredentialFacts(
        credential_id=credential_id,
        recipient=recipient,
        valid_from=valid_from,
        valid_until=valid_until,
        evidence_narrative=evidence,
        status_list_id=status_list.id,
        status_index=index,
        credits_earned=credits_earned,
    )
    key = issuer_key(session, issuer.id)
    document = documents.open_badge_credential(settings, facts, achievement["creator"], achievement)
    signed = proof.sign(document, _signer(key), utcnow())
    credential = IssuedCredential(
        id=credential_id,
        kind=kind,
        user_id=user.id,
        issuer_id=issuer.id,
        course_id=course_id,
        name=achievement["name"],
        document=signed,
        recipient_type=recipient.identity_type,
        recipient_salt=recipient.salt,
        recipient_hash=recipient.identity_hash,
        status_list_id=status_list.id,
        status_index=index,
        issued_at=utcnow(),
        valid_from=valid_from,
        valid_until=valid_until,
        **ids,
    )
    session.add(credential)
    session.flush()
    log.info("issued credential %s (%s) to learner %s", credential_id, kind, user.id)
    return credential


def evidence_narrative(title: str, attempt_number: int | None) -> str:
    """What the credential says of the evidence: how it was assessed, never what it holds
    (the learner's answers and files are confidential and stay in the tool)."""
    attempt = f" (attempt {attempt_number})" if attempt_number else ""
    return (
        f"Evidence for {title}{attempt}: answers to the overview questions, artifacts from the "
        "learner's own practice and a written reflection, reviewed independently by two trained "
        "assessors against the published rubric; every required criterion was met. The "
        "evidence itself is confidential and not part of this credential."
    )


def issue_for_version(
    session: Session,
    settings: Settings,
    *,
    user_id: int,
    version_id: int,
    attempt_id: int | None = None,
    attempt_number: int | None = None,
    awarded_at: datetime | None = None,
    course_id: int | None = None,
) -> Issued:
    """Issue the micro-credential of `version_id` to a learner (once: a second call for the
    same attempt, or the same learner and micro-credential, returns the first credential),
    then the credential of every stack this completes."""
    user = _lock_learner(session, user_id)
    version = get_version(session, version_id)
    if version is None:
        raise BadgeError(f"no micro-credential version {version_id}")
    existing = _existing(session, user_id, version.micro_credential_id, attempt_id)
    if existing is not None:
        return Issued(existing, created=False)
    achievement = achievement_of_version(session, settings, version)
    credential = _new_credential(
        session,
        settings,
        kind=MICRO_CREDENTIAL,
        user=user,
        issuer=version.micro_credential.issuer,
        achievement=achievement,
        evidence=evidence_narrative(version.title, attempt_number),
        valid_from=awarded_at or utcnow(),
        course_id=course_id,
        credits_earned=version.estimated_hours,
        attempt_id=attempt_id,
        micro_credential_id=version.micro_credential_id,
        version_id=version.id,
    )
    stacks = issue_completed_stacks(
        session, settings, user, version.micro_credential_id, course_id=course_id
    )
    return Issued(credential, created=True, stack_credentials=stacks)


def issue_micro_credential(session: Session, services: Services, *, attempt_id: int) -> Issued:
    """Issue the badge of an earned attempt (once; a retry returns the first), and the
    credential of each stack it completes. Refuses an attempt that was not earned."""
    attempt = session.get(Attempt, attempt_id)
    if attempt is None:
        raise BadgeError(f"there is no attempt {attempt_id}")
    if attempt.decision != EARNED_DECISION:
        raise BadgeError(f"attempt {attempt_id} was not earned (decision: {attempt.decision})")
    return issue_for_version(
        session,
        services.settings,
        user_id=attempt.user_id,
        version_id=attempt.version_id,
        attempt_id=attempt.id,
        attempt_number=attempt.number,
        awarded_at=attempt.decided_at,
        course_id=attempt.course_id,
    )


def handle_badge_requested(session: Session, services: Services, payload: dict) -> None:
    """Outbox handler of `badge.requested` {attempt_id}: issue the badge, then, in the same
    transaction, ask the gradebook to send the grade (`grade.decided`, so the score's comment
    can link the badge that now exists) and to score each stack completed
    (`grade.stack_earned`). Idempotent: a retry finds the badge and posts nothing new."""
    attempt_id = int(payload["attempt_id"])
    issued = issue_micro_credential(session, services, attempt_id=attempt_id)
    outbox.post(session, GRADE_DECIDED, f"{GRADE_DECIDED}:{attempt_id}", {"attempt_id": attempt_id})
    for stack_credential in issued.stack_credentials:
        outbox.post(
            session,
            STACK_EARNED,
            f"{STACK_EARNED}:{stack_credential.id}",
            {
                "user_id": stack_credential.user_id,
                "stack_id": stack_credential.stack_id,
                "credential_id": stack_credential.id,
            },
        )


def _existing(
    session: Session, user_id: int, micro_credential_id: int, attempt_id: int | None
) -> IssuedCredential | None:
    if attempt_id is not None:
        found = session.scalars(
            select(IssuedCredential).where(IssuedCredential.attempt_id == attempt_id)
        ).first()
        if found is not None:
            return found
    return session.scalars(
        select(IssuedCredential).where(
            IssuedCredential.user_id == user_id,
            IssuedCredential.micro_credential_id == micro_credential_id,
        )
    ).first()


def issue_completed_stacks(
    session: Session,
    settings: Settings,
    user: LmsUser,
    micro_credential_id: int,
    *,
    course_id: int | None = None,
) -> list[IssuedCredential]:
    """Issue the credential of each stack holding `micro_credential_id` whose completion rule
    (all, or N of M) the learner's unrevoked micro-credential badges now meet, once per stack."""
    stacks = session.scalars(
        select(Stack)
        .join(StackMember, StackMember.stack_id == Stack.id)
        .where(StackMember.micro_credential_id == micro_credential_id)
        .order_by(Stack.id)
    ).all()
    issued = []
    for stack in stacks:
        if session.scalar(
            select(
                exists().where(
                    IssuedCredential.user_id == user.id, IssuedCredential.stack_id == stack.id
                )
            )
        ):
            continue
        members = [m.micro_credential_id for m in stack.members]
        held = session.execute(
            select(IssuedCredential.id, IssuedCredential.micro_credential_id).where(
                IssuedCredential.user_id == user.id,
                IssuedCredential.kind == MICRO_CREDENTIAL,
                IssuedCredential.micro_credential_id.in_(members),
                IssuedCredential.revoked_at.is_(None),
            )
        ).all()
        if not StackProgress(len(held), stack.needed, len(members)).complete:
            continue
        achievement = achievement_of_stack(session, settings, stack)
        issued.append(
            _new_credential(
                session,
                settings,
                kind=STACK,
                user=user,
                issuer=stack.issuer,
                achievement=achievement,
                evidence=_stack_evidence(settings, stack, [cid for cid, _ in held]),
                valid_from=utcnow(),
                course_id=course_id,
                credits_earned=stack.credential_estimated_hours,
                stack_id=stack.id,
            )
        )
    return issued


def _stack_evidence(settings: Settings, stack: Stack, member_ids: list[str]) -> str:
    links = ", ".join(documents.credential_page_url(settings, cid) for cid in sorted(member_ids))
    return (
        f"Holds the micro-credentials of the {stack.title} stack that complete it, each "
        f"verifiable at: {links}."
    )


# -- revocation and status ---------------------------------------------------------------------
def revoke(
    session: Session, settings: Settings, credential_id: str, reason: str, by: str
) -> IssuedCredential:
    """Revoke a credential: its bit in the status list is set (and the list re-signed) in the
    same transaction that records who revoked it and why. Raises LookupError for an unknown
    id and BadgeError without a reason or for a credential already revoked."""
    reason = " ".join(reason.split())
    if not reason:
        raise BadgeError("a revocation needs a reason (it is shown on the badge's page)")
    credential = session.scalars(
        select(IssuedCredential)
        .where(IssuedCredential.id == credential_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if credential is None:
        raise LookupError(f"no badge {credential_id!r}")
    if credential.revoked_at is not None:
        raise BadgeError(
            f"badge {credential_id} was already revoked on {credential.revoked_at:%Y-%m-%d}"
        )
    status_list = session.scalars(
        select(StatusList)
        .where(StatusList.id == credential.status_list_id)
        .with_for_update()
        .execution_options(populate_existing=True)  # the bits as committed, not as read before
    ).one()
    status_list.bits = status.set_bit(status_list.bits, credential.status_index)
    status_list.updated_at = utcnow()
    _sign_status_list(session, settings, status_list)
    credential.revoked_at = utcnow()
    credential.revocation_reason = reason[:2000]
    credential.revoked_by = by[:300]
    session.flush()
    log.info("revoked credential %s: %s", credential_id, reason)
    return credential


def status_of(session: Session, credential: IssuedCredential, now: datetime | None = None) -> str:
    """Valid, expired or revoked, read now: the bit in the published status list, then the
    expiry date."""
    # One read per list and session (a page of many badges shares its few lists).
    status_list = session.get(StatusList, credential.status_list_id)
    if status_list is not None and status.is_set(status_list.bits, credential.status_index):
        return REVOKED
    now = now or utcnow()
    if credential.valid_until is not None and now >= credential.valid_until:
        return EXPIRED
    return VALID


# -- reading -----------------------------------------------------------------------------------
def get_credential(session: Session, credential_id: str) -> IssuedCredential:
    if not (len(credential_id) == 32 and all(c in "0123456789abcdef" for c in credential_id)):
        raise LookupError(f"no badge {credential_id!r}")
    credential = session.get(IssuedCredential, credential_id)
    if credential is None:
        raise LookupError(f"no badge {credential_id!r}")
    return credential


def public_url_for_attempt(session: Session, attempt_id: int, base_url: str) -> str | None:
    """The public page of the badge issued for an attempt, or None while there is none (the
    gradebook puts it in the score's comment)."""
    credential_id = session.scalar(
        select(IssuedCredential.id).where(IssuedCredential.attempt_id == attempt_id)
    )
    if credential_id is None:
        return None
    return base_url.rstrip("/") + documents.badge_path(credential_id)


def show_name(session: Session, user_id: int) -> bool:
    row = session.get(LearnerBadgeSettings, user_id)
    return bool(row and row.show_name)


def set_show_name(session: Session, user_id: int, show: bool) -> None:
    """The learner's choice: show their name on the public pages of their badges, or not."""
    row = session.get(LearnerBadgeSettings, user_id)
    if row is None:
        session.add(LearnerBadgeSettings(user_id=user_id, show_name=show, updated_at=utcnow()))
    else:
        row.show_name = show
        row.updated_at = utcnow()
    session.flush()


@dataclass(frozen=True)
class BadgeView:
    """What the public page, the learner's list and the admin's list show of one badge."""

    id: str
    kind: str
    name: str
    description: str
    criteria: str
    image_url: str
    issuer_name: str
    issuer_url: str
    issuer_profile_url: str
    recipient_name: str | None  # only when the learner chose to show it
    issued_at: datetime
    valid_until: datetime | None
    status: str
    revoked_at: datetime | None
    revocation_reason: str | None
    course_title: str
    page_url: str
    json_url: str
    png_url: str
    assertion_url: str
    linkedin_url: str
    credits: float | None

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


def linkedin_add_url(
    name: str,
    organization: str,
    issued: datetime,
    expires: datetime | None,
    cert_url: str,
    cert_id: str,
) -> str:
    """LinkedIn's "Add licence or certification" link with the fields filled in."""
    fields: dict[str, object] = {
        "startTask": "CERTIFICATION_NAME",
        "name": name,
        "organizationName": organization,
        "issueYear": issued.year,
        "issueMonth": issued.month,
    }
    if expires is not None:
        fields["expirationYear"] = expires.year
        fields["expirationMonth"] = expires.month
    fields["certUrl"] = cert_url
    fields["certId"] = cert_id
    return "https://www.linkedin.com/profile/add?" + urlencode(fields)


def view(
    session: Session, settings: Settings, credential: IssuedCredential, *, for_owner: bool = False
) -> BadgeView:
    """A badge as a page shows it; the recipient's name only if they chose to show it (or
    to the owner themself)."""
    document = credential.document
    achievement = document["credentialSubject"]["achievement"]
    issuer = session.get(Issuer, credential.issuer_id)
    assert issuer is not None
    user = session.get(LmsUser, credential.user_id)
    recipient_name = None
    if user is not None and (for_owner or show_name(session, user.id)):
        recipient_name = user.display_name
    course = session.get(Course, credential.course_id) if credential.course_id else None
    page_url = documents.credential_page_url(settings, credential.id)
    return BadgeView(
        id=credential.id,
        kind=credential.kind,
        name=credential.name,
        description=achievement.get("description", ""),
        criteria=achievement.get("criteria", {}).get("narrative", ""),
        image_url=achievement.get("image", {}).get("id", ""),
        issuer_name=issuer.name,
        issuer_url=issuer.url,
        issuer_profile_url=documents.issuer_profile_url(settings, issuer.key),
        recipient_name=recipient_name,
        issued_at=credential.valid_from,
        valid_until=credential.valid_until,
        status=status_of(session, credential),
        revoked_at=credential.revoked_at,
        revocation_reason=credential.revocation_reason,
        course_title=(course.title or course.label) if course else "",
        page_url=page_url,
        json_url=documents.credential_json_url(settings, credential.id),
        png_url=documents.credential_png_url(settings, credential.id),
        assertion_url=documents.assertion_url(settings, credential.id),
        linkedin_url=linkedin_add_url(
            credential.name,
            issuer.name,
            credential.valid_from,
            credential.valid_until,
            page_url,
            credential.id,
        ),
        credits=achievement.get("creditsAvailable"),
    )


def credentials_of_learner(session: Session, user_id: int) -> list[IssuedCredential]:
    """Every badge issued to a learner (of one platform), across courses, newest first."""
    return list(
        session.scalars(
            select(IssuedCredential)
            .where(IssuedCredential.user_id == user_id)
            .order_by(IssuedCredential.issued_at.desc(), IssuedCredential.id)
        )
    )


def credentials_of_platform(
    session: Session, platform_id: int | None, limit: int = 200
) -> list[IssuedCredential]:
    """The newest badges issued to learners of one platform (what its administrators see), or
    of every platform (None: the tool's own administrators)."""
    statement = select(IssuedCredential).join(LmsUser, LmsUser.id == IssuedCredential.user_id)
    if platform_id is not None:
        statement = statement.where(LmsUser.platform_id == platform_id)
    return list(
        session.scalars(
            statement.order_by(IssuedCredential.issued_at.desc(), IssuedCredential.id).limit(limit)
        )
    )


def belongs_to_platform(session: Session, credential: IssuedCredential, platform_id: int) -> bool:
    """Whether the badge's learner is a user of that platform."""
    return session.scalar(select(LmsUser.platform_id).where(LmsUser.id == credential.user_id)) == (
        platform_id
    )


# -- Open Badges 2.0 and baked images ----------------------------------------------------------
def _ref_of(session: Session, credential: IssuedCredential) -> AchievementRef:
    if credential.kind == STACK:
        stack = session.get(Stack, credential.stack_id)
        assert stack is not None
        return AchievementRef.of_stack(stack)
    version = session.get(MicroCredentialVersion, credential.version_id)
    assert version is not None
    return AchievementRef.of_version(version)


def ob2_assertion(session: Session, settings: Settings, credential: IssuedCredential) -> dict:
    """The Open Badges 2.0 hosted Assertion of a credential (revoked ones say so)."""
    recipient = Recipient(
        credential.recipient_type, credential.recipient_salt, credential.recipient_hash
    )
    evidence = credential.document.get("evidence", [{}])[0].get("narrative", "")
    return documents.ob2_assertion(
        settings,
        credential.id,
        recipient,
        _ref_of(session, credential).badge_class_url(settings),
        credential.valid_from,
        credential.valid_until,
        evidence,
        revoked=status_of(session, credential) == REVOKED,
        revocation_reason=credential.revocation_reason,
    )


def baked_ob3(credential: IssuedCredential) -> bytes:
    """The badge image with the signed Open Badges 3.0 credential baked in."""
    return images.bake(
        achievement_image(credential.name, credential.kind),
        images.OB3_KEYWORD,
        credential.document,
    )


def baked_ob2(session: Session, settings: Settings, credential: IssuedCredential) -> bytes:
    """The badge image with the Open Badges 2.0 assertion baked in."""
    return images.bake(
        achievement_image(credential.name, credential.kind),
        images.OB2_KEYWORD,
        ob2_assertion(session, settings, credential),
    )
