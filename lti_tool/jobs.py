"""The job queue: RQ on Redis in production, in-process (synchronous) in the embedded default.

Jobs are thin entry points into service functions. Nothing depends on a job surviving in Redis:
whatever must reach the outside world is a row in the database first, and `sweep` re-enqueues
what is still pending.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import asdict
from datetime import datetime
from typing import Any

from lti_tool.services import Services
from lti_tool.settings import load_settings

log = logging.getLogger(__name__)
QUEUE_NAME = "lti-tool"

# Functions that find pending outbox rows and enqueue their delivery; filled by later packages.
SWEEPERS: list[Callable[[Services], int]] = []
# Functions that give failed deliveries a fresh set of attempts (`lti-tool sweep --retry-failed`).
RETRIERS: list[Callable[[Services], int]] = []

_worker_services: Services | None = None
# The services of the caller while a job runs in-process (no Redis): the job must use the
# caller's database and cache, not a second set built from the environment.
_inline_services: ContextVar[Services | None] = ContextVar("inline_services", default=None)


def worker_services() -> Services:
    """Services of a worker process, built once from the environment (or, for a job run
    in-process, the services of whoever enqueued it)."""
    global _worker_services
    inline = _inline_services.get()
    if inline is not None:
        return inline
    if _worker_services is None:
        _worker_services = Services(load_settings())
    return _worker_services


def enqueue(
    services: Services,
    func: Callable[..., Any],
    *args: Any,
    job_id: str | None = None,
    job_timeout: int = 600,
) -> None:
    """Run `func(*args)` in a worker, or right now when no Redis is configured. `job_timeout`
    is how long RQ lets it run before killing it."""
    if services.redis is None:
        reset = _inline_services.set(services)
        try:
            func(*args)
        finally:
            _inline_services.reset(reset)
        return
    from rq import Queue

    Queue(QUEUE_NAME, connection=services.redis).enqueue(
        func, *args, job_id=job_id, job_timeout=job_timeout, result_ttl=3600, failure_ttl=7 * 86400
    )


def enqueue_at(
    services: Services,
    when: datetime,
    func: Callable[..., Any],
    *args: Any,
    job_id: str,
    job_timeout: int = 600,
) -> None:
    """Run `func(*args)` in a worker at `when` (RQ's scheduler, run by every worker). Without
    Redis there is no scheduler: nothing is queued, and the next sweep does the work."""
    if services.redis is None:
        return
    from rq import Queue

    Queue(QUEUE_NAME, connection=services.redis).enqueue_at(
        when, func, *args, job_id=job_id, job_timeout=job_timeout, result_ttl=3600,
        failure_ttl=7 * 86400,
    )  # fmt: skip


def sweep(services: Services) -> int:
    """Re-enqueue every pending delivery; return how many were enqueued."""
    total = 0
    for sweeper in SWEEPERS:
        total += sweeper(services)
    return total


def retry_failed(services: Services) -> int:
    """Make every delivery that gave up pending again; return how many."""
    return sum(retrier(services) for retrier in RETRIERS)


def deliver_outbox_message(message_id: int) -> str:
    """Deliver one outbox message (see lti_tool.outbox)."""
    from lti_tool.outbox.service import deliver

    return deliver(worker_services(), message_id)


def sweep_outbox(services: Services) -> int:
    from lti_tool.outbox.service import sweep as sweep_messages

    return sweep_messages(services)


def retry_failed_outbox(services: Services) -> int:
    from lti_tool.db import transaction
    from lti_tool.outbox.service import retry_failed as retry_messages

    with transaction(services.session_factory) as session:
        return retry_messages(session)


SWEEPERS.append(sweep_outbox)
RETRIERS.append(retry_failed_outbox)


# A MOOC's roster is many pages (platforms may cap a page well below our limit): an hour.
SYNC_ROSTER_TIMEOUT = 3600


def sync_roster(course_id: int, memberships_url: str | None, lock_token: str | None = None) -> dict:
    """Sync a course's roster from its LMS (NRPS). `lock_token` is the course's sync lock, taken
    by whoever enqueued this; without it the job takes the lock itself, or does nothing if
    another sync of the course runs. Returns the sync's progress record."""
    from lti_tool.lti.nrps import sync_course_roster

    return sync_course_roster(worker_services(), course_id, memberships_url, lock_token).to_dict()


def create_line_items() -> dict:
    """Create through AGS the line items of links launched without one (each pending link once;
    failures stay pending for the sweep). Returns what was done, by resource link id."""
    from lti_tool.lti.ags import create_pending_line_items

    return create_pending_line_items(worker_services()).to_dict()


# The most pending links one sweep counts (the job itself goes through all of them).
SWEEP_LINE_ITEMS_LIMIT = 1000


def sweep_line_items(services: Services) -> int:
    """Enqueue `create_line_items` when links wait for a line item; how many links wait."""
    from lti_tool.catalog.mapping import links_needing_line_items

    with services.session_factory() as session:
        pending = len(links_needing_line_items(session, limit=SWEEP_LINE_ITEMS_LIMIT))
    if pending:
        enqueue(services, create_line_items)
    return pending


SWEEPERS.append(sweep_line_items)


# -- grades (lti_tool/gradebook) ----------------------------------------------------------------
# Set while a deliver_scores job waits in the queue: events then add no second one.
SCORE_DELIVERY_QUEUED = "gradebook:delivery-queued"
SCORE_DELIVERY_TIMEOUT = 3600


def deliver_scores() -> dict:
    """Post every due score row to its platform (AGS), then schedule the next due retry."""
    from lti_tool.gradebook.delivery import deliver_due

    services = worker_services()
    services.cache.delete(SCORE_DELIVERY_QUEUED)
    run = deliver_due(services)
    schedule_score_delivery(services, run.next_due)
    return run.to_dict()


def request_score_delivery(services: Services) -> None:
    """Start a delivery of the due scores (one queued job at most; in-process: right now)."""
    if services.redis is not None and not services.cache.add(SCORE_DELIVERY_QUEUED, True, 600):
        return
    enqueue(services, deliver_scores, job_timeout=SCORE_DELIVERY_TIMEOUT)


def schedule_score_delivery(services: Services, when: datetime | None) -> None:
    """A deliver_scores job at `when`; one per second. In-process (no Redis) there is no
    scheduler: the next event or `lti-tool sweep` does it."""
    if when is None:
        return
    enqueue_at(
        services,
        when,
        deliver_scores,
        job_id=f"deliver-scores-at-{int(when.timestamp())}",
        job_timeout=SCORE_DELIVERY_TIMEOUT,
    )


def sweep_scores(services: Services) -> int:
    """Enqueue deliver_scores when score rows are due (or schedule it for the next one)."""
    from lti_tool.gradebook.delivery import due_count, next_due

    with services.session_factory() as session:
        due = due_count(session)
        later = next_due(session)
    if due:
        enqueue(services, deliver_scores, job_timeout=SCORE_DELIVERY_TIMEOUT)
    else:
        schedule_score_delivery(services, later)
    return due


SWEEPERS.append(sweep_scores)


def retry_failed_scores(services: Services) -> int:
    """Failed score rows back to pending; how many."""
    from lti_tool.db import transaction
    from lti_tool.gradebook.delivery import retry_failed

    with transaction(services.session_factory) as session:
        return retry_failed(session)


RETRIERS.append(retry_failed_scores)


# -- assessment --------------------------------------------------------------------------------
def assign_waiting_cases() -> dict:
    """Assign every case waiting for an assessor (after an assessor is added, certified or
    resumed, and from the sweep). Returns the run's counts."""
    from lti_tool.assessment.assignment import assign_waiting
    from lti_tool.db import transaction

    services = worker_services()
    with transaction(services.session_factory) as session:
        return asdict(assign_waiting(session, services.settings))


def assessment_deadlines() -> dict:
    """Remind assessors before their due date, reassign overdue reviews, assign what waits."""
    from lti_tool.assessment.assignment import process_deadlines
    from lti_tool.db import transaction

    services = worker_services()
    with transaction(services.session_factory) as session:
        return asdict(process_deadlines(session, services.settings))


def sweep_assessment(services: Services) -> int:
    """Enqueue `assessment_deadlines` when cases wait or reviews are due; how many."""
    from lti_tool.assessment.assignment import deadline_work

    with services.session_factory() as session:
        pending = deadline_work(session, services.settings)
    if pending:
        enqueue(services, assessment_deadlines)
    return pending


SWEEPERS.append(sweep_assessment)


def health_probe(token: str) -> str:
    """A job that proves a worker runs our code: echoes its argument with the worker's pid."""
    return f"{token}:{os.getpid()}"


def run_worker(services: Services, burst: bool = False) -> None:
    """Run an RQ worker on the tool's queue (with RQ's scheduler for delayed retries)."""
    if services.redis is None:
        raise RuntimeError("a worker needs Redis: set LTI_TOOL_REDIS_URL")
    from rq import Queue, Worker

    global _worker_services
    _worker_services = services
    # RQ forks a work horse per job. A horse must not use the database connections pooled in
    # this parent (a sweeper's, say): they would be one socket shared by several processes.
    os.register_at_fork(after_in_child=_forget_inherited_connections)
    queue = Queue(QUEUE_NAME, connection=services.redis)
    try:
        enqueued = sweep(services)
    except Exception:
        # The worker still serves the queue (jobs say what is wrong); `lti-tool sweep` later.
        log.exception("the start-up sweep failed")
    else:
        if enqueued:
            log.info("sweep re-enqueued %d pending deliveries", enqueued)
    Worker([queue], connection=services.redis).work(burst=burst, with_scheduler=True)


def _forget_inherited_connections() -> None:
    """In a forked child: drop the parent's pooled connections without closing them."""
    if _worker_services is not None and "engine" in _worker_services.__dict__:
        _worker_services.engine.dispose(close=False)
