"""pylti1p3 adapters: the platform registry in the database and launch data in the shared cache."""

from __future__ import annotations

import typing as t

from cryptography.hazmat.primitives import serialization
from pylti1p3.deployment import Deployment as PyltiDeployment
from pylti1p3.launch_data_storage.base import LaunchDataStorage
from pylti1p3.registration import Registration
from pylti1p3.tool_config.abstract import ToolConfAbstract
from sqlalchemy.orm import Session, sessionmaker

from lti_tool.cache import Cache
from lti_tool.lti import keys
from lti_tool.lti.models import Platform
from lti_tool.lti.platforms import find_platform


def public_pem(private_pem: str) -> str:
    private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def registration_for(session: Session, platform: Platform) -> Registration:
    """A pylti1p3 Registration for a stored platform, signing with the tool's active key."""
    key = keys.active_key(session)
    registration = Registration()
    registration.set_issuer(platform.issuer)
    registration.set_client_id(platform.client_id)
    registration.set_auth_login_url(platform.auth_login_url)
    registration.set_auth_token_url(platform.auth_token_url)
    registration.set_key_set_url(platform.key_set_url)
    if platform.audience:
        registration.set_auth_audience(platform.audience)
    registration.set_tool_private_key(key.private_pem)
    registration.set_tool_public_key(public_pem(key.private_pem))
    return registration


class DatabaseToolConf(ToolConfAbstract):
    """Looks registrations up by issuer and client id (Canvas cloud shares one issuer)."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory
        self.issuers_relation_types = {}
        self.platform: Platform | None = None

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_registration_by_issuer(self, iss: str, *args, **kwargs) -> Registration | None:
        return self.find_registration_by_params(iss, None)

    def find_registration_by_params(
        self, iss: str, client_id: str | None, *args, **kwargs
    ) -> Registration | None:
        with self.session_factory() as session:
            platform = find_platform(session, iss, client_id)
            if platform is None:
                return None
            self.platform = platform
            registration = registration_for(session, platform)
            session.commit()  # the active key may just have been made
            return registration

    def find_deployment(self, iss: str, deployment_id: str) -> PyltiDeployment | None:
        return self.find_deployment_by_params(iss, deployment_id, None)

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str | None, *args, **kwargs
    ) -> PyltiDeployment | None:
        with self.session_factory() as session:
            platform = find_platform(session, iss, client_id)
            if platform is None or deployment_id not in platform.deployment_ids:
                return None
            return PyltiDeployment().set_deployment_id(deployment_id)


class CacheLaunchDataStorage(LaunchDataStorage[t.Any]):
    """pylti1p3 launch data (nonces, launch bodies, platform keys) kept in the shared cache.

    Keys are random, so no session-id prefix is needed: that keeps a launch working where the
    browser refuses the tool's cookies (the state is then checked through platform storage).
    """

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def get_session_cookie_name(self) -> str | None:
        return None

    def can_set_keys_expiration(self) -> bool:
        return True

    def get_value(self, key: str) -> t.Any:
        return self.cache.get(self._prepare_key(key))

    def set_value(self, key: str, value: t.Any, exp: int | None = None) -> None:
        self.cache.set(self._prepare_key(key), value, exp)

    def check_value(self, key: str) -> bool:
        return self.cache.get(self._prepare_key(key)) is not None

    def pop_value(self, key: str) -> t.Any:
        return self.cache.pop(self._prepare_key(key))
