"""The learner's workspace for one micro-credential: read it, write the draft (autosaved and
on demand), upload files and add links, check and submit, withdraw, read feedback and earlier
attempts; and the read-only view an educator may have of a learner's evidence.

Who may see what: a learner sees and changes only their own work (every id in a URL is
checked against the sign-in; another learner's is "not found"); educators and
administrators of the course see a learner's evidence only when LTI_TOOL_EDUCATORS_SEE_EVIDENCE
is on, read-only, for learners of their own course. Every form and link carries the `lt`
token, so the pages work inside an LMS iframe without cookies, and a POST without it is refused
(a cross-site form cannot know it).
"""

from __future__ import annotations

import logging
import unicodedata
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from sqlalchemy import select

from lti_tool.catalog import mapping
from lti_tool.catalog.models import MicroCredential
from lti_tool.db import transaction
from lti_tool.evidence import checks
from lti_tool.evidence import service as evidence
from lti_tool.evidence.models import Attempt, AttemptNotes
from lti_tool.evidence.storage import MB, UploadRefused, too_large
from lti_tool.progress.service import STATE_LABELS
from lti_tool.roster.models import COURSE_ROLES, LEARNER, Enrollment
from lti_tool.web import db, services
from lti_tool.web.identity import (
    NOT_SIGNED_IN,
    TOKEN_PARAM,
    Identity,
    current_identity,
    request_token,
    require_course_manager,
    token_of,
)
from lti_tool.web.uploads import IncomingFile, MalformedUpload, multipart_files, raw_chunks

blueprint = Blueprint("evidence", __name__)
log = logging.getLogger(__name__)

# The characters a filename* value keeps as they are (RFC 5987's attr-char).
RFC_5987 = "!#$&+-.^_`|~"
UPLOAD_STATUS = {"empty": 400, "unknown_type": 415, "type_not_allowed": 415, "too_large": 413}
NOTICES = {
    "saved": "Your draft is saved.",
    "uploaded": "The file was added.",
    "removed": "The file was removed.",
    "link-added": "The link was added. Check that reviewers can open it without signing in.",
    "link-removed": "The link was removed.",
    "withdrawn": "Your submission was withdrawn: it is a draft again, with everything in it.",
    "next": "Your next attempt is ready: everything of your last one is in it. Revise it "
    "following the feedback, then submit all your evidence again.",
}


# -- who is asking -----------------------------------------------------------------------------
def _learner(post: bool = False) -> Identity:
    """The signed-in learner (401 without a sign-in, 403 for other roles). A POST must carry
    the `lt` token (in the URL or the form)."""
    identity = current_identity()
    if identity is None:
        abort(401, NOT_SIGNED_IN)
    if identity.role != LEARNER or identity.user_id is None:
        abort(403, "Only learners collect evidence here. Educators follow their learners on "
                   "the course progress page.")  # fmt: skip
    if post and not request_token():
        abort(403, "Send this form from the tool's page.")
    return identity


def _credential(identity: Identity, key: str) -> int:
    """The micro-credential the learner may work on: one their course maps (a stack member or
    the launched link's), or one they already have a draft or attempt of. 404 otherwise."""
    session = db()
    mc_id = session.scalar(select(MicroCredential.id).where(MicroCredential.key == key))
    if mc_id is None:
        abort(404, "There is no such micro-credential.")
    assert identity.user_id is not None
    if evidence.has_draft(session, identity.user_id, mc_id):
        return mc_id  # the usual case (an autosave): one lookup
    if identity.course_id is not None and evidence.offered_in_course(
        session, identity.course_id, mc_id
    ):
        return mc_id
    if evidence.attempts_of(session, identity.user_id, mc_id):
        return mc_id
    abort(404, "This micro-credential is not part of your course.")


def _origin(identity: Identity) -> evidence.Origin:
    return evidence.Origin(identity.course_id, identity.resource_link_id)


def _wants_json() -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _back(identity: Identity, key: str, notice: str, anchor: str = "") -> Response:
    url = url_for("evidence.workspace", key=key, notice=notice,
                  **{TOKEN_PARAM: token_of(identity)})  # fmt: skip
    return redirect(url + (f"#{anchor}" if anchor else ""), code=303)


# -- the workspace -----------------------------------------------------------------------------
def _page(
    identity: Identity,
    key: str,
    mc_id: int,
    *,
    error: str | None = None,
    status: int = 200,
    typed: dict[str, Any] | None = None,
    readonly: bool = False,
    learner_id: int | None = None,
) -> tuple[str, int]:
    session = db()
    user_id = learner_id or identity.user_id
    assert user_id is not None
    page = evidence.workspace(session, user_id, mc_id)
    token = token_of(identity)
    check = evidence.submission_check(page.version, page.draft)
    if page.draft is None and page.latest is not None and not typed:
        typed = _as_typed(page.latest.snapshot or {})  # show what was submitted
    return (
        render_template(
            "evidence/workspace.html",
            identity=identity,
            key=key,
            page=page,
            version=page.version,
            draft=page.draft,
            check=check,
            typed=typed or {},
            error=error,
            notice=NOTICES.get(request.args.get("notice", "")),
            readonly=readonly or not page.can_edit,
            educator_view=readonly,
            learner_id=user_id,
            token=token,
            token_param=TOKEN_PARAM,
            labels=STATE_LABELS,
            part_titles=evidence.PART_TITLES,
            plan_years=evidence.PLAN_YEARS,
            max_upload_mb=services().storage.policy.max_bytes // MB,
            allowed_phrase=services().storage.policy.allowed_phrase(),
            word_count=evidence.word_count,
            word_note=evidence.word_note,
            home_url=url_for("pages.home", **{TOKEN_PARAM: token}),
        ),
        status,
    )


@blueprint.route("/evidence/<key>")
def workspace(key: str):
    """Everything the learner needs for one micro-credential, and their draft."""
    identity = _learner()
    return _page(identity, key, _credential(identity, key))


# -- saving the draft --------------------------------------------------------------------------
def _changes_from_form(form) -> evidence.DraftChanges:
    answers: dict[str, dict[str, str]] = {}
    plan: dict[str, str] = {}
    for name, value in form.items():
        if name.startswith("answer:"):
            # answer:<part kind>:<prompt key>; a name without both is a question that does not
            # exist, refused by the service as any other.
            kind, _, prompt = name.removeprefix("answer:").partition(":")
            answers.setdefault(kind, {})[prompt] = value.replace("\r\n", "\n")
        elif name.startswith("plan:"):
            plan[name.split(":", 1)[1]] = value
    collaboration = None
    if "collaborative" in form:
        chosen = form.get("collaborative")
        collaboration = {
            "collaborative": {"yes": True, "no": False}.get(chosen or ""),
            "with_whom": form.get("with_whom", "").replace("\r\n", "\n"),
            "how": form.get("how", "").replace("\r\n", "\n"),
        }
    return evidence.DraftChanges(
        answers=answers or None, plan=plan or None, collaboration=collaboration
    )


def _as_typed(snapshot: dict) -> dict[str, Any]:
    """An attempt's answers, plan and statement as the page's fields."""
    fields: dict[str, Any] = {
        f"answer:{kind}:{key}": text
        for kind, texts in (snapshot.get("answers") or {}).items()
        for key, text in texts.items()
    }
    fields.update({f"plan:{kind}": day for kind, day in (snapshot.get("plan") or {}).items()
                   if day})  # fmt: skip
    statement = snapshot.get("collaboration") or {}
    if statement.get("collaborative") is not None:
        fields["collaborative"] = "yes" if statement["collaborative"] else "no"
    fields["how"] = statement.get("how") or ""
    return fields


def _typed(form) -> dict[str, Any]:
    """What the learner sent, to show it again when the save was refused (nothing is lost)."""
    return {name: value for name, value in form.items() if name != TOKEN_PARAM}


@blueprint.route("/evidence/<key>/save", methods=["POST"])
def save(key: str):
    """Save the typed fields: from the Save button (a page back) or the autosave (JSON)."""
    identity = _learner(post=True)
    mc_id = _credential(identity, key)
    try:
        revision = int(request.form.get("revision", "0"))
    except ValueError:
        revision = -1
    try:
        with transaction(services().session_factory) as session:
            changes = _changes_from_form(request.form)
            draft = evidence.save_draft(session, identity.user_id, mc_id, revision, changes,
                                        _origin(identity))  # fmt: skip
            saved = {"revision": draft.revision, "saved_at": draft.updated_at.isoformat()}
    except evidence.EvidenceError as exc:
        if _wants_json():
            body: dict[str, Any] = {"error": type(exc).__name__, "message": exc.message}
            if isinstance(exc, evidence.DraftConflict):
                body["revision"] = exc.revision
            return body, exc.status
        typed = _typed(request.form)
        if isinstance(exc, evidence.DraftConflict):  # Save again: this version replaces
            typed["revision"] = exc.revision
        return _page(identity, key, mc_id, error=exc.message, status=exc.status, typed=typed)
    if _wants_json():
        return saved
    return _back(identity, key, "saved")


# -- files -------------------------------------------------------------------------------------
def _refused(identity: Identity, key: str, mc_id: int, message: str, status: int):
    if _wants_json():
        return {"error": "refused", "message": message}, status
    return _page(identity, key, mc_id, error=message, status=status)


@blueprint.route("/evidence/<key>/files/<requirement>", methods=["POST"])
def upload(key: str, requirement: str):
    """One or more files for an artifact, streamed from the request into storage: an HTML
    form's multipart body, or a raw body (a script) named by `?name=`."""
    identity = _learner(post=True)
    mc_id = _credential(identity, key)
    svc = services()
    policy = svc.storage.policy
    length = request.content_length
    # A declared body far above the limit is refused before a byte is read.
    if length is not None and length > policy.max_bytes + MB:
        return _refused(identity, key, mc_id, too_large(policy, length).message, 413)
    if request.mimetype == "multipart/form-data":
        files = multipart_files(request.stream, request.mimetype_params.get("boundary", ""))
        size_hint = None
    else:
        name = request.args.get("name", "") or "file"
        files = iter([IncomingFile("file", name, raw_chunks(request.stream, length))])
        size_hint = length
    added = 0
    try:
        for incoming in files:
            if not incoming.filename and added == 0:
                # an empty file input: the form was sent without choosing a file
                for _ in incoming.chunks:
                    pass
                continue
            evidence.add_file(
                svc.session_factory, svc.storage, identity.user_id, mc_id, requirement,
                incoming.filename, incoming.chunks, _origin(identity), size_hint=size_hint,
            )  # fmt: skip
            added += 1
    except UploadRefused as exc:
        message = exc.message
        if added:
            message = f"{added} file(s) were added; the next one was refused: {message}"
        return _refused(identity, key, mc_id, message, UPLOAD_STATUS.get(exc.code, 400))
    except MalformedUpload:
        return _refused(identity, key, mc_id, "The upload was incomplete or damaged: choose "
                        "the file and send it again.", 400)  # fmt: skip
    except evidence.EvidenceError as exc:
        return _refused(identity, key, mc_id, exc.message, exc.status)
    if not added:
        return _refused(identity, key, mc_id, "Choose a file to upload first.", 400)
    if _wants_json():
        return {"added": added}
    return _back(identity, key, "uploaded", f"artifact-{requirement}")


@blueprint.route("/evidence/<key>/files/<int:file_id>/remove", methods=["POST"])
def remove_file(key: str, file_id: int):
    identity = _learner(post=True)
    mc_id = _credential(identity, key)
    svc = services()
    try:
        evidence.remove_file(svc.session_factory, svc.storage, identity.user_id, mc_id, file_id)
    except evidence.EvidenceError as exc:
        abort(exc.status, exc.message)
    return _back(identity, key, "removed", "artifacts")


def _send(storage_key: str, name: str, media_type: str, size: int) -> Response:
    handle = services().storage.open(storage_key)

    def chunks():
        try:
            while chunk := handle.read(MB):
                yield chunk
        finally:
            handle.close()

    return Response(
        stream_with_context(chunks()),
        mimetype=media_type,
        headers={
            "Content-Length": str(size),
            "Content-Disposition": _attachment(name),
            "Cache-Control": "private, no-store",
        },
    )


def _attachment(name: str) -> str:
    """The Content-Disposition of a download under the learner's own file name. A header is
    latin-1 on the wire (a server answers 500 for anything else): a name that is not ASCII is
    sent as RFC 6266's filename* (UTF-8, percent-encoded), beside an ASCII fallback."""
    safe = name.replace('"', "").replace("\\", "")
    if safe.isascii():
        return f'attachment; filename="{safe}"'
    fallback = unicodedata.normalize("NFKD", safe).encode("ascii", "ignore").decode("ascii")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe=RFC_5987)}"


def _send_draft_file(user_id: int, mc_id: int, file_id: int) -> Response:
    """A file of this learner's draft (of another learner or micro-credential: 404)."""
    try:
        row = evidence.draft_file(db(), user_id, mc_id, file_id)
    except evidence.NotFound as exc:
        abort(404, exc.message)
    return _send(row.storage_key, row.original_name, row.media_type, row.size)


def _send_attempt_file(user_id: int, attempt_id: int, file_id: int) -> Response:
    """A file of this learner's attempt (of another learner's attempt: 404)."""
    try:
        found = evidence.attempt_of(db(), user_id, attempt_id)
        row = evidence.attempt_file(db(), found, file_id)
    except evidence.NotFound as exc:
        abort(404, exc.message)
    return _send(row.storage_key, row.original_name, row.media_type, row.size)


@blueprint.route("/evidence/<key>/files/<int:file_id>")
def download(key: str, file_id: int):
    """One of the learner's own draft files (another's: 404)."""
    identity = _learner()
    return _send_draft_file(identity.user_id, _credential(identity, key), file_id)


# -- links -------------------------------------------------------------------------------------
@blueprint.route("/evidence/<key>/links/<requirement>", methods=["POST"])
def add_link(key: str, requirement: str):
    identity = _learner(post=True)
    mc_id = _credential(identity, key)
    try:
        with transaction(services().session_factory) as session:
            evidence.add_link(session, identity.user_id, mc_id, requirement,
                              request.form.get("url", ""), request.form.get("title", ""),
                              _origin(identity))  # fmt: skip
    except evidence.EvidenceError as exc:
        return _page(identity, key, mc_id, error=exc.message, status=exc.status,
                     typed={f"url:{requirement}": request.form.get("url", "")})  # fmt: skip
    return _back(identity, key, "link-added", f"artifact-{requirement}")


@blueprint.route("/evidence/<key>/links/<requirement>/remove", methods=["POST"])
def remove_link(key: str, requirement: str):
    identity = _learner(post=True)
    mc_id = _credential(identity, key)
    try:
        with transaction(services().session_factory) as session:
            evidence.remove_link(session, identity.user_id, mc_id, requirement,
                                 request.form.get("url", ""))  # fmt: skip
    except evidence.EvidenceError as exc:
        abort(exc.status, exc.message)
    return _back(identity, key, "link-removed", f"artifact-{requirement}")


# -- checking, submitting, withdrawing, the next attempt ---------------------------------------
def _review(identity: Identity, key: str, mc_id: int, *, error: str | None = None,
            status: int = 200):  # fmt: skip
    session = db()
    page = evidence.workspace(session, identity.user_id, mc_id)
    if page.draft is None:
        return _back(identity, key, "")
    findings = checks.before_submitting(session, services().settings, page.draft, page.version)
    return (
        render_template(
            "evidence/submit.html",
            identity=identity,
            key=key,
            page=page,
            version=page.version,
            check=evidence.submission_check(page.version, page.draft),
            findings=findings,
            error=error,
            token=token_of(identity),
            token_param=TOKEN_PARAM,
            part_titles=evidence.PART_TITLES,
        ),
        status,
    )


@blueprint.route("/evidence/<key>/submit", methods=["GET"])
def review(key: str):
    """The submission check (what is missing, per part), the confidentiality and similarity
    findings, and the Submit button."""
    identity = _learner()
    return _review(identity, key, _credential(identity, key))


@blueprint.route("/evidence/<key>/submit", methods=["POST"])
def submit(key: str):
    identity = _learner(post=True)
    mc_id = _credential(identity, key)
    svc = services()
    try:
        with transaction(svc.session_factory) as session:
            attempt = evidence.submit(session, svc.settings, identity.user_id, mc_id,
                                      _origin(identity))  # fmt: skip
            attempt_id = attempt.id
    except evidence.Incomplete as exc:
        return _review(identity, key, mc_id, error=exc.message, status=400)
    except evidence.EvidenceError as exc:
        abort(exc.status, exc.message)
    url = url_for("evidence.attempt", attempt_id=attempt_id, submitted=1,
                  **{TOKEN_PARAM: token_of(identity)})  # fmt: skip
    return redirect(url, code=303)


@blueprint.route("/evidence/attempts/<int:attempt_id>/withdraw", methods=["POST"])
def withdraw(attempt_id: int):
    identity = _learner(post=True)
    try:
        with transaction(services().session_factory) as session:
            evidence.withdraw(session, identity.user_id, attempt_id)
            key = session.scalar(
                select(MicroCredential.key)
                .join(Attempt, Attempt.micro_credential_id == MicroCredential.id)
                .where(Attempt.id == attempt_id)
            )
    except evidence.EvidenceError as exc:
        abort(exc.status, exc.message)
    return _back(identity, key, "withdrawn")


@blueprint.route("/evidence/<key>/next", methods=["POST"])
def next_attempt(key: str):
    identity = _learner(post=True)
    mc_id = _credential(identity, key)
    try:
        with transaction(services().session_factory) as session:
            evidence.start_next_attempt(session, identity.user_id, mc_id, _origin(identity))
    except evidence.EvidenceError as exc:
        abort(exc.status, exc.message)
    return _back(identity, key, "next")


# -- attempts ----------------------------------------------------------------------------------
def _attempt_page(identity: Identity, attempt: Attempt, *, educator_view: bool = False):
    session = db()
    version = evidence.catalog.get_version(session, attempt.version_id)
    key = session.scalar(
        select(MicroCredential.key).where(MicroCredential.id == attempt.micro_credential_id)
    )
    notes = session.scalars(
        select(AttemptNotes).where(AttemptNotes.attempt_id == attempt.id)
    ).first()
    return render_template(
        "evidence/attempt.html",
        identity=identity,
        attempt=attempt,
        version=version,
        key=key,
        notes=notes,
        educator_view=educator_view,
        just_submitted=bool(request.args.get("submitted")),
        token=token_of(identity),
        token_param=TOKEN_PARAM,
        part_titles=evidence.PART_TITLES,
        labels=STATE_LABELS,
    )


@blueprint.route("/evidence/attempts/<int:attempt_id>")
def attempt(attempt_id: int):
    """One of the learner's own attempts, as submitted, with its status and feedback."""
    identity = _learner()
    try:
        found = evidence.attempt_of(db(), identity.user_id, attempt_id)
    except evidence.NotFound as exc:
        abort(404, exc.message)
    return _attempt_page(identity, found)


@blueprint.route("/evidence/attempts/<int:attempt_id>/files/<int:file_id>")
def attempt_download(attempt_id: int, file_id: int):
    return _send_attempt_file(_learner().user_id, attempt_id, file_id)


# -- the educator's read-only view -------------------------------------------------------------
def _educator_of(user_id: int) -> Identity:
    """An educator or administrator of a course the learner is enrolled in, when the tool
    lets educators read evidence at all."""
    identity = require_course_manager(
        current_identity(), "Only the course's educators can see this."
    )
    if not services().settings.educators_see_evidence:
        abort(403, "Educators see their learners' progress, not their evidence: the tool is "
                   "set so that only the learner and the assessors see it.")  # fmt: skip
    enrolled = db().scalar(
        select(Enrollment.id).where(
            Enrollment.user_id == user_id, Enrollment.course_id == identity.course_id
        )
    )
    if enrolled is None:
        abort(404, "This learner is not in your course.")
    return identity


@blueprint.route("/course/learners/<int:user_id>/evidence/<key>")
def learner_evidence(user_id: int, key: str):
    """A learner's draft and attempts, read-only, for an educator of their course."""
    identity = _educator_of(user_id)
    mc_id = db().scalar(select(MicroCredential.id).where(MicroCredential.key == key))
    if mc_id is None:
        abort(404, "There is no such micro-credential.")
    return _page(identity, key, mc_id, readonly=True, learner_id=user_id)


@blueprint.route("/course/learners/<int:user_id>/attempts/<int:attempt_id>")
def learner_attempt(user_id: int, attempt_id: int):
    identity = _educator_of(user_id)
    try:
        found = evidence.attempt_of(db(), user_id, attempt_id)
    except evidence.NotFound as exc:
        abort(404, exc.message)
    return _attempt_page(identity, found, educator_view=True)


@blueprint.route("/course/learners/<int:user_id>/evidence/<key>/files/<int:file_id>")
def learner_draft_download(user_id: int, key: str, file_id: int):
    """A file of a learner's draft, for an educator who may read their evidence."""
    _educator_of(user_id)
    mc_id = db().scalar(select(MicroCredential.id).where(MicroCredential.key == key))
    return _send_draft_file(user_id, mc_id or 0, file_id)


@blueprint.route("/course/learners/<int:user_id>/attempts/<int:attempt_id>/files/<int:file_id>")
def learner_attempt_download(user_id: int, attempt_id: int, file_id: int):
    """A file of a learner's attempt, for an educator who may read their evidence."""
    _educator_of(user_id)
    return _send_attempt_file(user_id, attempt_id, file_id)


@blueprint.app_context_processor
def _evidence_links() -> dict:
    def evidence_url(identity: Identity | None, key: str) -> str | None:
        """The learner's workspace link for a micro-credential (None for anyone else)."""
        if identity is None or identity.role != LEARNER or identity.user_id is None:
            return None
        return url_for("evidence.workspace", key=key, **{TOKEN_PARAM: token_of(identity)})

    def learner_evidence_url(identity: Identity | None, user_id: int, key: str) -> str | None:
        """The educator's read-only link to a learner's evidence, when the setting allows."""
        if (
            identity is None
            or identity.role not in COURSE_ROLES
            or not services().settings.educators_see_evidence
        ):
            return None
        return url_for("evidence.learner_evidence", user_id=user_id, key=key,
                       **{TOKEN_PARAM: token_of(identity)})  # fmt: skip

    def launched_workspace(identity: Identity | None) -> dict | None:
        """The micro-credential of the link the learner launched: {"title", "url"}."""
        if (
            identity is None
            or identity.role != LEARNER
            or identity.user_id is None
            or identity.resource_link_id is None
        ):
            return None
        key = mapping.link_credential_key(db(), identity.resource_link_id)
        version = evidence.catalog.current_version(db(), key) if key else None
        if version is None:
            return None
        return {"title": version.title, "url": evidence_url(identity, key)}

    return {
        "evidence_url": evidence_url,
        "learner_evidence_url": learner_evidence_url,
        "launched_workspace": launched_workspace,
    }
