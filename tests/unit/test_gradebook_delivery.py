"""Scores in the LMS gradebook, against a fake LMS that keeps results as Canvas and Moodle do:
the states, ordering (a later state is never replaced by an earlier one), coalescing (many
changes, one post), the Canvas and Moodle shapes, comment deduplication for Canvas, failures
(retried, failed, retried on demand) and one token for many scores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lti_tool.db import transaction
from lti_tool.gradebook import delivery, service
from lti_tool.gradebook.models import DELIVERED, FAILED, PENDING
from tests.support.advantage import (
    CANVAS_SUBMISSION,
    SCORE_MEDIA_TYPE,
    SCORE_SCOPE,
    Failure,
)
from tests.support.gradebook import (
    EARNED_STATE,
    PENDING_STATE,
    add_learners,
    launch_learner,
    score_row,
    set_score,
)
from tests.unit import test_ags_line_items

# The sample catalog and fake LMSs attached to the test platforms, as the line item tests have.
catalog = test_ags_line_items.catalog
canvas_lms = test_ags_line_items.canvas_lms
moodle_lms = test_ags_line_items.moodle_lms


@pytest.fixture
def settings(settings):
    return settings.replace(grade_retry_base_seconds=60, grade_delivery_threads=3)


@pytest.fixture
def ada(client, catalog, canvas, canvas_lms):
    return launch_learner(client, canvas, canvas_lms, "ada-canvas")


@pytest.fixture
def ali(client, catalog, moodle, moodle_lms):
    moodle_lms.score_shape = "moodle"
    return launch_learner(client, moodle, moodle_lms, "ali-moodle", "moodle")


class Attempt:
    """An attempt as the states read it (evidence.models.Attempt's fields)."""

    def __init__(self, status, decision=None, feedback=None, number=1):
        self.id = 7
        self.number = number
        self.status = status
        self.decision = decision
        self.feedback = feedback or []
        self.submitted_at = datetime(2026, 11, 2, 9, 30, 1, 250000, tzinfo=UTC)
        self.decision_due_at = datetime(2026, 11, 20, tzinfo=UTC)


# -- the states ------------------------------------------------------------------------------
def test_a_submission_waits_for_the_assessors_not_for_the_instructor():
    state = service.attempt_score(Attempt("in_review"), "Active Listening", None)
    assert (state.activity_progress, state.grading_progress) == ("Submitted", "Pending")
    assert state.score_given is None and state.submission is None
    assert "two independent assessors" in state.comment and "2026-11-20" in state.comment


def test_earned_is_the_full_score_with_the_badge_link():
    url = "https://tool.test/badges/abc"
    state = service.attempt_score(Attempt("earned", "earned"), "Active Listening", url)
    assert (state.activity_progress, state.grading_progress) == ("Completed", "FullyGraded")
    assert state.score_given == state.score_maximum == 100
    assert url in state.comment
    assert state.submission == {
        "submission_type": "online_url",
        "submission_data": url,
        "submitted_at": "2026-11-02T09:30:01.250000+00:00",
    }
    without = service.attempt_score(Attempt("earned", "earned"), "Active Listening", None)
    assert without.submission is None and "badge" in without.comment


def test_revise_gives_no_score_by_default_and_the_configured_one_otherwise():
    feedback = [
        {"part": "artifacts", "criterion": "Uses a listening protocol", "comments": []},
        {"part": "reflection", "criterion": "Names next steps", "comments": []},
    ]
    attempt = Attempt("revise", "revise", feedback)
    default = service.attempt_score(attempt, "Active Listening", None)
    assert default.grading_progress == "Pending" and default.score_given is None
    assert "Uses a listening protocol; Names next steps" in default.comment
    assert "Assessor" not in default.comment
    scored = service.attempt_score(attempt, "Active Listening", None, service.revise_score("40"))
    assert (scored.grading_progress, scored.score_given, scored.score_maximum) == (
        "FullyGraded",
        40,
        100,
    )
    with pytest.raises(ValueError):
        service.revise_score("140")


def test_withdrawn_goes_back_to_not_ready():
    state = service.attempt_score(Attempt("withdrawn"), "Active Listening", None)
    assert (state.activity_progress, state.grading_progress) == ("Initialized", "NotReady")
    assert state.score_given is None


# -- ordering and coalescing ---------------------------------------------------------------------
def test_an_earlier_state_never_replaces_a_later_one(services, ada, canvas_lms):
    assert set_score(services, ada, EARNED_STATE, rank=14)
    first = score_row(services, ada)
    assert not set_score(services, ada, PENDING_STATE, rank=11)  # a late "submitted" event
    assert not set_score(services, ada, EARNED_STATE, rank=14)  # the same state again
    row = score_row(services, ada)
    assert (row.version, row.grading_progress) == (first.version, "FullyGraded")
    # A newer attempt (number 2) does replace it, with a strictly later timestamp.
    assert set_score(services, ada, PENDING_STATE, rank=21)
    newer = score_row(services, ada)
    assert newer.version == first.version + 1 and newer.timestamp > first.timestamp


def test_many_changes_before_a_delivery_are_one_post_of_the_last(services, ada, canvas_lms):
    set_score(services, ada, PENDING_STATE, rank=11)
    set_score(services, ada, service.DesiredScore("InProgress", "Pending", "Revise."), rank=13)
    set_score(services, ada, EARNED_STATE, rank=24)
    run = delivery.deliver_due(services)
    assert run.delivered == 1
    assert len(canvas_lms.score_posts) == 1
    result = canvas_lms.result(ada.lineitem_url, ada.subject)
    assert (result["gradingProgress"], result["scoreGiven"]) == ("FullyGraded", 100)
    assert score_row(services, ada).status == DELIVERED
    assert delivery.deliver_due(services).delivered == 0  # nothing new: nothing posted
    assert len(canvas_lms.score_posts) == 1


def test_timestamps_have_microseconds_and_a_zone_and_keep_increasing(services, ada, canvas_lms):
    stamps = []
    for n in range(3):
        set_score(services, ada, service.DesiredScore("Submitted", "Pending", f"c{n}"), rank=11)
        delivery.deliver_due(services)
        stamps.append(canvas_lms.score_posts[-1]["json"]["timestamp"])
    parsed = [datetime.fromisoformat(s) for s in stamps]
    assert all(p.tzinfo is not None for p in parsed) and all("." in s for s in stamps)
    assert parsed == sorted(parsed) and len(set(parsed)) == 3
    assert all(s.endswith("+00:00") and len(s.split(".")[1]) == 6 + 6 for s in stamps)


def test_a_newer_state_arriving_during_a_post_is_delivered_after_it(services, ada, canvas_lms):
    set_score(services, ada, PENDING_STATE, rank=11)
    with transaction(services.session_factory) as session:
        (claimed,) = delivery.claim_due(session, 10, 60)
    set_score(services, ada, EARNED_STATE, rank=14)  # while the old version is in flight
    clients = delivery._Clients(services, delivery.delivery_policy(services))
    outcome = delivery.post_score(clients, claimed, 1)
    with transaction(services.session_factory) as session:
        delivery.record_outcomes(session, [outcome], 10)
    row = score_row(services, ada)
    assert row.status == PENDING and row.delivered_version is None  # v1 did not mark v2 done
    delivery.deliver_due(services)
    result = canvas_lms.result(ada.lineitem_url, ada.subject)
    assert result["gradingProgress"] == "FullyGraded"
    assert score_row(services, ada).status == DELIVERED


# -- platform shapes ---------------------------------------------------------------------------
def test_canvas_gets_the_submission_extension_and_one_new_submission(services, ada, canvas_lms):
    set_score(services, ada, PENDING_STATE, rank=11)
    delivery.deliver_due(services)
    set_score(services, ada, EARNED_STATE, rank=14)
    delivery.deliver_due(services)
    set_score(services, ada, _with_comment(EARNED_STATE, "Earned, with a note."), rank=14)
    delivery.deliver_due(services)
    posts = [p["json"] for p in canvas_lms.score_posts]
    assert [p[CANVAS_SUBMISSION]["new_submission"] for p in posts] == [False, True, False]
    assert posts[1][CANVAS_SUBMISSION]["submission_type"] == "online_url"
    assert posts[1][CANVAS_SUBMISSION]["submission_data"] == "https://tool.test/badges/1"
    assert "scoreGiven" not in posts[0] and posts[1]["scoreMaximum"] == 100
    assert all(p["userId"] == ada.subject for p in posts)
    result = canvas_lms.result(ada.lineitem_url, ada.subject)
    assert result["submissions"] == [
        {"submission_type": "online_url", "submission_data": "https://tool.test/badges/1"}
    ]
    assert {p["content_type"] for p in canvas_lms.score_posts} == {SCORE_MEDIA_TYPE}


def _with_comment(state: service.DesiredScore, comment: str) -> service.DesiredScore:
    from dataclasses import replace

    return replace(state, comment=comment)


def test_canvas_never_gets_the_same_comment_twice(services, ada, canvas_lms):
    set_score(services, ada, PENDING_STATE, rank=11)
    delivery.deliver_due(services)
    # The same comment with another state (a configured revise score, say): not sent again.
    set_score(
        services,
        ada,
        service.DesiredScore("Submitted", "Pending", PENDING_STATE.comment, 0, 100),
        rank=12,
    )
    delivery.deliver_due(services)
    set_score(services, ada, EARNED_STATE, rank=14)
    delivery.deliver_due(services)
    posts = [p["json"] for p in canvas_lms.score_posts]
    assert len(posts) == 3
    assert ["comment" in p for p in posts] == [True, False, True]
    result = canvas_lms.result(ada.lineitem_url, ada.subject)
    assert result["comments"] == [PENDING_STATE.comment, EARNED_STATE.comment]


def test_moodle_gets_plain_ags_with_the_comment_every_time(services, ali, moodle_lms):
    set_score(services, ali, PENDING_STATE, rank=11)
    delivery.deliver_due(services)
    set_score(
        services,
        ali,
        service.DesiredScore("Submitted", "Pending", PENDING_STATE.comment, 0, 100),
        rank=12,
    )
    delivery.deliver_due(services)
    set_score(services, ali, EARNED_STATE, rank=14)
    delivery.deliver_due(services)
    posts = moodle_lms.score_posts
    assert len(posts) == 3
    assert all(p["json"].get("comment") for p in posts)
    assert all(CANVAS_SUBMISSION not in p["json"] for p in posts)
    # The scores URL is the line item's path + /scores, its query string kept after it.
    assert {moodle_lms.url + p["lineitem"] + "/scores?" + p["query"] for p in posts} == {
        ali.lineitem_url.replace("/lineitem?", "/lineitem/scores?")
    }
    result = moodle_lms.result(ali.lineitem_url, ali.subject)
    assert result["feedback"] == EARNED_STATE.comment and result["scoreGiven"] == 100


# -- answers for a superseded state ---------------------------------------------------------------
def _platform_holds_newer(fake, who):
    from urllib.parse import urlsplit

    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    fake.results[(urlsplit(who.lineitem_url).path, who.subject)] = {
        "timestamp": later,
        "comments": [],
        "submissions": [],
    }


def test_canvas_400_on_an_older_timestamp_is_done_not_failed(services, ada, canvas_lms):
    _platform_holds_newer(canvas_lms, ada)
    set_score(services, ada, PENDING_STATE, rank=11)
    run = delivery.deliver_due(services)
    assert (run.superseded, run.failed, run.retried) == (1, 0, 0)
    row = score_row(services, ada)
    assert row.status == DELIVERED and row.last_error is None


def test_moodle_409_on_a_timestamp_not_strictly_newer_is_done(services, ali, moodle_lms):
    set_score(services, ali, PENDING_STATE, rank=11)
    delivery.deliver_due(services)
    # The same version posted again (its answer was lost in a crash): Moodle says 409.
    with transaction(services.session_factory) as session:
        session.execute(
            delivery.update(delivery.Score).values(
                status=PENDING, next_attempt_at=datetime.now(UTC)
            )
        )
    run = delivery.deliver_due(services)
    assert run.superseded == 1 and score_row(services, ali).status == DELIVERED
    assert [p["json"]["timestamp"] for p in moodle_lms.score_posts][0] == moodle_lms.score_posts[1][
        "json"
    ]["timestamp"]


# -- failures ---------------------------------------------------------------------------------
def test_a_server_error_is_retried_later_with_backoff(services, ada, canvas_lms):
    set_score(services, ada, PENDING_STATE, rank=11)
    canvas_lms.fail_score_posts(*[Failure(500)] * 3)  # every in-call try of this run
    before = datetime.now(UTC)
    run = delivery.deliver_due(services)
    after = datetime.now(UTC)
    assert run.retried == 1
    row = score_row(services, ada)
    assert (row.status, row.attempts, row.last_error_status) == (PENDING, 1, 500)
    assert "scripted failure 500" in row.last_error
    # Base 60 s, first retry: between 30 and 60 s (equal jitter) after the failed attempt, which
    # ends somewhere between `before` and `after` (its in-call tries wait between them).
    assert before + timedelta(seconds=30) <= row.next_attempt_at <= after + timedelta(seconds=60)
    assert run.next_due == row.next_attempt_at


def test_a_429_retry_after_is_honoured(services, ada, canvas_lms):
    set_score(services, ada, PENDING_STATE, rank=11)
    canvas_lms.fail_score_posts(Failure(429, retry_after="600"))
    before = datetime.now(UTC)
    delivery.deliver_due(services)
    row = score_row(services, ada)
    assert row.status == PENDING and row.last_error_status == 429
    assert before + timedelta(seconds=599) <= row.next_attempt_at <= before + timedelta(seconds=602)


def test_a_platform_failing_holds_its_other_scores_without_using_their_tries(
    services, ada, canvas_lms
):
    others = add_learners(services, ada, 20)
    for who in [ada, *others]:
        set_score(services, who, PENDING_STATE, rank=11)
    canvas_lms.fail_score_posts(*[Failure(503)] * 30)
    run = delivery.deliver_due(services)
    # The first failures (one per thread at most) used a try; the rest waited with them.
    assert run.retried + run.deferred == 21 and run.retried <= 3
    assert len(canvas_lms.score_posts) <= 3 * 3


def test_a_refusal_fails_at_once_with_the_platforms_error_and_can_be_retried(
    services, ada, canvas_lms, cli
):
    set_score(services, ada, PENDING_STATE, rank=11)
    refusal = {"errors": [{"message": "User not found in course or is not a student"}]}
    canvas_lms.fail_score_posts(Failure(422, body=refusal))
    run = delivery.deliver_due(services)
    assert (run.failed, len(canvas_lms.score_posts)) == (1, 1)  # no retry on a 4xx
    row = score_row(services, ada)
    assert row.status == FAILED and row.last_error_status == 422
    assert "User not found in course" in row.last_error
    assert delivery.deliver_due(services).delivered == 0  # failed stays failed
    result = cli("sweep", "--retry-failed")
    assert "made 1 failed deliveries pending again" in result.output
    # In-process queue: the sweep delivered it.
    assert score_row(services, ada).status == DELIVERED


def test_too_many_tries_mark_a_score_failed(services, ada, canvas_lms, settings):
    set_score(services, ada, PENDING_STATE, rank=11)
    with transaction(services.session_factory) as session:
        session.execute(
            delivery.update(delivery.Score).values(attempts=settings.grade_max_attempts - 1)
        )
    canvas_lms.fail_score_posts(*[Failure(500)] * 3)
    delivery.deliver_due(services)
    assert score_row(services, ada).status == FAILED


# -- tokens ---------------------------------------------------------------------------------
def test_many_scores_cost_one_token_and_a_401_refreshes_it_once(services, ada, canvas_lms):
    others = add_learners(services, ada, 60)
    for who in [ada, *others]:
        set_score(services, who, PENDING_STATE, rank=11)
    assert delivery.deliver_due(services).delivered == 61
    assert canvas_lms.token_requests == {SCORE_SCOPE: 1}
    canvas_lms.expire_tokens()  # the platform forgot the token before its hour was up
    for who in [ada, *others]:
        set_score(services, who, EARNED_STATE, rank=14)
    assert delivery.deliver_due(services).delivered == 61
    assert canvas_lms.token_requests == {SCORE_SCOPE: 2}


# -- a badge post whose answer was lost ----------------------------------------------------------
def _submissions(canvas_lms, who) -> list:
    return canvas_lms.result(who.lineitem_url, who.subject)["submissions"]


def test_a_badge_post_that_landed_without_an_answer_makes_one_canvas_submission(
    services, ada, canvas_lms, settings
):
    """Canvas applies the post, but its answer misses the timeout: not sent again in the call;
    the next try reads the result, finds the score, and asks for no second submission."""
    services.settings = settings.replace(grade_http_timeout_seconds=1)
    set_score(services, ada, PENDING_STATE, rank=11)
    delivery.deliver_due(services)
    set_score(services, ada, EARNED_STATE, rank=14)
    canvas_lms.fail_score_posts(Failure(200, delay=1.5, applied=True))
    run = delivery.deliver_due(services)
    assert run.retried == 1 and len(canvas_lms.score_posts) == 2  # one try, not three
    with transaction(services.session_factory) as session:
        session.execute(delivery.update(delivery.Score).values(next_attempt_at=datetime.now(UTC)))
    assert delivery.deliver_due(services).delivered == 1
    posts = [p["json"][CANVAS_SUBMISSION]["new_submission"] for p in canvas_lms.score_posts]
    assert posts == [False, True, False]
    assert len(_submissions(canvas_lms, ada)) == 1
    assert canvas_lms.result_gets and "user_id=" in canvas_lms.result_gets[-1]
    assert score_row(services, ada).submission_version == score_row(services, ada).version


def test_a_badge_post_that_failed_before_landing_is_sent_as_a_new_submission(
    services, ada, canvas_lms
):
    set_score(services, ada, EARNED_STATE, rank=14)
    canvas_lms.fail_score_posts(Failure(500))  # refused before it was applied
    assert delivery.deliver_due(services).retried == 1
    with transaction(services.session_factory) as session:
        session.execute(delivery.update(delivery.Score).values(next_attempt_at=datetime.now(UTC)))
    delivery.deliver_due(services)
    posts = [p["json"][CANVAS_SUBMISSION]["new_submission"] for p in canvas_lms.score_posts]
    assert posts == [True, True]  # Canvas held no score: the submission is still to be made
    assert len(_submissions(canvas_lms, ada)) == 1
    assert score_row(services, ada).status == DELIVERED


def test_a_claim_that_lapsed_counts_as_a_try_and_its_badge_post_is_checked(
    services, ada, canvas_lms
):
    """A worker killed after Canvas took its post: the claim lapses, the next run counts it as
    a try and, Canvas holding the score, makes no second submission."""
    set_score(services, ada, EARNED_STATE, rank=14)
    with transaction(services.session_factory) as session:
        (claimed,) = delivery.claim_due(session, 10, 60)
    clients = delivery._Clients(services, delivery.delivery_policy(services))
    assert delivery.post_score(clients, claimed, 1).kind == "delivered"  # then the worker dies
    with transaction(services.session_factory) as session:
        session.execute(
            delivery.update(delivery.Score).values(lease_until=datetime.now(UTC) - timedelta(1))
        )
    with transaction(services.session_factory) as session:
        (again,) = delivery.claim_due(session, 10, 60)
    assert again.attempts == 1
    outcome = delivery.post_score(clients, again, 1)
    with transaction(services.session_factory) as session:
        delivery.record_outcomes(session, [outcome], 10)
    posts = [p["json"][CANVAS_SUBMISSION]["new_submission"] for p in canvas_lms.score_posts]
    assert posts == [True, False]
    assert len(_submissions(canvas_lms, ada)) == 1
    assert score_row(services, ada).status == DELIVERED
