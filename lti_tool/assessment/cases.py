"""Blind cases: what assessors get of an attempt, and nothing more.

The handler of `assessment.requested` copies, from the attempt, only what an assessor needs:
the text answers as written (whitelisted fields of the snapshot, never the snapshot whole),
the links, the collaboration statement, and each file under a neutral name with its metadata
removed (lti_tool.evidence.documents.strip_metadata; a file it cannot clean, a type it does not
know or a file it cannot read, is copied as is and flagged `metadata_removed=False`, never
claimed clean). The case
gets a random code; the learner's identity stays behind in the attempt.
"""

from __future__ import annotations

import importlib
import logging
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lti_tool.assessment.assignment import assign_waiting
from lti_tool.assessment.models import (
    CANCELLED,
    FIRST,
    LIVE_STATES,
    OPEN_CASE_STATUSES,
    SECOND,
    SUBMITTED,
    WITHDRAWN,
    Assignment,
    Case,
    CaseFile,
)
from lti_tool.assessment.policy import institution_keys
from lti_tool.catalog.models import MicroCredentialVersion
from lti_tool.db import utcnow
from lti_tool.evidence.models import WITHDRAWN as ATTEMPT_WITHDRAWN
from lti_tool.evidence.models import Attempt, AttemptFile
from lti_tool.evidence.storage import ACCEPTABLE, StoredFile
from lti_tool.lti.models import Platform
from lti_tool.roster.models import LmsUser

if TYPE_CHECKING:
    from lti_tool.services import Services

log = logging.getLogger(__name__)

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud, typed by hand
BLIND_PREFIX = "blind/"


def new_code() -> str:
    """A case code like K7QD-M2XP: random, so it says nothing about the learner or the order."""
    letters = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
    return f"{letters[:4]}-{letters[4:]}"


def _metadata_stripper() -> Callable[..., Any] | None:
    """documents.strip_metadata(src_path, dst_path, media_type) -> StripReport, or None when
    that module is not deployed (the copy is then made as is and flagged not cleaned)."""
    try:
        module = importlib.import_module("lti_tool.evidence.documents")
    except ImportError:
        return None
    return getattr(module, "strip_metadata", None)


# -- text ----------------------------------------------------------------------------------------
# The snapshot as evidence.service writes it (format 1): answers {part: {prompt_key: text}},
# links {requirement_key: [{"url", "title"}]}, collaboration {"collaborative", "how"}, files,
# plan, title. Only those fields are read; anything else in it never reaches a case.
def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _answer_map(snapshot: dict) -> dict[tuple[str, str], str]:
    """(part, prompt key) -> answer."""
    found: dict[tuple[str, str], str] = {}
    raw = snapshot.get("answers")
    for part, texts in (raw if isinstance(raw, dict) else {}).items():
        if isinstance(texts, dict):
            found.update({(part, key): _text(text) for key, text in texts.items()})
    return found


def _links(snapshot: dict) -> list[dict]:
    """Web links only (http, https): never javascript:, file: and the like."""
    raw = snapshot.get("links")
    links = []
    for requirement, listed in (raw if isinstance(raw, dict) else {}).items():
        for item in listed if isinstance(listed, list) else []:
            url = item.get("url") if isinstance(item, dict) else item
            if not isinstance(url, str):
                continue
            if urlsplit(url.strip()).scheme.lower() not in ("http", "https"):
                continue
            title = item.get("title") if isinstance(item, dict) else ""
            links.append(
                {"requirement_key": str(requirement), "url": url.strip(), "title": _text(title)}
            )
    return links


def _collaboration(snapshot: dict) -> str:
    """How the learner collaborated, in their words ("" when they worked alone)."""
    raw = snapshot.get("collaboration")
    if not isinstance(raw, dict) or not raw.get("collaborative"):
        return ""
    return _text(raw.get("how"))


def blind_answers(snapshot: dict, version: MicroCredentialVersion) -> dict:
    """The learner's words an assessor reads, in the order of the version's prompts."""
    snapshot = snapshot if isinstance(snapshot, dict) else {}
    answers = _answer_map(snapshot)
    ordered = [
        {
            "part": part.kind,
            "prompt_key": prompt.key,
            "prompt": prompt.text,
            "text": answers[(part.kind, prompt.key)],
        }
        for part in version.parts
        for prompt in part.prompts
        if answers.get((part.kind, prompt.key))
    ]
    return {
        "answers": ordered,
        "links": _links(snapshot),
        "collaboration": _collaboration(snapshot),
    }


# -- the learner's institution, for conflicts of interest ----------------------------------------
def learner_conflict_keys(session: Session, attempt: Attempt) -> list[str]:
    row = session.execute(
        select(LmsUser.email, Platform.name)
        .join(Platform, Platform.id == LmsUser.platform_id)
        .where(LmsUser.id == attempt.user_id)
    ).first()
    if row is None:
        return []
    return sorted(institution_keys([row.name], [row.email]))


def previous_assessors(session: Session, attempt: Attempt) -> list[int]:
    """The first and second assessors who reviewed the previous attempt (in that order)."""
    if attempt.previous_attempt_id is None:
        return []
    rows = session.execute(
        select(Assignment.role, Assignment.assessor_id)
        .join(Case, Case.id == Assignment.case_id)
        .where(
            Case.attempt_id == attempt.previous_attempt_id,
            Assignment.role.in_((FIRST, SECOND)),
            Assignment.state == SUBMITTED,
        )
    ).all()
    order = {FIRST: 0, SECOND: 1}
    return [assessor_id for _role, assessor_id in sorted(rows, key=lambda r: order[r.role])]


# -- files ---------------------------------------------------------------------------------------
def _blind_copy(services: Services, source: AttemptFile, key: str) -> tuple[StoredFile, bool]:
    """Copy one attempt file to `key` without its metadata; (what was stored, whether it is
    clean). Files the documents module cannot clean (or cannot read) are copied as is and
    reported not clean: never claimed clean."""
    strip = _metadata_stripper()
    if strip is None:
        with services.storage.open(source.storage_key) as handle:
            return services.storage.save(key, handle, size_hint=source.size), False
    from lti_tool.evidence.documents import DocumentError

    with tempfile.TemporaryDirectory(prefix="blind-") as folder:
        original, copy = Path(folder) / "original", Path(folder) / "copy"
        with services.storage.open(source.storage_key) as handle, original.open("wb") as out:
            shutil.copyfileobj(handle, out, 1024 * 1024)
        try:
            report = strip(original, copy, source.media_type)
        except DocumentError as exc:
            log.warning("attempt file %s could not be cleaned (%s)", source.id, exc)
            copy, cleaned = original, False
        else:
            cleaned = report.cleaned
            if not cleaned:
                log.warning(
                    "attempt file %s not fully cleaned: %s",
                    source.id,
                    "; ".join(report.not_removed),
                )
        with copy.open("rb") as handle:
            return services.storage.save(key, handle, size_hint=copy.stat().st_size), cleaned


def _copy_files(services: Services, case: Case, attempt: Attempt) -> None:
    counters: dict[str, int] = {}
    for position, source in enumerate(attempt.files, start=1):
        counters[source.requirement_key] = counters.get(source.requirement_key, 0) + 1
        known = ACCEPTABLE.get(source.media_type)
        extension = known.extension if known else "bin"
        neutral = f"{source.requirement_key}-{counters[source.requirement_key]}.{extension}"
        # Keyed by the attempt file, so a retried handler overwrites rather than leaves copies.
        stored, cleaned = _blind_copy(services, source, f"{BLIND_PREFIX}{source.id}.{extension}")
        case.files.append(
            CaseFile(
                attempt_file_id=source.id,
                position=position,
                requirement_key=source.requirement_key,
                neutral_name=neutral,
                storage_key=stored.key,
                media_type=stored.content_type,
                size=stored.size,
                sha256=stored.sha256,
                metadata_removed=cleaned,
            )
        )


# -- outbox handlers -----------------------------------------------------------------------------
def _unique_code(session: Session) -> str:
    while True:
        code = new_code()
        if session.scalar(select(Case.id).where(Case.code == code)) is None:
            return code


def open_case(session: Session, services: Services, attempt_id: int) -> Case | None:
    """The blind case of an attempt, made once (a retried message finds it), then assigned.
    None when the attempt was withdrawn before assessment took it."""
    case = session.scalar(select(Case).where(Case.attempt_id == attempt_id))
    if case is None:
        attempt = session.get(Attempt, attempt_id)
        if attempt is None:
            raise LookupError(f"there is no attempt {attempt_id}")
        if attempt.status == ATTEMPT_WITHDRAWN:
            return None
        version = session.get(MicroCredentialVersion, attempt.version_id)
        assert version is not None  # a foreign key
        case = Case(
            attempt_id=attempt.id,
            code=_unique_code(session),
            micro_credential_id=attempt.micro_credential_id,
            version_id=attempt.version_id,
            answers=blind_answers(attempt.snapshot, version),
            conflict_keys=learner_conflict_keys(session, attempt),
            preferred_assessor_ids=previous_assessors(session, attempt),
            submitted_at=attempt.submitted_at,
            decision_due_at=attempt.decision_due_at,
        )
        session.add(case)
        _copy_files(services, case, attempt)
        session.flush()
    if case.staffing_needed and case.status in OPEN_CASE_STATUSES:
        assign_waiting(session, services.settings, [case.id])
    return case


def handle_assessment_requested(session: Session, services: Services, payload: dict) -> None:
    """Outbox `assessment.requested` {attempt_id}: make the blind case and assign it."""
    open_case(session, services, int(payload["attempt_id"]))


def withdraw_case(session: Session, attempt_id: int) -> bool:
    """The learner withdrew before review started: the case and its assignments end. True
    when this call withdrew it."""
    case = session.scalar(select(Case).where(Case.attempt_id == attempt_id).with_for_update())
    if case is None or case.status == WITHDRAWN:
        return False
    now = utcnow()
    session.execute(
        update(Assignment)
        .where(Assignment.case_id == case.id, Assignment.state.in_(LIVE_STATES))
        .values(state=CANCELLED, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    case.status = WITHDRAWN
    case.staffing_needed = False
    case.withdrawn_at = now
    return True


def handle_assessment_withdrawn(session: Session, services: Services, payload: dict) -> None:
    """Outbox `assessment.withdrawn` {attempt_id}: cancel the case and its assignments."""
    withdraw_case(session, int(payload["attempt_id"]))
