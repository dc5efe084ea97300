"""Accounts of assessors and administrators: creation, local passwords, single sign-on links,
and the API tokens of assessment organisations.

Passwords are hashed with argon2id (argon2-cffi, its recommended parameters); hashes made with
older parameters are upgraded at the next successful sign-in. API tokens are `lta_<id>_<secret>`:
the id finds the row, the secret is compared in constant time with the stored SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lti_tool.accounts.models import Account, ApiToken, Organisation
from lti_tool.db import utcnow

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
TOKEN_PREFIX = "lta"  # noqa: S105 - the visible prefix of API tokens, not a secret
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TOKEN = re.compile(rf"^{TOKEN_PREFIX}_(\d{{1,18}})_([A-Za-z0-9_-]{{20,200}})$")

hasher = PasswordHasher()
# Verified when the e-mail is unknown, so a wrong e-mail takes as long as a wrong password.
_DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A request about accounts that cannot be carried out; the message says why."""


def normalise_email(email: str) -> str:
    """E-mails are compared case-insensitively: stored lower-case and stripped."""
    return (email or "").strip().lower()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")


def find_account(session: Session, email: str) -> Account | None:
    return session.scalar(select(Account).where(Account.email == normalise_email(email)))


def organisation_named(session: Session, name: str, create: bool = True) -> Organisation:
    """The organisation of that name (case-insensitive), created when `create` is set."""
    name = (name or "").strip()
    if not name:
        raise AccountError("an organisation needs a name")
    found = session.scalar(
        select(Organisation).where(func.lower(Organisation.name) == name.lower())
    )
    if found is None:
        if not create:
            raise AccountError(f"no organisation named {name!r}")
        found = Organisation(name=name)
        session.add(found)
        session.flush()
    return found


def add_account(
    session: Session,
    email: str,
    name: str,
    *,
    is_admin: bool = False,
    password: str | None = None,
    organisation: Organisation | None = None,
) -> Account:
    """A new account; refused when the e-mail is malformed or already taken."""
    email = normalise_email(email)
    if not _EMAIL.match(email):
        raise AccountError(f"{email!r} is not an e-mail address")
    if not (name or "").strip():
        raise AccountError("the account needs a name")
    if find_account(session, email) is not None:
        raise AccountError(f"an account with the e-mail {email} already exists")
    account = Account(
        email=email,
        name=name.strip(),
        is_admin=is_admin,
        active=True,
        organisation_id=organisation.id if organisation else None,
    )
    if password is not None:
        check_password_strength(password)
        account.password_hash = hasher.hash(password)
    session.add(account)
    session.flush()
    return account


def set_password(session: Session, email: str, password: str) -> Account:
    account = find_account(session, email)
    if account is None:
        raise AccountError(f"no account with the e-mail {normalise_email(email)}")
    check_password_strength(password)
    account.password_hash = hasher.hash(password)
    end_sessions(account)
    return account


def end_sessions(account: Account) -> None:
    """Sign the account out of every browser (sign-out, a new password)."""
    account.session_epoch = (account.session_epoch or 0) + 1


def set_active(session: Session, email: str, active: bool) -> Account:
    """Disable (no sign-in, running sessions no longer recognised) or enable an account."""
    account = find_account(session, email)
    if account is None:
        raise AccountError(f"no account with the e-mail {normalise_email(email)}")
    account.active = active
    return account


def password_matches(account: Account | None, password: str) -> bool:
    """Verify in (nearly) constant time whether or not the account exists; upgrade old hashes."""
    stored = account.password_hash if account is not None else None
    try:
        hasher.verify(stored or _DUMMY_HASH, password[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        return False
    if stored is None or account is None:
        return False
    if hasher.check_needs_rehash(stored):
        account.password_hash = hasher.hash(password)
    return True


# -- single sign-on ------------------------------------------------------------------------
class UnknownPerson(AccountError):
    """The identity provider vouched for someone who has no account here."""


def account_for_oidc(session: Session, issuer: str, claims: dict) -> Account:
    """The account of a person the OpenID Connect provider signed in.

    Found by the stored issuer and subject; else, the first time, by the e-mail when the
    provider says it is verified, and then linked to that subject. Anyone else is refused.
    """
    subject = str(claims.get("sub") or "")
    if not subject:
        raise AccountError("the identity provider did not say who signed in (no 'sub' claim)")
    account = session.scalar(
        select(Account).where(Account.oidc_issuer == issuer, Account.oidc_subject == subject)
    )
    if account is not None:
        return account
    email = normalise_email(str(claims.get("email") or ""))
    if not email:
        raise UnknownPerson(
            "the identity provider did not share your e-mail address, so no account could be "
            "found for you; ask the administrator to check the single sign-on settings"
        )
    if claims.get("email_verified") is not True:
        raise UnknownPerson(
            f"the identity provider has not verified the e-mail {email}, so it cannot be used "
            "to find your account"
        )
    account = find_account(session, email)
    if account is None:
        raise UnknownPerson(
            f"there is no assessor or administrator account for {email}; ask the "
            "administrator of the tool to create one"
        )
    if account.oidc_subject is not None:
        raise UnknownPerson(
            f"the account of {email} is already linked to another single sign-on identity"
        )
    account.oidc_issuer, account.oidc_subject = issuer, subject
    return account


def record_sign_in(account: Account) -> None:
    account.last_signed_in_at = utcnow()


# -- API tokens ----------------------------------------------------------------------------
def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    plaintext: str  # shown once, never stored


def create_api_token(session: Session, organisation_name: str, label: str = "") -> IssuedToken:
    """A new token for the organisation (created when it does not exist yet)."""
    organisation = organisation_named(session, organisation_name)
    secret = secrets.token_urlsafe(32)
    token = ApiToken(organisation_id=organisation.id, label=label, secret_sha256=_sha256(secret))
    session.add(token)
    session.flush()
    return IssuedToken(token, f"{TOKEN_PREFIX}_{token.id}_{secret}")


def list_api_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_api_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise AccountError(f"no API token with id {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def organisation_of_token(session: Session, presented: str) -> Organisation | None:
    """The organisation holding this token, or None when it is malformed, unknown or revoked."""
    match = _TOKEN.match(presented or "")
    if match is None:
        return None
    token = session.get(ApiToken, int(match.group(1)))
    # Compare even when the row is missing, so the answer takes the same time.
    stored = token.secret_sha256 if token is not None else "0" * 64
    if not hmac.compare_digest(stored, _sha256(match.group(2))):
        return None
    if token is None or token.revoked_at is not None:
        return None
    token.last_used_at = utcnow()
    return token.organisation
