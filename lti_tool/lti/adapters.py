"""pylti1p3 adapters: the platform registry in the database and launch data in the shared cache."""

from __future__ import annotations

import functools
import threading
import time
import typing as t
import weakref
from dataclasses import dataclass

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


@functools.lru_cache(maxsize=16)
def public_pem(private_pem: str) -> str:
    """The public half of a private key, in PEM. Memoised: loading an RSA private key checks it
    (about 50 ms of CPU), and every login and launch builds a Registration with it."""
    private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def registration_for(session: Session, platform: Platform) -> Registration:
    """A pylti1p3 Registration for a stored platform, signing with the tool's active key."""
    return _registration(platform, keys.active_key(session).private_pem)


def _registration(platform: Platform, private_pem: str) -> Registration:
    registration = Registration()
    registration.set_issuer(platform.issuer)
    registration.set_client_id(platform.client_id)
    registration.set_auth_login_url(platform.auth_login_url)
    registration.set_auth_token_url(platform.auth_token_url)
    registration.set_key_set_url(platform.key_set_url)
    if platform.audience:
        registration.set_auth_audience(platform.audience)
    registration.set_tool_private_key(private_pem)
    registration.set_tool_public_key(public_pem(private_pem))
    return registration


# How long a process reuses a platform registration it looked up (see RegistryCache).
REGISTRY_TTL = 5.0


@dataclass(frozen=True)
class _Found:
    platform: Platform  # detached, with its deployments loaded; read only
    private_pem: str  # the tool's active signing key when it was looked up
    expires: float


class RegistryCache:
    """Platforms this process found recently, kept for REGISTRY_TTL seconds.

    Every login and every launch needs the platform's registration, its deployments and the
    tool's active key: without this, a worker runs the same queries (and a transaction) two or
    three times per launch. Only platforms that were found are kept, so a platform registered a
    moment ago launches at once, and a deployment missing from a kept platform is looked up
    again before a launch is refused. A removed platform or deployment, a changed endpoint or a
    rotated key reaches every worker within REGISTRY_TTL seconds.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str | None], _Found] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str | None]) -> _Found | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found.expires <= time.monotonic():
                del self._entries[key]
                return None
            return found

    def put(self, key: tuple[str, str | None], platform: Platform, private_pem: str) -> _Found:
        found = _Found(platform, private_pem, time.monotonic() + REGISTRY_TTL)
        with self._lock:
            self._entries[key] = found
        return found

    def forget(self, key: tuple[str, str | None]) -> None:
        with self._lock:
            self._entries.pop(key, None)


# One cache per database (session factory), so that apps on different databases never mix.
_registry_caches: weakref.WeakKeyDictionary[sessionmaker, RegistryCache] = (
    weakref.WeakKeyDictionary()
)
_registry_caches_lock = threading.Lock()


def registry_cache(session_factory: sessionmaker[Session]) -> RegistryCache:
    with _registry_caches_lock:
        cache = _registry_caches.get(session_factory)
        if cache is None:
            cache = _registry_caches[session_factory] = RegistryCache()
        return cache


class DatabaseToolConf(ToolConfAbstract):
    """Looks registrations up by issuer and client id (Canvas cloud shares one issuer)."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory
        self.issuers_relation_types = {}
        self.platform: Platform | None = None
        self.registry = registry_cache(session_factory)

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_registration_by_issuer(self, iss: str, *args, **kwargs) -> Registration | None:
        return self.find_registration_by_params(iss, None)

    def find_registration_by_params(
        self, iss: str, client_id: str | None, *args, **kwargs
    ) -> Registration | None:
        found = self._lookup(iss, client_id)
        if found is None:
            return None
        self.platform = found.platform
        return _registration(found.platform, found.private_pem)

    def _lookup(self, iss: str, client_id: str | None, fresh: bool = False) -> _Found | None:
        key = (iss, client_id)
        if not fresh:
            found = self.registry.get(key)
            if found is not None:
                return found
        with self.session_factory() as session:
            platform = find_platform(session, iss, client_id)
            if platform is None:
                self.registry.forget(key)
                return None
            private_pem = keys.active_key(session).private_pem
            session.commit()  # the active key may just have been made
        return self.registry.put(key, platform, private_pem)

    def recently_found(self, iss: str, client_id: str) -> Platform | None:
        """The platform this process found lately for the issuer and client id, if any: no
        database query (for work that may start before a launch is verified)."""
        found = self.registry.get((iss, client_id))
        return found.platform if found is not None else None

    def find_deployment(self, iss: str, deployment_id: str) -> PyltiDeployment | None:
        return self.find_deployment_by_params(iss, deployment_id, None)

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str | None, *args, **kwargs
    ) -> PyltiDeployment | None:
        found = self._lookup(iss, client_id)
        if found is not None and deployment_id not in found.platform.deployment_ids:
            found = self._lookup(iss, client_id, fresh=True)  # added since it was kept?
        if found is None or deployment_id not in found.platform.deployment_ids:
            return None
        return PyltiDeployment().set_deployment_id(deployment_id)


class CacheLaunchDataStorage(LaunchDataStorage[t.Any]):
    """pylti1p3 launch data (nonces, launch bodies, platform keys) kept in the shared cache.

    Keys are random, so no session-id prefix is needed: that keeps a launch working where the
    browser refuses the tool's cookies (the state is then checked through platform storage).

    With `defer_writes`, values set are kept in `deferred` (key, value, ttl) for the caller to
    write with its own, in one round trip (`Cache.set_many`).
    """

    def __init__(self, cache: Cache, defer_writes: bool = False) -> None:
        self.cache = cache
        self.deferred: list[tuple[str, t.Any, int | None]] | None = [] if defer_writes else None

    def get_session_cookie_name(self) -> str | None:
        return None

    def can_set_keys_expiration(self) -> bool:
        return True

    def get_value(self, key: str) -> t.Any:
        return self.cache.get(self._prepare_key(key))

    def set_value(self, key: str, value: t.Any, exp: int | None = None) -> None:
        if self.deferred is not None:
            self.deferred.append((self._prepare_key(key), value, exp))
            return
        self.cache.set(self._prepare_key(key), value, exp)

    def check_value(self, key: str) -> bool:
        return self.cache.get(self._prepare_key(key)) is not None

    def pop_value(self, key: str) -> t.Any:
        return self.cache.pop(self._prepare_key(key))
