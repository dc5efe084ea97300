"""Post outbox messages inside a transaction; deliver them after it commits, retry, sweep.

Delivery is enqueued automatically once the posting transaction commits (an SQLAlchemy
`after_commit` hook on sessions made by `Services.session_factory`): a caller cannot forget
it, and a message is never delivered before the change it describes is visible.
"""

from __future__ import annotations

import importlib
import logging
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from lti_tool.db import transaction, utcnow
from lti_tool.outbox.models import DELIVERED, FAILED, PENDING, OutboxMessage
from lti_tool.retry import equal_jitter

if TYPE_CHECKING:
    from lti_tool.services import Services

log = logging.getLogger(__name__)

# kind -> "module:function"; each handler is `handler(session, services, payload) -> None`,
# runs inside the transaction that marks the message delivered, and must be idempotent.
HANDLERS: dict[str, str] = {
    "grade.submitted": "lti_tool.gradebook.service:on_attempt_event",
    "grade.decided": "lti_tool.gradebook.service:on_attempt_event",
    "grade.withdrawn": "lti_tool.gradebook.service:on_attempt_event",
    "grade.stack_earned": "lti_tool.gradebook.service:on_stack_earned",
    "badge.requested": "lti_tool.credentials.service:handle_badge_requested",
    "assessment.requested": "lti_tool.assessment.cases:handle_assessment_requested",
    "assessment.withdrawn": "lti_tool.assessment.cases:handle_assessment_withdrawn",
    "assessment.reminder": "lti_tool.assessment.notices:handle_reminder",
    "assessment.assigned": "lti_tool.assessment.notices:handle_assigned",
}

MAX_ATTEMPTS = 12  # about a day of retries with the backoff below
BASE_DELAY = 30.0  # seconds before the first retry
MAX_DELAY = 6 * 3600.0
SWEEP_BATCH = 1000
POSTED = "outbox_posted"  # session.info key: ids posted in the current transaction


class UnknownKind(LookupError):
    """A message whose kind has no handler (a package not deployed yet, or a typo)."""


def post(session: Session, kind: str, key: str, payload: dict[str, Any]) -> OutboxMessage:
    """Ask for `kind` to be delivered once the current transaction commits. Posting a `key`
    that exists already returns the existing message and changes nothing."""
    existing = session.scalar(select(OutboxMessage).where(OutboxMessage.key == key))
    if existing is not None:
        return existing
    message = OutboxMessage(kind=kind, key=key, payload=payload, next_attempt_at=utcnow())
    session.add(message)
    session.flush()
    session.info.setdefault(POSTED, []).append(message.id)
    return message


def resolve(kind: str) -> Callable[[Session, Services, dict], None]:
    target = HANDLERS.get(kind)
    if target is None:
        raise UnknownKind(f"no handler for outbox messages of kind {kind!r}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def deliver(services: Services, message_id: int) -> str:
    """Deliver one message if it is pending and due; return its status afterwards.

    The handler runs in the transaction that marks the message delivered, with the row locked
    (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so a second worker skips it rather than waiting).
    """
    try:
        with transaction(services.session_factory) as session:
            message = session.scalar(
                select(OutboxMessage)
                .where(OutboxMessage.id == message_id)
                .with_for_update(skip_locked=True)
            )
            if message is None or message.status != PENDING:
                return message.status if message is not None else "missing"
            handler = resolve(message.kind)
            handler(session, services, dict(message.payload))
            message.status = DELIVERED
            message.delivered_at = utcnow()
            message.last_error = None
            return DELIVERED
    except Exception as exc:
        return _record_failure(services, message_id, exc)


def _record_failure(services: Services, message_id: int, exc: Exception) -> str:
    summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]
    with transaction(services.session_factory) as session:
        message = session.get(OutboxMessage, message_id)
        if message is None:
            return "missing"
        message.attempts += 1
        message.last_error = summary
        if message.attempts >= MAX_ATTEMPTS:
            message.status = FAILED
            log.error(
                "outbox message %s (%s) failed for good: %s", message.id, message.kind, summary
            )
        else:
            delay = equal_jitter(BASE_DELAY, message.attempts - 1, MAX_DELAY)
            message.next_attempt_at = utcnow() + timedelta(seconds=delay)
            log.warning(
                "outbox message %s (%s) failed (attempt %d), retry in %.0f s: %s",
                message.id,
                message.kind,
                message.attempts,
                delay,
                summary,
            )
        status, due = message.status, message.next_attempt_at
    if status == PENDING:
        _schedule(services, message_id, due)
    return status


def due_messages(
    session: Session, now: datetime | None = None, limit: int = SWEEP_BATCH
) -> list[int]:
    """Ids of pending messages whose time has come, oldest first."""
    return list(
        session.scalars(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= (now or utcnow())
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
    )


def sweep(services: Services) -> int:
    """Enqueue the delivery of every due pending message; return how many."""
    with services.session_factory() as session:
        ids = due_messages(session)
    for message_id in ids:
        _enqueue(services, message_id)
    return len(ids)


def retry_failed(session: Session) -> int:
    """Give failed messages a fresh set of attempts (an admin asked); return how many."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == FAILED)
        .values(status=PENDING, attempts=0, next_attempt_at=utcnow())
    )
    return result.rowcount or 0


def failed_messages(session: Session, limit: int = 100) -> list[OutboxMessage]:
    """The messages that gave up, newest first, for the admins' pages."""
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == FAILED)
            .order_by(OutboxMessage.id.desc())
            .limit(limit)
        )
    )


# -- enqueueing --------------------------------------------------------------------------------
def _enqueue(services: Services, message_id: int) -> None:
    from lti_tool import jobs

    jobs.enqueue(services, jobs.deliver_outbox_message, message_id, job_id=f"outbox-{message_id}")


def _schedule(services: Services, message_id: int, when: datetime) -> None:
    """Retry later: RQ's scheduler when there is Redis; without it the next sweep does."""
    from lti_tool import jobs

    jobs.enqueue_at(
        services,
        when,
        jobs.deliver_outbox_message,
        message_id,
        job_id=f"outbox-{message_id}-{when.timestamp():.0f}",
    )


def enqueue_after_commit(session_factory, services: Services) -> None:
    """Make sessions of `session_factory` enqueue the delivery of what they posted, once
    their transaction has committed (and forget it when it rolls back)."""

    @event.listens_for(session_factory, "after_commit")
    def _after_commit(session: Session) -> None:
        posted = session.info.pop(POSTED, None)
        for message_id in posted or ():
            try:
                _enqueue(services, message_id)
            except Exception:  # Redis down: the message is safe in the database; the sweep sends it
                log.exception("could not enqueue outbox message %s; the sweep will", message_id)

    @event.listens_for(session_factory, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop(POSTED, None)
