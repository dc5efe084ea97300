"""Grades reach the LMS whatever goes wrong, as production runs them: PostgreSQL, Redis, real
`lti-tool worker` processes, and a loopback AGS server that fails on purpose (500s, 429 with
Retry-After, answers slower than the timeout, tokens that expire early), a worker killed with
SIGKILL in the middle of its posts, and Redis flushed with the jobs queued. Each ends with
every learner's result in its final state, every state accepted in order, and on Canvas one
submission per learner."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import defaultdict
from datetime import datetime

import pytest
from redis import Redis
from rq import Worker
from sqlalchemy import func, select

from lti_tool.gradebook.models import DELIVERED, DELIVERING, Score
from tests.integration.test_worker_and_health import (
    RunningWorker,
    wait_for,
    worker_env,
)
from tests.support.advantage import SCORE_SCOPE, Failure, attach_fake_lms
from tests.support.gradebook import (
    decide,
    enrolled_learners,
    launch_learner,
    submit_attempt,
)
from tests.support.servers import lti_tool_command, stop_gracefully
from tests.unit.catalog_support import SAMPLE, import_paths

LEARNERS = 12
DELIVERY_TIMEOUT = 90
# What the worker runs with: quick retries, a short claim, a read timeout the slow answers miss.
GRADE_ENV = {
    "LTI_TOOL_GRADE_RETRY_BASE_SECONDS": "1",
    "LTI_TOOL_GRADE_DELIVERY_LEASE_SECONDS": "4",
    "LTI_TOOL_GRADE_HTTP_TIMEOUT_SECONDS": "1",
    "LTI_TOOL_GRADE_DELIVERY_THREADS": "4",
}


class Workers:
    """Start `lti-tool worker` processes on the test's Redis and PostgreSQL; kill them."""

    def __init__(self, settings, tmp_path) -> None:
        self.env = {**worker_env(settings, tmp_path), **GRADE_ENV}
        self.tmp_path = tmp_path
        self.redis = Redis.from_url(settings.redis_url)
        self.running: list[RunningWorker] = []

    def start(self) -> RunningWorker:
        log = self.tmp_path / f"worker-{len(self.running)}.log"
        before = {w.name for w in Worker.all(connection=self.redis)}
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*lti_tool_command(), "worker"],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        worker = RunningWorker(process, log, self.redis)
        self.running.append(worker)
        wait_for(
            lambda: {w.name for w in Worker.all(connection=self.redis)} - before,
            30,
            "it registered with Redis",
            process,
            log,
        )
        return worker

    def kill(self, worker: RunningWorker) -> None:
        """SIGKILL to the worker and its work horse: no clean-up of any kind."""
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()

    def logs(self) -> str:
        return "\n".join(w.log.read_text() for w in self.running)

    def stop_all(self) -> None:
        for worker in self.running:
            stop_gracefully(worker.process)
        self.redis.close()


@pytest.fixture
def workers(settings, tmp_path):
    running = Workers(settings, tmp_path)
    yield running
    running.stop_all()


@pytest.fixture
def catalog(services):
    import_paths(services, SAMPLE)


@pytest.fixture
def lms(services, canvas):
    fake = attach_fake_lms(services, canvas)
    yield fake
    fake.stop()


@pytest.fixture
def learners(client, catalog, canvas, lms, services):
    first = launch_learner(client, canvas, lms, "learner-0")
    return [first, *enrolled_learners(services, first, LEARNERS - 1)]


def submit_and_decide(services, learners) -> dict[str, str]:
    """Every learner submits; even ones are then earned, odd ones asked to revise. Returns
    each learner's final gradingProgress."""
    final = {}
    for n, who in enumerate(learners):
        attempt = submit_attempt(services, who)
        decide(services, attempt, "earned" if n % 2 == 0 else "revise")
        final[who.subject] = "FullyGraded" if n % 2 == 0 else "Pending"
    return final


def wait_until_delivered(services, lms, final: dict[str, str], workers: Workers) -> None:
    """Every score row delivered and the LMS holding each learner's final state."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while time.monotonic() < deadline:
        with services.session_factory() as session:
            rows = session.execute(select(Score.status, Score.grading_progress)).all()
        if len(rows) == len(final) and all(r.status == DELIVERED for r in rows):
            held = {
                who: (lms.result(lineitem(lms), who) or {}).get("gradingProgress") for who in final
            }
            if held == final:
                return
        time.sleep(0.2)
    with services.session_factory() as session:
        state = session.execute(
            select(Score.status, Score.attempts, Score.last_error, Score.grading_progress)
        ).all()
    pytest.fail(f"not all delivered: {state}\nworker logs:\n{workers.logs()}")


def lineitem(lms) -> str:
    return lms.lineitem_url("4dde05e8ca1973bcca9bffc13e1548820eee93a3", 1)


def assert_final_and_in_order(lms, final: dict[str, str], submissions: bool = True) -> None:
    accepted = defaultdict(list)
    for post in lms.accepted_scores:
        accepted[post["userId"]].append(post)
    for who, grading in final.items():
        result = lms.result(lineitem(lms), who)
        assert result["gradingProgress"] == grading, (who, result)
        if grading == "FullyGraded":
            assert result["scoreGiven"] == 100
        posts = accepted[who]
        stamps = [datetime.fromisoformat(p["timestamp"]) for p in posts]
        assert stamps == sorted(stamps), (who, posts)  # never an older state after a newer
        assert posts[-1]["gradingProgress"] == grading
        if submissions:
            # Canvas: the badge submission made once at most, never a submission per post.
            assert len(result["submissions"]) <= 1, (who, result)


def test_500s_429s_timeouts_and_an_expired_token(services, lms, learners, workers):
    lms.fail_score_posts(
        Failure(500),
        Failure(500),
        Failure(503),
        Failure(429, retry_after="2"),
        Failure(200, delay=2.0, applied=True),  # applied, but the answer comes too late
        Failure(500),
        Failure(500),
        Failure(500),
        Failure(500),
        Failure(502),
    )
    workers.start()
    final = submit_and_decide(services, learners[: LEARNERS // 2])
    wait_until_delivered(services, lms, final, workers)
    # The platform forgets its tokens early: the next scores refresh it once and go through.
    lms.expire_tokens()
    final.update(submit_and_decide(services, learners[LEARNERS // 2 :]))
    wait_until_delivered(services, lms, final, workers)
    assert_final_and_in_order(lms, final)
    # One token for all, and one more after the platform forgot it (a 401 refreshes once).
    assert lms.token_requests[SCORE_SCOPE] == 2, workers.logs()


def test_a_worker_killed_in_the_middle_of_its_posts(services, client, moodle, catalog, workers):
    fake = attach_fake_lms(services, moodle)
    fake.score_shape = "moodle"
    try:
        first = launch_learner(client, moodle, fake, "learner-0", "moodle")
        everyone = [first, *enrolled_learners(services, first, LEARNERS - 1)]
        fake.score_delay = 0.3  # slow enough to be caught mid-post
        worker = workers.start()
        final = {}
        for who in everyone:
            submit_attempt(services, who)
            final[who.subject] = "Pending"

        def delivering() -> int:
            with services.session_factory() as session:
                return session.scalar(
                    select(func.count()).select_from(Score).where(Score.status == DELIVERING)
                )

        # After the first posts, and while one is under way: between two posts (the next
        # learner's outbox message still being handled) the kill would catch none.
        wait_for(
            lambda: len(fake.score_posts) >= 3 and delivering(),
            DELIVERY_TIMEOUT,
            "the first posts and one in flight",
            worker.process,
            worker.log,
        )
        workers.kill(worker)
        assert delivering(), "the kill should catch posts in flight"
        fake.score_delay = 0.0
        for n, who in enumerate(everyone):
            with services.session_factory() as session:
                attempt = session.scalar(
                    select(Score.attempt_id).where(Score.user_id == who.user_id)
                )
            if attempt is None:  # its outbox message was not handled before the kill
                from lti_tool.evidence.models import Attempt

                with services.session_factory() as session:
                    attempt = session.scalar(
                        select(Attempt.id).where(Attempt.user_id == who.user_id)
                    )
            decide(services, attempt, "earned" if n % 2 == 0 else "revise")
            final[who.subject] = "FullyGraded" if n % 2 == 0 else "Pending"
        workers.start()  # its start-up sweep finds what the killed one left
        moodle_item = fake.lineitem_url("2", 1, "moodle")
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while time.monotonic() < deadline:
            with services.session_factory() as session:
                statuses = session.scalars(select(Score.status)).all()
            held = {w: (fake.result(moodle_item, w) or {}).get("gradingProgress") for w in final}
            if len(statuses) == LEARNERS and set(statuses) == {DELIVERED} and held == final:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"not delivered after the kill: {held}\n{workers.logs()}")
        for who, grading in final.items():
            posts = [p for p in fake.accepted_scores if p["userId"] == who]
            stamps = [datetime.fromisoformat(p["timestamp"]) for p in posts]
            assert stamps == sorted(stamps) and posts[-1]["gradingProgress"] == grading
            assert fake.result(moodle_item, who)["feedback"]  # the comment, never blanked
    finally:
        fake.stop()


def test_redis_flushed_with_the_jobs_queued(services, lms, learners, workers, settings):
    # No worker yet: the outbox deliveries wait in Redis, then Redis loses them all.
    final = submit_and_decide(services, learners)
    redis = Redis.from_url(settings.redis_url)
    assert redis.dbsize() > 0
    redis.flushdb()
    redis.close()
    workers.start()  # the start-up sweep re-enqueues from the database
    wait_until_delivered(services, lms, final, workers)
    assert_final_and_in_order(lms, final)
    assert lms.token_requests[SCORE_SCOPE] == 1
