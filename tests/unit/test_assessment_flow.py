"""From submission to decision: the blind case, two assessors, reviews and the three paths
(earned, revise, adjudicated), recorded on the attempt with the outbox rows that follow."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lti_tool.assessment import service
from lti_tool.assessment.models import (
    ADJUDICATED,
    ADJUDICATION,
    ADJUDICATOR,
    AGREED,
    CANCELLED,
    DECIDED,
    FIRST,
    IN_REVIEW,
    SECOND,
    WAITING,
    WITHDRAWN,
    Assessor,
    Decision,
)
from lti_tool.credentials.service import public_url_for_attempt
from lti_tool.db import transaction
from lti_tool.evidence.models import Attempt
from lti_tool.outbox.models import OutboxMessage
from lti_tool.outbox.service import post
from tests.support import assessment as seed


@pytest.fixture
def learner(services) -> int:
    seed.import_catalog(services)
    return seed.add_learner(services)


@pytest.fixture
def three_assessors(services) -> list[int]:
    return [
        seed.add_assessor(services, f"assessor{n}@institute-{n}.example", f"Institute {n}")
        for n in (1, 2, 3)
    ]


def roles(case) -> dict[str, int]:
    return {
        a.role: a.assessor_id
        for a in case.assignments
        if a.state in ("assigned", "started", "submitted")
    }


def act(services, assessor_id: int, fn, *args):
    with transaction(services.session_factory) as session:
        assessor = session.get(Assessor, assessor_id)
        return fn(session, assessor, *args)


def submit(services, assessor_id: int, code: str, marks: list[dict]):
    with transaction(services.session_factory) as session:
        assessor = session.get(Assessor, assessor_id)
        return service.submit_review(session, services.settings, assessor, code, marks)


def attempt(services, attempt_id: int) -> Attempt:
    with services.session_factory() as session:
        return session.get(Attempt, attempt_id)


def outbox_keys(services) -> list[str]:
    """The outbox's keys in the order they were posted."""
    with services.session_factory() as session:
        return list(session.scalars(select(OutboxMessage.key).order_by(OutboxMessage.id)))


def test_a_submission_becomes_a_blind_case_with_two_different_assessors(
    services, learner, three_assessors
):
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    assert case.status == IN_REVIEW and not case.staffing_needed
    assigned = roles(case)
    assert set(assigned) == {FIRST, SECOND}
    assert assigned[FIRST] != assigned[SECOND]
    assert assigned[FIRST] in three_assessors and assigned[SECOND] in three_assessors
    # The blind copy: whitelisted answers, the link, the file under a neutral name.
    assert [a["prompt_key"] for a in case.answers["answers"]] == [
        "setting",
        "current-practice",
        "impact",
    ]
    assert "learner_name" not in str(case.answers)
    assert case.answers["links"][0]["url"] == "https://video.example/v/123"
    assert case.answers["collaboration"].startswith("I planned the tickets")
    assert [f.neutral_name for f in case.files] == ["tickets-1.pdf"]
    assert case.files[0].metadata_removed is True
    assert len(case.code) == 9 and case.code[4] == "-"
    assert case.decision_due_at == attempt(services, attempt_id).decision_due_at


def test_the_assessment_requested_message_is_idempotent(services, learner, three_assessors):
    attempt_id = seed.submit_attempt(services, learner)
    with transaction(services.session_factory) as session:
        from lti_tool.assessment.cases import open_case

        open_case(session, services, attempt_id)  # a retried delivery
    case = seed.case_of(services, attempt_id)
    assert len(case.assignments) == 2 and len(case.files) == 1


def test_both_met_every_required_criterion_earns_and_asks_for_the_badge(
    services, learner, three_assessors
):
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    assigned = roles(case)
    # A non-required criterion not met by one of them is no disagreement that matters.
    submit(services, assigned[FIRST], case.code, seed.marks({("overview", "practice"): False}))
    assert attempt(services, attempt_id).status == "in_review"  # submitting starts the review
    submit(services, assigned[SECOND], case.code, seed.marks())
    decided = attempt(services, attempt_id)
    assert (decided.status, decided.decision, decided.feedback) == ("earned", "earned", [])
    with services.session_factory() as session:
        decision = session.scalar(select(Decision).where(Decision.attempt_id == attempt_id))
        assert (decision.outcome, decision.path) == ("earned", AGREED)
    keys = outbox_keys(services)
    assert f"badge.requested:{attempt_id}" in keys
    # The decision asks for the badge only; the grade follows once the badge is issued.
    with services.session_factory() as session:
        assert public_url_for_attempt(session, attempt_id, "https://tool.test") is not None
    assert keys.index(f"grade.decided:{attempt_id}") > keys.index(f"badge.requested:{attempt_id}")
    assert seed.case_of(services, attempt_id).status == DECIDED


def test_both_agree_a_criterion_is_not_met_revise_with_both_feedbacks(
    services, learner, three_assessors
):
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    assigned = roles(case)
    failing = {("artifacts", "acted"): False}
    submit(services, assigned[FIRST], case.code, seed.marks(failing))
    submit(services, assigned[SECOND], case.code, seed.marks(failing))
    decided = attempt(services, attempt_id)
    assert decided.decision == "revise"
    assert decided.feedback == [
        {
            "part": "artifacts",
            "criterion_key": "acted",
            "criterion": "The next lesson changed because of the answers.",
            "comments": [
                {"assessor": "Assessor 1", "text": "Feedback on acted: show it in the evidence."},
                {"assessor": "Assessor 2", "text": "Feedback on acted: show it in the evidence."},
            ],
        }
    ]
    keys = outbox_keys(services)
    assert f"grade.decided:{attempt_id}" in keys
    assert f"badge.requested:{attempt_id}" not in keys


def test_a_disagreement_goes_to_a_third_assessor_for_the_disputed_criteria_only(
    services, learner, three_assessors
):
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    assigned = roles(case)
    submit(services, assigned[FIRST], case.code, seed.marks({("artifacts", "aligned"): False}))
    submit(services, assigned[SECOND], case.code, seed.marks())
    case = seed.case_of(services, attempt_id)
    assert case.status == ADJUDICATION
    adjudicator = roles(case)[ADJUDICATOR]
    assert adjudicator not in (assigned[FIRST], assigned[SECOND])
    assert attempt(services, attempt_id).decision is None
    view = act(services, adjudicator, service.case_view, case.code)
    assert view.adjudication
    assert [(c.part, c.key) for c in view.criteria_to_mark] == [("artifacts", "aligned")]
    # Marking a criterion that is not disputed is refused, with the reason per criterion.
    with pytest.raises(service.InvalidReview) as refused:
        submit(services, adjudicator, case.code, seed.marks())
    assert "overview/context" in refused.value.problems
    submit(
        services,
        adjudicator,
        case.code,
        [
            {
                "part": "artifacts",
                "criterion_key": "aligned",
                "met": False,
                "feedback": "Not aligned.",
            }
        ],
    )
    decided = attempt(services, attempt_id)
    assert decided.decision == "revise"
    assert decided.feedback[0]["criterion_key"] == "aligned"
    assert [c["assessor"] for c in decided.feedback[0]["comments"]] == ["Assessor 1", "Assessor 3"]
    with services.session_factory() as session:
        decision = session.scalar(select(Decision).where(Decision.attempt_id == attempt_id))
        assert decision.path == ADJUDICATED
        assert decision.disputed == [{"part": "artifacts", "criterion_key": "aligned"}]


def test_an_adjudicator_who_finds_the_disputed_criterion_met_earns_it(
    services, learner, three_assessors
):
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    assigned = roles(case)
    submit(services, assigned[FIRST], case.code, seed.marks({("overview", "context"): False}))
    submit(services, assigned[SECOND], case.code, seed.marks())
    adjudicator = roles(seed.case_of(services, attempt_id))[ADJUDICATOR]
    submit(
        services,
        adjudicator,
        case.code,
        [{"part": "overview", "criterion_key": "context", "met": True}],
    )
    assert attempt(services, attempt_id).decision == "earned"
    assert f"badge.requested:{attempt_id}" in outbox_keys(services)


def test_feedback_is_required_where_not_met_and_every_criterion_must_be_marked(
    services, learner, three_assessors
):
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    first = roles(case)[FIRST]
    incomplete = seed.marks({("artifacts", "acted"): False})
    incomplete[3]["feedback"] = "   "
    del incomplete[0]
    with pytest.raises(service.InvalidReview) as refused:
        submit(services, first, case.code, incomplete)
    assert set(refused.value.problems) == {"overview/context", "artifacts/acted"}
    assert "feedback" in refused.value.problems["artifacts/acted"].lower()
    # Feedback on a met criterion is not collected.
    given = seed.marks()
    given[0]["feedback"] = "Nice."
    review = submit(services, first, case.code, given)
    assert all(m.feedback is None for m in review.marks)
    with pytest.raises(service.AssessmentError):
        submit(services, first, case.code, given)  # once only


def test_starting_a_review_puts_the_attempt_in_review(services, learner, three_assessors):
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    first = roles(case)[FIRST]
    assert act(services, first, service.start_review, case.code) is True
    assert act(services, first, service.start_review, case.code) is False
    assert attempt(services, attempt_id).status == "in_review"


def test_someone_without_an_assignment_cannot_reach_the_case(services, learner, three_assessors):
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    outsider = next(a for a in three_assessors if a not in roles(case).values())
    for fn in (service.case_view, service.start_review):
        with pytest.raises(service.CaseNotFound):
            act(services, outsider, fn, case.code)
    with pytest.raises(service.CaseNotFound):
        submit(services, outsider, case.code, seed.marks())


def test_a_declined_case_goes_to_another_assessor_and_never_back(
    services, learner, three_assessors
):
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    first = roles(case)[FIRST]
    with transaction(services.session_factory) as session:
        service.decline(session, services.settings, session.get(Assessor, first), case.code)
    after = roles(seed.case_of(services, attempt_id))
    assert first not in after.values()
    assert set(after) == {FIRST, SECOND} and len(set(after.values())) == 2
    with pytest.raises(service.CaseNotFound):
        act(services, first, service.case_view, case.code)


def test_a_case_nobody_can_take_waits_visibly_and_is_assigned_when_someone_can(
    services, learner, cli
):
    seed.add_assessor(services, "only@one.example", "One Institute")
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    assert case.status == WAITING and case.staffing_needed
    assert set(roles(case)) == {FIRST}  # the one eligible assessor can start already
    result = cli(
        "assessor",
        "add",
        "--email",
        "two@two.example",
        "--name",
        "Two",
        "--institution",
        "Two Institute",
        "--capacity",
        "3",
        "--certify",
        seed.CREDENTIAL,
    )
    assert result.exit_code == 0, result.output
    case = seed.case_of(services, attempt_id)
    assert case.status == IN_REVIEW and set(roles(case)) == {FIRST, SECOND}


def test_withdrawal_cancels_the_case_and_its_assignments(services, learner, three_assessors):
    attempt_id = seed.submit_attempt(services, learner)
    with transaction(services.session_factory) as session:
        found = session.get(Attempt, attempt_id)
        found.status = "withdrawn"
        post(
            session,
            "assessment.withdrawn",
            f"assessment.withdrawn:{attempt_id}",
            {"attempt_id": attempt_id},
        )
    case = seed.case_of(services, attempt_id)
    assert case.status == WITHDRAWN and not case.staffing_needed
    assert {a.state for a in case.assignments} == {CANCELLED}


def test_an_attempt_withdrawn_before_assessment_took_it_gets_no_case(
    services, learner, three_assessors
):
    from lti_tool.assessment.cases import open_case

    attempt_id = seed.submit_attempt(services, learner, request_assessment=False)
    with transaction(services.session_factory) as session:
        session.get(Attempt, attempt_id).status = "withdrawn"
        assert open_case(session, services, attempt_id) is None
    assert seed.case_of(services, attempt_id) is None


def test_a_resubmission_goes_back_to_the_same_assessors(services, learner, three_assessors):
    first_attempt = seed.submit_attempt(services, learner)
    case = seed.case_of(services, first_attempt)
    before = roles(case)
    failing = {("artifacts", "acted"): False}
    submit(services, before[FIRST], case.code, seed.marks(failing))
    submit(services, before[SECOND], case.code, seed.marks(failing))
    again = seed.submit_attempt(services, learner, previous_attempt_id=first_attempt, number=2)
    assert roles(seed.case_of(services, again)) == before


def test_a_file_that_cannot_be_cleaned_is_copied_and_flagged_not_clean(
    services, learner, three_assessors
):
    unreadable = b"%PDF-1.4\n% not a real PDF: no objects, no trailer\n" + b"0" * 9000
    attempt_id = seed.submit_attempt(services, learner, pdf=unreadable)
    case = seed.case_of(services, attempt_id)
    assert case.files[0].metadata_removed is False  # never claimed clean
    with services.storage.open(case.files[0].storage_key) as handle:
        assert handle.read() == unreadable


def test_only_web_links_reach_the_assessor():
    from lti_tool.assessment.cases import _links

    snapshot = {
        "links": {
            "tickets": [
                {"url": "https://video.example/v/1", "title": "Day 1"},
                {"url": "javascript:alert(document.cookie)", "title": "x"},
                {"url": "file:///etc/passwd", "title": "y"},
            ],
            "sorting": [{"url": "http://plain.example/page", "title": ""}],
        }
    }
    assert [(link["requirement_key"], link["url"]) for link in _links(snapshot)] == [
        ("tickets", "https://video.example/v/1"),
        ("sorting", "http://plain.example/page"),
    ]
