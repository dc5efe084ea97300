"""The demo LMS's pages: a course to launch from, and its OIDC authorization endpoint.

Like Canvas, the course page offers the tool LTI platform storage (the 1EdTech "LTI Client Side
postMessages" and "postMessage Storage" messages): its launch links carry `lti_storage_target`,
and the page answers `lti.capabilities`, `lti.put_data` and `lti.get_data` from the tool's
origin, so that a launch inside its iframe works where the browser blocks the tool's cookies.
`?storage=frame` answers from a named hidden frame instead of the page itself, and
`?storage=none` offers no storage at all, as Moodle 4.5 does.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request

from lti_tool.demo_lms import gradebook, setup, store
from lti_tool.demo_lms.platform import CLAIM
from lti_tool.demo_lms.returns import DeepLinkReturnError, accept_deep_link_response
from lti_tool.web import services

blueprint = Blueprint("demo", __name__, url_prefix="/demo")

DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"

# How the course page offers platform storage, and the lti_storage_target its links carry.
STORAGE_MODES = {"parent": "_parent", "frame": "demo-lms-storage", "none": None}


@blueprint.route("/")
def index():
    settings = services().settings
    home = setup.lms_url(settings)
    if home != settings.public_url and request.host != urlsplit(home).netloc:
        # The LMS has a site of its own, and the tool posts its storage messages to that origin
        # (the origin of its OIDC endpoint): serve the course page from there.
        query = request.query_string.decode()
        return redirect(setup.lms(settings, "/demo/") + ("?" + query if query else ""))
    mode = request.args.get("storage", "parent")
    if mode not in STORAGE_MODES:
        abort(400, f"storage must be one of {', '.join(STORAGE_MODES)}")
    storage_target = STORAGE_MODES[mode]

    def login_urls(login_hint: str, message_hint: str) -> tuple[str, str]:
        params = {
            "iss": setup.issuer(settings),
            "login_hint": login_hint,
            "target_link_uri": settings.url("/lti/launch"),
            "lti_message_hint": message_hint,
            "client_id": setup.CLIENT_ID,
            "lti_deployment_id": setup.DEPLOYMENT_ID,
        }
        login = settings.url("/lti/login") + "?"
        # Storage is offered to the frame the page holds; a new window (opened without an
        # opener) has no platform page to talk to, so its link offers none.
        in_frame = dict(params, lti_storage_target=storage_target) if storage_target else params
        return login + urlencode(in_frame), login + urlencode(params)

    links = setup.all_links(settings)
    builtin = {link["id"] for link in setup.LINKS}
    launches = []
    for demo_person in setup.PEOPLE:
        for link in links:
            frame_url, window_url = login_urls(demo_person.key, link["id"])
            launches.append((demo_person, link, frame_url, window_url, link["id"] in builtin))
    deep_links = [
        (demo_person, *login_urls(demo_person.key, setup.DEEP_LINK_HINT))
        for demo_person in setup.PEOPLE
        if setup.teaches(demo_person)
    ]
    storage = {
        "mode": mode,
        "target": storage_target,
        "frame": storage_target if mode == "frame" else None,
        "tool_origins": [setup.origin(settings.public_url)],
    }
    return render_template(
        "demo/index.html",
        course=setup.COURSE,
        launches=launches,
        deep_links=deep_links,
        added_links=[link for link in links if link["id"] not in builtin],
        storage=storage,
        modes=list(STORAGE_MODES),
        assessors=setup.ASSESSORS,
    )


@blueprint.route("/storage-frame")
def storage_frame():
    """The hidden frame that keeps platform storage when the page runs with ?storage=frame."""
    settings = services().settings
    storage = {
        "mode": "frame",
        "target": STORAGE_MODES["frame"],
        "frame": STORAGE_MODES["frame"],
        "tool_origins": [setup.origin(settings.public_url)],
    }
    return render_template("demo/storage_frame.html", storage=storage)


@blueprint.route("/jwks")
def jwks():
    return jsonify(setup.signer(services().settings).jwks())


@blueprint.route("/auth", methods=["GET", "POST"])
def auth():
    """OIDC authorization endpoint: checks the tool's request, posts back a signed id_token."""
    settings = services().settings
    params = request.values
    problems = []
    if params.get("client_id") != setup.CLIENT_ID:
        problems.append("unknown client_id")
    if params.get("redirect_uri") != settings.url("/lti/launch"):
        problems.append("redirect_uri is not the registered launch URL")
    if params.get("response_type") != "id_token" or params.get("scope") != "openid":
        problems.append("response_type must be id_token and scope openid")
    if not params.get("nonce") or not params.get("state"):
        problems.append("nonce and state are required")
    demo_person = setup.person(params.get("login_hint", ""))
    if demo_person is None:
        problems.append("unknown login_hint")
    hint = params.get("lti_message_hint", "")
    deep_linking = hint == setup.DEEP_LINK_HINT
    link = None if deep_linking else setup.find_link(settings, hint)
    if not deep_linking and link is None:
        problems.append("unknown lti_message_hint")
    if deep_linking and demo_person is not None and not setup.teaches(demo_person):
        problems.append("only the course's instructors can add content to it")
    if problems:
        abort(400, "The demo LMS refused the login: " + "; ".join(problems))
    signer = setup.signer(settings)
    extra: dict = {}
    if deep_linking:
        extra[DL_SETTINGS] = {
            "deep_link_return_url": setup.lms(settings, "/demo/deep-link-return"),
            "accept_types": ["ltiResourceLink"],
            "accept_presentation_document_targets": ["iframe", "window"],
            "accept_multiple": True,
            "accept_lineitem": True,
            "auto_create": True,
            "title": "Add micro-credentials",
            "text": f"Activities for {setup.COURSE['title']}",
            "data": store.new_deep_link_request(settings, demo_person.key),
        }
    else:
        # Like every LMS, the link's custom parameters (from its content item) go in the
        # custom claim of each launch, with the AGS endpoints of its gradebook column.
        extra[CLAIM + "custom"] = dict(link.get("custom") or {})
        extra[gradebook.AGS_CLAIM] = gradebook.ags_claim(settings, link)
    claims = signer.launch_claims(
        nonce=params["nonce"],
        sub=f"demo-user-{demo_person.key}",
        roles=list(demo_person.roles),
        target_link_uri=settings.url("/lti/launch"),
        context=setup.COURSE,
        resource_link={"id": link["id"], "title": link["title"]} if link else None,
        person={
            "name": demo_person.name,
            "given_name": demo_person.given_name,
            "family_name": demo_person.family_name,
            "email": demo_person.email,
        },
        message_type="LtiDeepLinkingRequest" if deep_linking else "LtiResourceLinkRequest",
        extra=extra,
    )
    claims["https://purl.imsglobal.org/spec/lti/claim/tool_platform"] = {
        "guid": "demo-lms",
        "name": "Demo LMS",
        "product_family_code": "demo-lms",
    }
    claims["iat"] = int(time.time())
    return render_template(
        "demo/form_post.html",
        action=params["redirect_uri"],
        fields={"id_token": signer.sign(claims), "state": params["state"]},
    )


@blueprint.route("/deep-link-return", methods=["POST"])
def deep_link_return():
    """Where the tool posts its LtiDeepLinkingResponse: verified as any LMS would (the tool's
    JWKS over HTTP, issuer, audience, nonce, deployment, data), then each item becomes a link."""
    settings = services().settings
    try:
        added = accept_deep_link_response(settings, request.form.get("JWT", ""))
    except DeepLinkReturnError as exc:
        page = render_template(
            "demo/deep_link_done.html", added=[], error=exc.message, reason=exc.reason
        )
        return page, 400
    return render_template(
        "demo/deep_link_done.html",
        added=added,
        error=None,
        reason=None,
        course_url=setup.lms(settings, "/demo/"),
    )


# -- the gradebook: AGS as the platform serves it, and a page that shows it ---------------------
def _ags_error(exc: gradebook.AgsError) -> Response:
    body = {"error": exc.error, "error_description": exc.message}
    return Response(json.dumps(body), status=exc.status, mimetype="application/json")


@blueprint.route("/token", methods=["POST"])
def token():
    """OAuth 2 token endpoint of the LTI Advantage services (client_credentials, JWT)."""
    try:
        return jsonify(gradebook.issue_token(services().settings, request.form.to_dict()))
    except gradebook.AgsError as exc:
        return _ags_error(exc)


@blueprint.route("/ags/lineitems", methods=["GET", "POST"])
def line_items():
    settings = services().settings
    try:
        gradebook.check_token(
            settings, request.headers.get("Authorization", ""), gradebook.LINEITEM_SCOPE
        )
        if request.method == "POST":
            item = gradebook.create_line_item(settings, request.get_json(silent=True))
            return Response(json.dumps(item), status=201, mimetype=gradebook.LINEITEM_MEDIA_TYPE)
        return Response(
            json.dumps(gradebook.line_items(settings)), mimetype=gradebook.CONTAINER_MEDIA_TYPE
        )
    except gradebook.AgsError as exc:
        return _ags_error(exc)


@blueprint.route("/ags/lineitems/<item_id>/scores", methods=["POST"])
def scores(item_id: str):
    settings = services().settings
    try:
        gradebook.check_token(
            settings, request.headers.get("Authorization", ""), gradebook.SCORE_SCOPE
        )
        gradebook.record_score(settings, item_id, request.get_json(silent=True, force=True))
    except gradebook.AgsError as exc:
        return _ags_error(exc)
    return Response(status=204)


@blueprint.route("/gradebook")
def gradebook_page():
    """The course's gradebook: each learner's score, progress and comment per column."""
    return render_template(
        "demo/gradebook.html", course=setup.COURSE, **gradebook.gradebook(services().settings)
    )
