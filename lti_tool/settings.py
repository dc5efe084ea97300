"""Typed settings: environment variables LTI_TOOL_* over config/defaults.toml.

One place decides every setting so that the CLI, the web app, the worker and the tests agree.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from email.utils import parseaddr
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "config"
DEFAULTS_FILE = CONFIG_DIR / "defaults.toml"
ENV_PREFIX = "LTI_TOOL_"
DEFAULT_SECRET_KEY = "insecure-development-key-change-me"  # noqa: S105 - refused in production


class SettingsError(ValueError):
    """A setting is missing or wrong; the message says what to set."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    base_url: str = "http://127.0.0.1:5000"
    instance_path: str = "instance"
    database_url: str = ""
    redis_url: str = ""
    secret_key: str = DEFAULT_SECRET_KEY
    demo: bool = False
    trusted_proxies: int = 0
    clock_skew_seconds: int = 60
    log_format: str = ""
    tool_name: str = "Micro-credentials"
    # Not read from the environment: set by tests that need a different HTTP session.
    extra: dict = field(default_factory=dict, compare=False)
    # Evidence uploads (lti_tool/evidence/storage.py): size limit in MB (1 MB = 1024 * 1024
    # bytes) and the kinds accepted, a comma-separated list of pdf, document, image, audio, video.
    evidence_max_upload_mb: int = 200
    evidence_allowed_types: str = "pdf,document,image,audio,video"
    # Similarity check (lti_tool/evidence/similarity.py): a part of a submission is flagged as
    # nearly identical to an earlier one when at least this percentage of it is found there.
    evidence_similarity_percent: int = 80
    # S3-compatible object store for evidence files; an empty bucket keeps them under
    # instance_path/evidence. Credentials come from boto3's usual chain (AWS_* variables...).
    s3_endpoint_url: str = ""
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_region: str = ""
    # The demo LMS's own URL (empty: the tool's). Another host name for the same server puts
    # the LMS on another site, so the demo's iframe is cross-site like a real LMS's.
    demo_lms_url: str = ""
    # Grades (lti_tool/gradebook): the score of a "revise" decision out of 100 (empty: none,
    # gradingProgress Pending); delivery threads per job; tries before a score is marked failed;
    # first retry delay (doubling, with jitter); HTTP read timeout of one post; how long a
    # delivery claims its scores (a killed worker's scores are taken again after it).
    grade_revise_score: str = ""
    grade_delivery_threads: int = 8
    grade_max_attempts: int = 10
    grade_retry_base_seconds: int = 30
    grade_http_timeout_seconds: int = 30
    grade_delivery_lease_seconds: int = 120
    # Open Badges: days a badge stays valid after it is awarded (validUntil); 0: no expiry.
    badge_valid_days: int = 0
    # Assessment turnaround (lti_tool/business_days.py): the decision is due this many business
    # days after submission; holidays of the country (ISO code, optional subdivision) and the
    # extra closing days (comma-separated YYYY-MM-DD) are not business days.
    decision_business_days: int = 14
    holiday_country: str = ""
    holiday_subdivision: str = ""
    extra_holidays: str = ""
    # Educators of a course may read (never change) their learners' evidence; off by default:
    # they see states only.
    educators_see_evidence: bool = False
    # Sign-in to /assess/ and /admin/ (lti_tool/web/signin.py): an account (an e-mail) or a
    # client address is locked for signin_lockout_minutes after this many failed attempts
    # within that time.
    signin_max_failures_per_account: int = 5
    signin_max_failures_per_address: int = 50
    signin_lockout_minutes: int = 15
    # The API (lti_tool/web/api.py): a client address is refused (429) for api_lockout_minutes
    # after this many failed token authentications within that time.
    api_max_failures_per_address: int = 20
    api_lockout_minutes: int = 15
    # Single sign-on through an OpenID Connect provider: its issuer URL (or the URL of its
    # discovery document), and the client registered there; empty issuer: local passwords only.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid email profile"
    oidc_provider_name: str = "single sign-on"
    # Assessors (lti_tool/assessment): a review is due this many business days after it is
    # assigned; the assessor is reminded this many business days before that, and the case is
    # reassigned once it has passed. Admins see the cases whose decision is due within
    # assessment_at_risk_business_days (or overdue).
    assessment_review_business_days: int = 5
    assessment_reminder_business_days: int = 1
    assessment_at_risk_business_days: int = 3
    # E-mail (lti_tool/mail.py): the SMTP server (smtp://, smtp+starttls:// or smtps:// URL,
    # credentials in it) and the sender address. Empty smtp_url: no e-mail is sent; reminders
    # are recorded and shown in the portal only.
    smtp_url: str = ""
    mail_from: str = ""

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def instance_dir(self) -> Path:
        return Path(self.instance_path).resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.instance_dir / 'lti_tool.sqlite3'}"

    @property
    def public_url(self) -> str:
        return self.base_url.rstrip("/")

    @property
    def uses_https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def oidc_discovery_url(self) -> str:
        """The provider's discovery document: the issuer's well-known URL unless given whole."""
        if not self.oidc_issuer or "/.well-known/" in self.oidc_issuer:
            return self.oidc_issuer
        return self.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"

    def url(self, path: str) -> str:
        """Absolute public URL of a path of this tool."""
        return self.public_url + "/" + path.lstrip("/")

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)

    def check(self) -> None:
        """Refuse settings that would be unsafe or cannot work; say what to set."""
        if self.env not in ("development", "production"):
            raise SettingsError(
                f"LTI_TOOL_ENV must be 'development' or 'production', not {self.env!r}"
            )
        if not self.base_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"LTI_TOOL_BASE_URL must start with http:// or https://, not {self.base_url!r}"
            )
        if self.is_production:
            if self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32:
                raise SettingsError(
                    "production needs a secret: set LTI_TOOL_SECRET_KEY to a random value of "
                    "at least 32 characters (for example: python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))')"
                )
            if self.resolved_database_url.startswith("sqlite"):
                raise SettingsError(
                    "production needs PostgreSQL: set LTI_TOOL_DATABASE_URL, for example "
                    "postgresql+psycopg://user:password@host/dbname"
                )
            if self.demo:
                raise SettingsError("the demo LMS cannot run in production: unset LTI_TOOL_DEMO")
        if self.oidc_issuer:
            if not self.oidc_issuer.startswith(("https://", "http://")):
                raise SettingsError(
                    f"LTI_TOOL_OIDC_ISSUER must be an http(s) URL, not {self.oidc_issuer!r}"
                )
            if not self.oidc_client_id:
                raise SettingsError(
                    "single sign-on needs the client registered at the identity provider: set "
                    "LTI_TOOL_OIDC_CLIENT_ID (and LTI_TOOL_OIDC_CLIENT_SECRET)"
                )
        for name in ("signin_max_failures_per_account", "signin_max_failures_per_address",
                     "signin_lockout_minutes", "api_max_failures_per_address",
                     "api_lockout_minutes"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be at least 1")
        if self.assessment_review_business_days < 1:
            raise SettingsError("LTI_TOOL_ASSESSMENT_REVIEW_BUSINESS_DAYS must be at least 1")
        for name in ("assessment_reminder_business_days", "assessment_at_risk_business_days"):
            if getattr(self, name) < 0:
                raise SettingsError(f"LTI_TOOL_{name.upper()} cannot be negative")
        if self.smtp_url:
            from lti_tool.mail import parse_smtp_url

            parse_smtp_url(self.smtp_url)
            if "@" not in parseaddr(self.mail_from)[1]:
                raise SettingsError(
                    "e-mail needs a sender: set LTI_TOOL_MAIL_FROM to an address such as "
                    "'Micro-credentials <no-reply@tool.example.org>'"
                )
        from lti_tool.business_days import calendar_from_settings

        calendar_from_settings(self)  # a wrong holiday country or date is refused at start


def _coerce(raw: str, kind: type, name: str) -> object:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be true or false, not {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(
                f"{ENV_PREFIX}{name.upper()} must be a whole number, not {raw!r}"
            ) from None
    return raw


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from config/defaults.toml, then LTI_TOOL_* variables, then explicit overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    if DEFAULTS_FILE.exists():
        with DEFAULTS_FILE.open("rb") as handle:
            values.update(tomllib.load(handle))
    types = {f.name: f.type for f in fields(Settings) if f.name != "extra"}
    kinds = {"bool": bool, "int": int, "str": str}
    for name, type_name in types.items():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _coerce(raw, kinds.get(str(type_name), str), name)
    values.update(overrides)
    unknown = set(values) - set(types) - {"extra"}
    if unknown:
        raise SettingsError(f"unknown setting(s) in config: {', '.join(sorted(unknown))}")
    return Settings(**values)  # type: ignore[arg-type]
