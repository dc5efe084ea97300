"""The tool's RSA signing keys: made on first use, rotated without breaking verifiers.

Rotation adds a new active key and keeps the previous one published (but no longer used to
sign) until it is retired, so a platform holding a cached copy of our JWKS never meets a
signature it cannot verify.
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto.jwk import JWK
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lti_tool.db import utcnow
from lti_tool.lti.models import ToolKey

KEY_SIZE = 2048
ALG = "RS256"


def _new_key() -> ToolKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    jwk = JWK.from_pem(pem.encode())
    kid = jwk.thumbprint()
    public = json.loads(jwk.export_public())
    public.update({"kid": kid, "alg": ALG, "use": "sig"})
    return ToolKey(kid=kid, alg=ALG, private_pem=pem, public_jwk=public, active=True)


def active_key(session: Session) -> ToolKey:
    """The key that signs now; created on first use."""
    query = select(ToolKey).where(ToolKey.active.is_(True))
    key = session.scalars(query).first()
    if key is not None:
        return key
    try:
        with session.begin_nested():
            key = _new_key()
            session.add(key)
    except IntegrityError:
        # Another process made the first key at the same moment: use theirs.
        key = session.scalars(query).one()
    return key


def rotate(session: Session) -> ToolKey:
    """Make a new active key; the old one stays published until retired."""
    session.execute(update(ToolKey).where(ToolKey.active.is_(True)).values(active=False))
    key = _new_key()
    session.add(key)
    session.flush()
    return key


def retire(session: Session, kid: str) -> ToolKey:
    """Stop publishing a key. The active key cannot be retired: rotate first."""
    key = session.scalars(select(ToolKey).where(ToolKey.kid == kid)).first()
    if key is None:
        raise LookupError(f"no key with kid {kid!r}")
    if key.active:
        raise ValueError(f"key {kid} is the active key: run 'lti-tool keys rotate' first")
    key.retired_at = utcnow()
    return key


def published_keys(session: Session) -> list[ToolKey]:
    """Every key a verifier may still meet: the active one and those not yet retired."""
    active_key(session)
    return list(
        session.scalars(
            select(ToolKey).where(ToolKey.retired_at.is_(None)).order_by(ToolKey.id.desc())
        )
    )


def jwks(session: Session) -> dict:
    return {"keys": [key.public_jwk for key in published_keys(session)]}
