"""Checks around a submission on real files: names and e-mails of the learner and of course
members found with their place (answers, file names, file text, metadata), the similarity
flag between learners' submissions (for assessors, never blocking), and the note to declared
collaborators whose reflections are alike."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from lti_tool.db import transaction
from lti_tool.evidence import checks
from lti_tool.evidence import service as evidence
from lti_tool.evidence.models import AttemptNotes, DraftFile
from tests.unit.document_samples import LEARNER, LEARNER_EMAIL, OTHER, write_docx, write_pdf
from tests.unit.evidence_support import add_learner, fill, load_catalog, make_course, words

REFLECTION = (
    "Using exit tickets every day changed how I open my lessons: the first five minutes now "
    "answer the misconceptions the tickets showed, and the quieter students tell me in writing "
    "what they would never say aloud. I learnt that sorting into three piles is quick once the "
    "question is aimed at the objective, and that acting on the piles is what matters most."
)


@pytest.fixture
def people(services):
    mc = load_catalog(services)
    course = make_course(services, "C1")
    ada = add_learner(services, course, LEARNER, LEARNER_EMAIL)
    grace = add_learner(services, course, OTHER, "grace.hopper@example.org")
    return {"mc": mc, "course": course, "ada": ada, "grace": grace}


def save(services, user, mc, origin: int | None = None, **changes) -> None:
    with transaction(services.session_factory) as session:
        draft = evidence.find_draft(session, user, mc)
        evidence.save_draft(session, user, mc, draft.revision if draft else 0,
                            evidence.DraftChanges(**changes),
                            evidence.Origin(origin) if origin else None)  # fmt: skip


def findings(services, user, mc) -> checks.Findings:
    with services.session_factory() as session:
        page = evidence.workspace(session, user, mc)
        return checks.before_submitting(session, services.settings, page.draft, page.version)


def add(services, user, mc, requirement, path) -> DraftFile:
    return evidence.add_file(services.session_factory, services.storage, user, mc, requirement,
                             path.name, io.BytesIO(path.read_bytes()))  # fmt: skip


def test_names_are_found_with_their_place_in_answers_files_and_metadata(services, people,
                                                                          tmp_path):  # fmt: skip
    ada, mc = people["ada"], people["mc"]
    fill(services, ada, mc, people["course"])
    save(services, ada, mc, answers={"overview": {"current-practice": f"I ask {OTHER} to help."}},
         collaboration={"collaborative": True, "with_whom": OTHER, "how": "Mail me at "
                        f"{LEARNER_EMAIL}."})  # fmt: skip
    add(services, ada, mc, "tickets", write_pdf(tmp_path / "ada-lovelace-tickets.pdf"))
    add(services, ada, mc, "sorting", write_docx(tmp_path / "sorting.docx"))
    found = findings(services, ada, mc)
    to_edit = {(hit.place, hit.matched) for hit in found.to_edit}
    assert ("Part 1, question 2, word 3", OTHER) in to_edit  # another member's full name
    assert ("Collaboration statement (how you worked together), word 4",
            LEARNER_EMAIL) in to_edit  # fmt: skip
    assert ("file ada-lovelace-tickets.pdf, page 2", OTHER) in to_edit  # the body text
    assert any(p.startswith("file sorting.docx, paragraph") for p, _ in to_edit)
    automatic = {(hit.place, hit.matched) for hit in found.automatic}
    assert ("file name ada-lovelace-tickets.pdf", "ada-lovelace") in automatic
    assert ("file ada-lovelace-tickets.pdf, metadata: XMP dc:creator", LEARNER) in automatic
    assert any(p.startswith("file sorting.docx, metadata") for p, _ in automatic)
    # The "with whom" field is private (never shown to assessors): never a hit.
    assert not [hit for hit in found.report.hits if "with whom" in hit.place.lower()]
    # At submission the hits are kept beside the attempt, for administrators.
    with transaction(services.session_factory) as session:
        attempt_id = evidence.submit(session, services.settings, ada, mc).id
    with services.session_factory() as session:
        notes = session.scalars(select(AttemptNotes)).one()
        assert notes.attempt_id == attempt_id
        assert {(h["place"], h["found"]) for h in notes.confidentiality} >= to_edit
        assert notes.documents  # what was read, for the next attempt's draft


def test_an_unreadable_file_is_kept_and_said_to_be_unchecked(services, people, tmp_path):
    ada, mc = people["ada"], people["mc"]
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 2000)
    row = add(services, ada, mc, "tickets", broken)
    assert row.document and "error" in row.document
    assert any("broken.pdf" in note for note in findings(services, ada, mc).report.unchecked)


def submitted(services, user, mc, course, reflection: str, **collaboration) -> int:
    fill(services, user, mc, course)
    save(services, user, mc, answers={"reflection": {"impact": reflection}},
         collaboration=collaboration or None)  # fmt: skip
    with transaction(services.session_factory) as session:
        return evidence.submit(session, services.settings, user, mc).id


def test_nearly_identical_submissions_are_flagged_not_blocked(services, people):
    mc, course = people["mc"], people["course"]
    first = submitted(services, people["ada"], mc, course, REFLECTION)
    second = submitted(services, people["grace"], mc, course, REFLECTION + " Really.")
    carl = add_learner(services, course, "Carl Sagan")
    third = submitted(services, carl, mc, course, words(120, "different"))
    with services.session_factory() as session:
        flags = checks.similarity_flags(session, second)
        assert [f["attempt_id"] for f in flags] == [first]
        assert flags[0]["score"] >= 0.8 and flags[0]["declared"] is False
        assert checks.similarity_flags(session, first) == []  # compared with earlier ones only
        # Carl's answers share the filled-in overview but not the reflection: the flag says
        # which part is alike.
        [flag, _] = checks.similarity_flags(session, third)
        scores = {part["part"]: part["score"] for part in flag["parts"]}
        assert scores["Part 1, question 1"] == 1.0 and scores["Part 3, question 1"] < 0.2


def test_declared_collaborators_are_told_to_make_their_reflection_their_own(services, people):
    mc, course = people["mc"], people["course"]
    first = submitted(services, people["ada"], mc, course, REFLECTION)
    grace = people["grace"]
    fill(services, grace, mc, course)
    save(services, grace, mc, answers={"reflection": {"impact": REFLECTION}},
         collaboration={"collaborative": True, "with_whom": "I worked with Ada Lovelace",
                        "how": "We planned together."})  # fmt: skip
    found = findings(services, grace, mc)
    assert found.collaborative and len(found.collaborators) == 1
    note = found.collaborators[0]
    assert note.containment == 1.0 and REFLECTION.split(":")[0] in note.passages[0]
    with transaction(services.session_factory) as session:
        second = evidence.submit(session, services.settings, grace, mc).id
    with services.session_factory() as session:
        [flag] = checks.similarity_flags(session, second)
        assert flag["attempt_id"] == first and flag["declared"] is True


def test_the_next_attempt_keeps_what_was_read_from_its_files(services, people, tmp_path):
    from datetime import UTC, datetime

    from lti_tool.evidence import outcomes

    ada, mc = people["ada"], people["mc"]
    fill(services, ada, mc, people["course"])
    add(services, ada, mc, "sorting", write_docx(tmp_path / "sorting.docx"))
    with transaction(services.session_factory) as session:
        attempt_id = evidence.submit(session, services.settings, ada, mc).id
        outcomes.record_decision(session, attempt_id, "revise", [], datetime.now(UTC))
    with transaction(services.session_factory) as session:
        draft = evidence.start_next_attempt(session, ada, mc)
        docx = next(f for f in draft.files if f.original_name == "sorting.docx")
        assert docx.document and docx.document["metadata"]
    assert any(hit.place.startswith("file sorting.docx, metadata")
               for hit in findings(services, ada, mc).automatic)  # fmt: skip


def test_the_roster_index_is_reused_until_the_roster_changes(services, people):
    ada, mc, course = people["ada"], people["mc"], people["course"]
    answer = f"{LEARNER} met Hedy Lamarr."
    save(services, ada, mc, course, answers={"overview": {"setting": answer}})
    hits = findings(services, ada, mc).report.hits
    # The learner is on the roster too: their name is theirs, listed once.
    assert [(h.matched, h.identity) for h in hits] == [(LEARNER, "own")]
    with services.session_factory() as session:
        cached = checks.member_index(session, course)
        assert checks.member_index(session, course) is cached
    add_learner(services, course, "Hedy Lamarr")
    hits = findings(services, ada, mc).report.hits
    assert [(h.matched, h.identity) for h in hits] == [(LEARNER, "own"), ("Hedy Lamarr", "other")]
