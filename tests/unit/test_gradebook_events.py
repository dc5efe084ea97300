"""From the outbox events to the LMS gradebook, in-process: submitted, decided (earned with the
badge link, revise with the feedback pointer), withdrawn and stack earned reach the line items
of the learner's courses; late and repeated events change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lti_tool.catalog.models import LinkCredential, Stack
from lti_tool.db import transaction
from lti_tool.gradebook import service
from lti_tool.gradebook.models import DELIVERED, Score
from lti_tool.outbox import service as outbox
from lti_tool.roster.models import Enrollment, ResourceLink
from tests.conftest import BASE_URL
from tests.support.advantage import CANVAS_SUBMISSION
from tests.support.gradebook import (
    decide,
    launch_learner,
    score_row,
    submit_attempt,
    withdraw,
)
from tests.support.platform import AGS, CLAIM, LEARNER, launch
from tests.unit import test_ags_line_items

catalog = test_ags_line_items.catalog
canvas_lms = test_ags_line_items.canvas_lms
moodle_lms = test_ags_line_items.moodle_lms


@pytest.fixture
def ada(client, catalog, canvas, canvas_lms):
    return launch_learner(client, canvas, canvas_lms, "ada-canvas")


def badge_url(services, attempt_id: int) -> str:
    """The public page of the badge the credentials package issued for the attempt."""
    from lti_tool.credentials.service import public_url_for_attempt

    with services.session_factory() as session:
        url = public_url_for_attempt(session, attempt_id, BASE_URL)
    assert url is not None, "no badge was issued for the attempt"
    return url


def posted(fake) -> list[dict]:
    return [p["json"] for p in fake.score_posts]


def test_submission_then_earned_reaches_the_gradebook(services, ada, canvas_lms):
    attempt = submit_attempt(services, ada)
    result = canvas_lms.result(ada.lineitem_url, ada.subject)
    assert (result["activityProgress"], result["gradingProgress"]) == ("Submitted", "Pending")
    assert result["scoreGiven"] is None

    decide(services, attempt, "earned")
    result = canvas_lms.result(ada.lineitem_url, ada.subject)
    assert (result["gradingProgress"], result["scoreGiven"], result["scoreMaximum"]) == (
        "FullyGraded",
        100,
        100,
    )
    badge = badge_url(services, attempt)
    assert badge in result["comments"][-1]
    assert result["submissions"] == [{"submission_type": "online_url", "submission_data": badge}]
    assert posted(canvas_lms)[-1][CANVAS_SUBMISSION]["submitted_at"].endswith("+00:00")
    assert score_row(services, ada).status == DELIVERED


def test_a_late_or_repeated_event_changes_nothing(services, ada, canvas_lms):
    attempt = submit_attempt(services, ada)
    decide(services, attempt, "earned")
    count = len(canvas_lms.score_posts)
    with transaction(services.session_factory) as session:
        # The submitted event handled again (a retried outbox message): the attempt is earned.
        service.on_attempt_event(session, services, {"attempt_id": attempt})
    assert len(canvas_lms.score_posts) == count
    assert canvas_lms.result(ada.lineitem_url, ada.subject)["gradingProgress"] == "FullyGraded"


def test_revise_points_to_the_feedback_then_the_resubmission_is_pending_again(
    services, ada, canvas_lms
):
    feedback = [
        {
            "part": "artifacts",
            "criterion_key": "protocol",
            "criterion": "Uses a listening protocol",
            "comments": [{"assessor": "Assessor 1", "text": "Missing."}],
        }
    ]
    first = submit_attempt(services, ada)
    decide(services, first, "revise", feedback)
    result = canvas_lms.result(ada.lineitem_url, ada.subject)
    assert result["gradingProgress"] == "Pending" and result["scoreGiven"] is None
    assert "Uses a listening protocol" in result["comments"][-1]
    assert "feedback" in result["comments"][-1]
    second = submit_attempt(services, ada, number=2)
    assert canvas_lms.result(ada.lineitem_url, ada.subject)["activityProgress"] == "Submitted"
    with transaction(services.session_factory) as session:
        # The first attempt's decision handled late: the second attempt's state stays.
        service.on_attempt_event(session, services, {"attempt_id": first})
    row = score_row(services, ada)
    assert row.attempt_id == second and row.activity_progress == "Submitted"


def test_the_configured_revise_score_is_posted(services, ada, canvas_lms, monkeypatch):
    monkeypatch.setattr(services, "settings", services.settings.replace(grade_revise_score="50"))
    attempt = submit_attempt(services, ada)
    decide(services, attempt, "revise")
    result = canvas_lms.result(ada.lineitem_url, ada.subject)
    assert (result["gradingProgress"], result["scoreGiven"]) == ("FullyGraded", 50)


def test_withdrawn_goes_back_to_not_ready(services, ada, canvas_lms):
    attempt = submit_attempt(services, ada)
    withdraw(services, attempt)
    result = canvas_lms.result(ada.lineitem_url, ada.subject)
    assert (result["activityProgress"], result["gradingProgress"]) == ("Initialized", "NotReady")


def test_moodle_gets_the_badge_link_in_the_comment(
    services, client, catalog, moodle, moodle_lms
):
    moodle_lms.score_shape = "moodle"
    ali = launch_learner(client, moodle, moodle_lms, "ali-moodle", "moodle")
    attempt = submit_attempt(services, ali)
    decide(services, attempt, "earned")
    result = moodle_lms.result(ali.lineitem_url, ali.subject)
    assert result["feedback"].endswith(badge_url(services, attempt))
    assert result["scoreGiven"] == 100
    assert all(CANVAS_SUBMISSION not in p for p in posted(moodle_lms))


def test_only_courses_where_the_learner_is_enrolled_get_a_score(services, ada, canvas_lms):
    with transaction(services.session_factory) as session:
        session.execute(
            Enrollment.__table__.update()
            .where(Enrollment.user_id == ada.user_id)
            .values(status="deleted")
        )
    submit_attempt(services, ada)
    assert canvas_lms.score_posts == []
    with services.session_factory() as session:
        assert session.scalars(select(Score)).all() == []


def test_the_line_item_the_tool_created_is_used_when_the_launch_had_none(
    services, client, catalog, canvas, canvas_lms
):
    claims = {
        CLAIM + "custom": {"micro_credential": "effective-leadership"},
        AGS: {"scope": [], "lineitems": canvas_lms.lineitems_url("c")},
    }
    launch(client, canvas, BASE_URL, sub="bo", roles=[LEARNER], **claims)
    created = canvas_lms.lineitem_url("c", 5)
    with transaction(services.session_factory) as session:
        session.execute(LinkCredential.__table__.update().values(created_lineitem_url=created))
        session.execute(ResourceLink.__table__.update().values(lineitem_url=None))
    from tests.support.gradebook import learner

    bo = learner(services, canvas, "bo", created)
    submit_attempt(services, bo)
    assert canvas_lms.result(created, "bo")["gradingProgress"] == "Pending"


def test_a_stack_earned_scores_the_stacks_own_line_item(
    services, client, catalog, canvas, canvas_lms
):
    stack_item = canvas_lms.lineitem_url("c", 9)
    claims = {
        CLAIM + "custom": {"stack": "collaboration"},
        AGS: {"scope": [], "lineitem": stack_item},
        CLAIM + "resource_link": {"id": "stack-link", "title": "Collaboration stack"},
    }
    launch(client, canvas, BASE_URL, sub="cy", roles=[LEARNER], **claims)
    from tests.support.gradebook import learner

    cy = learner(services, canvas, "cy", stack_item)
    with transaction(services.session_factory) as session:
        stack_id = session.scalar(select(Stack.id).where(Stack.key == "collaboration"))
        outbox.post(
            session,
            "grade.stack_earned",
            f"grade.stack_earned:{cy.user_id}:{stack_id}",
            {"user_id": cy.user_id, "stack_id": stack_id, "credential_id": "k3yZ"},
        )
    result = canvas_lms.result(stack_item, "cy")
    assert (result["gradingProgress"], result["scoreGiven"]) == ("FullyGraded", 100)
    assert "Stack completed" in result["comments"][-1]
    assert f"{BASE_URL}/badges/k3yZ" in result["comments"][-1]
    assert result["submissions"] == [
        {"submission_type": "online_url", "submission_data": f"{BASE_URL}/badges/k3yZ"}
    ]


def test_a_line_item_created_after_the_submission_gets_the_score(
    services, client, catalog, canvas, canvas_lms
):
    from lti_tool.lti import ags
    from tests.support.advantage import LINEITEM_SCOPE, SCORE_SCOPE, Failure
    from tests.support.gradebook import learner

    # The platform fails to create the link's line item at the launch: the link waits for one.
    canvas_lms.fail_line_item_posts(Failure(500))
    claims = {
        CLAIM + "custom": {"micro_credential": "effective-leadership"},
        AGS: {"scope": [LINEITEM_SCOPE, SCORE_SCOPE], "lineitems": canvas_lms.lineitems_url("c")},
    }
    launch(client, canvas, BASE_URL, sub="di", roles=[LEARNER], **claims)
    di = learner(services, canvas, "di", "")
    attempt = submit_attempt(services, di)
    assert canvas_lms.score_posts == []  # nowhere to post it yet
    run = ags.create_pending_line_items(services)  # the sweep's retry creates it
    assert len(run.created) == 1
    (item,) = canvas_lms.line_items["c"]
    assert canvas_lms.result(item["id"], "di")["gradingProgress"] == "Pending"
    with services.session_factory() as session:
        assert session.scalars(select(Score.attempt_id)).all() == [attempt]
