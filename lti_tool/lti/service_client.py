"""One client for the LTI Advantage services (NRPS, AGS): tokens, retries, errors, transport.

The platform gives access tokens through the OAuth 2 client_credentials grant, the tool proving
who it is with a JWT signed by its active key (LTI Security Framework, RFC 7523). A token lasts
about an hour: it is kept in the shared cache, keyed by issuer + client id + scope set (Canvas
cloud shares one issuer between institutions), until shortly before it expires, so every web
process and worker uses the same one and a platform sees one token request per hour, not one
per call.

Calls are retried with exponential backoff and jitter where retrying can help (connection
errors, timeouts, 5xx, 429 with its Retry-After), within a bounded total wait; never on other
4xx, except 401, where the token is dropped, a new one fetched, and the call made once more.
Everything else becomes a ServiceError carrying the platform's status and message.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import certifi
import urllib3
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import RSAKey
from requests.utils import parse_header_links
from sqlalchemy.orm import Session

from lti_tool.cache import Cache
from lti_tool.lti import keys
from lti_tool.lti.models import Platform
from lti_tool.retry import equal_jitter

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# A client assertion is good for one token request: a short life limits its replay.
ASSERTION_LIFETIME = 300
# A token is dropped from the cache this long before the platform says it expires, so that a
# call never starts with a token that dies on the way.
TOKEN_MARGIN = 60
# Assumed when a platform's token response has no expires_in.
DEFAULT_EXPIRES_IN = 3600
# While one process fetches a token, others wait for it (up to this long) instead of asking too.
TOKEN_FETCH_LOCK_TTL = 30
TOKEN_FETCH_WAIT = 10.0
# A client reuses the token it got for this long before looking in the shared cache again: a
# batch of calls costs one cache read, not one per call (a 401 forgets it at once).
TOKEN_MEMO_SECONDS = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. `attempts` counts every try of one call; the total time spent waiting
    between tries never exceeds `max_total_wait` (a longer Retry-After ends the retries)."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total_wait: float = 60.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    def backoff(self, retry: int) -> float:
        """Exponential backoff with jitter, capped at `max_delay`."""
        return equal_jitter(self.base_delay, retry, self.max_delay)


@dataclass(frozen=True)
class PlatformAccess:
    """What the client needs to know about one registration (issuer + client id)."""

    issuer: str
    client_id: str
    token_url: str
    audience: str | None = None

    @property
    def assertion_audience(self) -> str:
        """The `aud` of the client assertion: the registered audience, else the token URL."""
        return self.audience or self.token_url


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: str
    alg: str = "RS256"


class ServiceError(Exception):
    """A service call (or its token request) that did not succeed, with what the platform said.

    `status` is the HTTP status (None when no response came at all); `platform_message` the
    error the platform gave; `stage` is "token" or "service"; `retry_after` the seconds the
    platform asked to wait (429, 503), for callers that retry later.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str = "",
        platform_message: str = "",
        stage: str = "service",
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.url = url
        self.platform_message = platform_message
        self.stage = stage
        self.attempts = attempts


# Token requests made by this process, per (issuer, client id, scope set): tests and benchmarks
# assert that many calls cost one token request.
TOKEN_REQUESTS: Counter[tuple[str, str, str]] = Counter()
_token_requests_lock = threading.Lock()


def token_requests(issuer: str, client_id: str, scopes: Iterable[str] | None = None) -> int:
    """How many token requests this process made for a registration (and scope set)."""
    with _token_requests_lock:
        if scopes is not None:
            return TOKEN_REQUESTS[(issuer, client_id, scope_string(scopes))]
        return sum(n for (i, c, _), n in TOKEN_REQUESTS.items() if (i, c) == (issuer, client_id))


def scope_string(scopes: Iterable[str]) -> str:
    """The scope set as one canonical string: sorted, no duplicates."""
    return " ".join(sorted(set(scopes)))


def token_cache_key(issuer: str, client_id: str, scopes: Iterable[str]) -> str:
    """Issuer + client id + scope set: never the issuer alone (Canvas cloud shares one)."""
    raw = json.dumps([issuer, client_id, scope_string(scopes)])
    return "lti-access-token:" + hashlib.sha256(raw.encode()).hexdigest()


@functools.lru_cache(maxsize=16)
def _jose_key(private_pem: str) -> RSAKey:
    """The signing key parsed once per process (parsing checks the RSA key: ~50 ms)."""
    return RSAKey.import_key(private_pem)


def client_assertion(access: PlatformAccess, key: SigningKey, now: float | None = None) -> str:
    """The JWT that authenticates the tool at the token endpoint: iss = sub = client id,
    aud = the token URL (or registered audience), iat, exp, a fresh jti, and the key's kid."""
    issued = int(now if now is not None else time.time())
    return private_key_jwt_sign(
        _jose_key(key.private_pem),
        client_id=access.client_id,
        token_endpoint=access.assertion_audience,
        alg=key.alg,
        claims={"jti": uuid.uuid4().hex},
        header={"kid": key.kid, "typ": "JWT"},
        issued_at=issued,
        expires_at=issued + ASSERTION_LIFETIME,
    )


def _retry_after(response: ServiceResponse) -> float | None:
    """Seconds the platform asks us to wait (Retry-After as seconds or an HTTP date)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def platform_message(response: ServiceResponse) -> str:
    """The error a platform gave, from the shapes they use: OAuth (`error`,
    `error_description`), Canvas (`errors: [{message}]`), `message`, or plain text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if body.get("error"):
            parts = [str(body["error"]), str(body.get("error_description") or "")]
            return ": ".join(p for p in parts if p)
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            first = errors[0]
            return str(first.get("message") if isinstance(first, dict) else first)
        if isinstance(errors, dict) and errors.get("message"):
            return str(errors["message"])
        if body.get("message"):
            return str(body["message"])
    text = " ".join(response.text.split())
    return text[:300] or (response.reason or "")


@dataclass(frozen=True)
class ServiceResponse:
    """A platform's answer, as callers read it."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    url: str
    reason: str = ""

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    @property
    def links(self) -> dict[str, dict[str, str]]:
        """The Link header by rel (NRPS pages: `next`)."""
        header = self.headers.get("Link")
        if not header:
            return {}
        return {link.get("rel") or link["url"]: link for link in parse_header_links(header)}


# What a call that got no answer raises (refused, reset, timed out, TLS failed).
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


class Transport:
    """HTTP for service calls: kept-alive connection pools (urllib3, thread-safe; requests
    costs about three times its CPU per call, which thousands of scores feel), TLS checked
    against the CA bundle the environment names (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
    SSL_CERT_FILE; certifi's otherwise), through the proxy it names (HTTPS_PROXY, HTTP_PROXY,
    NO_PROXY), read once. Never follows redirects, never retries: the client decides."""

    def __init__(
        self,
        ca_certs: str | None = None,
        proxies: Mapping[str, str] | None = None,
        connections: int = 10,
    ) -> None:
        ca_certs = ca_certs or _environment_ca_bundle()
        options: dict[str, Any] = {"maxsize": connections, "ca_certs": ca_certs, "retries": False}
        self._direct = urllib3.PoolManager(**options)
        proxies = _environment_proxies() if proxies is None else proxies
        self._proxies = {
            scheme: urllib3.ProxyManager(url, **options) for scheme, url in proxies.items()
        }

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
    ) -> ServiceResponse:
        parts = urlsplit(url)
        manager = self._proxies.get(parts.scheme)
        if manager is None or proxy_bypass(parts.hostname or ""):
            manager = self._direct
        answer = manager.request(
            method,
            url,
            body=body,
            headers=dict(headers or {}),
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
            retries=False,
            redirect=False,
        )
        return ServiceResponse(answer.status, answer.headers, answer.data, url, answer.reason or "")


def _environment_ca_bundle() -> str:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(name):
            return os.environ[name]
    return certifi.where()


def _environment_proxies() -> dict[str, str]:
    return {scheme: url for scheme, url in getproxies().items() if scheme in ("http", "https")}


def _is_retryable(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


@dataclass
class ServiceClient:
    """Calls one platform's LTI Advantage services with an access token for a scope set."""

    access: PlatformAccess
    key: SigningKey
    cache: Cache
    http: Transport = field(default_factory=Transport)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    # scope string -> (token, time until which it is used without asking the shared cache)
    _memo: dict[str, tuple[str, float]] = field(default_factory=dict, init=False, repr=False)

    # -- tokens ---------------------------------------------------------------------------
    def access_token(self, scopes: Iterable[str]) -> str:
        """A valid token for the scopes: from this client's memory (for a few seconds), the
        shared cache, or fetched (once for all processes: a process that finds another
        fetching waits for its token)."""
        scopes = sorted(set(scopes))
        memo_key = scope_string(scopes)
        remembered = self._memo.get(memo_key)
        if remembered is not None and remembered[1] > time.time():
            return remembered[0]
        token, dropped_at = self._shared_token(scopes)
        if dropped_at:  # never remembered past the moment the shared cache drops it
            self._memo[memo_key] = (token, min(time.time() + TOKEN_MEMO_SECONDS, dropped_at))
        return token

    def _shared_token(self, scopes: list[str]) -> tuple[str, float]:
        """The token and when the shared cache drops it (0: unknown)."""
        cache_key = token_cache_key(self.access.issuer, self.access.client_id, scopes)
        lock_key = cache_key + ":fetching"
        add = getattr(self.cache, "add", None)
        deadline = time.monotonic() + TOKEN_FETCH_WAIT
        pause = 0.02
        while True:
            cached = self.cache.get(cache_key)
            if cached is not None:
                return cached["access_token"], cached.get("dropped_at", 0)
            if add is None or time.monotonic() >= deadline:
                return self._fetch_and_keep(scopes, cache_key)  # no lock to be had: ask anyway
            if add(lock_key, True, TOKEN_FETCH_LOCK_TTL):
                try:
                    cached = self.cache.get(cache_key)  # kept while we took the lock?
                    if cached is not None:
                        return cached["access_token"], cached.get("dropped_at", 0)
                    return self._fetch_and_keep(scopes, cache_key)
                finally:
                    self.cache.delete(lock_key)
            time.sleep(pause)  # another process is fetching it: wait for its token
            pause = min(pause * 2, 0.5)

    def _fetch_and_keep(self, scopes: list[str], cache_key: str) -> tuple[str, float]:
        token, expires_in = self._fetch_token(scopes)
        ttl = expires_in - TOKEN_MARGIN if expires_in > 2 * TOKEN_MARGIN else expires_in // 2
        if ttl < 1:
            return token, 0
        dropped_at = time.time() + int(ttl)
        self.cache.set(cache_key, {"access_token": token, "dropped_at": dropped_at}, int(ttl))
        return token, dropped_at

    def drop_token(self, scopes: Iterable[str], token: str) -> None:
        """Forget a token the platform refused, unless another process already replaced it."""
        self._memo.pop(scope_string(scopes), None)
        cache_key = token_cache_key(self.access.issuer, self.access.client_id, scopes)
        cached = self.cache.get(cache_key)
        if cached is not None and cached.get("access_token") == token:
            # Compare and delete in one step: between the read and a plain delete, another
            # thread or process may already have stored a new token (deleted, it would be
            # fetched once more).
            self.cache.delete_if(cache_key, cached)

    def _fetch_token(self, scopes: list[str]) -> tuple[str, int]:
        scope = scope_string(scopes)
        with _token_requests_lock:
            TOKEN_REQUESTS[(self.access.issuer, self.access.client_id, scope)] += 1
        url = self.access.token_url

        def send() -> ServiceResponse:
            # A new assertion (new jti, fresh times) for every try.
            data = {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": client_assertion(self.access, self.key),
                "scope": scope,
            }
            return self.http.request(
                "POST",
                url,
                body=urlencode(data),
                headers={
                    "Accept": "application/json",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
                timeout=self._timeout,
            )

        response, tries = self._with_retries(send, url, stage="token")
        if response.status_code >= 400:
            raise self._error(response, url, "token", tries)
        try:
            body = response.json()
            token = body["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceError(
                f"The token endpoint {url} answered without an access_token.",
                status=response.status_code,
                url=url,
                platform_message=platform_message(response),
                stage="token",
                attempts=tries,
            ) from exc
        try:
            expires_in = int(body.get("expires_in") or DEFAULT_EXPIRES_IN)
        except (TypeError, ValueError):
            expires_in = DEFAULT_EXPIRES_IN
        log.info(
            "access token fetched",
            extra={"issuer": self.access.issuer, "client_id": self.access.client_id},
        )
        return token, expires_in

    # -- calls ----------------------------------------------------------------------------
    def get(self, url: str, scopes: Iterable[str], **kwargs: Any) -> ServiceResponse:
        return self.request("GET", url, scopes, **kwargs)

    def post(self, url: str, scopes: Iterable[str], **kwargs: Any) -> ServiceResponse:
        return self.request("POST", url, scopes, **kwargs)

    def request(
        self,
        method: str,
        url: str,
        scopes: Iterable[str],
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        accept: str = "application/json",
        content_type: str | None = None,
    ) -> ServiceResponse:
        """Make one service call: a 2xx response, or a ServiceError."""
        scopes = sorted(set(scopes))
        token = self.access_token(scopes)
        body = None if json is None else _json_dumps(json).encode()
        target = with_query(url, params)
        total_tries = 0
        for renewed in (False, True):
            headers = {"Authorization": f"Bearer {token}", "Accept": accept}
            if body is not None:
                headers["Content-Type"] = content_type or "application/json"

            def send(headers: dict[str, str] = headers) -> ServiceResponse:
                return self.http.request(
                    method, target, body=body, headers=headers, timeout=self._timeout
                )

            response, tries = self._with_retries(send, url, stage="service")
            total_tries += tries
            if response.status_code == 401 and not renewed:
                # The token expired early or was revoked: a new one, and one more try.
                self.drop_token(scopes, token)
                token = self.access_token(scopes)
                continue
            if response.status_code >= 400:
                raise self._error(response, url, "service", total_tries)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def _timeout(self) -> tuple[float, float]:
        return (self.policy.connect_timeout, self.policy.read_timeout)

    def _with_retries(
        self, send: Callable[[], ServiceResponse], url: str, stage: str
    ) -> tuple[ServiceResponse, int]:
        """Send until a response that retrying cannot change, or the tries or the time allowed
        for waiting run out. Returns the last response and the number of tries."""
        waited = 0.0
        for attempt in range(1, self.policy.attempts + 1):
            last_try = attempt == self.policy.attempts
            try:
                response = send()
            except TRANSPORT_ERRORS as exc:
                delay = self.policy.backoff(attempt - 1)
                if last_try or waited + delay > self.policy.max_total_wait:
                    raise ServiceError(
                        f"{stage.capitalize()} request to {url} failed after {attempt} "
                        f"tries: {type(exc).__name__}: {exc}",
                        url=url,
                        platform_message=str(exc),
                        stage=stage,
                        attempts=attempt,
                    ) from exc
                log.warning("%s request to %s failed (%s); retrying", stage, url, exc)
            else:
                if not _is_retryable(response.status_code) or last_try:
                    return response, attempt
                delay = self.policy.backoff(attempt - 1)
                asked = _retry_after(response)
                if asked is not None:
                    delay = asked + random.uniform(0, self.policy.base_delay)
                if waited + delay > self.policy.max_total_wait:
                    return response, attempt
                log.warning(
                    "%s request to %s answered %s; retrying in %.1fs",
                    stage,
                    url,
                    response.status_code,
                    delay,
                )
            self.sleep(delay)
            waited += delay
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(
        self, response: ServiceResponse, url: str, stage: str, attempts: int
    ) -> ServiceError:
        message = platform_message(response)
        what = "The token request to" if stage == "token" else "The call to"
        return ServiceError(
            f"{what} {url} failed with HTTP {response.status_code}: {message}",
            status=response.status_code,
            url=url,
            platform_message=message,
            stage=stage,
            attempts=attempts,
            retry_after=_retry_after(response),
        )


def with_query(url: str, params: Mapping[str, Any] | None) -> str:
    """The URL with these query parameters added after any it has (Moodle's `?type_id=1`);
    parameters that are None are left out."""
    pairs = [(name, value) for name, value in (params or {}).items() if value is not None]
    if not pairs:
        return url
    return url + ("&" if urlsplit(url).query else "?") + urlencode(pairs)


def _json_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def client_for(
    session: Session,
    platform: Platform,
    cache: Cache,
    http: Transport | None = None,
    policy: RetryPolicy | None = None,
) -> ServiceClient:
    """A client for a stored platform, signing with the tool's active key (the caller commits:
    the key may have just been made)."""
    key = keys.active_key(session)
    return ServiceClient(
        access=PlatformAccess(
            issuer=platform.issuer,
            client_id=platform.client_id,
            token_url=platform.auth_token_url,
            audience=platform.audience or None,
        ),
        key=SigningKey(kid=key.kid, private_pem=key.private_pem, alg=key.alg),
        cache=cache,
        http=http or Transport(),
        policy=policy or RetryPolicy(),
    )


def client_for_platform(
    session: Session,
    platform_id: int,
    cache: Cache,
    http: Transport | None = None,
    policy: RetryPolicy | None = None,
) -> ServiceClient:
    """`client_for` a platform known by its id (LookupError when it is no longer registered)."""
    platform = session.get(Platform, platform_id)
    if platform is None:
        raise LookupError(f"platform {platform_id} is no longer registered")
    return client_for(session, platform, cache, http=http, policy=policy)


@dataclass(frozen=True)
class PlatformFacts:
    """What callers of the services (the gradebook) need to know of a platform: its name, and
    issuer and product to apply its quirks."""

    id: int
    name: str
    issuer: str
    product: str


def platform_facts(session: Session, platform_ids: Iterable[int]) -> dict[int, PlatformFacts]:
    from sqlalchemy import select

    ids = set(platform_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Platform.id, Platform.name, Platform.issuer, Platform.product).where(
            Platform.id.in_(ids)
        )
    )
    return {row.id: PlatformFacts(row.id, row.name, row.issuer, row.product) for row in rows}
