"""A learner's evidence: the draft they write, its files and links, the checks before
submitting, submission, withdrawal and the next attempt after "revise and resubmit".

Drafts belong to a learner (as their platform knows them) and a micro-credential, not to a
course: the same draft opens from any course that maps the micro-credential. Every function
checks that the learner owns what they name (another learner's file id is "not found").

Nothing a learner typed is lost by a failed write: a save is one conditional UPDATE on the
revision the page started from (refused, with DraftConflict, when another tab saved first),
and an upload is stored whole before its row is written (storage keeps nothing of a refused or
interrupted one), so the draft is always the last good state. Submission is one transaction:
the frozen attempt and its files, the outbox messages `assessment.requested` and
`grade.submitted`, the learner's progress and the version's freeze.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from lti_tool.business_days import decision_due
from lti_tool.catalog import service as catalog
from lti_tool.catalog.models import (
    ARTIFACTS,
    PART_KINDS,
    CourseStack,
    LinkCredential,
    MicroCredential,
    MicroCredentialVersion,
    Part,
    Prompt,
    StackMember,
)
from lti_tool.db import transaction, utcnow
from lti_tool.evidence import checks
from lti_tool.evidence.models import (
    SUBMITTED,
    WITHDRAWN,
    Attempt,
    AttemptFile,
    AttemptNotes,
    Draft,
    DraftFile,
)
from lti_tool.evidence.storage import Source, Storage, StoredFile
from lti_tool.outbox import service as outbox
from lti_tool.progress import models as progress_states
from lti_tool.progress.service import set_state, state_of
from lti_tool.roster.models import ResourceLink
from lti_tool.settings import Settings

log = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 50_000  # about 8,000 words: far above any prompt's range
MAX_TEXT_CHARS = 5_000  # collaboration statement fields
MAX_URL_CHARS = 2_000
# A target date outside these years is a typo (0202 for 2026): refused, not shown as a plan.
PLAN_YEARS = (2000, 2099)
MAX_TITLE_CHARS = 300
MAX_NAME_CHARS = 255
MAX_FILES_PER_REQUIREMENT = 20
MAX_LINKS_PER_REQUIREMENT = 20
PART_TITLES = {
    "overview": "Part 1: Overview questions",
    "artifacts": "Part 2: Artifacts",
    "reflection": "Part 3: Reflection",
}
SNAPSHOT_FORMAT = 1


# -- errors: each carries a message a learner understands --------------------------------------
class EvidenceError(ValueError):
    """A request we refuse; `message` says why, to the learner."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(EvidenceError):
    """No such draft, file or attempt of this learner (another learner's id included)."""

    status = 404


class NotEditable(EvidenceError):
    """The learner has no draft to change now (submitted, in review, earned)."""

    status = 409


class DraftConflict(EvidenceError):
    """The draft was saved from another tab or window since this page loaded."""

    status = 409

    def __init__(self, revision: int) -> None:
        super().__init__(
            "This draft was changed in another tab or window since you opened this page. "
            "Your text here is kept: copy what you want to keep, or save again to replace the "
            "other version with this one."
        )
        self.revision = revision


class Incomplete(EvidenceError):
    """Submission refused: required answers or artifacts are missing (see `check`)."""

    status = 400

    def __init__(self, check: SubmissionCheck) -> None:
        super().__init__("Some required parts are missing: complete them, then submit.")
        self.check = check


@dataclass(frozen=True)
class Origin:
    """The launch a learner works from (roster course and resource link ids): the draft
    remembers the latest, and an attempt is submitted from it (for the gradebook)."""

    course_id: int | None
    link_id: int | None = None


# -- reading -----------------------------------------------------------------------------------
def word_count(text: str) -> int:
    """Words as a reader counts them: runs of characters between spaces."""
    return len(text.split())


def credential_id(session: Session, key: str) -> int | None:
    return session.scalar(select(MicroCredential.id).where(MicroCredential.key == key))


def has_draft(session: Session, user_id: int, micro_credential_id: int) -> bool:
    return (
        session.scalar(
            select(Draft.id).where(
                Draft.user_id == user_id, Draft.micro_credential_id == micro_credential_id
            )
        )
        is not None
    )


def find_draft(
    session: Session, user_id: int, micro_credential_id: int, *, lock: bool = False
) -> Draft | None:
    statement = select(Draft).where(
        Draft.user_id == user_id, Draft.micro_credential_id == micro_credential_id
    )
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return session.scalars(statement).first()


def attempts_of(session: Session, user_id: int, micro_credential_id: int) -> list[Attempt]:
    """The learner's attempts for a micro-credential, newest first."""
    return list(
        session.scalars(
            select(Attempt)
            .where(Attempt.user_id == user_id, Attempt.micro_credential_id == micro_credential_id)
            .order_by(Attempt.number.desc())
        )
    )


def attempt_of(session: Session, user_id: int, attempt_id: int) -> Attempt:
    """One of the learner's own attempts; NotFound for anyone else's."""
    attempt = session.get(Attempt, attempt_id)
    if attempt is None or attempt.user_id != user_id:
        raise NotFound("There is no such submission of yours.")
    return attempt


@dataclass(frozen=True)
class Workspace:
    """What the learner's page of one micro-credential shows."""

    micro_credential_id: int
    version: MicroCredentialVersion
    state: str  # progress state (progress.models)
    draft: Draft | None
    attempts: list[Attempt]  # newest first

    @property
    def latest(self) -> Attempt | None:
        return self.attempts[0] if self.attempts else None

    @property
    def can_edit(self) -> bool:
        """A draft exists or may be started by writing (not while submitted or earned)."""
        if self.draft is not None:
            return True
        return self.state in (progress_states.NOT_STARTED, progress_states.DRAFT)

    @property
    def can_start_next(self) -> bool:
        return self.draft is None and self.state == progress_states.REVISE

    @property
    def withdrawable(self) -> Attempt | None:
        latest = self.latest
        return latest if latest is not None and latest.status == SUBMITTED else None

    @property
    def revision(self) -> int:
        return self.draft.revision if self.draft is not None else 0


def workspace(session: Session, user_id: int, micro_credential_id: int) -> Workspace:
    """The learner's draft, attempts and the version they work on (read only: looking at
    the page starts nothing)."""
    draft = find_draft(session, user_id, micro_credential_id)
    attempts = attempts_of(session, user_id, micro_credential_id)
    version = _version_for(session, user_id, micro_credential_id, draft, attempts)
    return Workspace(
        micro_credential_id=micro_credential_id,
        version=version,
        state=state_of(session, user_id, micro_credential_id),
        draft=draft,
        attempts=attempts,
    )


def _version_for(
    session: Session,
    user_id: int,
    micro_credential_id: int,
    draft: Draft | None,
    attempts: list[Attempt],
) -> MicroCredentialVersion:
    """The version the learner works on: their draft's, else their last attempt's (they keep
    what they started), else the newest."""
    version_id = draft.version_id if draft else (attempts[0].version_id if attempts else None)
    if version_id is not None:
        version = catalog.get_version(session, version_id)
        if version is not None:
            return version
    versions = catalog.current_versions(session, [micro_credential_id])
    if micro_credential_id not in versions:
        raise NotFound("This micro-credential is not in the catalog.")
    return versions[micro_credential_id]


# -- the draft ---------------------------------------------------------------------------------
def open_draft(
    session: Session,
    user_id: int,
    micro_credential_id: int,
    origin: Origin | None = None,
) -> Draft:
    """The learner's draft, created when they first write (progress: draft; the version is
    frozen so its prompts never change under them). After "revise and resubmit" the new draft
    is prefilled from the last attempt, files included. Raises NotEditable while an attempt is
    submitted or in review, and once earned."""
    draft = find_draft(session, user_id, micro_credential_id, lock=True)
    if draft is None:
        draft = _new_draft(session, user_id, micro_credential_id)
    if origin is not None and origin.course_id is not None and (
        (draft.course_id, draft.resource_link_id) != (origin.course_id, origin.link_id)
    ):
        draft.course_id, draft.resource_link_id = origin.course_id, origin.link_id
    return draft


def start_next_attempt(
    session: Session,
    user_id: int,
    micro_credential_id: int,
    origin: Origin | None = None,
) -> Draft:
    """After "revise and resubmit": a new draft prefilled from the last attempt."""
    if state_of(session, user_id, micro_credential_id) != progress_states.REVISE:
        existing = find_draft(session, user_id, micro_credential_id)
        if existing is not None:
            return existing
        raise NotEditable("A new attempt starts only after a “revise and resubmit” decision.")
    return open_draft(session, user_id, micro_credential_id, origin)


def _new_draft(session: Session, user_id: int, micro_credential_id: int) -> Draft:
    state = state_of(session, user_id, micro_credential_id)
    if state in (progress_states.SUBMITTED, progress_states.IN_REVIEW):
        raise NotEditable(
            "Your evidence is submitted: it cannot be changed while it waits for or is under "
            "review. Withdraw it first if an assessor has not started yet."
        )
    if state == progress_states.EARNED:
        raise NotEditable("You have earned this micro-credential: there is nothing to change.")
    attempts = attempts_of(session, user_id, micro_credential_id)
    last = attempts[0] if attempts and state == progress_states.REVISE else None
    version = _version_for(session, user_id, micro_credential_id, None, attempts)
    draft = _insert_draft(session, user_id, micro_credential_id, version.id, last)
    set_state(session, user_id, micro_credential_id, progress_states.DRAFT, version_id=version.id)
    catalog.mark_version_started(session, version.id)
    return draft


def _insert_draft(
    session: Session,
    user_id: int,
    micro_credential_id: int,
    version_id: int,
    prefill_from: Attempt | None,
) -> Draft:
    """INSERT ... ON CONFLICT DO NOTHING, so two first writes at once (two tabs) share one
    draft; the draft is prefilled (answers, links, statement, files) from `prefill_from`."""
    values: dict[str, Any] = {
        "user_id": user_id,
        "micro_credential_id": micro_credential_id,
        "version_id": version_id,
        "revision": 1,
        "answers": {},
        "links": {},
        "plan": {},
        "collaboration": {},
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }
    notes = _notes(session, prefill_from.id) if prefill_from is not None else None
    if prefill_from is not None:
        snapshot = prefill_from.snapshot or {}
        collaboration = dict(snapshot.get("collaboration") or {})
        collaboration["with_whom"] = notes.collaborators if notes else ""
        values.update(
            version_id=prefill_from.version_id,
            previous_attempt_id=prefill_from.id,
            answers=dict(snapshot.get("answers") or {}),
            links=dict(snapshot.get("links") or {}),
            plan=dict(snapshot.get("plan") or {}),
            collaboration=collaboration,
            course_id=prefill_from.course_id,
            resource_link_id=prefill_from.resource_link_id,
        )
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    added = session.execute(
        insert(Draft)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["user_id", "micro_credential_id"])
        .returning(Draft.id)
    ).first()
    draft = find_draft(session, user_id, micro_credential_id, lock=True)
    assert draft is not None
    if added is not None and prefill_from is not None:
        documents = notes.documents if notes else {}
        for file in prefill_from.files:
            draft.files.append(
                DraftFile(
                    **_file_fields(file, with_key=True),
                    document=documents.get(file.storage_key),
                )
            )
        session.flush()
    return draft


FILE_FIELDS = ("requirement_key", "position", "original_name", "sha256", "size", "media_type")


def _file_fields(file: DraftFile | AttemptFile, *, with_key: bool) -> dict[str, Any]:
    """What a draft file and an attempt file share (the storage key only between rows: the
    snapshot never tells where a file is kept)."""
    fields = {name: getattr(file, name) for name in FILE_FIELDS}
    if with_key:
        fields["storage_key"] = file.storage_key
    return fields


def _notes(session: Session, attempt_id: int) -> AttemptNotes | None:
    return session.scalars(
        select(AttemptNotes).where(AttemptNotes.attempt_id == attempt_id)
    ).first()


@dataclass
class DraftChanges:
    """What a save replaces; None leaves that field as it is. `answers` is merged prompt by
    prompt ({part kind: {prompt key: text}})."""

    answers: dict[str, dict[str, str]] | None = None
    plan: dict[str, str] | None = None
    collaboration: dict[str, Any] | None = None


def save_draft(
    session: Session,
    user_id: int,
    micro_credential_id: int,
    revision: int,
    changes: DraftChanges,
    origin: Origin | None = None,
) -> Draft:
    """Save what the learner typed, if nobody saved since `revision` (the draft's revision the
    page was loaded with; 0 before the draft exists). Raises DraftConflict (with the current
    revision) otherwise, and EvidenceError for answers to unknown prompts or bad dates.
    Returns the draft at its new revision."""
    draft = open_draft(session, user_id, micro_credential_id, origin)
    # A page loaded before the draft existed knows revision 0; the new draft is revision 1.
    if draft.revision != max(revision, 1):
        raise DraftConflict(draft.revision)
    values: dict[str, Any] = {"updated_at": utcnow()}
    if changes.answers is not None:
        prompts = prompt_keys(session, draft.version_id)
        values["answers"] = _merged_answers(prompts, draft.answers, changes.answers)
    if changes.plan is not None:
        values["plan"] = _checked_plan(changes.plan)
    if changes.collaboration is not None:
        values["collaboration"] = _checked_collaboration(changes.collaboration)
    expected = draft.revision
    # One conditional UPDATE: of two tabs saving at once, exactly one wins.
    result = session.execute(
        update(Draft)
        .where(Draft.id == draft.id, Draft.revision == expected)
        .values(revision=expected + 1, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.expire(draft)
        raise DraftConflict(draft.revision)
    # The row is as written: no need to read it back.
    for name, value in {**values, "revision": expected + 1}.items():
        set_committed_value(draft, name, value)
    if "plan" in values:
        due = _plan_due(values["plan"])
        if due is not None:
            set_state(session, user_id, micro_credential_id, progress_states.DRAFT,
                      next_step_due=due)  # fmt: skip
    return draft


_PROMPT_KEYS: dict[tuple[str, int], frozenset[tuple[str, str]]] = {}


def prompt_keys(session: Session, version_id: int) -> frozenset[tuple[str, str]]:
    """(part kind, prompt key) of every prompt of a version a draft is on. Such a version is
    frozen (started) and never changes, so the answer is kept per process after one query."""
    cache_key = (str(session.get_bind().url), version_id)
    found = _PROMPT_KEYS.get(cache_key)
    if found is None:
        rows = session.execute(
            select(Part.kind, Prompt.key)
            .join(Prompt, Prompt.part_id == Part.id)
            .where(Part.version_id == version_id)
        )
        found = frozenset((kind, key) for kind, key in rows)
        if len(_PROMPT_KEYS) > 10_000:
            _PROMPT_KEYS.clear()
        _PROMPT_KEYS[cache_key] = found
    return found


def offered_in_course(session: Session, course_id: int, micro_credential_id: int) -> bool:
    """Does the course hold this micro-credential (a member of one of its stacks, or the
    micro-credential of one of its links)? Two indexed lookups."""
    in_stack = session.scalar(
        select(CourseStack.id)
        .join(StackMember, StackMember.stack_id == CourseStack.stack_id)
        .where(
            CourseStack.course_id == course_id,
            StackMember.micro_credential_id == micro_credential_id,
        )
        .limit(1)
    )
    if in_stack is not None:
        return True
    linked = session.scalar(
        select(LinkCredential.id)
        .join(ResourceLink, ResourceLink.id == LinkCredential.resource_link_id)
        .where(
            ResourceLink.course_id == course_id,
            LinkCredential.micro_credential_id == micro_credential_id,
        )
        .limit(1)
    )
    return linked is not None


def _merged_answers(
    prompts: frozenset[tuple[str, str]], current: dict, given: dict[str, dict[str, str]]
) -> dict:
    merged = {kind: dict(texts) for kind, texts in (current or {}).items()}
    for kind, texts in given.items():
        for key, text in texts.items():
            if (kind, key) not in prompts:
                raise EvidenceError(f"There is no question {key!r} in {kind}.")
            if len(text) > MAX_ANSWER_CHARS:
                raise EvidenceError(
                    f"An answer is longer than {MAX_ANSWER_CHARS:,} characters; shorten it "
                    "(your text is still on the page)."
                )
            merged.setdefault(kind, {})[key] = text
    return merged


def _checked_plan(plan: dict[str, str]) -> dict[str, str | None]:
    checked: dict[str, str | None] = {}
    for kind, value in plan.items():
        if kind not in PART_KINDS:
            raise EvidenceError(f"There is no part {kind!r}.")
        value = (value or "").strip()
        if not value:
            checked[kind] = None
            continue
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise EvidenceError(
                f"The target date of {PART_TITLES[kind]} is not a date like 2026-12-31."
            ) from None
        if not PLAN_YEARS[0] <= day.year <= PLAN_YEARS[1]:
            raise EvidenceError(
                f"The target date of {PART_TITLES[kind]}, {value}, is not between "
                f"{PLAN_YEARS[0]} and {PLAN_YEARS[1]}: check its year."
            )
        checked[kind] = day.isoformat()
    return checked


def _plan_due(plan: dict[str, str | None]) -> datetime | None:
    dates = [date.fromisoformat(v) for v in plan.values() if v]
    if not dates:
        return None
    last = max(dates)
    return datetime(last.year, last.month, last.day, tzinfo=utcnow().tzinfo)


def _checked_collaboration(given: dict[str, Any]) -> dict[str, Any]:
    collaborative = given.get("collaborative")
    if collaborative not in (True, False, None):
        raise EvidenceError("Say whether the work was collaborative: yes or no.")
    statement = {"collaborative": collaborative}
    for name in ("with_whom", "how"):
        text = str(given.get(name) or "")
        if len(text) > MAX_TEXT_CHARS:
            raise EvidenceError(f"The collaboration statement is longer than {MAX_TEXT_CHARS:,} "
                                "characters; shorten it.")  # fmt: skip
        statement[name] = text
    return statement


# -- links -------------------------------------------------------------------------------------
def check_url(url: str) -> str:
    """A link reviewers can open: an absolute http(s) URL with a host, no spaces."""
    url = url.strip()
    if not url:
        raise EvidenceError("Enter the link's address (it starts with https://).")
    if len(url) > MAX_URL_CHARS:
        raise EvidenceError(f"The link is longer than {MAX_URL_CHARS:,} characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        raise EvidenceError("This is not a web address: check it and try again.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise EvidenceError("A link must start with https:// (or http://).")
    if not parts.hostname or "." not in parts.hostname and parts.hostname != "localhost":
        raise EvidenceError("This link has no site name (like https://example.org/...).")
    if any(c.isspace() for c in url):
        raise EvidenceError("A link cannot contain spaces: check it and try again.")
    return url


def add_link(
    session: Session,
    user_id: int,
    micro_credential_id: int,
    requirement_key: str,
    url: str,
    title: str = "",
    origin: Origin | None = None,
) -> Draft:
    """Add a link (validated) to an artifact requirement of the learner's draft."""
    url = check_url(url)
    title = title.strip()[:MAX_TITLE_CHARS]
    draft = open_draft(session, user_id, micro_credential_id, origin)
    _requirement(session, draft, requirement_key)
    links = {k: list(v) for k, v in (draft.links or {}).items()}
    listed = links.setdefault(requirement_key, [])
    if len(listed) >= MAX_LINKS_PER_REQUIREMENT:
        raise EvidenceError(f"An artifact can have at most {MAX_LINKS_PER_REQUIREMENT} links.")
    if any(link["url"] == url for link in listed):
        raise EvidenceError("This link is already there.")
    listed.append({"url": url, "title": title})
    draft.links = links
    draft.updated_at = utcnow()
    session.flush()
    return draft


def remove_link(
    session: Session, user_id: int, micro_credential_id: int, requirement_key: str, url: str
) -> Draft:
    """Remove a link from the learner's draft (NotFound if it is not there)."""
    draft = _own_draft(session, user_id, micro_credential_id)
    links = {k: list(v) for k, v in (draft.links or {}).items()}
    kept = [link for link in links.get(requirement_key, []) if link["url"] != url]
    if len(kept) == len(links.get(requirement_key, [])):
        raise NotFound("That link is not in your draft.")
    links[requirement_key] = kept
    draft.links = links
    draft.updated_at = utcnow()
    session.flush()
    return draft


def _own_draft(session: Session, user_id: int, micro_credential_id: int) -> Draft:
    draft = find_draft(session, user_id, micro_credential_id, lock=True)
    if draft is None:
        raise NotFound("You have no draft of this micro-credential.")
    return draft


def _requirement(session: Session, draft: Draft, requirement_key: str):
    version = catalog.get_version(session, draft.version_id)
    part = version.part(ARTIFACTS) if version else None
    found = next((r for r in (part.requirements if part else []) if r.key == requirement_key),
                 None)  # fmt: skip
    if found is None:
        raise NotFound("This micro-credential asks for no such artifact.")
    return found


# -- files -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UploadTarget:
    """Where an upload goes: checked before a byte is read, so a refusal costs nothing."""

    draft_id: int
    requirement_key: str
    storage_key: str


def prepare_upload(
    session: Session,
    user_id: int,
    micro_credential_id: int,
    requirement_key: str,
    origin: Origin | None = None,
) -> UploadTarget:
    """Check the learner may add a file to this requirement now, and name its storage key
    (a fresh one per upload: stored files are never overwritten, so attempts can share them)."""
    draft = open_draft(session, user_id, micro_credential_id, origin)
    _requirement(session, draft, requirement_key)
    count = sum(1 for f in draft.files if f.requirement_key == requirement_key)
    if count >= MAX_FILES_PER_REQUIREMENT:
        raise EvidenceError(f"An artifact can have at most {MAX_FILES_PER_REQUIREMENT} files.")
    key = f"u{user_id}/mc{micro_credential_id}/{uuid.uuid4().hex}"
    return UploadTarget(draft.id, requirement_key, key)


def record_file(
    session: Session,
    user_id: int,
    target: UploadTarget,
    original_name: str,
    stored: StoredFile,
    document: dict | None = None,
) -> DraftFile:
    """The row of a file stored for `target` (NotEditable when the draft was submitted or
    removed meanwhile: the caller then deletes the stored file)."""
    draft = session.get(Draft, target.draft_id, with_for_update=True)
    if draft is None or draft.user_id != user_id:
        raise NotEditable("Your draft was submitted while the file was uploading; it was not "
                          "added.")  # fmt: skip
    position = 1 + max(
        (f.position for f in draft.files if f.requirement_key == target.requirement_key),
        default=-1,
    )
    row = DraftFile(
        requirement_key=target.requirement_key,
        position=position,
        original_name=clean_name(original_name) or f"file.{stored.type.extension}",
        storage_key=stored.key,
        sha256=stored.sha256,
        size=stored.size,
        media_type=stored.content_type,
        document=document,
    )
    draft.files.append(row)
    draft.updated_at = utcnow()
    session.flush()
    return row


def clean_name(name: str) -> str:
    """The file's own name (no folders a browser may send), without control characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name[:MAX_NAME_CHARS]


def add_file(
    factory: sessionmaker[Session],
    storage: Storage,
    user_id: int,
    micro_credential_id: int,
    requirement_key: str,
    original_name: str,
    source: Source,
    origin: Origin | None = None,
    *,
    size_hint: int | None = None,
    read: bool = True,
) -> DraftFile:
    """Stream one file into storage and add it to the learner's draft.

    Three steps so that no database transaction stays open while a large file streams in:
    check and name (prepare_upload), store (checked while streaming: UploadRefused for a wrong
    type, a file too large or empty; nothing kept), record the row. A failure at any step
    leaves the draft as it was and no stored file behind.
    """
    with transaction(factory) as session:
        target = prepare_upload(session, user_id, micro_credential_id, requirement_key, origin)
    stored = storage.save(target.storage_key, source, size_hint=size_hint)
    try:
        document = None
        if read:
            try:
                document = checks.read_document(storage, stored.key, stored.content_type)
            except Exception:  # an unreadable file is still evidence: keep it, unchecked
                log.warning("could not read %s (%s)", stored.key, stored.content_type,
                            exc_info=True)  # fmt: skip
        with transaction(factory) as session:
            return record_file(session, user_id, target, original_name, stored, document)
    except BaseException:
        storage.delete(stored.key)
        raise


def remove_file(
    factory: sessionmaker[Session],
    storage: Storage,
    user_id: int,
    micro_credential_id: int,
    file_id: int,
) -> None:
    """Remove a file from the learner's draft; the stored file goes too unless an attempt (or
    another draft row) still holds it. NotFound for a file that is not theirs."""
    with transaction(factory) as session:
        draft = _own_draft(session, user_id, micro_credential_id)
        row = next((f for f in draft.files if f.id == file_id), None)
        if row is None:
            raise NotFound("That file is not in your draft.")
        key = row.storage_key
        draft.files.remove(row)
        draft.updated_at = utcnow()
        session.flush()
        shared = session.scalar(
            select(func.count()).select_from(AttemptFile).where(AttemptFile.storage_key == key)
        ) or session.scalar(
            select(func.count()).select_from(DraftFile).where(DraftFile.storage_key == key)
        )
    if not shared:
        storage.delete(key)  # after the commit: a failed commit keeps the file


def draft_file(session: Session, user_id: int, micro_credential_id: int, file_id: int) -> DraftFile:
    """A file of the learner's own draft (NotFound otherwise)."""
    row = session.get(DraftFile, file_id)
    if (
        row is None
        or row.draft.user_id != user_id
        or row.draft.micro_credential_id != micro_credential_id
    ):
        raise NotFound("That file is not in your draft.")
    return row


def attempt_file(session: Session, attempt: Attempt, file_id: int) -> AttemptFile:
    row = next((f for f in attempt.files if f.id == file_id), None)
    if row is None:
        raise NotFound("That file is not in this submission.")
    return row


# -- checks before submitting ------------------------------------------------------------------
@dataclass(frozen=True)
class WordNote:
    """An answer outside its suggested word range: guidance, never a block."""

    part: str
    prompt_key: str
    words: int
    min_words: int | None
    max_words: int | None

    @property
    def message(self) -> str:
        if self.min_words is not None and self.words < self.min_words:
            return f"{self.words} words, below the suggested {self._range()}."
        return f"{self.words} words, above the suggested {self._range()}."

    def _range(self) -> str:
        if self.min_words is not None and self.max_words is not None:
            return f"{self.min_words}–{self.max_words} words"
        if self.min_words is not None:
            return f"at least {self.min_words} words"
        return f"at most {self.max_words} words"


@dataclass
class PartCheck:
    kind: str
    title: str
    missing: list[str] = field(default_factory=list)
    notes: list[WordNote] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass
class SubmissionCheck:
    """Per part, what is missing (blocks) and which answers are outside their range (not)."""

    parts: list[PartCheck]

    @property
    def complete(self) -> bool:
        return all(p.complete for p in self.parts)


def word_note(prompt, text: str, part: str) -> WordNote | None:
    words = word_count(text)
    low = prompt.min_words is not None and words < prompt.min_words
    high = prompt.max_words is not None and words > prompt.max_words
    if words and (low or high):
        return WordNote(part, prompt.key, words, prompt.min_words, prompt.max_words)
    return None


def submission_check(version: MicroCredentialVersion, draft: Draft | None) -> SubmissionCheck:
    """What is missing before the draft can be submitted: an empty answer (every prompt is
    required), a required artifact without a file or link."""
    answers = draft.answers if draft else {}
    links = draft.links if draft else {}
    files = draft.files if draft else []
    parts = []
    for part in version.parts:
        check = PartCheck(part.kind, PART_TITLES.get(part.kind, part.kind))
        texts = answers.get(part.kind) or {}
        for number, prompt in enumerate(part.prompts, start=1):
            text = texts.get(prompt.key) or ""
            if not text.strip():
                check.missing.append(f"Question {number} has no answer yet.")
            elif (note := word_note(prompt, text, part.kind)) is not None:
                check.notes.append(note)
        for requirement in part.requirements:
            has_file = any(f.requirement_key == requirement.key for f in files)
            if requirement.required and not has_file and not links.get(requirement.key):
                check.missing.append(f"“{requirement.title}”: add a file or a link.")
        parts.append(check)
    return SubmissionCheck(parts)


# -- submitting --------------------------------------------------------------------------------
def _snapshot(version: MicroCredentialVersion, draft: Draft) -> dict[str, Any]:
    known = {(part.kind, p.key) for part in version.parts for p in part.prompts}
    answers: dict[str, dict[str, str]] = {}
    for kind, texts in (draft.answers or {}).items():
        for key, text in texts.items():
            if (kind, key) in known:
                answers.setdefault(kind, {})[key] = text
    collaboration = draft.collaboration or {}
    return {
        "format": SNAPSHOT_FORMAT,
        "version_id": version.id,
        "version_number": version.number,
        "title": version.title,
        "answers": answers,
        "links": {k: list(v) for k, v in (draft.links or {}).items() if v},
        "files": [_file_fields(f, with_key=False) for f in draft.files],
        "collaboration": {
            "collaborative": collaboration.get("collaborative"),
            "how": collaboration.get("how") or "",
        },
        "plan": dict(draft.plan or {}),
    }


def submit(
    session: Session,
    settings: Settings,
    user_id: int,
    micro_credential_id: int,
    origin: Origin | None = None,
    *,
    now: datetime | None = None,
) -> Attempt:
    """Freeze the learner's draft as a new attempt, in the caller's transaction: the snapshot
    and file rows (with hashes), the version, the time and the decision due date; the outbox
    messages `assessment.requested` and `grade.submitted`; progress "submitted"; the version
    frozen. The draft is gone afterwards (a double click finds nothing to submit: NotEditable).
    Raises Incomplete while required answers or artifacts are missing. Beside the attempt, its
    notes keep the collaborators' names, the confidentiality hits the learner was shown and
    the similarity flags (checks.annotate)."""
    now = now or utcnow()
    draft = find_draft(session, user_id, micro_credential_id, lock=True)
    if draft is None:
        raise NotEditable("There is no draft to submit: it may have been submitted already.")
    version = catalog.get_version(session, draft.version_id)
    assert version is not None
    check = submission_check(version, draft)
    if not check.complete:
        raise Incomplete(check)
    number = 1 + (
        session.scalar(
            select(func.max(Attempt.number)).where(
                Attempt.user_id == user_id, Attempt.micro_credential_id == micro_credential_id
            )
        )
        or 0
    )
    attempt = Attempt(
        user_id=user_id,
        micro_credential_id=micro_credential_id,
        version_id=version.id,
        number=number,
        status=SUBMITTED,
        snapshot=_snapshot(version, draft),
        submitted_at=now,
        decision_due_at=decision_due(settings, now),
        feedback=[],
        previous_attempt_id=draft.previous_attempt_id,
        course_id=origin.course_id if origin else draft.course_id,
        resource_link_id=origin.link_id if origin else draft.resource_link_id,
        files=[
            AttemptFile(**_file_fields(f, with_key=True)) for f in draft.files
        ],
    )
    session.add(attempt)
    session.flush()
    notes = AttemptNotes(
        attempt_id=attempt.id,
        collaborators=(draft.collaboration or {}).get("with_whom") or "",
        confidentiality=checks.before_submitting(session, settings, draft, version).hit_records(),
    )
    checks.annotate(session, settings, attempt, draft, notes)
    session.add(notes)
    session.delete(draft)  # its files stay in storage: the attempt's rows hold them
    outbox.post(session, "assessment.requested", f"assessment.requested:{attempt.id}",
                {"attempt_id": attempt.id})  # fmt: skip
    outbox.post(session, "grade.submitted", f"grade.submitted:{attempt.id}",
                {"attempt_id": attempt.id})  # fmt: skip
    set_state(session, user_id, micro_credential_id, progress_states.SUBMITTED,
              version_id=version.id, next_step_due=attempt.decision_due_at, when=now)  # fmt: skip
    catalog.mark_version_started(session, version.id, now)
    session.flush()
    return attempt


def withdraw(
    session: Session, user_id: int, attempt_id: int, *, now: datetime | None = None
) -> Draft:
    """Take back a submitted attempt before an assessor starts (the row is locked, so an
    assessor's mark_in_review and this cannot both win). Posts `assessment.withdrawn` and
    `grade.withdrawn`; the learner is back to a draft holding everything of the attempt."""
    now = now or utcnow()
    attempt = session.get(Attempt, attempt_id, with_for_update=True,
                          populate_existing=True)  # fmt: skip
    if attempt is None or attempt.user_id != user_id:
        raise NotFound("There is no such submission of yours.")
    if attempt.status != SUBMITTED:
        raise NotEditable(
            "An assessor has started on this submission (or it was decided or withdrawn "
            "already): it can no longer be withdrawn."
        )
    attempt.status = WITHDRAWN
    attempt.withdrawn_at = now
    outbox.post(session, "assessment.withdrawn", f"assessment.withdrawn:{attempt.id}",
                {"attempt_id": attempt.id})  # fmt: skip
    outbox.post(session, "grade.withdrawn", f"grade.withdrawn:{attempt.id}",
                {"attempt_id": attempt.id})  # fmt: skip
    set_state(session, user_id, attempt.micro_credential_id, progress_states.DRAFT, when=now)
    draft = _insert_draft(session, user_id, attempt.micro_credential_id, attempt.version_id,
                          attempt)  # fmt: skip
    draft.previous_attempt_id = attempt.previous_attempt_id
    session.flush()
    return draft
