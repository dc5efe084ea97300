"""Badges issued at the same moment on PostgreSQL: once per attempt however many deliveries
race, one stack credential when two last members are decided at once, distinct status indexes,
and every credential still verifies."""

from __future__ import annotations

from sqlalchemy import func, select

from lti_tool import jobs
from lti_tool.credentials import proof, status
from lti_tool.credentials import service as badges
from lti_tool.credentials.models import IssuedCredential, IssuerKey
from lti_tool.db import transaction
from lti_tool.outbox import service as outbox
from lti_tool.outbox.models import OutboxMessage
from tests.integration.test_cache_postgresql import all_at_once
from tests.integration.test_worker_and_health import JOB_TIMEOUT, wait_for, worker  # noqa: F401
from tests.unit.badges_support import (
    SAMPLE_KEYS,
    add_learner,
    add_platform,
    earned_attempt,
    issue,
    load_catalogs,
)


def count(services, *where) -> int:
    with services.session_factory() as session:
        return session.scalar(select(func.count()).select_from(IssuedCredential).where(*where))


def test_racing_deliveries_of_one_attempt_issue_one_badge(services):
    load_catalogs(services)
    learner = add_learner(services, add_platform(services))
    attempt_id = earned_attempt(services, learner, "active-listening")
    ids = all_at_once(
        8, lambda _i: issue(services, learner, "active-listening", attempt_id).credential.id
    )
    assert len(set(ids)) == 1
    assert count(services) == 1
    with services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(IssuerKey)) == 1


def test_the_last_two_members_decided_at_once_complete_the_stack_once(services):
    load_catalogs(services)
    learner = add_learner(services, add_platform(services))
    for key in SAMPLE_KEYS[:2]:
        issue(services, learner, key)
    attempts = [earned_attempt(services, learner, key) for key in SAMPLE_KEYS[2:]]
    results = all_at_once(2, lambda i: issue(services, learner, SAMPLE_KEYS[2 + i], attempts[i]))
    stacks = [c for r in results for c in r.stack_credentials]
    assert len(stacks) == 1
    assert count(services, IssuedCredential.stack_id.is_not(None)) == 1


def test_many_learners_at_once_get_distinct_status_indexes_and_valid_proofs(services):
    load_catalogs(services)
    platform_id = add_platform(services)
    learners = [add_learner(services, platform_id, f"Learner {n}") for n in range(8)]
    results = all_at_once(8, lambda i: issue(services, learners[i], "active-listening"))
    entries = {r.credential.document["credentialStatus"]["id"] for r in results}
    assert len(entries) == 8
    for result in results:
        proof.verify(result.credential.document)


def test_a_real_worker_delivers_badge_requested_and_a_repeat_issues_nothing_more(
    services,
    settings,
    worker,  # noqa: F811 - the fixture imported above
):
    """Posted with an earned decision: a `lti-tool worker` process issues the badge and the
    stack credential and asks for the grade; the same request posted again after a Redis
    flush, and a sweep, issue nothing twice."""
    load_catalogs(services)
    learner = add_learner(services, add_platform(services))
    for key in SAMPLE_KEYS[:3]:
        issue(services, learner, key)
    attempt_id = earned_attempt(services, learner, SAMPLE_KEYS[3])
    worker.redis.flushdb()  # nothing queued now but what follows
    with transaction(services.session_factory) as session:
        outbox.post(session, "badge.requested", f"badge.requested:{attempt_id}",
                    {"attempt_id": attempt_id})  # fmt: skip

    def delivered() -> bool:
        with services.session_factory() as session:
            message = session.scalar(
                select(OutboxMessage).where(OutboxMessage.key == f"badge.requested:{attempt_id}")
            )
            return message.status == "delivered"

    wait_for(delivered, JOB_TIMEOUT, "badge.requested delivered", worker.process, worker.log)
    assert count(services, IssuedCredential.attempt_id == attempt_id) == 1
    assert count(services, IssuedCredential.stack_id.is_not(None)) == 1
    with services.session_factory() as session:
        keys = set(session.scalars(select(OutboxMessage.key)))
    assert f"grade.decided:{attempt_id}" in keys
    assert any(k.startswith("grade.stack_earned:") for k in keys)
    # The same request again, and a sweep after a flush: nothing more is issued.
    worker.redis.flushdb()
    with transaction(services.session_factory) as session:
        outbox.post(session, "badge.requested", f"badge.requested:{attempt_id}",
                    {"attempt_id": attempt_id})  # fmt: skip
    jobs.sweep(services)
    assert count(services) == 5


def test_revocations_at_once_all_reach_the_status_list(services):
    load_catalogs(services)
    platform_id = add_platform(services)
    learners = [add_learner(services, platform_id, f"Learner {n}") for n in range(6)]
    credentials = [issue(services, learner, "active-listening").credential for learner in learners]

    def revoke(i: int) -> None:
        with transaction(services.session_factory) as session:
            row = session.get(IssuedCredential, credentials[i].id)
            # The list is read (and held, through the relationship) before the revocation.
            assert not status.is_set(row.status_list.bits, row.status_index)
            badges.revoke(session, services.settings, row.id, f"reason {i}", "admin")

    all_at_once(6, revoke)
    with services.session_factory() as session:
        listed = badges.status_list_credential(session, services.settings, 1)
        for credential in credentials:
            assert badges.status_of(session, session.get(IssuedCredential, credential.id)) == (
                badges.REVOKED
            )
    proof.verify(listed)
    bits = status.decode(listed["credentialSubject"]["encodedList"])
    assert all(status.is_set(bits, c.status_index) for c in credentials)
