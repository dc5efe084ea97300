"""Evidence service: drafts (one per learner and micro-credential, from any course), saves
refused on a stale revision, files and links, the submission check, submission in one
transaction, withdrawal, and the next attempt after "revise and resubmit"."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from lti_tool.catalog.models import MicroCredentialVersion
from lti_tool.db import transaction
from lti_tool.evidence import outcomes
from lti_tool.evidence import service as evidence
from lti_tool.evidence.models import (
    REVISE,
    SUBMITTED,
    WITHDRAWN,
    Attempt,
    AttemptNotes,
    Draft,
    DraftFile,
)
from lti_tool.evidence.storage import UploadRefused
from lti_tool.outbox.models import OutboxMessage
from lti_tool.progress import models as states
from lti_tool.progress.service import set_state, state_of
from tests.unit.evidence_support import (
    PDF,
    PNG,
    add_learner,
    fill,
    load_catalog,
    make_course,
    words,
)


@pytest.fixture
def setup(services):
    mc = load_catalog(services)
    course = make_course(services, "C1")
    other_course = make_course(services, "C2")
    ada = add_learner(services, course, "Ada Lovelace")
    bob = add_learner(services, course, "Bob Stone")
    return {"mc": mc, "course": course, "other_course": other_course, "ada": ada, "bob": bob}


def save(services, user, mc, revision, **changes):
    with transaction(services.session_factory) as session:
        draft = evidence.save_draft(
            session, user, mc, revision, evidence.DraftChanges(**changes)
        )
        return draft.revision


def test_looking_starts_nothing_and_the_first_save_starts_a_draft(services, setup):
    ada, mc = setup["ada"], setup["mc"]
    with services.session_factory() as session:
        page = evidence.workspace(session, ada, mc)
        assert page.draft is None and page.revision == 0 and page.can_edit
        assert state_of(session, ada, mc) == states.NOT_STARTED
        assert page.version.started_at is None
    revision = save(services, ada, mc, 0, answers={"overview": {"setting": "<b>mine</b>"}})
    assert revision == 2
    with services.session_factory() as session:
        page = evidence.workspace(session, ada, mc)
        assert page.draft.answers == {"overview": {"setting": "<b>mine</b>"}}  # as typed
        assert state_of(session, ada, mc) == states.DRAFT
        assert session.get(MicroCredentialVersion, page.version.id).started_at is not None


def test_the_same_draft_opens_from_any_course(services, setup):
    ada, mc = setup["ada"], setup["mc"]
    with transaction(services.session_factory) as session:
        first = evidence.open_draft(session, ada, mc, evidence.Origin(setup["course"])).id
    with transaction(services.session_factory) as session:
        again = evidence.open_draft(session, ada, mc, evidence.Origin(setup["other_course"]))
        assert again.id == first and again.course_id == setup["other_course"]
    with services.session_factory() as session:
        assert len(session.scalars(select(Draft)).all()) == 1


def test_a_stale_revision_is_refused_and_the_saved_text_stays(services, setup):
    ada, mc = setup["ada"], setup["mc"]
    revision = save(services, ada, mc, 0, answers={"overview": {"setting": "first tab"}})
    # Tab 1 saves again; tab 2 still has the page of `revision`.
    save(services, ada, mc, revision, answers={"overview": {"setting": "tab one, later"}})
    with pytest.raises(evidence.DraftConflict) as refused:
        save(services, ada, mc, revision, answers={"overview": {"setting": "second tab"}})
    assert "changed in another tab" in refused.value.message
    assert refused.value.revision == revision + 1
    with services.session_factory() as session:
        assert evidence.find_draft(session, ada, mc).answers["overview"]["setting"] == (
            "tab one, later"
        )


def test_answers_merge_per_prompt_and_unknown_prompts_or_dates_are_refused(services, setup):
    ada, mc = setup["ada"], setup["mc"]
    r = save(services, ada, mc, 0, answers={"overview": {"setting": "A"}})
    statement = {"collaborative": True, "with_whom": "Carla", "how": "We planned."}
    plan = {"overview": "2026-12-10", "reflection": ""}
    r = save(services, ada, mc, r, answers={"reflection": {"impact": "B"}}, plan=plan,
             collaboration=statement)  # fmt: skip
    with services.session_factory() as session:
        draft = evidence.find_draft(session, ada, mc)
        assert draft.answers == {"overview": {"setting": "A"}, "reflection": {"impact": "B"}}
        assert draft.plan == {"overview": "2026-12-10", "reflection": None}
        assert draft.collaboration["with_whom"] == "Carla"
    with pytest.raises(evidence.EvidenceError, match="no question"):
        save(services, ada, mc, r, answers={"overview": {"nope": "x"}})
    with pytest.raises(evidence.EvidenceError, match="not a date"):
        save(services, ada, mc, r, plan={"overview": "next week"})
    with services.session_factory() as session:  # the refused saves changed nothing
        assert evidence.find_draft(session, ada, mc).revision == r


def test_links_are_validated(services, setup):
    ada, mc = setup["ada"], setup["mc"]
    for bad in ("", "javascript:alert(1)", "ftp://files.example/x", "https://", "not a url",
                "https://exa mple.org/x"):  # fmt: skip
        with pytest.raises(evidence.EvidenceError), transaction(services.session_factory) as s:
            evidence.add_link(s, ada, mc, "tickets", bad)
    with transaction(services.session_factory) as session:
        evidence.add_link(session, ada, mc, "tickets", " https://video.example/v/1 ", "Clip")
    with pytest.raises(evidence.NotFound), transaction(services.session_factory) as session:
        evidence.add_link(session, ada, mc, "no-such-artifact", "https://video.example/v/2")
    with services.session_factory() as session:
        assert evidence.find_draft(session, ada, mc).links == {
            "tickets": [{"url": "https://video.example/v/1", "title": "Clip"}]
        }
    with transaction(services.session_factory) as session:
        evidence.remove_link(session, ada, mc, "tickets", "https://video.example/v/1")
        assert evidence.find_draft(session, ada, mc).links == {"tickets": []}


def test_files_stream_to_storage_and_are_removed_with_their_stored_copy(services, setup):
    ada, mc = setup["ada"], setup["mc"]
    first = evidence.add_file(services.session_factory, services.storage, ada, mc, "tickets",
                              "C:\\Users\\ada\\day1.pdf", io.BytesIO(PDF))  # fmt: skip
    second = evidence.add_file(services.session_factory, services.storage, ada, mc, "tickets",
                               "day2.png", [PNG[:100], PNG[100:]])  # fmt: skip
    assert first.original_name == "day1.pdf" and first.media_type == "application/pdf"
    assert (first.position, second.position) == (0, 1)
    assert services.storage.exists(first.storage_key)
    with pytest.raises(UploadRefused) as refused:
        evidence.add_file(services.session_factory, services.storage, ada, mc, "tickets",
                          "evil.pdf", io.BytesIO(b"MZ" + b"\x00" * 9000))  # fmt: skip
    assert refused.value.code in ("unknown_type", "type_not_allowed")
    # Another learner cannot remove (or even name) Ada's file.
    with pytest.raises(evidence.NotFound):
        evidence.remove_file(services.session_factory, services.storage, setup["bob"], mc,
                             first.id)  # fmt: skip
    evidence.remove_file(services.session_factory, services.storage, ada, mc, first.id)
    assert not services.storage.exists(first.storage_key)
    with services.session_factory() as session:
        names = [f.original_name for f in evidence.find_draft(session, ada, mc).files]
    assert names == ["day2.png"]


def test_the_submission_check_lists_what_is_missing_per_part(services, setup):
    ada, mc = setup["ada"], setup["mc"]
    save(services, ada, mc, 0, answers={"overview": {"setting": words(20)}})
    with services.session_factory() as session:
        page = evidence.workspace(session, ada, mc)
        check = evidence.submission_check(page.version, page.draft)
    by_part = {p.kind: p for p in check.parts}
    assert not check.complete
    assert by_part["overview"].missing == ["Question 2 has no answer yet."]
    assert [n.message for n in by_part["overview"].notes] == [
        "20 words, below the suggested 150–200 words."
    ]
    assert by_part["artifacts"].missing == ["“Three exit tickets”: add a file or a link."]
    assert by_part["reflection"].missing == ["Question 1 has no answer yet."]
    with pytest.raises(evidence.Incomplete), transaction(services.session_factory) as session:
        evidence.submit(session, services.settings, ada, mc)
    # A link satisfies an artifact as well as a file.
    with transaction(services.session_factory) as session:
        evidence.add_link(session, ada, mc, "tickets", "https://drive.example/tickets")
        page = evidence.workspace(session, ada, mc)
        assert evidence.submission_check(page.version, page.draft).parts[1].complete


def test_submitting_freezes_an_attempt_with_its_messages_in_one_transaction(services, setup):
    ada, mc, course = setup["ada"], setup["mc"], setup["course"]
    fill(services, ada, mc, course)
    with transaction(services.session_factory) as session:
        r = evidence.find_draft(session, ada, mc).revision
        statement = {"collaborative": True, "with_whom": "Carla Diaz", "how": "Co-taught"}
        evidence.save_draft(session, ada, mc, r, evidence.DraftChanges(collaboration=statement))
    when = datetime(2026, 12, 1, 10, tzinfo=UTC)  # a Tuesday
    with transaction(services.session_factory) as session:
        origin = evidence.Origin(course)
        attempt = evidence.submit(session, services.settings, ada, mc, origin, now=when)
        attempt_id = attempt.id
    with services.session_factory() as session:
        attempt = session.get(Attempt, attempt_id)
        assert (attempt.number, attempt.status, attempt.course_id) == (1, SUBMITTED, course)
        assert attempt.submitted_at == when
        assert attempt.decision_due_at == datetime(2026, 12, 21, 10, tzinfo=UTC)  # 14 days
        snap = attempt.snapshot
        assert snap["answers"]["reflection"]["impact"].startswith("impact impact")
        assert snap["collaboration"] == {"collaborative": True, "how": "Co-taught"}
        assert "Carla" not in str(snap)  # collaborators' names are not for assessors
        notes = session.scalars(select(AttemptNotes)).one()
        assert notes.collaborators == "Carla Diaz"
        [file] = attempt.files
        assert file.sha256 == __import__("hashlib").sha256(PDF).hexdigest()
        assert snap["files"][0]["sha256"] == file.sha256
        keys = set(session.scalars(select(OutboxMessage.key)))
        assert keys == {f"assessment.requested:{attempt_id}", f"grade.submitted:{attempt_id}"}
        assert state_of(session, ada, mc) == states.SUBMITTED
        assert evidence.find_draft(session, ada, mc) is None
    # A second click finds nothing to submit; the draft cannot be edited meanwhile.
    with pytest.raises(evidence.NotEditable), transaction(services.session_factory) as session:
        evidence.submit(session, services.settings, ada, mc)
    with pytest.raises(evidence.NotEditable):
        save(services, ada, mc, 0, answers={"overview": {"setting": "late"}})


def test_a_failing_submission_leaves_the_draft_and_posts_nothing(services, setup, monkeypatch):
    ada, mc = setup["ada"], setup["mc"]
    fill(services, ada, mc)

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(evidence.catalog, "mark_version_started", broken)
    with pytest.raises(RuntimeError), transaction(services.session_factory) as session:
        evidence.submit(session, services.settings, ada, mc)
    with services.session_factory() as session:
        assert session.scalars(select(Attempt)).all() == []
        assert session.scalars(select(OutboxMessage)).all() == []
        assert evidence.find_draft(session, ada, mc) is not None
        assert state_of(session, ada, mc) == states.DRAFT


def test_withdrawing_goes_back_to_a_draft_only_before_review(services, setup):
    ada, mc = setup["ada"], setup["mc"]
    fill(services, ada, mc)
    with transaction(services.session_factory) as session:
        first = evidence.submit(session, services.settings, ada, mc).id
    with pytest.raises(evidence.NotFound), transaction(services.session_factory) as session:
        evidence.withdraw(session, setup["bob"], first)
    with transaction(services.session_factory) as session:
        draft = evidence.withdraw(session, ada, first)
        assert [f.original_name for f in draft.files] == ["tickets.pdf"]
        assert draft.answers["overview"]["current-practice"] == "Questions."
    with services.session_factory() as session:
        assert session.get(Attempt, first).status == WITHDRAWN
        assert state_of(session, ada, mc) == states.DRAFT
        keys = set(session.scalars(select(OutboxMessage.key)))
        assert {f"assessment.withdrawn:{first}", f"grade.withdrawn:{first}"} <= keys
    # Submitted again, then an assessor starts: withdrawing is refused.
    with transaction(services.session_factory) as session:
        second = evidence.submit(session, services.settings, ada, mc)
        assert second.number == 2
        second = second.id
    with transaction(services.session_factory) as session:
        outcomes.mark_in_review(session, second)
    with pytest.raises(evidence.NotEditable), transaction(services.session_factory) as session:
        evidence.withdraw(session, ada, second)


def test_after_revise_the_next_attempt_is_prefilled_and_earlier_ones_stay(services, setup):
    ada, mc = setup["ada"], setup["mc"]
    fill(services, ada, mc)
    with transaction(services.session_factory) as session:
        first = evidence.submit(session, services.settings, ada, mc).id
    feedback = [{"part": "overview", "criterion_key": "context", "criterion": "The setting...",
                 "comments": [{"assessor": "Assessor 1", "text": "Say more."}]}]  # fmt: skip
    with transaction(services.session_factory) as session:
        outcomes.record_decision(session, first, REVISE, feedback, datetime.now(UTC))
    with services.session_factory() as session:
        page = evidence.workspace(session, ada, mc)
        assert page.can_start_next and page.latest.feedback == feedback
    with transaction(services.session_factory) as session:
        draft = evidence.start_next_attempt(session, ada, mc)
        assert draft.previous_attempt_id == first
        assert draft.answers["reflection"]["impact"].startswith("impact")
        kept = [f.storage_key for f in draft.files]
    assert services.storage.exists(kept[0])
    # Removing the carried-over file from the draft keeps the first attempt's copy.
    with services.session_factory() as session:
        file_id = session.scalars(select(DraftFile.id)).one()
    evidence.remove_file(services.session_factory, services.storage, ada, mc, file_id)
    assert services.storage.exists(kept[0])
    evidence.add_file(services.session_factory, services.storage, ada, mc, "tickets", "new.pdf",
                      io.BytesIO(PDF + b" "))  # fmt: skip
    with transaction(services.session_factory) as session:
        second = evidence.submit(session, services.settings, ada, mc)
        assert (second.number, second.previous_attempt_id) == (2, first)
    with services.session_factory() as session:
        assert [a.number for a in evidence.attempts_of(session, ada, mc)] == [2, 1]
        assert evidence.attempt_of(session, ada, first).files[0].original_name == "tickets.pdf"
        with pytest.raises(evidence.NotFound):
            evidence.attempt_of(session, setup["bob"], first)


def test_nothing_can_be_started_once_earned(services, setup):
    ada, mc = setup["ada"], setup["mc"]
    with transaction(services.session_factory) as session:
        for state in (states.DRAFT, states.SUBMITTED, states.EARNED):
            set_state(session, ada, mc, state)
    with pytest.raises(evidence.NotEditable, match="earned"):
        save(services, ada, mc, 0, answers={"overview": {"setting": "x"}})
