"""The demo LMS's pages: a course to launch from, and its OIDC authorization endpoint."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from flask import Blueprint, abort, jsonify, render_template, request

from lti_tool.demo_lms import setup
from lti_tool.web import services

blueprint = Blueprint("demo", __name__, url_prefix="/demo")


@blueprint.route("/")
def index():
    settings = services().settings
    launches = []
    for demo_person in setup.PEOPLE:
        for link in setup.LINKS:
            query = urlencode(
                {
                    "iss": setup.issuer(settings),
                    "login_hint": demo_person.key,
                    "target_link_uri": settings.url("/lti/launch"),
                    "lti_message_hint": link["id"],
                    "client_id": setup.CLIENT_ID,
                    "lti_deployment_id": setup.DEPLOYMENT_ID,
                }
            )
            launches.append((demo_person, link, settings.url("/lti/login") + "?" + query))
    return render_template("demo/index.html", course=setup.COURSE, launches=launches)


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
    link = next((lk for lk in setup.LINKS if lk["id"] == params.get("lti_message_hint")), None)
    if link is None:
        problems.append("unknown lti_message_hint")
    if problems:
        abort(400, "The demo LMS refused the login: " + "; ".join(problems))
    signer = setup.signer(settings)
    claims = signer.launch_claims(
        nonce=params["nonce"],
        sub=f"demo-user-{demo_person.key}",
        roles=list(demo_person.roles),
        target_link_uri=settings.url("/lti/launch"),
        context=setup.COURSE,
        resource_link=link,
        person={
            "name": demo_person.name,
            "given_name": demo_person.given_name,
            "family_name": demo_person.family_name,
            "email": demo_person.email,
        },
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
