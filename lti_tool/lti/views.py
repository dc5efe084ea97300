"""HTTP endpoints of the LMS edge (contract): login, launch, JWKS, Canvas configuration."""

from __future__ import annotations

import functools
import logging
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, jsonify, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from lti_tool import jobs
from lti_tool.catalog import mapping
from lti_tool.db import transaction
from lti_tool.lti import keys
from lti_tool.lti.adapters import DatabaseToolConf
from lti_tool.lti.canvas import canvas_configuration
from lti_tool.lti.claims import client_id_of, visit_from_claims, visit_names
from lti_tool.lti.deep_linking import (
    DEEP_LINKING_REQUEST,
    LinkCredentialClaims,
    link_credential_claims,
)
from lti_tool.lti.errors import LaunchRefused
from lti_tool.lti.launch import (
    CLAIM,
    LOGIN_STATE_TTL,
    NeedsPlatformStorage,
    start_login,
    state_key,
    validate_launch,
)
from lti_tool.lti.platforms import RegistrationError, find_platform
from lti_tool.lti.registration import register_platform
from lti_tool.roster.models import COURSE_ROLES
from lti_tool.roster.recent import recall_visit, remember_visit, visit_keys
from lti_tool.roster.service import RecordedVisit, record_visit, unchanged_visit
from lti_tool.web import db, services
from lti_tool.web.identity import Identity, sign_in

blueprint = Blueprint("lti", __name__)
log = logging.getLogger(__name__)

# Launches of a link still waiting for its line item ask for it at most this often (seconds):
# a MOOC's learners launching while the platform fails must not queue a job each.
LINE_ITEM_ASK_INTERVAL = 60


def launch_url() -> str:
    return services().settings.url("/lti/launch")


def _params() -> dict[str, str]:
    source = request.form if request.method == "POST" else request.args
    return {key: value for key, value in source.items()}


@blueprint.route("/lti/login", methods=["GET", "POST"])
def login():
    svc = services()
    params = _params()
    # Behind a TLS-terminating proxy the request may look like http although browsers use
    # https: the public URL decides, as for the session cookie, or the state cookie is not
    # SameSite=None; Secure and an iframe launch loses it.
    decision, response = start_login(
        DatabaseToolConf(svc.session_factory),
        svc.cache,
        launch_url(),
        params,
        is_secure=svc.settings.uses_https or request.is_secure,
    )
    # Debug only: refused launches are logged as warnings and accepted ones are recorded;
    # a line per login would be one more write per launch for a MOOC's thousands.
    log.debug(
        "login started", extra={"issuer": params.get("iss"), "client_id": params.get("client_id")}
    )
    if decision.storage_target:
        # The platform offers storage (postMessage): keep the state there too, so the launch
        # can be tied to this browser even where the tool's cookie is blocked.
        page = render_template(
            "lti/platform_storage_login.html",
            target=decision.storage_target,
            origin=decision.auth_origin,
            state=decision.state,
            secret=decision.binding_secret,
            redirect_url=decision.redirect_url,
        )
        response.set_data(page)
        response.status_code = 200
        response.headers.pop("Location", None)
        response.mimetype = "text/html"
    return response


@blueprint.route("/lti/launch", methods=["POST"])
def launch():
    svc = services()
    form = _params()
    tool_conf = DatabaseToolConf(svc.session_factory)
    try:
        message = validate_launch(
            form,
            dict(request.cookies),
            svc.settings.uses_https,
            tool_conf,
            svc.cache,
            svc.settings.clock_skew_seconds,
            http=svc.settings.extra.get("http"),
            storage_secret=form.get("lti_storage_secret"),
            read_with_state=functools.partial(_recent_visit_keys, tool_conf),
        )
    except NeedsPlatformStorage as pending:
        # Put the state back, for the second leg, and let the page fetch the secret from
        # the platform's storage and post the launch again with it.
        svc.cache.set_many(
            [(state_key(pending.state), pending.record, LOGIN_STATE_TTL), *pending.restore]
        )
        return render_template(
            "lti/platform_storage_launch.html",
            target=pending.record["storage_target"],
            origin=_origin_of(tool_conf, pending.record),
            state=pending.state,
            fields=form,
            retry_url=_retry_url(pending.record.get("login_params")),
        )
    except LaunchRefused as refused:
        refused.retry_url = refused.retry_url or _retry_url(getattr(refused, "retry_params", None))
        raise
    body = message.get_launch_data()
    platform = tool_conf.platform
    assert platform is not None
    visit = visit_from_claims(platform.id, body)
    message_type = body.get(CLAIM + "message_type", "")
    if message_type == DEEP_LINKING_REQUEST and visit.role not in COURSE_ROLES:
        raise LaunchRefused(
            "deep_linking_not_allowed",
            "Only the course's educators can add micro-credentials to the course. Ask your "
            "instructor if an activity is missing.",
            403,
        )
    credential = link_credential_claims(body)
    mapped = None
    # A repeat launch with nothing new (and no link to map) is one cache read when it was
    # recorded in the last minute, else one database read; neither opens a transaction.
    recall = recall_visit(svc.cache, visit, message.read) if credential is None else None
    recorded = recall.recorded if recall is not None else None
    try:
        if recorded is None and credential is None:
            recorded = unchanged_visit(svc.engine, visit)
        if recorded is None:
            with transaction(svc.session_factory) as session:
                recorded = record_visit(session, visit, known_changed=credential is None)
                if credential is not None and recorded.resource_link_id is not None:
                    mapped = _map_link(session, recorded, credential)
        if recall is not None and recall.recorded is None:
            remember_visit(svc.cache, recall, recorded)
    except IntegrityError as exc:
        # The platform was removed while this launch was under way (its registration may be
        # reused for a few seconds per process): refuse it as unregistered, never a 500.
        raise LaunchRefused(
            "unknown_platform",
            f"The platform {platform.issuer} (client id {platform.client_id}) is no longer "
            "registered with this tool.",
            403,
        ) from exc
    if mapped is not None and mapped.line_item_needed:
        _create_line_items(mapped.resource_link_id)
    token = sign_in(
        Identity(
            platform_id=platform.id,
            user_id=recorded.user_id,
            course_id=recorded.course_id,
            resource_link_id=recorded.resource_link_id,
            role=recorded.role,
            launch_id=message.get_launch_id(),
            message_type=message_type,
        )
    )
    # A content selection (deep linking) request opens the catalog picker; the rest, home.
    page = "catalog.pick" if message_type == DEEP_LINKING_REQUEST else "pages.home"
    response = redirect(url_for(page, lt=token), code=303)
    # The login's state cookie has done its work: drop it, so cookies do not pile up in the
    # browser (and in every later request) for their five minutes.
    secure = svc.settings.uses_https
    response.delete_cookie(
        "lti1p3-" + form["state"],
        path="/",
        secure=secure,
        httponly=True,
        samesite="None" if secure else None,
        partitioned=secure,
    )
    return response


def _recent_visit_keys(tool_conf: DatabaseToolConf, body: dict) -> list[str]:
    """The keys recall_visit will read, named from the launch's claims before they are verified
    (so that they are read with the state): none for a platform this process has not found
    lately. recall_visit uses what was read only for the keys of the verified visit."""
    names = visit_names(body)
    iss, client_id = body.get("iss"), client_id_of(body)
    if names is None or not isinstance(iss, str) or client_id is None:
        return []
    platform = tool_conf.recently_found(iss, client_id)
    if platform is None:
        return []
    subject, context_id, link_id = names
    return visit_keys(platform.id, context_id, subject, link_id)


def _map_link(
    session, recorded: RecordedVisit, credential: LinkCredentialClaims
) -> mapping.LinkMapping | None:
    """Map the launched link to the micro-credential its custom claim names (and the course to
    its stack). An unknown key is logged, never a refused launch: the link still opens (map_link
    checks the key before it writes anything)."""
    assert recorded.resource_link_id is not None and recorded.course_id is not None
    try:
        return mapping.map_link(
            session,
            recorded.resource_link_id,
            recorded.course_id,
            credential.credential_key,
            credential.stack_key,
            has_line_item=credential.has_line_item,
            lineitems_url=credential.lineitems_url,
        )
    except mapping.MappingError as exc:
        log.warning("launch names an unknown micro-credential: %s", exc)
        return None


def _create_line_items(resource_link_id: int) -> None:
    """The launched link waits for its AGS line item (recorded in the launch's transaction):
    create it now (a job), unless a launch of the link asked within LINE_ITEM_ASK_INTERVAL.
    Never a failed launch: what fails stays pending for the sweep."""
    svc = services()
    try:
        key = f"line-items-asked:{resource_link_id}"
        if svc.cache.add(key, True, LINE_ITEM_ASK_INTERVAL):
            jobs.enqueue(svc, jobs.create_line_items)
    except Exception as exc:  # the queue unreachable, or the in-process job failed
        log.warning("line items not created after a launch (the sweep will): %s", exc)


def _retry_url(login_params: dict | None) -> str | None:
    """The login again, for a new window where the tool's cookies are first-party."""
    return url_for("lti.login") + "?" + urlencode(login_params) if login_params else None


def _origin_of(tool_conf: DatabaseToolConf, record: dict) -> str:
    with tool_conf.session_factory() as session:
        platform = find_platform(session, record["iss"], record["client_id"])
        url = urlsplit(platform.auth_login_url if platform else record["iss"])
    return f"{url.scheme}://{url.netloc}"


@blueprint.route("/lti/jwks")
@blueprint.route("/.well-known/jwks.json")
def jwks():
    session = db()
    body = keys.jwks(session)
    session.commit()
    response = jsonify(body)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@blueprint.route("/lti/canvas.json")
def canvas_json():
    return jsonify(canvas_configuration(services().settings))


@blueprint.route("/lti/register")
def register():
    """LTI Dynamic Registration: the LMS opens this with openid_configuration and a token."""
    svc = services()
    config_url = request.args.get("openid_configuration", "").strip()
    if not config_url:
        return render_template("lti/registered.html", registered=None, settings=svc.settings)
    try:
        registered = register_platform(
            svc.session_factory,
            svc.settings,
            config_url,
            request.args.get("registration_token") or None,
            http=svc.settings.extra.get("http"),
        )
    except RegistrationError as exc:
        status = getattr(exc, "status", 400)
        reason = getattr(exc, "reason", "registration_failed")
        log.warning(
            "dynamic registration failed: %s", exc, extra={"reason": reason, "status": status}
        )
        page = render_template(
            "error.html",
            title="The tool could not be registered",
            message=str(exc),
            reason=reason,
            status=status,
        )
        return page, status
    log.info(
        "dynamic registration: %s",
        registered.added,
        extra={"issuer": registered.issuer, "client_id": registered.client_id},
    )
    return render_template("lti/registered.html", registered=registered, settings=svc.settings)
