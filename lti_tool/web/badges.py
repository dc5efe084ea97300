"""Open Badges pages and documents: thin adapters over lti_tool.credentials.service.

Public (anyone, no sign-in; these URLs are a contract with verifiers and backpacks):
  /badges/<id>                the verification page (status checked live)
  /badges/<id>.json           the signed Open Badges 3.0 credential
  /badges/<id>.png            the badge image with the credential baked in
  /badges/<id>/ob2.json       the Open Badges 2.0 hosted assertion (and /ob2.png, baked)
  /badges/issuers/<key>.json  the issuer's Profile (and /ob2.json, /did.json)
  /badges/achievements/<key>/v<n>.json|.png|/ob2.json, /badges/stacks/<key>.json|.png|/ob2.json
  /badges/status/<n>.json     a status list credential (revocation)

Inside the LMS (the launch's identity, `lt` token on every link and form):
  /badges/mine                the learner's badges across courses, and the show-my-name choice
  /admin/badges               administrators: the platform's badges, revocation with a reason
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
    url_for,
)

from lti_tool.credentials import service as badges
from lti_tool.web import db, services
from lti_tool.web.accounts import admin_required, current_account
from lti_tool.web.csrf import check_admin_form
from lti_tool.web.identity import NOT_SIGNED_IN, TOKEN_PARAM, Identity, current_identity, token_of

blueprint = Blueprint("badges", __name__)

JSON_LD = "application/ld+json"
# Public documents may be read by verifiers running in any web page.
PUBLIC_HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"}
LIVE_HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"}


def _json(document: dict, headers: dict[str, str] = PUBLIC_HEADERS) -> Response:
    return Response(
        json.dumps(document, ensure_ascii=False, indent=2),
        mimetype=JSON_LD,
        headers=headers,
    )


def _not_found(message: str) -> Response:
    response = Response(
        json.dumps({"error": "Not Found", "message": message}),
        status=404,
        mimetype="application/json",
    )
    return response


def _json_or_404(build: Callable[[], dict], headers: dict[str, str] = PUBLIC_HEADERS) -> Response:
    """The document `build` makes, committed (an issuer's key or a status list signature made
    on first read must be the one every later read sees), or a JSON 404."""
    try:
        document = build()
    except LookupError as exc:
        return _not_found(str(exc).strip("'\"").capitalize() + ".")
    db().commit()
    return _json(document, headers)


def _png(data: bytes, filename: str | None = None) -> Response:
    headers = dict(PUBLIC_HEADERS)
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(data, mimetype="image/png", headers=headers)


def _credential_or_404(credential_id: str):
    try:
        return badges.get_credential(db(), credential_id)
    except LookupError:
        abort(404, "There is no badge at this address. Check the link you were given.")


# -- the public verification page and documents -----------------------------------------------
@blueprint.route("/badges/<credential_id>")
def page(credential_id: str):
    credential = _credential_or_404(credential_id)
    view = badges.view(db(), services().settings, credential)
    return render_template("badges/credential.html", badge=view), 200, {"Cache-Control": "no-cache"}


@blueprint.route("/badges/<credential_id>.json")
def credential_json(credential_id: str):
    try:
        credential = badges.get_credential(db(), credential_id)
    except LookupError:
        return _not_found("There is no badge with this id.")
    return _json(credential.document)


@blueprint.route("/badges/<credential_id>.png")
def credential_png(credential_id: str):
    credential = _credential_or_404(credential_id)
    return _png(badges.baked_ob3(credential), f"badge-{credential.id}.png")


@blueprint.route("/badges/<credential_id>/ob2.json")
def assertion_json(credential_id: str):
    try:
        credential = badges.get_credential(db(), credential_id)
    except LookupError:
        return _not_found("There is no badge with this id.")
    return _json(badges.ob2_assertion(db(), services().settings, credential), LIVE_HEADERS)


@blueprint.route("/badges/<credential_id>/ob2.png")
def assertion_png(credential_id: str):
    credential = _credential_or_404(credential_id)
    baked = badges.baked_ob2(db(), services().settings, credential)
    return _png(baked, f"badge-{credential.id}-ob2.png")


@blueprint.route("/badges/issuers/<key>.json")
def issuer_profile(key: str):
    return _json_or_404(lambda: badges.hosted_issuer_profile(db(), services().settings, key))


@blueprint.route("/badges/issuers/<key>/ob2.json")
def issuer_ob2(key: str):
    return _json_or_404(lambda: badges.ob2_issuer(db(), services().settings, key))


@blueprint.route("/badges/issuers/<key>/did.json")
def issuer_did(key: str):
    return _json_or_404(lambda: badges.issuer_did_document(db(), key))


@blueprint.route("/badges/achievements/<key>/v<int:number>.json")
def version_achievement(key: str, number: int):
    settings = services().settings

    def build() -> dict:
        version = badges.version_by_key(db(), key, number)
        return badges.hosted_achievement(badges.achievement_of_version(db(), settings, version))

    return _json_or_404(build)


@blueprint.route("/badges/achievements/<key>/v<int:number>/ob2.json")
def version_badge_class(key: str, number: int):
    settings = services().settings

    def build() -> dict:
        version = badges.version_by_key(db(), key, number)
        achievement = badges.achievement_of_version(db(), settings, version)
        return badges.ob2_badge_class(settings, version.micro_credential.issuer, achievement)

    return _json_or_404(build)


@blueprint.route("/badges/achievements/<key>/v<int:number>.png")
def version_image(key: str, number: int):
    try:
        version = badges.version_by_key(db(), key, number)
    except LookupError:
        abort(404, "There is no such micro-credential badge.")
    return _png(badges.achievement_image(version.title, badges.MICRO_CREDENTIAL))


@blueprint.route("/badges/stacks/<key>.json")
def stack_achievement(key: str):
    settings = services().settings
    return _json_or_404(
        lambda: badges.hosted_achievement(
            badges.achievement_of_stack(db(), settings, badges.stack_by_key(db(), key))
        )
    )


@blueprint.route("/badges/stacks/<key>/ob2.json")
def stack_badge_class(key: str):
    settings = services().settings

    def build() -> dict:
        stack = badges.stack_by_key(db(), key)
        achievement = badges.achievement_of_stack(db(), settings, stack)
        return badges.ob2_badge_class(settings, stack.issuer, achievement)

    return _json_or_404(build)


@blueprint.route("/badges/stacks/<key>.png")
def stack_image(key: str):
    try:
        stack = badges.stack_by_key(db(), key)
    except LookupError:
        abort(404, "There is no such stack badge.")
    return _png(badges.achievement_image(stack.credential_name, badges.STACK))


@blueprint.route("/badges/status/<int:list_id>.json")
def status_list(list_id: int):
    return _json_or_404(
        lambda: badges.status_list_credential(db(), services().settings, list_id), LIVE_HEADERS
    )


# -- the learner's badges ----------------------------------------------------------------------
def _learner() -> Identity:
    identity = current_identity()
    if identity is None:
        abort(401, NOT_SIGNED_IN)
    if identity.user_id is None:
        abort(403, "This launch did not say who you are, so the tool cannot list your badges.")
    return identity


@blueprint.route("/badges/mine")
def mine():
    """Everything the learner earned (as their platform knows them), across courses."""
    identity = _learner()
    session = db()
    settings = services().settings
    views = [
        badges.view(session, settings, c, for_owner=True)
        for c in badges.credentials_of_learner(session, identity.user_id)
    ]
    return render_template(
        "badges/mine.html",
        badges=views,
        show_name=badges.show_name(session, identity.user_id),
        token=token_of(identity),
        token_param=TOKEN_PARAM,
        saved=request.args.get("saved") == "1",
    )


@blueprint.route("/badges/mine/settings", methods=["POST"])
def mine_settings():
    identity = _learner()
    token = request.form.get(TOKEN_PARAM)
    if not token:
        abort(403, "Send this form from your badges page in the tool.")
    show = request.form.get("show_name") == "yes"
    session = db()
    badges.set_show_name(session, identity.user_id, show)
    session.commit()
    return redirect(url_for("badges.mine", **{TOKEN_PARAM: token, "saved": "1"}))


@blueprint.app_context_processor
def _badge_links() -> dict[str, Any]:
    def my_badges_url(identity: Identity | None) -> str | None:
        """The learner page's link to their badges (None without a known learner)."""
        if identity is None or identity.user_id is None:
            return None
        return url_for("badges.mine", **{TOKEN_PARAM: token_of(identity)})

    return {"my_badges_url": my_badges_url}


# -- administrators: revocation ----------------------------------------------------------------
def _admin_scope() -> int | None:
    """The platform whose badges this administrator manages (None: a tool administrator
    account, who manages all)."""
    account = current_account()
    if account is not None and account.is_admin:
        return None
    identity = current_identity()
    assert identity is not None  # admin_required let only these two through
    return identity.platform_id


@blueprint.route("/admin/badges")
@admin_required
def admin_list():
    session = db()
    settings = services().settings
    platform_id = _admin_scope()
    credentials = badges.credentials_of_platform(session, platform_id)
    return render_template(
        "badges/admin.html",
        badges=[badges.view(session, settings, c, for_owner=True) for c in credentials],
        notice=request.args.get("notice", ""),
    )


@blueprint.route("/admin/badges/<credential_id>/revoke", methods=["POST"])
@admin_required
def admin_revoke(credential_id: str):
    session = db()
    identity = current_identity()
    account = current_account()
    check_admin_form()
    credential = _credential_or_404(credential_id)
    platform_id = _admin_scope()
    if platform_id is not None and not badges.belongs_to_platform(session, credential, platform_id):
        abort(403, "This badge was issued to a learner of another platform.")
    reason = request.form.get("reason", "")
    by = account.email if account is not None else f"LMS administrator (user {identity.user_id})"
    try:
        badges.revoke(session, services().settings, credential.id, reason, by)
    except badges.BadgeError as exc:
        abort(400, str(exc))
    session.commit()
    token = request.form.get(TOKEN_PARAM)
    back = {TOKEN_PARAM: token} if token and account is None else {}
    return redirect(url_for("badges.admin_list", notice="revoked", **back))
