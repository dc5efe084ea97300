"""Platform registrations: add, list, remove, and the presets that fill known endpoints."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from lti_tool.lti.models import Deployment, Platform
from lti_tool.settings import CONFIG_DIR

PRESETS_FILE = CONFIG_DIR / "lms_presets.toml"


class RegistrationError(ValueError):
    """A registration cannot be stored; the message says why, in one line."""


@dataclass
class PlatformSpec:
    issuer: str
    client_id: str
    auth_login_url: str
    auth_token_url: str
    key_set_url: str
    deployment_ids: list[str] = field(default_factory=list)
    audience: str | None = None
    name: str | None = None
    product: str = "other"


def check_url(value: str, what: str, *, allow_http: bool = True) -> str:
    parts = urlsplit(value or "")
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.netloc or " " in value:
        raise RegistrationError(f"{what} is not a valid URL: {value!r}")
    return value


def apply_preset(
    preset: str, site: str | None, given: dict[str, str | None]
) -> dict[str, str | None]:
    """Fill the endpoints a preset knows; values given explicitly win."""
    with PRESETS_FILE.open("rb") as handle:
        presets = tomllib.load(handle)
    if preset not in presets:
        raise RegistrationError(f"unknown preset {preset!r}; known: {', '.join(sorted(presets))}")
    table = presets[preset]
    if table.get("requires_site") and not site:
        raise RegistrationError(f"--preset {preset} needs --site URL (the LMS's address)")
    filled = dict(given)
    names = ("issuer", "auth_login_url", "auth_token_url", "key_set_url")
    if site:
        site = check_url(site, "--site").rstrip("/")
        for name in names:
            filled[name] = filled.get(name) or table[f"site_{name}"].replace("{site}", site)
    else:
        for name in names:
            filled[name] = filled.get(name) or table[name]
    filled["product"] = preset
    return filled


def add_platform(
    session: Session, spec: PlatformSpec, *, awaiting_deployment: bool = False
) -> Platform:
    """Register a platform with its deployments; refuse bad URLs and duplicates.

    `awaiting_deployment`: the platform gives its deployment ids later (Canvas creates one when
    the tool is installed); launches are refused as from an unknown deployment until then.
    """
    if not spec.client_id or not spec.client_id.strip():
        raise RegistrationError("a client id is required")
    check_url(spec.issuer, "issuer")
    check_url(spec.auth_login_url, "auth login URL")
    check_url(spec.auth_token_url, "auth token URL")
    check_url(spec.key_set_url, "key set URL")
    deployment_ids = [d.strip() for d in spec.deployment_ids if d and d.strip()]
    if not deployment_ids and not awaiting_deployment:
        raise RegistrationError("at least one deployment id is required")
    if len(set(deployment_ids)) != len(deployment_ids):
        raise RegistrationError("the same deployment id is given twice")
    if find_platform(session, spec.issuer, spec.client_id) is not None:
        raise RegistrationError(
            f"a platform with issuer {spec.issuer} and client id {spec.client_id} is "
            "already registered"
        )
    platform = Platform(
        name=spec.name or urlsplit(spec.issuer).netloc,
        issuer=spec.issuer,
        client_id=spec.client_id,
        auth_login_url=spec.auth_login_url,
        auth_token_url=spec.auth_token_url,
        key_set_url=spec.key_set_url,
        audience=spec.audience,
        product=spec.product,
        deployments=[Deployment(deployment_id=d) for d in deployment_ids],
    )
    session.add(platform)
    session.flush()
    return platform


def add_deployment(session: Session, platform: Platform, deployment_id: str) -> Deployment:
    if deployment_id in platform.deployment_ids:
        raise RegistrationError(f"deployment {deployment_id} is already registered")
    deployment = Deployment(platform=platform, deployment_id=deployment_id)
    session.add(deployment)
    session.flush()
    return deployment


def find_platform(session: Session, issuer: str, client_id: str | None) -> Platform | None:
    """The platform for an issuer and client id (or the only one of that issuer)."""
    query = (
        select(Platform)
        .where(Platform.issuer == issuer)
        .options(selectinload(Platform.deployments))
    )
    if client_id:
        return session.scalars(query.where(Platform.client_id == client_id)).first()
    candidates = list(session.scalars(query.limit(2)))
    return candidates[0] if len(candidates) == 1 else None


def list_platforms(session: Session) -> list[Platform]:
    return list(
        session.scalars(
            select(Platform).options(selectinload(Platform.deployments)).order_by(Platform.id)
        )
    )


def remove_platform(session: Session, platform_id: int) -> Platform:
    platform = session.get(Platform, platform_id)
    if platform is None:
        raise RegistrationError(f"no platform with id {platform_id}")
    session.delete(platform)
    session.flush()
    return platform
