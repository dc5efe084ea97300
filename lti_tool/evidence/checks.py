"""The checks around a submission, on what the learner's draft holds: reading uploaded files
(documents.extract), finding names (confidentiality), and nearly identical submissions
(similarity).

- At upload, `read_document` reads a file's text and metadata once and the draft file keeps
  it (JSON), so later checks never read the file again.
- Before submitting, `before_submitting` lists each name or e-mail of the learner and of the
  other members of their course found in the answers, the collaboration statement, links, file
  names, file text and metadata, with its place; names in metadata and file names are removed
  automatically in the blind copy, the others need the learner's edit. A learner who declared
  collaborators and whose reflection is close to one of theirs is told so, with the passages.
- At submission, `annotate` keeps the sketch of the submission and flags the earlier
  submissions of other learners it is nearly identical to, for assessors and administrators
  (never blocking; never shown to the learner, except as the collaborator note above).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lti_tool.catalog import service as catalog
from lti_tool.catalog.models import ARTIFACTS, REFLECTION, MicroCredentialVersion
from lti_tool.evidence import confidentiality, documents, similarity
from lti_tool.evidence.models import Attempt, AttemptNotes, Draft
from lti_tool.evidence.storage import Storage
from lti_tool.evidence.words import words_of
from lti_tool.roster.models import Enrollment, LmsUser
from lti_tool.settings import Settings

log = logging.getLogger(__name__)

MAX_KEPT_CHARS = 2_000_000  # body text kept per file: enough for any check
MAX_COMPARED = 2_000  # earlier submissions a new one is compared with (the newest)
PART_NUMBERS = {"overview": 1, "artifacts": 2, "reflection": 3}


# -- reading files at upload ---------------------------------------------------------------------
@contextmanager
def _on_disk(storage: Storage, key: str) -> Iterator[Path]:
    """A path to the stored file: itself when local, else a temporary copy (streamed)."""
    local = getattr(storage, "path", None)
    if callable(local):
        yield local(key)
        return
    with tempfile.NamedTemporaryFile(prefix="evidence-", suffix=".tmp") as copy:
        with storage.open(key) as source:
            shutil.copyfileobj(source, copy, 1024 * 1024)
        copy.flush()
        yield Path(copy.name)


def read_document(storage: Storage, key: str, media_type: str) -> dict[str, Any]:
    """What a stored file says, as JSON for DraftFile.document: body text by place, metadata,
    notes on what could not be read. A file that cannot be read (damaged, encrypted) gives
    {"error": message}: it is kept, and the checks say it was not checked."""
    try:
        with _on_disk(storage, key) as path:
            found = documents.extract(path, media_type)
    except documents.DocumentError as exc:
        return {"error": exc.message}
    body, kept, notes = [], 0, list(found.notes)
    for part in found.body:
        if kept + len(part.text) > MAX_KEPT_CHARS:
            notes.append("only the beginning of the text was checked (the file is very long)")
            break
        body.append([part.place, part.text])
        kept += len(part.text)
    return {
        "body": body,
        "metadata": [[item.place, item.value] for item in found.metadata],
        "notes": notes,
        "complete": found.complete and len(body) == len(found.body),
    }


def _document_text(stored: dict | None, media_type: str) -> documents.DocumentText | None:
    if not stored or "error" in stored:
        return None
    return documents.DocumentText(
        media_type=media_type,
        body=[documents.TextPart(place, text) for place, text in stored.get("body", [])],
        metadata=[documents.MetadataField(p, v) for p, v in stored.get("metadata", [])],
        complete=bool(stored.get("complete", True)),
        notes=list(stored.get("notes", [])),
    )


# -- what a draft says, by place ---------------------------------------------------------------
def _answer_places(version: MicroCredentialVersion, answers: dict) -> dict[str, str]:
    """{"Part 1, question 2": text} for every answered prompt."""
    places = {}
    for part in version.parts:
        texts = answers.get(part.kind) or {}
        for number, prompt in enumerate(part.prompts, start=1):
            text = texts.get(prompt.key) or ""
            if text.strip():
                places[f"Part {PART_NUMBERS[part.kind]}, question {number}"] = text
    return places


def _checked_texts(version: MicroCredentialVersion, draft: Draft) -> dict[str, str]:
    """Everything typed that assessors will read: answers, links, the collaboration 'how'."""
    texts = _answer_places(version, draft.answers or {})
    artifacts = version.part(ARTIFACTS)
    titles = {r.key: r.title for r in (artifacts.requirements if artifacts else [])}
    for key, links in (draft.links or {}).items():
        for number, link in enumerate(links, start=1):
            place = f"Part 2, “{titles.get(key, key)}”, link {number}"
            texts[place] = f"{link.get('title', '')} {link.get('url', '')}"
    how = (draft.collaboration or {}).get("how") or ""
    if how.strip():
        texts["Collaboration statement (how you worked together)"] = how
    return texts


# Member indexes of recent courses, reused while the roster is unchanged: building one for a
# 50,000-member MOOC takes seconds, matching a text against it milliseconds.
_MEMBER_INDEXES: OrderedDict[tuple, confidentiality.IdentityIndex] = OrderedDict()
MEMBER_INDEXES_KEPT = 8
_EMPTY = confidentiality.IdentityIndex(confidentiality.Person())


def _members(session: Session, course_id: int, except_user: int | None = None):
    statement = select(LmsUser).join(Enrollment, Enrollment.user_id == LmsUser.id).where(
        Enrollment.course_id == course_id
    )
    if except_user is not None:
        statement = statement.where(LmsUser.id != except_user)
    return session.scalars(statement.execution_options(yield_per=1000))


def member_index(session: Session, course_id: int | None) -> confidentiality.IdentityIndex:
    """The names and e-mails of a course's members (as others), cached per roster state."""
    if course_id is None:
        return _EMPTY
    count, changed = session.execute(
        select(func.count(Enrollment.id), func.max(Enrollment.updated_at)).where(
            Enrollment.course_id == course_id
        )
    ).one()
    key = (str(session.get_bind().url), course_id, count, changed)
    index = _MEMBER_INDEXES.get(key)
    if index is None:
        members = (confidentiality.Person.of(row) for row in _members(session, course_id))
        index = confidentiality.IdentityIndex(confidentiality.Person(), members)
        _MEMBER_INDEXES[key] = index
        while len(_MEMBER_INDEXES) > MEMBER_INDEXES_KEPT:
            _MEMBER_INDEXES.popitem(last=False)
    _MEMBER_INDEXES.move_to_end(key)
    return index


def _report(
    session: Session, draft: Draft, texts: dict[str, str], files: list
) -> confidentiality.ConfidentialityReport:
    """The learner's own names (their index) and the members' (the course's cached index);
    a hit found by both is the learner's (they are on the roster too)."""
    learner = session.get(LmsUser, draft.user_id)
    own = confidentiality.check(
        confidentiality.IdentityIndex(confidentiality.Person.of(learner)), texts, files
    )
    others = confidentiality.check(member_index(session, draft.course_id), texts, files)
    mine = {(hit.place, hit.matched.casefold()) for hit in own.hits}
    hits = own.hits + [h for h in others.hits if (h.place, h.matched.casefold()) not in mine]
    return confidentiality.ConfidentialityReport(
        hits=sorted(hits, key=lambda hit: _reading_order(texts, files, hit.place)),
        unchecked=own.unchecked,
    )


def _reading_order(texts: dict[str, str], files: list, place: str) -> tuple[int, str]:
    order = [*texts, *(f"file name {f.name}" for f in files), *(f"file {f.name}" for f in files)]
    for number, prefix in enumerate(order):
        if place.startswith(prefix):
            return number, place
    return len(order), place


# -- before submitting ---------------------------------------------------------------------------
@dataclass
class CollaboratorNote:
    """The learner's reflection is close to a declared collaborator's: rewrite these."""

    containment: float
    passages: list[str]


@dataclass
class Findings:
    """What the learner sees on the check page (nothing here blocks submitting)."""

    report: confidentiality.ConfidentialityReport
    collaborative: bool
    collaborators: list[CollaboratorNote] = field(default_factory=list)

    @property
    def to_edit(self) -> list[confidentiality.Hit]:
        return self.report.to_edit

    @property
    def automatic(self) -> list[confidentiality.Hit]:
        return self.report.removed_automatically

    def hit_records(self) -> list[dict[str, Any]]:
        """The hits as JSON (kept with the attempt for administrators)."""
        return [
            {
                "place": hit.place,
                "found": hit.matched,
                "whose": hit.identity,
                "kind": hit.kind,
                "severity": hit.severity,
                "where": hit.where,
                "removed_automatically": hit.removed_automatically,
            }
            for hit in self.report.hits
        ]


def before_submitting(
    session: Session, settings: Settings, draft: Draft, version: MicroCredentialVersion
) -> Findings:
    """The confidentiality hits of the draft, and the collaborator note if any."""
    files = [
        confidentiality.FileToCheck(f.original_name, f.media_type,
                                    _document_text(f.document, f.media_type))  # fmt: skip
        for f in draft.files
    ]
    report = _report(session, draft, _checked_texts(version, draft), files)
    statement = draft.collaboration or {}
    findings = Findings(report, collaborative=statement.get("collaborative") is True)
    if findings.collaborative:
        findings.collaborators = _close_to_collaborators(session, settings, draft)
    return findings


def _close_to_collaborators(
    session: Session, settings: Settings, draft: Draft
) -> list[CollaboratorNote]:
    """Compare the learner's reflection with the latest submission of each course member
    named in their collaboration statement."""
    named = (draft.collaboration or {}).get("with_whom") or ""
    mine = " ".join(((draft.answers or {}).get(REFLECTION) or {}).values())
    if not named.strip() or not mine.strip() or draft.course_id is None:
        return []
    notes = []
    threshold = settings.evidence_similarity_percent / 100
    version = catalog.get_version(session, draft.version_id)
    prompts = boilerplate(version, REFLECTION) if version else []
    for member in _named_members(session, draft.course_id, draft.user_id, named):
        theirs = session.scalars(
            select(Attempt)
            .where(
                Attempt.user_id == member.id,
                Attempt.micro_credential_id == draft.micro_credential_id,
            )
            .order_by(Attempt.number.desc())
            .limit(1)
        ).first()
        if theirs is None:
            continue
        their_text = " ".join(((theirs.snapshot or {}).get("answers", {}).get(REFLECTION)
                               or {}).values())  # fmt: skip
        compared = similarity.compare_reflections(mine, their_text, boilerplate=prompts)
        if compared.too_similar(threshold):
            notes.append(CollaboratorNote(compared.containment, compared.shared_passages[:5]))
    return notes


def _named_members(session: Session, course_id: int, user_id: int, named: str) -> list[LmsUser]:
    """The course's members whose full name or e-mail the statement contains (whole words,
    folded), in one pass over the roster."""
    text = f" {' '.join(words_of(named))} "
    lowered = named.casefold()
    found = []
    for member in _members(session, course_id, except_user=user_id):
        name = " ".join(words_of(member.name or f"{member.given_name} {member.family_name}"))
        if (len(name.split()) >= 2 and f" {name} " in text) or (
            member.email and member.email.casefold() in lowered
        ):
            found.append(member)
    return found


# -- at submission -----------------------------------------------------------------------------
def fingerprint_of(version: MicroCredentialVersion, answers: dict, files: list) -> dict:
    """The similarity sketch of a submission: answers by place, file text by requirement."""
    parts = _answer_places(version, answers)
    by_requirement: dict[str, list[str]] = {}
    for f in files:
        stored = getattr(f, "document", None) or {}
        text = " ".join(text for _, text in stored.get("body", []))
        if text.strip():
            by_requirement.setdefault(f.requirement_key, []).append(text)
    for key, texts in by_requirement.items():
        parts[f"Part 2, artifact {key}"] = "\n".join(texts)
    return similarity.fingerprint(parts, boilerplate=boilerplate(version)).to_json()


def boilerplate(version: MicroCredentialVersion, kind: str | None = None) -> list[str]:
    """What every learner may reproduce: the prompts and instructions (of one part, or all)."""
    texts = []
    for part in version.parts:
        if kind is None or part.kind == kind:
            texts.append(part.instructions or "")
            texts.extend(prompt.text for prompt in part.prompts)
    return [text for text in texts if text.strip()]


def annotate(
    session: Session, settings: Settings, attempt: Attempt, draft: Draft, notes: AttemptNotes
) -> None:
    """Fill the notes of a new attempt: its sketch, what it was read from, and the earlier
    submissions of other learners of the same micro-credential it nearly copies."""
    version = catalog.get_version(session, attempt.version_id)
    assert version is not None
    notes.documents = {f.storage_key: f.document for f in draft.files if f.document}
    notes.fingerprint = fingerprint_of(version, draft.answers or {}, list(draft.files))
    new = similarity.Fingerprint.from_json(notes.fingerprint)
    rows = session.execute(
        select(AttemptNotes.attempt_id, AttemptNotes.fingerprint, AttemptNotes.collaborators,
               Attempt.user_id)  # fmt: skip
        .join(Attempt, Attempt.id == AttemptNotes.attempt_id)
        .where(
            Attempt.micro_credential_id == attempt.micro_credential_id,
            Attempt.user_id != attempt.user_id,
        )
        .order_by(Attempt.id.desc())
        .limit(MAX_COMPARED)
    ).all()
    earlier, others = [], {}
    for attempt_id, stored, collaborators, user_id in rows:
        try:
            earlier.append((attempt_id, similarity.Fingerprint.from_json(stored or {})))
        except (ValueError, KeyError):
            continue  # a sketch of another format: not compared
        others[attempt_id] = (user_id, collaborators or "")
    found = similarity.most_similar(
        new, earlier, threshold=settings.evidence_similarity_percent / 100
    )
    notes.similar_attempts = [
        {
            "attempt_id": item.key,
            "score": item.score,
            "parts": [{"part": p.part, "score": p.score} for p in item.parts[:5]],
            "declared": _declared(session, attempt.user_id, notes.collaborators,
                                  *others[item.key]),  # fmt: skip
        }
        for item in found
    ]


def _declared(
    session: Session, user_id: int, named_by_me: str, other_id: int, named_by_them: str
) -> bool:
    """Did either learner name the other as a collaborator?"""
    me, them = session.get(LmsUser, user_id), session.get(LmsUser, other_id)
    mine = confidentiality.IdentityIndex(confidentiality.Person.of(them))
    theirs = confidentiality.IdentityIndex(confidentiality.Person.of(me))
    return bool(mine.find(named_by_me) or theirs.find(named_by_them))


def similarity_flags(session: Session, attempt_id: int) -> list[dict]:
    """For assessors and administrators: the earlier submissions this attempt nearly copies
    ([{"attempt_id", "score", "parts", "declared"}], most similar first; empty: none)."""
    notes = session.scalars(
        select(AttemptNotes).where(AttemptNotes.attempt_id == attempt_id)
    ).first()
    return list(notes.similar_attempts) if notes else []
