"""The `lti-tool` command: serve, demo, worker, sweep, db, platform, keys, catalog, badge,
assessor, admin, account, api-token.

Every command exits non-zero with a one-line reason on bad input.
"""

from __future__ import annotations

import json
import os
import sys

import click
from sqlalchemy.exc import OperationalError, ProgrammingError

from lti_tool.db import transaction
from lti_tool.services import Services
from lti_tool.settings import CONFIG_DIR, SettingsError, load_settings

# tmpfs on Linux; absent elsewhere, then gunicorn picks /tmp. gunicorn makes its heartbeat file
# there with mkstemp (private, unpredictable name).
MEMORY_TMP_DIR = "/dev/shm"  # noqa: S108
KEEP_ALIVE_THREAD_WORKER = "lti_tool.gunicorn_worker.KeepAliveThreadWorker"


def _services(**overrides) -> Services:
    try:
        settings = load_settings(**overrides)
        settings.check()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    return Services(settings)


def _fail(message: str) -> None:
    raise click.ClickException(message)


class _ToolGroup(click.Group):
    """Turns a database that is unreachable or not migrated into one line, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (OperationalError, ProgrammingError) as exc:
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise click.ClickException(
                f"the database is not ready ({first}): check LTI_TOOL_DATABASE_URL and run "
                "'lti-tool db upgrade'"
            ) from None


@click.group(cls=_ToolGroup)
@click.version_option(package_name="lti-tool")
def main() -> None:
    """LTI 1.3 tool for micro-credentials."""


# -- serving ---------------------------------------------------------------------------------
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=0, type=int, help="gunicorn worker processes (0: dev server).")
@click.option(
    "--threads",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="threads per gunicorn worker (1: one request at a time per process).",
)
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the tool (gunicorn with --workers N, else the development server)."""
    services = _services()
    if services.settings.is_production and workers == 0:
        workers = 4
    _serve(services, host, port, workers, threads)


def _serve(services: Services, host: str, port: int, workers: int, threads: int = 4) -> None:
    from lti_tool.app import create_app

    if workers > 0:
        from gunicorn.app.base import BaseApplication

        class Gunicorn(BaseApplication):
            def load_config(self) -> None:
                self.cfg.set("bind", f"{host}:{port}")
                self.cfg.set("workers", workers)
                if threads > 1:
                    # A slow upload, a wait on the database or Redis, or a platform's key set
                    # being fetched holds one thread, not the whole process; an idle worker
                    # still answers a connection's next request without a thread hand-off.
                    self.cfg.set("worker_class", KEEP_ALIVE_THREAD_WORKER)
                    self.cfg.set("threads", threads)
                self.cfg.set("accesslog", "-" if not services.settings.is_production else None)
                if os.path.isdir(MEMORY_TMP_DIR):
                    # The workers' heartbeat touches a file on every loop; on a disk-backed
                    # /tmp that write can wait behind the journal (gunicorn's own advice).
                    self.cfg.set("worker_tmp_dir", MEMORY_TMP_DIR)

            def load(self):
                return create_app(services.settings)

        Gunicorn().run()
        return
    app = create_app(services.settings, services)
    app.run(host=host, port=port, debug=False, threaded=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Run the tool with its built-in demo LMS on the embedded defaults."""

    base = os.environ.get("LTI_TOOL_BASE_URL") or f"http://{host}:{port}"
    services = _services(demo=True, base_url=base)
    if services.settings.is_production:
        _fail("the demo cannot run in production mode")
    from lti_tool import migrate
    from lti_tool.demo_lms.setup import ensure_demo_assessors, ensure_demo_platform

    migrate.upgrade(services.engine)
    with transaction(services.session_factory) as session:
        ensure_demo_platform(session, services.settings)
    _import_catalog(services, sorted((CONFIG_DIR / "catalog").glob("*.yaml")), "Catalog: ")
    with transaction(services.session_factory) as session:
        ensure_demo_assessors(session)  # after the catalog: certified for all of it
    _assign_waiting(services)  # cases submitted before they existed (an older demo database)
    click.echo(f"Demo LMS: {services.settings.url('/demo/')}")
    _serve(services, host, port, 0)


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst: bool) -> None:
    """Run a job worker (needs LTI_TOOL_REDIS_URL)."""
    services = _services()
    if services.redis is None:
        _fail("a worker needs Redis: set LTI_TOOL_REDIS_URL (without it jobs run in-process)")
    from lti_tool.jobs import run_worker

    run_worker(services, burst=burst)


@main.command()
@click.option("--retry-failed", is_flag=True, help="Also retry deliveries that gave up.")
def sweep(retry_failed: bool) -> None:
    """Re-enqueue every delivery still pending (safe to run at any time)."""
    from lti_tool import jobs

    services = _services()
    if retry_failed:
        click.echo(f"made {jobs.retry_failed(services)} failed deliveries pending again")
    click.echo(f"re-enqueued {jobs.sweep(services)} pending deliveries")


# -- database ------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database migrations."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Migrate the database to the newest version (or REVISION)."""
    from lti_tool import migrate

    services = _services()
    try:
        migrate.upgrade(services.engine, revision)
    except OperationalError as exc:
        _fail(f"cannot reach the database: {str(exc.orig).splitlines()[0]}")
    click.echo(f"database at {revision}: {services.engine.url.render_as_string()}")


# -- platforms -----------------------------------------------------------------------------
@main.group()
def platform() -> None:
    """Platform (LMS) registrations."""


@platform.command("add")
@click.option("--issuer")
@click.option("--client-id", required=True)
@click.option("--deployment-id", "deployment_ids", multiple=True, required=True)
@click.option("--auth-login-url")
@click.option("--auth-token-url")
@click.option("--key-set-url")
@click.option("--audience")
@click.option("--name")
@click.option("--preset", type=click.Choice(["canvas", "moodle"]))
@click.option("--site", help="The LMS's URL (Moodle; self-hosted Canvas).")
def platform_add(preset, site, **given) -> None:
    """Register a platform (LMS) and its deployment ids."""
    from lti_tool.lti.platforms import PlatformSpec, RegistrationError, add_platform, apply_preset

    deployment_ids = list(given.pop("deployment_ids"))
    product = "other"
    try:
        if preset:
            given = apply_preset(preset, site, given)
            product = given.pop("product")
        elif site:
            _fail("--site goes with --preset")
        missing = [
            "--" + name.replace("_", "-")
            for name in ("issuer", "auth_login_url", "auth_token_url", "key_set_url")
            if not given.get(name)
        ]
        if missing:
            _fail(f"missing {', '.join(missing)} (or use --preset canvas|moodle)")
        spec = PlatformSpec(deployment_ids=deployment_ids, product=product, **given)
        services = _services()
        with transaction(services.session_factory) as session:
            added = add_platform(session, spec)
            summary = (
                f"added platform {added.id}: {added.name} ({added.issuer}, client id "
                f"{added.client_id}, deployments {', '.join(added.deployment_ids)})"
            )
    except RegistrationError as exc:
        _fail(str(exc))
    click.echo(summary)


@platform.command("list")
@click.option("--json", "as_json", is_flag=True)
def platform_list(as_json: bool) -> None:
    """List registered platforms."""
    from lti_tool.lti.platforms import list_platforms

    services = _services()
    with transaction(services.session_factory) as session:
        rows = [
            {
                "id": p.id,
                "name": p.name,
                "issuer": p.issuer,
                "client_id": p.client_id,
                "deployment_ids": p.deployment_ids,
                "auth_login_url": p.auth_login_url,
                "auth_token_url": p.auth_token_url,
                "key_set_url": p.key_set_url,
                "audience": p.audience,
                "product": p.product,
            }
            for p in list_platforms(session)
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no platforms registered")
    for row in rows:
        click.echo(
            f"{row['id']}\t{row['name']}\t{row['issuer']}\tclient {row['client_id']}\t"
            f"deployments {','.join(row['deployment_ids'])}"
        )


@platform.command("remove")
@click.argument("platform_id", type=int)
def platform_remove(platform_id: int) -> None:
    """Remove a platform registration (its users and courses go with it)."""
    from lti_tool.lti.platforms import RegistrationError, remove_platform

    services = _services()
    try:
        with transaction(services.session_factory) as session:
            removed = remove_platform(session, platform_id)
            name = removed.name
    except RegistrationError as exc:
        _fail(str(exc))
    click.echo(f"removed platform {platform_id} ({name})")


@platform.command("add-deployment")
@click.argument("platform_id", type=int)
@click.argument("deployment_id")
def platform_add_deployment(platform_id: int, deployment_id: str) -> None:
    """Accept one more deployment id of a registered platform (e.g. after Canvas installs it)."""
    from lti_tool.lti.models import Platform
    from lti_tool.lti.platforms import RegistrationError, add_deployment

    services = _services()
    try:
        with transaction(services.session_factory) as session:
            found = session.get(Platform, platform_id)
            if found is None:
                raise RegistrationError(f"no platform with id {platform_id}")
            if not deployment_id.strip():
                raise RegistrationError("the deployment id is empty")
            add_deployment(session, found, deployment_id.strip())
            name = found.name
    except RegistrationError as exc:
        _fail(str(exc))
    click.echo(f"platform {platform_id} ({name}) now accepts deployment {deployment_id.strip()}")


# -- keys ----------------------------------------------------------------------------------
@main.group()
def keys() -> None:
    """The tool's signing keys."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Make a new active signing key; the previous one stays published until retired."""
    from lti_tool.lti import keys as tool_keys

    services = _services()
    with transaction(services.session_factory) as session:
        tool_keys.active_key(session)
        key = tool_keys.rotate(session)
        kid = key.kid
    click.echo(
        f"new active key {kid}; the previous key stays published until 'lti-tool keys retire'"
    )


@keys.command("list")
def keys_list() -> None:
    """List the tool's keys and their state."""
    from sqlalchemy import select

    from lti_tool.lti.models import ToolKey

    services = _services()
    with transaction(services.session_factory) as session:
        for key in session.scalars(select(ToolKey).order_by(ToolKey.id)):
            state = "active" if key.active else ("retired" if key.retired_at else "published")
            click.echo(f"{key.kid}\t{state}\tcreated {key.created_at:%Y-%m-%d %H:%M}")


@keys.command("retire")
@click.argument("kid")
def keys_retire(kid: str) -> None:
    """Stop publishing a key that no longer signs."""
    from lti_tool.lti import keys as tool_keys

    services = _services()
    try:
        with transaction(services.session_factory) as session:
            tool_keys.retire(session, kid)
    except (LookupError, ValueError) as exc:
        _fail(str(exc).strip("'\""))
    click.echo(f"retired key {kid}")


# -- catalog -------------------------------------------------------------------------------
@main.group()
def catalog() -> None:
    """The micro-credential catalog (YAML files, format in config/catalog/README.md)."""


@catalog.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def catalog_import(files: tuple[str, ...]) -> None:
    """Import catalog FILES, all or nothing; importing the same file again changes nothing."""
    _import_catalog(_ready_services(), list(files), "")


def _import_catalog(services: Services, files: list, prefix: str) -> None:
    from lti_tool.catalog.fileformat import CatalogError
    from lti_tool.catalog.importer import import_files

    if not files:
        return
    try:
        with transaction(services.session_factory) as session:
            report = import_files(session, files)
    except CatalogError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        _fail(f"{exc}: nothing was imported")
    for line in report.lines():
        click.echo(line)
    click.echo(prefix + report.summary())


@catalog.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def catalog_export(file: str) -> None:
    """Write the catalog (newest version of each micro-credential) to FILE ("-": stdout)."""
    from pathlib import Path

    from sqlalchemy import func, select

    from lti_tool.catalog.importer import export_catalog
    from lti_tool.catalog.models import MicroCredential, Stack

    services = _ready_services()
    with transaction(services.session_factory) as session:
        text = export_catalog(session)
        stacks = session.scalar(select(func.count()).select_from(Stack))
        credentials = session.scalar(select(func.count()).select_from(MicroCredential))
    if file == "-":
        click.echo(text, nl=False)
        return
    target = Path(file)
    partial = target.with_name(target.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
    except OSError as exc:
        _fail(f"cannot write {file}: {exc.strerror or exc}")
    click.echo(
        f"exported {stacks} stack{'s' if stacks != 1 else ''} and {credentials} "
        f"micro-credential{'s' if credentials != 1 else ''} to {file}"
    )


# -- badges --------------------------------------------------------------------------------
@main.group()
def badge() -> None:
    """Issued Open Badges."""


@badge.command("revoke")
@click.argument("badge_id")
@click.option("--reason", required=True, help="Why (shown on the badge's public page).")
@click.option("--by", default="administrator (lti-tool)", show_default=True,
              help="Who revokes it (recorded).")  # fmt: skip
def badge_revoke(badge_id: str, reason: str, by: str) -> None:
    """Revoke a badge: its status list bit is set and its page shows it revoked."""
    from lti_tool.credentials import service as badges

    services = _ready_services()
    try:
        with transaction(services.session_factory) as session:
            badges.revoke(session, services.settings, badge_id.strip(), reason, by)
    except (LookupError, badges.BadgeError) as exc:
        _fail(str(exc).strip("'\""))
    click.echo(f"revoked badge {badge_id.strip()}: {' '.join(reason.split())}")


# -- assessors -----------------------------------------------------------------------------
@main.group()
def assessor() -> None:
    """The assessor pool: add, list, pause, resume."""


def _assign_waiting(services: Services) -> None:
    """Cases that waited may have someone now (run by a worker, or right here without Redis)."""
    from lti_tool import jobs

    jobs.enqueue(services, jobs.assign_waiting_cases)


@assessor.command("add")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--institution", required=True, help="For conflicts of interest.")
@click.option("--capacity", default=5, show_default=True, type=int, help="Cases per week.")
@click.option(
    "--certify",
    "certify_specs",
    multiple=True,
    required=True,
    help="A micro-credential key (every version) or KEY@N (version N only); repeatable.",
)
@click.option("--org", help="The assessment organisation (created if new).")
def assessor_add(email, name, institution, capacity, certify_specs, org) -> None:
    """Add an assessor (and their account, if the e-mail has none yet)."""
    from lti_tool.assessment.assessors import AssessorError, add_assessor

    services = _ready_services()
    try:
        with transaction(services.session_factory) as session:
            added = add_assessor(
                session, email, name, institution, capacity, list(certify_specs), org
            )
            summary = (
                f"added assessor {added.account.email} ({added.institution}, {capacity} cases "
                f"a week), certified for {', '.join(certify_specs)}"
            )
    except AssessorError as exc:
        _fail(str(exc))
    click.echo(summary)
    _assign_waiting(services)


@assessor.command("list")
@click.option("--json", "as_json", is_flag=True)
def assessor_list(as_json: bool) -> None:
    """List assessors, their certifications and workload."""
    from lti_tool.assessment.assessors import list_assessors

    services = _ready_services()
    with services.session_factory() as session:
        rows = [row.to_dict() for row in list_assessors(session)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no assessors")
    for row in rows:
        click.echo(
            f"{row['email']}\t{row['name']}\t{row['institution']}\t{row['status']}\t"
            f"{row['load_this_week']}/{row['weekly_capacity']} this week\t"
            f"{','.join(row['certifications'])}"
        )


def _set_paused(email: str, paused: bool) -> None:
    from lti_tool.assessment.assessors import AssessorError, set_paused

    services = _ready_services()
    try:
        with transaction(services.session_factory) as session:
            found = set_paused(session, email, paused)
            address = found.account.email
    except AssessorError as exc:
        _fail(str(exc))
    if paused:
        click.echo(f"paused {address}: no new cases; the open ones stay theirs")
    else:
        click.echo(f"resumed {address}")
        _assign_waiting(services)


@assessor.command("pause")
@click.argument("email")
def assessor_pause(email: str) -> None:
    """Give an assessor no new cases until resumed."""
    _set_paused(email, True)


@assessor.command("resume")
@click.argument("email")
def assessor_resume(email: str) -> None:
    """Give a paused assessor cases again."""
    _set_paused(email, False)


def _ready_services() -> Services:
    """Services whose database is reachable and migrated."""
    from lti_tool import migrate

    services = _services()
    try:
        current = migrate.is_current(services.engine)
    except OperationalError as exc:
        _fail(f"cannot reach the database: {str(exc.orig).splitlines()[0]}")
    if not current:
        _fail("the database is not at the newest migration: run 'lti-tool db upgrade' first")
    return services


def run() -> None:  # pragma: no cover - console entry point
    main(prog_name="lti-tool")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


# -- accounts and API tokens -----------------------------------------------------------------
def _password_from(stdin: bool) -> str:
    """The password: one line of standard input, or typed twice at a hidden prompt."""
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            _fail("no password on standard input")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@main.group()
def admin() -> None:
    """The tool's administrators (accounts that open /admin/)."""


@admin.command("add")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--password-stdin", is_flag=True, help="Read a local password from stdin.")
def admin_add(email: str, name: str, password_stdin: bool) -> None:
    """Create an administrator account (single sign-on only unless a password is given)."""
    from lti_tool.accounts.service import AccountError, add_account

    password = _password_from(True) if password_stdin else None
    services = _ready_services()
    try:
        with transaction(services.session_factory) as session:
            account = add_account(session, email, name, is_admin=True, password=password)
            summary = f"added administrator {account.id}: {account.name} <{account.email}>"
    except AccountError as exc:
        _fail(str(exc))
    click.echo(summary)
    if password is None:
        click.echo(
            "no local password: sign in through single sign-on, or set one with "
            f"'lti-tool account set-password {account.email}'"
        )


@main.group()
def account() -> None:
    """Assessor and administrator accounts."""


@account.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
def account_set_password(email: str, password_stdin: bool) -> None:
    """Set (or reset) the local password of the account with this e-mail."""
    from lti_tool.accounts.service import AccountError, set_password

    services = _ready_services()
    password = _password_from(password_stdin or not sys.stdin.isatty())
    try:
        with transaction(services.session_factory) as session:
            changed = set_password(session, email, password).email
    except AccountError as exc:
        _fail(str(exc))
    click.echo(f"password set for {changed}")


@account.command("disable")
@click.argument("email")
def account_disable(email: str) -> None:
    """Stop an account from signing in (its open sessions end at their next request)."""
    _set_active(email, False)


@account.command("enable")
@click.argument("email")
def account_enable(email: str) -> None:
    """Let a disabled account sign in again."""
    _set_active(email, True)


def _set_active(email: str, active: bool) -> None:
    from lti_tool.accounts.service import AccountError, set_active

    services = _ready_services()
    try:
        with transaction(services.session_factory) as session:
            changed = set_active(session, email, active).email
    except AccountError as exc:
        _fail(str(exc))
    click.echo(f"{changed} {'enabled' if active else 'disabled'}")


@main.group("api-token")
def api_token() -> None:
    """Bearer tokens of assessment organisations for /api/v1."""


@api_token.command("create")
@click.option("--org", "organisation", required=True, help="Created if it does not exist.")
@click.option("--label", default="", help="What the token is for (shown by 'list').")
def api_token_create(organisation: str, label: str) -> None:
    """Create a token and print it once: only a hash of it is kept."""
    from lti_tool.accounts.service import AccountError, create_api_token

    services = _ready_services()
    try:
        with transaction(services.session_factory) as session:
            issued = create_api_token(session, organisation, label)
            token_id, org_name = issued.token.id, issued.token.organisation.name
    except AccountError as exc:
        _fail(str(exc))
    click.echo(issued.plaintext)
    click.echo(
        f"token {token_id} for {org_name}: copy it now, it cannot be shown again", err=True
    )


@api_token.command("list")
@click.option("--json", "as_json", is_flag=True)
def api_token_list(as_json: bool) -> None:
    """List tokens (never their secrets)."""
    from lti_tool.accounts.service import list_api_tokens

    services = _ready_services()
    with transaction(services.session_factory) as session:
        rows = [
            {
                "id": token.id,
                "organisation": token.organisation.name,
                "label": token.label,
                "created_at": token.created_at.isoformat(),
                "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
                "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
            }
            for token in list_api_tokens(session)
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = f"revoked {row['revoked_at'][:16]}" if row["revoked_at"] else "active"
        used = f"last used {row['last_used_at'][:16]}" if row["last_used_at"] else "never used"
        click.echo(f"{row['id']}\t{row['organisation']}\t{state}\t{used}\t{row['label']}")


@api_token.command("revoke")
@click.argument("token_id", type=int)
def api_token_revoke(token_id: int) -> None:
    """Revoke a token: requests with it are refused from now on."""
    from lti_tool.accounts.service import AccountError, revoke_api_token

    services = _ready_services()
    try:
        with transaction(services.session_factory) as session:
            name = revoke_api_token(session, token_id).organisation.name
    except AccountError as exc:
        _fail(str(exc))
    click.echo(f"revoked token {token_id} of {name}")
