"""The assignment policy, as properties over random pools and cases (hypothesis): two distinct
eligible assessors, never from the learner's institution, capacity respected, least loaded
first, resubmissions back to the same assessors; and the database layer assigning many
waiting cases in a number of queries that does not grow with them."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select

from lti_tool.assessment.assignment import assign_waiting
from lti_tool.assessment.models import FIRST, SECOND, Assignment, Case
from lti_tool.assessment.policy import Candidate, Need, conflict_key, institution_keys, plan
from lti_tool.db import transaction
from tests.support import assessment as seed

CREDENTIALS = (1, 2)
VERSIONS = {1: (10, 11), 2: (20,)}
KEYS = ("inst-a", "inst-b", "inst-c", "inst-d")

certification = st.sampled_from(
    [(mc, None) for mc in CREDENTIALS] + [(mc, v) for mc in CREDENTIALS for v in VERSIONS[mc]]
)


@st.composite
def candidates(draw) -> list[Candidate]:
    count = draw(st.integers(min_value=0, max_value=8))
    pool = []
    for assessor_id in range(1, count + 1):
        capacity = draw(st.integers(min_value=0, max_value=4))
        pool.append(
            Candidate(
                assessor_id=assessor_id,
                capacity=capacity,
                load=draw(st.integers(min_value=0, max_value=capacity + 1)),
                certified=frozenset(draw(st.lists(certification, max_size=3))),
                conflict_keys=frozenset(draw(st.lists(st.sampled_from(KEYS), max_size=2))),
                active=draw(st.booleans()) or draw(st.booleans()),
            )
        )
    return pool


@st.composite
def needs(draw, max_cases: int = 12) -> list[Need]:
    result = []
    for case_id in range(1, draw(st.integers(min_value=1, max_value=max_cases)) + 1):
        mc = draw(st.sampled_from(CREDENTIALS))
        result.append(
            Need(
                case_id=case_id,
                micro_credential_id=mc,
                version_id=draw(st.sampled_from(VERSIONS[mc])),
                roles=draw(st.sampled_from([(FIRST, SECOND), (SECOND,), ("adjudicator",)])),
                excluded=frozenset(draw(st.lists(st.integers(1, 8), max_size=2))),
                conflict_keys=frozenset(draw(st.lists(st.sampled_from(KEYS), max_size=2))),
                preferred=tuple(draw(st.lists(st.integers(1, 8), max_size=2, unique=True))),
            )
        )
    return result


def eligible(candidate: Candidate, need: Need) -> bool:
    return (
        candidate.active
        and candidate.certified_for(need.micro_credential_id, need.version_id)
        and candidate.assessor_id not in need.excluded
        and not (candidate.conflict_keys & need.conflict_keys)
    )


@settings(max_examples=300, deadline=None)
@given(pool=candidates(), cases=needs())
def test_every_choice_is_eligible_distinct_and_within_capacity(pool, cases):
    by_id = {c.assessor_id: c for c in pool}
    choices = plan(cases, pool)
    per_case: dict[int, list] = {}
    for choice in choices:
        per_case.setdefault(choice.case_id, []).append(choice)
    for need in cases:
        made = per_case.get(need.case_id, [])
        people = [c.assessor_id for c in made]
        assert len(set(people)) == len(people), "the same assessor twice on one case"
        assert [c.role for c in made] == list(need.roles[: len(made)])
        for assessor_id in people:
            assert eligible(by_id[assessor_id], need)  # certified, active, no shared institution
    taken = Counter(c.assessor_id for c in choices)
    for assessor_id, count in taken.items():
        candidate = by_id[assessor_id]
        assert candidate.load + count <= candidate.capacity


@settings(max_examples=300, deadline=None)
@given(pool=candidates(), cases=needs(max_cases=1))
def test_one_case_gets_as_many_as_can_be_found_least_loaded_or_preferred_first(pool, cases):
    need = cases[0]
    room = [c for c in pool if eligible(c, need) and c.load < c.capacity]
    made = [c.assessor_id for c in plan([need], pool)]
    assert len(made) == min(len(need.roles), len(room))
    preferred = [p for p in need.preferred if p in {c.assessor_id for c in room}]
    # Resubmission stickiness: the previous assessors who are still eligible come first.
    assert made[: len(preferred)] == preferred[: len(made)]
    rest = sorted((c.load, c.assessor_id) for c in room if c.assessor_id not in preferred)
    assert made[len(preferred) :] == [i for _load, i in rest][: len(made) - len(preferred)]


def test_ties_are_broken_by_the_lower_id_and_load_spreads_evenly():
    pool = [Candidate(i, capacity=10, load=0, certified=frozenset({(1, None)})) for i in (3, 1, 2)]
    cases = [Need(case_id=n, micro_credential_id=1, version_id=10) for n in range(1, 7)]
    choices = plan(cases, pool)
    assert [(c.case_id, c.assessor_id) for c in choices[:4]] == [(1, 1), (1, 2), (2, 3), (2, 1)]
    assert Counter(c.assessor_id for c in choices) == {1: 4, 2: 4, 3: 4}


def test_the_learners_institution_is_its_platform_name_and_email_domain():
    learner = institution_keys(["Riverbend District Canvas"], ["zelda@riverbend.example"])
    same_domain = institution_keys(["Other College"], ["Ann@Riverbend.example"])
    same_name = institution_keys(["riverbend  district canvas"], ["ann@elsewhere.example"])
    unrelated = institution_keys(["Other College"], ["ann@gmail.com"])
    assert learner & same_domain and learner & same_name
    assert not learner & unrelated
    assert not institution_keys([""], ["a@gmail.com"])  # webmail says nothing of institutions
    assert conflict_key("name", "Riverbend") != "riverbend"  # hashed, not readable


def test_an_assessor_of_the_learners_institution_is_never_assigned(services):
    seed.import_catalog(services)
    learner = seed.add_learner(services)
    seed.add_assessor(services, "x@riverbend-district.example", "Elsewhere")  # same domain
    seed.add_assessor(services, "y@other.example", seed.Learner().platform)  # same institution
    seed.add_assessor(services, "z@third.example", "Third Institute")
    case = seed.case_of(services, seed.submit_attempt(services, learner))
    assert len(case.assignments) == 1
    with services.session_factory() as session:
        from lti_tool.accounts.models import Account
        from lti_tool.assessment.models import Assessor

        email = session.scalar(
            select(Account.email)
            .join(Assessor, Assessor.account_id == Account.id)
            .where(Assessor.id == case.assignments[0].assessor_id)
        )
    assert email == "z@third.example"


def _waiting_cases(services, count: int) -> None:
    """`count` submitted attempts, their cases waiting (no assessor yet)."""
    for n in range(count):
        learner = seed.Learner(subject=f"learner-{count}-{n}", context_id=f"ctx-{count}-{n}")
        seed.submit_attempt(services, seed.add_learner(services, learner), learner)


def _statements_to_assign(services) -> int:
    statements = []

    def count(*_args) -> None:
        statements.append(1)

    event.listen(services.engine, "before_cursor_execute", count)
    try:
        with transaction(services.session_factory) as session:
            assign_waiting(session, services.settings)
    finally:
        event.remove(services.engine, "before_cursor_execute", count)
    return len(statements)


def test_many_waiting_cases_are_assigned_in_a_constant_number_of_queries(services):
    from lti_tool.assessment.assessors import add_assessor, set_paused

    seed.import_catalog(services)
    measured = []
    for count in (10, 60):
        _waiting_cases(services, count)
        emails = [f"bulk{count}-{n}@bulk-{count}-{n}.example" for n in range(3)]
        with transaction(services.session_factory) as session:
            for n, email in enumerate(emails):
                add_assessor(session, email, "Bulk", f"Bulk {count} {n}", 100, ["exit-tickets"])
        measured.append(_statements_to_assign(services))
        with services.session_factory() as session:
            waiting = select(func.count()).where(Case.staffing_needed.is_(True))
            assert session.scalar(waiting) == 0
            loads = Counter(
                session.scalars(
                    select(Assignment.assessor_id)
                    .join(Case)
                    .where(Case.id > session.scalar(select(func.max(Case.id))) - count)
                )
            )
        assert sum(loads.values()) == 2 * count
        assert max(loads.values()) - min(loads.values()) <= 1  # least loaded first: even spread
        with transaction(services.session_factory) as session:
            for email in emails:  # the next round's cases wait for the next round's assessors
                set_paused(session, email, True)
    assert measured[0] == measured[1], measured


def test_a_run_over_several_batches_assigns_as_one_pass_would(services, monkeypatch):
    run, (a, b, c), pairs = seed.assign_in_batches(services, monkeypatch, cases=10, batch=4)
    assert (run.assigned, run.staffed, run.still_waiting) == (20, 10, 0)
    # Least loaded first, ties to the lower id, loads carried from batch to batch: a, b, c, a...
    assert [person for pair in pairs for person in pair] == [a, b, c] * 6 + [a, b]
