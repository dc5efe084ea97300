"""Evidence races on PostgreSQL: of many tabs saving the same revision at once exactly one
wins (the others are told), many first saves share one draft, and a learner withdrawing
while an assessor starts never both succeed."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import select

from lti_tool import migrate
from lti_tool.db import transaction
from lti_tool.evidence import outcomes
from lti_tool.evidence import service as evidence
from lti_tool.evidence.models import Attempt, Draft
from lti_tool.services import Services
from tests.unit.evidence_support import add_learner, fill, load_catalog, make_course

TABS = 8


@pytest.fixture
def services(settings):
    services = Services(settings)
    migrate.upgrade(services.engine)
    yield services
    services.engine.dispose()


def all_at_once(count: int, action: Callable[[int], object]) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = action(i)
        except Exception as exc:  # the outcome under test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_tabs_one_save_wins_and_one_draft_exists(services):
    mc = load_catalog(services)
    ada = add_learner(services, make_course(services), "Ada Lovelace")

    def save(tab: int) -> int:
        with transaction(services.session_factory) as session:
            changes = evidence.DraftChanges(answers={"overview": {"setting": f"tab {tab}"}})
            return evidence.save_draft(session, ada, mc, 0, changes).revision

    results = all_at_once(TABS, save)
    won = [r for r in results if isinstance(r, int)]
    told = [r for r in results if isinstance(r, evidence.DraftConflict)]
    assert len(won) == 1 and len(told) == TABS - 1, results
    with services.session_factory() as session:
        [draft] = session.scalars(select(Draft)).all()
        assert draft.revision == 2 and draft.answers["overview"]["setting"].startswith("tab ")


def test_withdrawing_and_starting_review_at_once_never_both_succeed(services):
    mc = load_catalog(services)
    ada = add_learner(services, make_course(services), "Ada Lovelace")
    for _ in range(3):
        fill(services, ada, mc)
        with transaction(services.session_factory) as session:
            attempt_id = evidence.submit(session, services.settings, ada, mc).id

        def act(i: int, attempt_id=attempt_id):
            with transaction(services.session_factory) as session:
                if i == 0:
                    return evidence.withdraw(session, ada, attempt_id).id
                return outcomes.mark_in_review(session, attempt_id)

        results = all_at_once(2, act)
        failures = [r for r in results if isinstance(r, Exception)]
        assert len(failures) == 1, results
        with services.session_factory() as session:
            status = session.get(Attempt, attempt_id).status
        if status == "in_review":
            assert isinstance(results[0], evidence.NotEditable)
            return
        assert status == "withdrawn"
        assert isinstance(results[1], outcomes.AttemptStateError)
