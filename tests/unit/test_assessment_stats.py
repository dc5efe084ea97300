"""Consistency and turnaround statistics: kappa and agreement against hand-computed examples,
the summaries over plain facts, and the facts read from real reviews and decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lti_tool.assessment import service, stats
from lti_tool.assessment.models import Assessor
from lti_tool.db import transaction
from tests.support import assessment as seed

T, F = True, False


# -- kappa and agreement, by hand ------------------------------------------------------------
def test_kappa_of_the_textbook_example():
    # 50 cases: both met 20, only the first 5, only the second 10, neither 15.
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = (0.7-0.5)/(1-0.5) = 0.4.
    pairs = [(T, T)] * 20 + [(T, F)] * 5 + [(F, T)] * 10 + [(F, F)] * 15
    assert stats.cohen_kappa(pairs) == pytest.approx(0.4)
    assert stats.agreement_rate(pairs) == pytest.approx(0.7)


def test_kappa_of_a_small_uneven_example():
    # (T,T) (T,T) (T,F) (F,F): p_o = 3/4; first met 3/4, second met 2/4;
    # p_e = 3/4*2/4 + 1/4*2/4 = 1/2; kappa = (3/4 - 1/2)/(1/2) = 1/2.
    assert stats.cohen_kappa([(T, T), (T, T), (T, F), (F, F)]) == pytest.approx(0.5)


def test_perfect_agreement_with_both_marks_used_is_one():
    assert stats.cohen_kappa([(T, T), (F, F), (T, T)]) == 1.0


def test_systematic_disagreement_is_minus_one():
    assert stats.cohen_kappa([(T, F), (F, T)] * 3) == -1.0
    assert stats.agreement_rate([(T, F), (F, T)]) == 0.0


def test_agreement_no_better_than_chance_is_zero():
    # Each marks met half the time, independently: p_o = p_e = 1/2.
    assert stats.cohen_kappa([(T, T), (T, F), (F, T), (F, F)]) == 0.0


@pytest.mark.parametrize("mark", [T, F])
def test_all_agree_on_one_mark_is_undefined_not_a_division_by_zero(mark):
    pairs = [(mark, mark)] * 7
    assert stats.cohen_kappa(pairs) is None
    assert stats.agreement_rate(pairs) == 1.0


def test_one_rater_constant_the_other_not_is_zero():
    # First always met; second met 2 of 4: p_o = 1/2, p_e = 1*1/2 + 0 = 1/2.
    assert stats.cohen_kappa([(T, T), (T, T), (T, F), (T, F)]) == 0.0


def test_no_pairs_means_no_figures():
    assert stats.cohen_kappa([]) is None
    assert stats.agreement_rate([]) is None
    assert stats.median_hours([]) is None
    assert stats.rate(0, 0) is None


def test_median_turnaround_in_hours():
    assert stats.median_hours([3600, 7200, 36000]) == 2.0
    assert stats.median_hours([3600, 7200]) == 1.5


# -- summaries over plain facts --------------------------------------------------------------
START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 2, 1, tzinfo=UTC)


def at(day: int, hour: int = 0) -> datetime:
    return START + timedelta(days=day, hours=hour)


def pair(case_id, part, key, first_met, second_met, credential=1, first=10, second=20):
    return stats.MarkPair(case_id, credential, part, key, first, second, first_met, second_met)


def test_summary_per_assessor_and_per_micro_credential():
    facts = stats.Facts(
        reviews=[
            stats.ReviewFact(10, 1, 100, at(0), at(0, 10)),
            stats.ReviewFact(20, 1, 100, at(0), at(2)),
            stats.ReviewFact(10, 1, 101, at(3), at(3, 20)),
            stats.ReviewFact(30, 2, 102, at(4), at(5)),
        ],
        pairs=[
            pair(100, "overview", "context", T, T),
            pair(100, "artifacts", "aligned", T, F),
            pair(101, "overview", "context", F, F, second=30),
            pair(101, "artifacts", "aligned", T, T, second=30),
        ],
        decisions=[
            stats.DecisionFact(100, 1, at(0), at(4), True, (10, 20)),
            stats.DecisionFact(101, 1, at(1), at(4), False, (10, 30)),
        ],
        assessor_names={10: "Alma", 20: "Bo", 30: "Cy"},
        credential_titles={1: "Exit tickets", 2: "Questioning"},
        criterion_texts={(1, "overview", "context"): "Context", (1, "artifacts", "aligned"): "A"},
    )
    report = stats.summarise(facts, START, END)
    alma, bo, cy = report.assessors
    assert (alma.name, alma.reviews_done, alma.median_turnaround_hours) == ("Alma", 2, 15.0)
    # Alma's pairs: (T,T), (T,F), (F,F), (T,T): agreement 3/4; p_e = 3/4*2/4 + 1/4*2/4 = 1/2.
    assert alma.paired_marks == 4 and alma.agreement_rate == 0.75
    assert alma.kappa == pytest.approx(0.5)
    assert alma.decided_cases == 2 and alma.adjudication_rate == 0.5
    assert (bo.reviews_done, bo.median_turnaround_hours, bo.agreement_rate) == (1, 48.0, 0.5)
    assert bo.adjudication_rate == 1.0
    assert cy.reviews_done == 1 and cy.agreement_rate == 1.0 and cy.kappa == 1.0

    exit_tickets, questioning = report.credentials
    assert exit_tickets.title == "Exit tickets"
    assert exit_tickets.cases_decided == 2
    assert exit_tickets.median_turnaround_hours == 84.0  # 96 h and 72 h
    assert exit_tickets.reviews_done == 3 and exit_tickets.adjudication_rate == 0.5
    assert exit_tickets.agreement_rate == 0.75
    context, aligned = exit_tickets.criteria  # in rubric order
    assert (context.criterion_key, context.text, context.pairs) == ("context", "Context", 2)
    assert context.agreement_rate == 1.0 and context.kappa == 1.0
    assert (aligned.criterion_key, aligned.agreement_rate) == ("aligned", 0.5)
    # aligned: (T,F), (T,T): first always met -> p_e = 1/2 = p_o -> kappa 0.
    assert aligned.kappa == 0.0
    assert questioning.cases_decided == 0 and questioning.median_turnaround_hours is None
    assert questioning.reviews_done == 1 and questioning.criteria == []


def test_an_empty_period_has_empty_tables():
    report = stats.summarise(stats.Facts(), START, END)
    assert report.assessors == [] and report.credentials == [] and report.criteria == []


# -- facts read from the assessment tables ---------------------------------------------------
def submit(services, assessor_id: int, code: str, marks: list[dict]) -> None:
    with transaction(services.session_factory) as session:
        assessor = session.get(Assessor, assessor_id)
        service.submit_review(session, services.settings, assessor, code, marks)


def test_report_from_real_reviews_and_decisions(services):
    seed.import_catalog(services)
    learner = seed.add_learner(services)
    ids = [
        seed.add_assessor(services, f"a{n}@inst-{n}.example", f"Inst {n}", name=f"Assessor {n}")
        for n in (1, 2, 3)
    ]
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    by_role = {a.role: a.assessor_id for a in case.assignments}
    # First says everything met; second says "aligned" (required) not met: adjudication.
    submit(services, by_role["first"], case.code, seed.marks())
    submit(services, by_role["second"], case.code, seed.marks({("artifacts", "aligned"): F}))
    case = seed.case_of(services, attempt_id)
    adjudicator = next(a.assessor_id for a in case.assignments if a.role == "adjudicator")
    assert adjudicator not in by_role.values() and adjudicator in ids
    marks = [m for m in seed.marks() if m["criterion_key"] == "aligned"]
    submit(services, adjudicator, case.code, marks)

    now = datetime.now(UTC)
    with services.session_factory() as session:
        report = stats.report(session, now - timedelta(days=1), now + timedelta(minutes=1))
        before = stats.report(session, now - timedelta(days=30), now - timedelta(days=1))
    assert before.assessors == [] and before.credentials == []

    rows = {row.assessor_id: row for row in report.assessors}
    assert set(rows) == set(ids)
    assert all(row.reviews_done == 1 for row in rows.values())
    first, second = rows[by_role["first"]], rows[by_role["second"]]
    assert first.paired_marks == second.paired_marks == 5
    assert first.agreement_rate == second.agreement_rate == pytest.approx(4 / 5)
    assert first.decided_cases == 1 and first.adjudication_rate == 1.0
    assert rows[adjudicator].paired_marks == 0 and rows[adjudicator].decided_cases == 0

    (credential,) = report.credentials
    assert credential.cases_decided == 1 and credential.adjudication_rate == 1.0
    assert credential.reviews_done == 3 and credential.median_turnaround_hours is not None
    criteria = {row.criterion_key: row for row in credential.criteria}
    assert [row.criterion_key for row in credential.criteria] == [k for _, k, _ in seed.CRITERIA]
    # One pair (met, not met): p_o = 0 and p_e = 1*0 + 0*1 = 0, so kappa = 0.
    assert criteria["aligned"].agreement_rate == 0.0 and criteria["aligned"].kappa == 0.0
    assert criteria["context"].agreement_rate == 1.0 and criteria["context"].kappa is None
    assert criteria["context"].text
