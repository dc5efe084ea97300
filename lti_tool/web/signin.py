"""Sign-in to the assessor portal (/assess/) and administration (/admin/).

Two ways in: a local password (argon2id; failed attempts locked per account and per client
address) and single sign-on through the OpenID Connect provider the administrator configured
(Authlib's Flask client, authorization code flow with PKCE and nonce). Either way the session
then holds `account_id` (web/accounts.py). `next` only ever leads to a path of this tool.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from requests import RequestException

from lti_tool.accounts import service as accounts
from lti_tool.accounts.models import Account
from lti_tool.accounts.throttle import SignInThrottle
from lti_tool.web import db, services
from lti_tool.web.accounts import ACCOUNT_KEY, EPOCH_KEY, current_account
from lti_tool.web.csrf import check_csrf

blueprint = Blueprint("signin", __name__, url_prefix="/assess")

DEFAULT_LANDING = "/assess/"
NEXT_KEY = "signin_next"


@blueprint.record_once
def _setup(state: BlueprintSetupState) -> None:
    app = state.app
    app.jinja_env.globals["current_account"] = current_account
    settings = app.extensions["lti_tool"].settings
    storage = settings.redis_url or "memory://"
    app.extensions["signin_throttle"] = SignInThrottle(
        storage,
        settings.signin_max_failures_per_account,
        settings.signin_max_failures_per_address,
        settings.signin_lockout_minutes,
    )
    if settings.oidc_issuer:
        oauth = OAuth(app)
        oauth.register(
            "sso",
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret or None,
            server_metadata_url=settings.oidc_discovery_url,
            client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256"},
        )


def _throttle() -> SignInThrottle:
    return current_app.extensions["signin_throttle"]


def _sso():
    oauth = current_app.extensions.get("authlib.integrations.flask_client")
    return oauth.sso if oauth is not None else None


def safe_next(value: str | None) -> str | None:
    """A path of this tool to go to after signing in; None for anything else (another site,
    a scheme-relative `//host`, a backslash trick, control characters)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return None
    if any(ord(ch) < 32 or ch == "\\" for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def _start_session(account: Account, landing: str | None) -> object:
    accounts.record_sign_in(account)
    db().commit()
    session.clear()  # nothing of a previous session (an LMS identity, a CSRF token) survives
    session[ACCOUNT_KEY] = account.id
    session[EPOCH_KEY] = account.session_epoch or 0
    return redirect(landing or DEFAULT_LANDING)


def _login_page(status: int = 200, error: str | None = None, email: str = "", next_path=None):
    settings = services().settings
    return (
        render_template(
            "signin/login.html",
            error=error,
            email=email,
            next_path=next_path,
            sso_name=settings.oidc_provider_name if settings.oidc_issuer else None,
            signed_in=current_account(),
        ),
        status,
    )


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    next_path = safe_next(request.values.get("next"))
    if request.method == "GET":
        return _login_page(next_path=next_path)
    check_csrf()
    email = accounts.normalise_email(request.form.get("email", ""))
    password = request.form.get("password", "")
    if not email or not password:
        return _login_page(400, "Enter your e-mail address and your password.", email, next_path)
    throttle = _throttle()
    address = request.remote_addr or "unknown"
    lockout = throttle.locked(email, address)
    if lockout is not None:
        what = "this account" if lockout.scope == "account" else "this network address"
        body, status = _login_page(
            429,
            f"Too many failed sign-in attempts for {what}. Try again in {lockout.minutes} "
            "minute(s).",
            email,
            next_path,
        )
        return body, status, {"Retry-After": str(lockout.retry_after_seconds)}
    account = accounts.find_account(db(), email)
    if not accounts.password_matches(account, password):
        throttle.record_failure(email, address)
        return _login_page(401, "Wrong e-mail address or password.", email, next_path)
    throttle.forget_account(email)
    if not account.active:
        return _login_page(
            403, "This account is disabled. Ask the administrator of the tool.", email, next_path
        )
    return _start_session(account, next_path)


@blueprint.route("/login/sso")
def sso_start():
    client = _sso()
    if client is None:
        abort(404, "Single sign-on is not configured for this tool; sign in with your password.")
    session[NEXT_KEY] = safe_next(request.args.get("next"))
    try:
        # The redirect URI registered at the provider: built from the public base URL.
        callback = services().settings.url(url_for("signin.sso_callback"))
        return client.authorize_redirect(callback)
    except (RequestException, OAuthError, ValueError) as exc:
        current_app.logger.warning("single sign-on provider unreachable: %s", exc)
        abort(502, "The single sign-on provider cannot be reached right now; try again later.")


@blueprint.route("/login/sso/callback")
def sso_callback():
    client = _sso()
    if client is None:
        abort(404, "Single sign-on is not configured for this tool.")
    if request.args.get("error"):
        return _login_page(401, "Single sign-on was cancelled or refused by the identity provider.")
    try:
        token = client.authorize_access_token()
        claims = dict(token.get("userinfo") or {})  # the verified id_token's claims
        if "email" not in claims and client.server_metadata.get("userinfo_endpoint"):
            extra = client.userinfo(token=token)
            claims.update({k: v for k, v in extra.items() if k not in ("sub", "iss")})
    except OAuthError as exc:
        return _login_page(401, f"Single sign-on failed: {exc.description or exc.error}.")
    except RequestException as exc:
        current_app.logger.warning("single sign-on provider unreachable: %s", exc)
        abort(502, "The single sign-on provider cannot be reached right now; try again later.")
    issuer = str(claims.get("iss") or client.server_metadata.get("issuer") or "")
    try:
        account = accounts.account_for_oidc(db(), issuer, claims)
    except accounts.AccountError as exc:
        db().rollback()
        return _login_page(403, f"You cannot sign in: {exc}.")
    if not account.active:
        db().rollback()
        return _login_page(403, "This account is disabled. Ask the administrator of the tool.")
    return _start_session(account, session.get(NEXT_KEY))


@blueprint.route("/logout", methods=["POST"])
def logout():
    check_csrf()
    account = current_account()
    if account is not None:
        accounts.end_sessions(account)
        db().commit()
    session.clear()
    return redirect(url_for("signin.login", signed_out=1))
