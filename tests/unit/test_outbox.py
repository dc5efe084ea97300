"""The outbox: a message posted in a transaction is delivered once that transaction commits,
never when it rolls back; a failing handler is retried with backoff, then marked failed and
retried on demand; posting the same key twice delivers once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from lti_tool import jobs
from lti_tool.db import transaction, utcnow
from lti_tool.outbox import service
from lti_tool.outbox.models import DELIVERED, FAILED, PENDING, OutboxMessage

RECEIVED: list[dict] = []
FAILURES = {"left": 0}


def record(session, services, payload: dict) -> None:
    if FAILURES["left"] > 0:
        FAILURES["left"] -= 1
        raise RuntimeError("the platform is down")
    RECEIVED.append(payload)


@pytest.fixture(autouse=True)
def test_kind(monkeypatch):
    RECEIVED.clear()
    FAILURES["left"] = 0
    monkeypatch.setitem(service.HANDLERS, "test.recorded", f"{__name__}:record")


def message(services, key: str) -> OutboxMessage:
    with services.session_factory() as session:
        return session.scalar(select(OutboxMessage).where(OutboxMessage.key == key))


def test_a_message_is_delivered_after_its_transaction_commits(services):
    with transaction(services.session_factory) as session:
        service.post(session, "test.recorded", "k1", {"attempt_id": 7})
        assert RECEIVED == []  # not before the change it describes is committed
    assert RECEIVED == [{"attempt_id": 7}]
    assert message(services, "k1").status == DELIVERED


def test_nothing_is_delivered_when_the_transaction_rolls_back(services):
    with pytest.raises(ZeroDivisionError), transaction(services.session_factory) as session:
        service.post(session, "test.recorded", "k2", {"attempt_id": 8})
        1 / 0  # noqa: B018
    assert RECEIVED == []
    assert message(services, "k2") is None


def test_posting_the_same_key_twice_delivers_once(services):
    for _ in range(2):
        with transaction(services.session_factory) as session:
            service.post(session, "test.recorded", "k3", {"attempt_id": 9})
    assert RECEIVED == [{"attempt_id": 9}]


def test_a_failing_handler_is_retried_by_the_sweep_once_due(services):
    FAILURES["left"] = 1
    with transaction(services.session_factory) as session:
        service.post(session, "test.recorded", "k4", {"n": 1})
    failed_once = message(services, "k4")
    assert (failed_once.status, failed_once.attempts) == (PENDING, 1)
    assert "the platform is down" in failed_once.last_error
    assert failed_once.next_attempt_at > utcnow() + timedelta(seconds=10)  # backoff
    assert jobs.sweep(services) == 0  # not due yet: nothing is sent early
    with transaction(services.session_factory) as session:
        session.get(OutboxMessage, failed_once.id).next_attempt_at = utcnow()
    assert jobs.sweep(services) == 1
    assert RECEIVED == [{"n": 1}]
    assert message(services, "k4").status == DELIVERED


def test_after_max_attempts_a_message_is_failed_and_retried_on_demand(services, cli):
    FAILURES["left"] = service.MAX_ATTEMPTS
    with transaction(services.session_factory) as session:
        posted = service.post(session, "test.recorded", "k5", {"n": 2})
    for _ in range(service.MAX_ATTEMPTS - 1):
        with transaction(services.session_factory) as session:
            session.get(OutboxMessage, posted.id).next_attempt_at = utcnow()
        jobs.sweep(services)
    gave_up = message(services, "k5")
    assert (gave_up.status, gave_up.attempts) == (FAILED, service.MAX_ATTEMPTS)
    with services.session_factory() as session:
        assert [m.key for m in service.failed_messages(session)] == ["k5"]
    result = cli("sweep", "--retry-failed")
    assert result.exit_code == 0, result.output
    assert "made 1 failed deliveries pending again" in result.output
    assert RECEIVED == [{"n": 2}]
    assert message(services, "k5").status == DELIVERED


def test_a_kind_without_handler_stays_pending_with_the_reason(services):
    with transaction(services.session_factory) as session:
        service.post(session, "test.unknown", "k6", {})
    waiting = message(services, "k6")
    assert waiting.status == PENDING
    assert "no handler for outbox messages of kind 'test.unknown'" in waiting.last_error
