"""Tables of the credentials package: issuer keys, status lists, issued credentials, and each
learner's choice to show their name on public badge pages.

An issued credential keeps the signed Open Badges 3.0 document exactly as issued (the public
`.json`); its revocation is a bit in its issuer's status list, flipped in the same transaction
that records who revoked it and why.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.db import Base, UTCDateTime, utcnow

MICRO_CREDENTIAL = "micro_credential"
STACK = "stack"
KINDS = (MICRO_CREDENTIAL, STACK)
REVOCATION = "revocation"


class IssuerKey(Base):
    """An issuing organisation's Ed25519 key pair: its did:key signs its credentials.

    Kept like the tool's RSA keys (lti/keys.py): made on first use, the private half as PKCS#8
    PEM in the database only, never published or logged; the public half is the did:key.
    """

    __tablename__ = "credential_issuer_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer_id: Mapped[int] = mapped_column(
        ForeignKey("issuers.id", ondelete="CASCADE"), unique=True
    )
    private_pem: Mapped[str] = mapped_column(Text)
    # Multikey publicKeyMultibase (z6Mk...): the DID is did:key:<this>.
    public_multibase: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def did(self) -> str:
        return f"did:key:{self.public_multibase}"


class StatusList(Base):
    """A Bitstring Status List of one issuer: one bit per credential, set when revoked."""

    __tablename__ = "credential_status_lists"
    __table_args__ = (CheckConstraint("purpose IN ('revocation')", name="purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("issuers.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(20), default=REVOCATION)
    size: Mapped[int] = mapped_column(Integer)
    bits: Mapped[bytes] = mapped_column(LargeBinary)
    # How many indexes are handed out; a new list is opened when this one is half full.
    assigned: Mapped[int] = mapped_column(Integer, default=0)
    # The signed BitstringStatusListCredential of the current bits (re-signed when they change).
    credential: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IssuedCredential(Base):
    """An Open Badges 3.0 credential issued to a learner, for a micro-credential or a stack.

    At most one per attempt, one per learner and micro-credential, one per learner and stack.
    The id is random (the public page is /badges/<id>), so ids reveal nothing and cannot be
    guessed.
    """

    __tablename__ = "issued_credentials"
    __table_args__ = (
        UniqueConstraint("user_id", "micro_credential_id"),
        UniqueConstraint("user_id", "stack_id"),
        UniqueConstraint("status_list_id", "status_index"),
        CheckConstraint(
            "(kind = 'micro_credential' AND micro_credential_id IS NOT NULL "
            "AND version_id IS NOT NULL AND stack_id IS NULL) OR "
            "(kind = 'stack' AND stack_id IS NOT NULL AND micro_credential_id IS NULL "
            "AND version_id IS NULL AND attempt_id IS NULL)",
            name="kind",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int] = mapped_column(ForeignKey("lms_users.id", ondelete="CASCADE"), index=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("issuers.id"), index=True)
    # The attempt whose earned decision this credential records (micro-credentials only).
    attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("evidence_attempts.id", ondelete="SET NULL"), nullable=True, unique=True
    )
    micro_credential_id: Mapped[int | None] = mapped_column(
        ForeignKey("micro_credentials.id"), nullable=True, index=True
    )
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("micro_credential_versions.id"), nullable=True
    )
    stack_id: Mapped[int | None] = mapped_column(ForeignKey("stacks.id"), nullable=True, index=True)
    # The course the learner earned it from (for the "My badges" page), when known.
    course_id: Mapped[int | None] = mapped_column(
        ForeignKey("courses.id", ondelete="SET NULL"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(300))  # the achievement's name at issue
    document: Mapped[dict] = mapped_column(JSON)  # the signed OpenBadgeCredential
    # The recipient as the credential identifies them (IdentityObject): type, salt and hash.
    recipient_type: Mapped[str] = mapped_column(String(40))
    recipient_salt: Mapped[str] = mapped_column(String(64))
    recipient_hash: Mapped[str] = mapped_column(String(100))
    status_list_id: Mapped[int] = mapped_column(ForeignKey("credential_status_lists.id"))
    status_index: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(300), nullable=True)

    status_list: Mapped[StatusList] = relationship()


class LearnerBadgeSettings(Base):
    """What a learner chose for their public badge pages (no row: the defaults)."""

    __tablename__ = "credential_learner_settings"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("lms_users.id", ondelete="CASCADE"), primary_key=True
    )
    show_name: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
