"""The catalog in the course: the Deep Linking picker, and mapping a course to stacks.

Both are for the course's educators (and administrators) only. Every POST must carry the `lt`
identity token in its form: that token, signed by the tool at launch, is the proof of who is
asking and for which launch and course, so a cross-site form (which could ride on the session
cookie) cannot forge one, and a token can only change its own course. The Deep Linking return
URL, `data`, deployment and settings come from the launch the platform signed (kept in the
shared cache under the token's launch id), never from the form.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for

from lti_tool.catalog import mapping
from lti_tool.catalog.service import StackSummary, list_stacks, search
from lti_tool.lti.adapters import registration_for
from lti_tool.lti.deep_linking import (
    DEEP_LINKING_REQUEST,
    DeepLinkingError,
    DeepLinkingRequest,
    cached_request,
    content_items,
    response_jwt,
)
from lti_tool.lti.models import Platform
from lti_tool.roster.models import COURSE_ROLES
from lti_tool.web import db, services
from lti_tool.web.identity import (
    TOKEN_PARAM,
    Identity,
    current_identity,
    require_course_manager,
    token_of,
)

blueprint = Blueprint("catalog", __name__)
log = logging.getLogger(__name__)


# -- who is asking --------------------------------------------------------------------------------
def _posted_identity() -> Identity:
    """The identity of a POST: only from the `lt` token in its form, never the cookie alone."""
    if not request.form.get(TOKEN_PARAM):
        abort(403, "Send this form from the tool's own page: it carries your sign-in.")
    identity = current_identity()
    if identity is None:
        abort(403, "Your sign-in for this page is not valid or has expired. Start again from "
              "your course in the LMS.")  # fmt: skip
    return identity


def _educator(identity: Identity | None) -> Identity:
    return require_course_manager(
        identity, "Only the course's educators can choose its micro-credentials.", in_course=False
    )


# -- Deep Linking: the picker -----------------------------------------------------------------
def _selection(identity: Identity) -> DeepLinkingRequest:
    """The deep-linking request this identity's launch made (403 / 4xx when there is none)."""
    if identity.message_type != DEEP_LINKING_REQUEST:
        abort(403, "This page answers a content selection (deep linking) request from your "
              "LMS, and you did not open the tool that way.")  # fmt: skip
    try:
        selection = cached_request(services().cache, identity.launch_id)
    except DeepLinkingError as exc:
        abort(exc.status, exc.message)
    platform = db().get(Platform, identity.platform_id)
    if platform is None or (selection.issuer, selection.client_id) != (
        platform.issuer,
        platform.client_id,
    ):
        abort(403, "This content selection does not belong to your sign-in.")
    return selection


def _shown_stacks(query: str) -> list[StackSummary]:
    """The catalog's stacks, their members narrowed to those matching the search."""
    session = db()
    stacks = list_stacks(session)
    if not query.strip():
        return stacks
    matching = {found.key for found in search(session, query, limit=500)}
    narrowed = (
        replace(s, members=tuple(m for m in s.members if m.key in matching)) for s in stacks
    )
    return [s for s in narrowed if s.members]


def _picker(
    identity: Identity, selection: DeepLinkingRequest, error: str | None = None, status: int = 200
) -> Any:
    query = request.values.get("q", "")
    page = render_template(
        "catalog/pick.html",
        identity=identity,
        selection=selection,
        stacks=_shown_stacks(query),
        query=query,
        chosen_members=set(request.form.getlist("credential")),
        chosen_stacks=set(request.form.getlist("stack")),
        error=error,
        token=token_of(identity),
        token_param=TOKEN_PARAM,
    )
    return page, status


@blueprint.route("/catalog/pick")
def pick():
    """The catalog for a deep-linking request: search, stacks with their members, checkboxes."""
    identity = _educator(current_identity())
    selection = _selection(identity)
    return _picker(identity, selection)


@blueprint.route("/catalog/pick", methods=["POST"])
def pick_done():
    """Build the signed LtiDeepLinkingResponse for the picks; auto-post it to the LMS."""
    identity = _educator(_posted_identity())
    selection = _selection(identity)
    session = db()
    if request.form.get("action") == "cancel":
        picks: list[mapping.Pick] = []
        whole: list[str] = []
    else:
        whole = list(dict.fromkeys(request.form.getlist("stack")))
        members = []
        for value in request.form.getlist("credential"):
            stack_key, _, key = value.partition(":")
            members.append((stack_key, key))
        try:
            picks = mapping.resolve_picks(session, whole, members)
        except mapping.MappingError as exc:
            return _picker(identity, selection, f"That selection is not in the catalog: {exc}", 400)
        if not picks:
            return _picker(identity, selection, "Pick at least one micro-credential or stack.", 400)
        try:
            selection.check_selection(len(picks))
        except DeepLinkingError as exc:
            return _picker(identity, selection, exc.message, exc.status)
    if whole and identity.course_id is not None:
        for key in whole:
            mapping.map_course_to_stack(session, identity.course_id, key, "deep_linking")
    platform = session.get(Platform, identity.platform_id)
    assert platform is not None
    registration = registration_for(session, platform)
    items = content_items(
        picks, services().settings.url("/lti/launch"), with_line_items=selection.sends_line_items
    )
    token = response_jwt(registration, selection, items)
    session.commit()
    log.info(
        "deep linking response: %d items",
        len(items),
        extra={"issuer": platform.issuer, "client_id": platform.client_id},
    )
    return render_template(
        "catalog/deep_link_return.html",
        action=selection.return_url,
        jwt=token,
        picks=picks,
    )


# -- the course page: stacks mapped to the course -----------------------------------------------
@blueprint.route("/course/stacks", methods=["POST"])
def course_stacks():
    """Map the course of this sign-in to a stack of the catalog (action=add), or remove one."""
    identity = _educator(_posted_identity())
    if identity.course_id is None:
        abort(400, "This launch did not come from a course.")
    token = request.form[TOKEN_PARAM]
    key = request.form.get("stack", "").strip()
    action = request.form.get("action", "add")
    if action not in ("add", "remove") or not key:
        abort(400, "Choose a stack, and whether to add or remove it.")
    session = db()
    try:
        if action == "add":
            done = mapping.map_course_to_stack(session, identity.course_id, key, "educator")
        else:
            done = mapping.unmap_course_from_stack(session, identity.course_id, key)
    except mapping.MappingError:
        session.rollback()
        return _course_page(token, "unknown")
    session.commit()
    notice = {("add", True): "added", ("remove", True): "removed"}.get((action, done), "unchanged")
    return _course_page(token, notice)


def _course_page(token: str, notice: str) -> Any:
    target = url_for("pages.home", **{TOKEN_PARAM: token, "stacks": notice})
    return redirect(target + "#micro-credentials", code=303)


@blueprint.app_context_processor
def _catalog_box() -> dict:
    def catalog_box(identity: Identity | None) -> dict | None:
        """What the educator page's "Micro-credentials in this course" box shows."""
        if identity is None or identity.role not in COURSE_ROLES or identity.course_id is None:
            return None
        session = db()
        holdings = mapping.course_holdings(session, identity.course_id)
        mapped = {s.key for s in holdings.stacks}
        return {
            "holdings": holdings,
            "available": [s for s in list_stacks(session) if s.key not in mapped],
            "token": token_of(identity),
            "token_param": TOKEN_PARAM,
        }

    return {"catalog_box": catalog_box}
