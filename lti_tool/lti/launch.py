"""OIDC login and launch validation on top of pylti1p3, with the checks it leaves to us.

pylti1p3 decodes the id_token without checking its audience, keeps nonces reusable, accepts a
missing state cookie only through its own session, and does not refetch a platform's keys on
an unknown `kid`. This module closes each of those gaps and names the reason for every refusal.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from joserfc import jwt as jose_jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry
from pylti1p3.contrib.flask import FlaskMessageLaunch, FlaskOIDCLogin, FlaskRequest
from pylti1p3.exception import LtiException, OIDCException

from lti_tool.cache import Cache
from lti_tool.lti.adapters import CacheLaunchDataStorage, DatabaseToolConf
from lti_tool.lti.errors import LaunchRefused, refuse

log = logging.getLogger(__name__)

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
DL_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
# The LTI Advantage scopes the tool uses (lti/canvas.py asks for each of them).
LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
LINEITEM_READONLY_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
RESULT_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
MEMBERSHIP_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"
SUPPORTED_MESSAGE_TYPES = ("LtiResourceLinkRequest", DEEP_LINKING_REQUEST)
ALLOWED_ALGS = ("RS256", "RS384", "RS512")
LOGIN_STATE_TTL = 600
RETRY_PARAMS = (
    "iss",
    "login_hint",
    "target_link_uri",
    "lti_message_hint",
    "lti_deployment_id",
    "client_id",
)
KEYSET_TTL = 3600
HTTP_TIMEOUT = 10
# How id_tokens are read (joserfc: a third of PyJWT's CPU for a Canvas-sized token, which PyJWT
# checks one character at a time in Python). Header parameters a platform adds are ignored, not
# refused, and a certificate chain (x5c) fits in the header; the launch form's size limit
# bounds the whole token.
ID_TOKEN_JWS = JWSRegistry(algorithms=ALLOWED_ALGS, strict_check_header=False)
ID_TOKEN_JWS.max_header_length = 16_384
ID_TOKEN_JWS.max_payload_length = 1_000_000


@dataclass
class LoginStart:
    """What the login step decided: where to send the browser and what to remember."""

    redirect_url: str
    state: str
    nonce: str
    storage_target: str | None
    auth_origin: str
    # Kept in the platform's storage (postMessage) to tie the launch to this browser when
    # its cookies are blocked; the server keeps only its hash.
    binding_secret: str


def new_nonce() -> str:
    """A nonce for the platform: 256 random bits. pylti1p3's own joins a uuid1, which carries
    this server's network (MAC) address and clock into every platform's logs and browser
    history."""
    return secrets.token_urlsafe(32)


class ToolOIDCLogin(FlaskOIDCLogin):
    """pylti1p3's OIDC login, with the tool's nonce."""

    def _generate_nonce(self) -> str:
        return new_nonce()


def state_key(state: str) -> str:
    return "login-state:" + hashlib.sha256(state.encode()).hexdigest()


def start_login(
    tool_conf: DatabaseToolConf,
    cache: Cache,
    launch_url: str,
    params: dict[str, str],
    is_secure: bool | None = None,
) -> tuple[LoginStart, Any]:
    """Validate a third-party-initiated login and prepare the redirect to the platform.

    Returns the decision and the Flask response carrying the state cookie. `is_secure` says
    whether browsers reach the tool over https (its public URL), which decides whether that
    cookie is `Secure; SameSite=None`; by default, whether this request came over https.
    """
    if not params.get("iss"):
        raise refuse(
            "missing_issuer", "The login request does not say which platform it is from (no iss)."
        )
    if not params.get("login_hint"):
        raise refuse("missing_login_hint", "The login request has no login_hint.")
    target = params.get("target_link_uri")
    if (
        target
        and urlsplit(target).netloc
        and urlsplit(target).netloc != urlsplit(launch_url).netloc
    ):
        raise refuse(
            "foreign_target_link",
            f"The platform asked to launch {target}, which is not this tool.",
        )
    request = FlaskRequest(request_data=params, request_is_secure=is_secure)
    # pylti1p3's nonce is written with the login state below, in one round trip.
    storage = CacheLaunchDataStorage(cache, defer_writes=True)
    login = ToolOIDCLogin(request, tool_conf, launch_data_storage=storage)
    try:
        redirect = login.get_redirect_object(launch_url)
    except OIDCException as exc:
        client = params.get("client_id") or "(none given)"
        raise refuse(
            "unknown_platform",
            f"No platform is registered with issuer {params['iss']} and client id {client}. "
            f"An administrator registers it with 'lti-tool platform add'. ({exc})",
            status=403,
        ) from exc
    url = redirect.get_redirect_url()
    query = parse_qs(urlsplit(url).query)
    state, nonce = query["state"][0], query["nonce"][0]
    platform = tool_conf.platform
    assert platform is not None
    storage_target = params.get("lti_storage_target") or None
    binding_secret = secrets.token_urlsafe(24)
    record = {
        "nonce": nonce,
        "iss": platform.issuer,
        "client_id": platform.client_id,
        "storage_target": storage_target,
        "binding_hash": hashlib.sha256(binding_secret.encode()).hexdigest(),
        "login_params": {k: v for k, v in params.items() if k in RETRY_PARAMS},
    }
    assert storage.deferred is not None
    cache.set_many([*storage.deferred, (state_key(state), record, LOGIN_STATE_TTL)])
    auth = urlsplit(platform.auth_login_url)
    decision = LoginStart(
        redirect_url=url,
        state=state,
        nonce=nonce,
        storage_target=storage_target,
        auth_origin=f"{auth.scheme}://{auth.netloc}",
        binding_secret=binding_secret,
    )
    return decision, redirect.do_redirect()


class ToolMessageLaunch(FlaskMessageLaunch):
    """pylti1p3's launch with strict checks of signature, audience, time, nonce and state."""

    def __init__(
        self,
        request,
        tool_conf: DatabaseToolConf,
        cache: Cache,
        clock_skew: int,
        http: requests.Session | None = None,
        storage_secret: str | None = None,
        read_with_state: Callable[[dict[str, Any]], list[str]] | None = None,
    ):
        self.cache = cache
        self.clock_skew = clock_skew
        self.storage_secret = storage_secret
        # Cache keys the caller will read once the launch is valid, named from the id_token's
        # claims before they are verified: read in the round trip that pops the state, kept in
        # `read` (key -> value). The caller must check that the key it needs is one of them.
        self.read_with_state = read_with_state
        self.read: dict[str, Any] = {}
        self.login_state: dict[str, Any] | None = None
        # The id_token's nonce and what popping its marker returned, when validate_state popped
        # it together with the state (one round trip instead of two).
        self._popped_nonce: tuple[str, Any] | None = None
        self._format_checked = False
        storage = CacheLaunchDataStorage(cache)
        super().__init__(request, tool_conf, launch_data_storage=storage, requests_session=http)
        self.storage = storage
        self.set_public_key_caching(storage, KEYSET_TTL)

    # -- state: server-side record bound to the browser by a cookie or platform storage --
    def validate_state(self):
        state = self._get_request_param("state")
        if not state:
            raise refuse("missing_state", "The launch has no state: start it again from the LMS.")
        nonce = self._readable_nonce()
        keys = [state_key(state)]
        if nonce is not None:
            # Popped now, with the state: validate_nonce checks what came back. A launch that
            # fails here has spent its nonce too (it was single-use anyway).
            keys.append(self.storage._prepare_key(_nonce_key(nonce)))
        reads: list[str] = []
        if self.read_with_state is not None and self._format_checked:
            reads = self.read_with_state(self._jwt.get("body", {}))
        popped, values = self.cache.pop_and_get(keys, reads)
        self.read = dict(zip(reads, values, strict=True))
        record = popped[0]
        if nonce is not None:
            self._popped_nonce = (nonce, popped[1])
        if record is None:
            raise refuse(
                "state_not_found",
                "This launch does not match a login of this tool (it expired, was already "
                "used, or was started elsewhere). Start it again from the LMS.",
            )
        self.login_state = record
        cookie = self._cookie_service.get_cookie(state)
        if cookie is not None:
            if cookie != state:
                raise refuse(
                    "state_mismatch", "The launch state does not match this browser's login."
                )
            return self
        if self.storage_secret is not None:
            digest = hashlib.sha256(self.storage_secret.encode()).hexdigest()
            if not secrets.compare_digest(digest, record.get("binding_hash", "")):
                raise refuse(
                    "state_mismatch", "The launch state does not match this browser's login."
                )
            return self
        if record.get("storage_target"):
            raise NeedsPlatformStorage(record, state, self._nonce_to_restore())
        blocked = refuse(
            "cookies_blocked",
            "Your browser did not send back the cookie this tool set at login, so the launch "
            "cannot be tied to you. Open the tool in a new window, or allow cookies for this site.",
        )
        blocked.retry_params = record.get("login_params") or {}
        raise blocked

    def _readable_nonce(self) -> str | None:
        """The id_token's nonce if its format is valid (not yet its signature), else None: the
        format error is then reported in its turn, by validate_jwt_format."""
        try:
            self.validate_jwt_format()
        except LtiException:
            return None
        nonce = self._jwt.get("body", {}).get("nonce")
        return nonce if isinstance(nonce, str) and nonce else None

    def _nonce_to_restore(self) -> list[tuple[str, Any, int | None]]:
        """The nonce marker popped with the state, to put back with it (platform storage)."""
        if self._popped_nonce is None or self._popped_nonce[1] is None:
            return []
        nonce, marker = self._popped_nonce
        key = self.storage._prepare_key(_nonce_key(nonce))
        return [(key, marker, self._session_service._launch_data_lifetime)]

    def validate_jwt_format(self):
        if not self._format_checked:
            super().validate_jwt_format()
            self._format_checked = True
        return self

    # -- nonce: single use --
    def validate_nonce(self):
        nonce = self._get_jwt_body().get("nonce")
        if not nonce:
            raise refuse("missing_nonce", "The id_token has no nonce.")
        if self._popped_nonce is not None and self._popped_nonce[0] == nonce:
            marker = self._popped_nonce[1]
        else:
            marker = self.storage.pop_value(_nonce_key(nonce))
        if marker is None:
            raise refuse(
                "replayed_nonce", "This launch was already used (its nonce was seen before)."
            )
        if self.login_state and self.login_state.get("nonce") != nonce:
            raise refuse("nonce_mismatch", "The id_token's nonce is not the one this login issued.")
        return self

    # -- registration: issuer and audience must be those of the login --
    def validate_registration(self):
        body = self._get_jwt_body()
        iss = body.get("iss")
        if not iss:
            raise refuse("missing_issuer", "The id_token has no issuer (iss).")
        if self.login_state and iss != self.login_state["iss"]:
            raise refuse(
                "wrong_issuer",
                f"The id_token was issued by {iss}, but the login came from "
                f"{self.login_state['iss']}.",
                status=401,
            )
        aud = body.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        expected = self.login_state["client_id"] if self.login_state else None
        if expected and expected not in audiences:
            raise refuse(
                "wrong_audience",
                f"The id_token is meant for {aud!r}, not this tool's client id {expected}.",
                status=401,
            )
        if len(audiences) > 1 and body.get("azp") != expected:
            raise refuse(
                "wrong_audience", "The id_token has several audiences and no matching azp.", 401
            )
        registration = self._tool_config.find_registration_by_params(iss, expected or audiences[0])
        if registration is None:
            raise refuse(
                "unknown_platform",
                f"No platform is registered with issuer {iss} and client id {expected or aud}.",
                status=403,
            )
        self._registration = registration
        return self

    def get_client_id(self) -> str:
        if self.login_state:
            return self.login_state["client_id"]
        return super().get_client_id()

    # -- signature: allow-listed algorithms, the platform's key, audience, times --
    def validate_jwt_signature(self):
        header = self._jwt.get("header", {})
        alg = header.get("alg")
        if alg not in ALLOWED_ALGS:
            raise refuse(
                "bad_algorithm",
                f"The id_token is signed with {alg!r}; "
                f"only {', '.join(ALLOWED_ALGS)} are accepted.",
                status=401,
            )
        if not header.get("kid"):
            raise refuse("unknown_kid", "The id_token header names no key (kid).", status=401)
        public_key = self._public_key_for(header["kid"], alg)
        body = self._get_jwt_body()
        claims = JWTClaimsRegistry(
            leeway=self.clock_skew,
            iss={"essential": True, "value": body.get("iss")},
            aud={"essential": True, "value": self.get_client_id()},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True},
        )
        try:
            token = jose_jwt.decode(
                self._get_id_token(), public_key, algorithms=[alg], registry=ID_TOKEN_JWS
            )
            claims.validate(token.claims)
        except BadSignatureError as exc:
            raise refuse(
                "bad_signature",
                "The id_token's signature does not verify with the platform's published key.",
                401,
            ) from exc
        except ExpiredTokenError as exc:
            raise refuse(
                "expired", "The id_token has expired: start the launch again.", 401
            ) from exc
        except MissingClaimError as exc:
            raise refuse(
                "missing_claim", f"The id_token lacks a required claim: {exc.description}", 401
            ) from exc
        except InvalidClaimError as exc:
            claim = exc.claim
            if claim == "aud":
                raise refuse(
                    "wrong_audience", "The id_token is not meant for this tool.", 401
                ) from exc
            if claim == "iss":
                raise refuse("wrong_issuer", "The id_token's issuer does not match.", 401) from exc
            if claim in ("iat", "nbf") and _is_time(body.get(claim)):
                raise refuse(
                    "issued_in_future", "The id_token is dated in the future (check clocks).", 401
                ) from exc
            raise refuse("invalid_token", f"The id_token is not valid: {exc}", 401) from exc
        except JoseError as exc:
            raise refuse("invalid_token", f"The id_token is not valid: {exc}", 401) from exc
        return self

    def _public_key_for(self, kid: str, alg: str):
        assert self._registration is not None
        url = self._registration.get_key_set_url()
        cache_key = "platform-jwks:" + hashlib.sha256(url.encode()).hexdigest()
        memo = keyset_memo(self.cache)
        keyset = memo.get(url)
        key = _find_key(keyset, kid) if keyset is not None else None
        if key is None:
            # Not used in this process lately, or a kid it does not know: ask the shared cache
            # (another process may have refetched the platform's rotated keys).
            keyset = self.cache.get(cache_key)
            fresh = False
            if keyset is None:
                keyset, fresh = self._fetch_keyset(url), True
                self.cache.set(cache_key, keyset, KEYSET_TTL)
            key = _find_key(keyset, kid)
            if key is None and not fresh:
                # The platform may have rotated its keys since we cached them: refetch once.
                keyset = self._fetch_keyset(url)
                self.cache.set(cache_key, keyset, KEYSET_TTL)
                key = _find_key(keyset, kid)
            memo.put(url, keyset)
        if key is None:
            raise refuse(
                "unknown_kid",
                f"The platform's published keys ({url}) have no key with kid {kid!r}.",
                status=401,
            )
        if key.get("alg") and key["alg"] != alg:
            raise refuse("bad_algorithm", f"Key {kid} is for {key['alg']}, not {alg}.", 401)
        try:
            return _public_key(json.dumps(key, sort_keys=True))
        except (JoseError, ValueError, TypeError) as exc:
            raise refuse(
                "unknown_kid", f"The platform key {kid} cannot be read: {exc}", 401
            ) from exc

    def _fetch_keyset(self, url: str) -> dict:
        try:
            response = self._requests_session.get(url, timeout=HTTP_TIMEOUT)
            response.raise_for_status()
            keyset = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise refuse(
                "platform_keys_unavailable",
                f"The platform's public keys could not be fetched from {url}: {exc}",
                status=502,
            ) from exc
        if not isinstance(keyset, dict) or not isinstance(keyset.get("keys"), list):
            raise refuse(
                "platform_keys_unavailable", f"{url} did not return a JSON Web Key Set.", 502
            )
        return keyset

    # -- what a valid launch keeps --
    def save_launch_data(self):
        """Keep the body of a deep-linking launch for the catalog picker, which reads its
        settings later (deep_linking.cached_request); nothing reads the body of another launch.

        pylti1p3 keeps every body, and writes "<state>-id-token-hash" for its own state check,
        which validate_state above replaces (the state is a single-use server-side record):
        each would be one more Redis round trip per launch that nothing reads.
        """
        if self._jwt["body"].get(CLAIM + "message_type") == DEEP_LINKING_REQUEST:
            self._session_service.save_launch_data(self._launch_id, self._jwt["body"])
        return self

    # -- deployment and message --
    def validate_deployment(self):
        deployment_id = self._get_jwt_body().get(CLAIM + "deployment_id")
        if not deployment_id:
            raise refuse("missing_deployment", "The launch names no deployment.")
        try:
            super().validate_deployment()
        except LtiException as exc:
            raise refuse(
                "unknown_deployment",
                f"Deployment {deployment_id} is not registered for this platform. An "
                "administrator adds it with 'lti-tool platform add' or the registration page.",
                status=403,
            ) from exc
        return self

    def validate_message(self):
        body = self._get_jwt_body()
        message_type = body.get(CLAIM + "message_type")
        if not message_type:
            raise refuse(
                "missing_message_type", "The launch does not say what kind of message it is."
            )
        if message_type not in SUPPORTED_MESSAGE_TYPES:
            raise refuse(
                "unsupported_message_type",
                f"This tool does not handle {message_type} messages.",
            )
        version = body.get(CLAIM + "version")
        if version != "1.3.0":
            raise refuse(
                "unsupported_version", f"LTI version {version!r} is not supported (1.3.0 is)."
            )
        if message_type == "LtiResourceLinkRequest":
            if not body.get("sub"):
                raise refuse("missing_sub", "The launch does not identify the user (no sub).")
            if not (body.get(CLAIM + "resource_link") or {}).get("id"):
                raise refuse("missing_resource_link", "The launch has no resource link id.")
        try:
            super().validate_message()
        except LtiException as exc:
            raise refuse("invalid_message", f"The launch message is incomplete: {exc}") from exc
        return self


class NeedsPlatformStorage(Exception):  # noqa: N818 - a signal, not an error
    """The state cookie is missing but the platform offers storage: check state there."""

    def __init__(
        self, record: dict[str, Any], state: str, restore: list[tuple[str, Any, int | None]]
    ) -> None:
        super().__init__("state must be checked through platform storage")
        self.record = record
        self.state = state
        # Cache entries the first leg consumed and the second needs again (the nonce marker).
        self.restore = restore


def _nonce_key(nonce: str) -> str:
    """pylti1p3's key for a nonce it issued (SessionService.save_nonce)."""
    return f"lti1p3-nonce-{nonce}"


# How long a process reuses a platform key set it read from the shared cache (seconds). The
# shared cache keeps it KEYSET_TTL; an unknown kid always looks there (and refetches) at once.
KEYSET_MEMO_TTL = 60.0


class KeysetMemo:
    """Platform key sets this process used lately: a launch then verifies its id_token with
    no cache round trip (a key set is the same for every launch of a platform)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[dict, float]] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> dict | None:
        with self._lock:
            entry = self._entries.get(url)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def put(self, url: str, keyset: dict) -> None:
        with self._lock:
            self._entries[url] = (keyset, time.monotonic() + KEYSET_MEMO_TTL)


# One memo per shared cache (so per app), like the registry cache per database.
_keyset_memos: weakref.WeakKeyDictionary[Any, KeysetMemo] = weakref.WeakKeyDictionary()
_keyset_memos_lock = threading.Lock()


def keyset_memo(cache: Cache) -> KeysetMemo:
    with _keyset_memos_lock:
        memo = _keyset_memos.get(cache)
        if memo is None:
            memo = _keyset_memos[cache] = KeysetMemo()
        return memo


@functools.lru_cache(maxsize=1)
def keyset_http() -> requests.Session:
    """The HTTP session that fetches platforms' key sets, one per process: without it pylti1p3
    builds a requests.Session (adapters, pools) for every launch, to use it once an hour."""
    session = requests.Session()
    session.headers["User-Agent"] = "lti-tool"
    return session


@functools.lru_cache(maxsize=64)
def _public_key(jwk_json: str) -> RSAKey:
    """A platform's public key, parsed once per process for each distinct JWK."""
    return RSAKey.import_key(json.loads(jwk_json))


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _find_key(keyset: dict, kid: str) -> dict | None:
    return next((k for k in keyset.get("keys", []) if k.get("kid") == kid), None)


def validate_launch(
    form: dict[str, str],
    cookies: dict[str, str],
    is_secure: bool,
    tool_conf: DatabaseToolConf,
    cache: Cache,
    clock_skew: int,
    http: requests.Session | None = None,
    storage_secret: str | None = None,
    read_with_state: Callable[[dict[str, Any]], list[str]] | None = None,
) -> ToolMessageLaunch:
    """Validate a launch POST; raise LaunchRefused with the reason, or return the launch.

    `read_with_state`: see ToolMessageLaunch (the values are in the launch's `read`).
    """
    if not form.get("id_token"):
        error = form.get("error")
        if error:
            description = form.get("error_description", "")
            raise refuse("platform_error", f"The platform refused the login: {error} {description}")
        raise refuse("missing_id_token", "The launch carries no id_token.")
    request = FlaskRequest(cookies=cookies, request_data=form, request_is_secure=is_secure)
    http = http or keyset_http()
    launch = ToolMessageLaunch(
        request, tool_conf, cache, clock_skew, http, storage_secret, read_with_state
    )
    try:
        launch.validate()
    except (LaunchRefused, NeedsPlatformStorage):
        raise
    except LtiException as exc:
        raise refuse("invalid_launch", f"The launch is not valid: {exc}") from exc
    except Exception as exc:  # pylti1p3 raises bare Exception for some registration errors
        log.exception("unexpected launch validation error")
        raise refuse("invalid_launch", f"The launch could not be validated: {exc}") from exc
    return launch
