"""/admin/assessment/stats: who may see it, the period, tables, charts and CSV exports."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest

from lti_tool.accounts import service as accounts
from lti_tool.assessment import service
from lti_tool.assessment.models import Assessor
from lti_tool.db import transaction
from lti_tool.roster.models import ADMINISTRATOR, EDUCATOR
from lti_tool.web.identity import Identity
from tests.support import assessment as seed

PAGE = "/admin/assessment/stats/"


def submit(services, assessor_id: int, code: str, marks: list[dict]) -> None:
    with transaction(services.session_factory) as session:
        assessor = session.get(Assessor, assessor_id)
        service.submit_review(session, services.settings, assessor, code, marks)


@pytest.fixture
def decided(services):
    """One case decided after adjudication on 'aligned', by three named assessors."""
    seed.import_catalog(services)
    learner = seed.add_learner(services)
    for n in (1, 2, 3):
        seed.add_assessor(services, f"a{n}@inst-{n}.example", f"Inst {n}", name=f"=Assessor {n}")
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    by_role = {a.role: a.assessor_id for a in case.assignments}
    submit(services, by_role["first"], case.code, seed.marks())
    submit(services, by_role["second"], case.code, seed.marks({("artifacts", "aligned"): False}))
    case = seed.case_of(services, attempt_id)
    adjudicator = next(a.assessor_id for a in case.assignments if a.role == "adjudicator")
    submit(
        services,
        adjudicator,
        case.code,
        [m for m in seed.marks() if m["criterion_key"] == "aligned"],
    )
    return case.code


def sign_in_account(client, services, is_admin: bool) -> None:
    with transaction(services.session_factory) as session:
        email = "boss@example.org" if is_admin else "plain@example.org"
        account = accounts.add_account(session, email, "Someone", is_admin=is_admin)
        account_id = account.id
    with client.session_transaction() as s:
        s["account_id"] = account_id


def lms_identity(role: str) -> dict:
    return asdict(Identity(1, None, None, None, role, "launch-1", "LtiResourceLinkRequest"))


@pytest.fixture
def admin(client, services):
    sign_in_account(client, services, is_admin=True)
    return client


# -- who may see it --------------------------------------------------------------------------
def test_nobody_signed_in_is_sent_to_sign_in(client):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/assess/login?next={PAGE}"
    csv = client.get(PAGE + "assessors.csv?from=2026-01-01")
    assert csv.headers["Location"] == (
        f"/assess/login?next={PAGE}assessors.csv?from%3D2026-01-01"
    )


def test_an_account_that_is_not_an_admin_is_refused(client, services):
    sign_in_account(client, services, is_admin=False)
    response = client.get(PAGE)
    assert response.status_code == 403
    assert "administrators can open this page" in response.get_data(as_text=True)


def test_an_lms_administrator_may_see_it_but_an_educator_may_not(client):
    with client.session_transaction() as s:
        s["identity"] = lms_identity(EDUCATOR)
    assert client.get(PAGE).status_code == 403
    with client.session_transaction() as s:
        s["identity"] = lms_identity(ADMINISTRATOR)
    assert client.get(PAGE).status_code == 200


# -- the page --------------------------------------------------------------------------------
def test_tables_and_charts_for_the_default_period(admin, decided):
    response = admin.get(PAGE)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "<h1>Assessment consistency and turnaround</h1>" in text
    assert '<label for="from">From</label>' in text
    for n in (1, 2, 3):
        assert f"=Assessor {n}" in text
    assert "Exit Tickets" in text
    assert "80%" in text  # the co-assessors agreed on 4 of 5 criteria
    assert "100%" in text  # the one decided case was adjudicated
    assert text.count('role="img"') >= 3 and "<title id=" in text
    assert "undefined" in text  # criteria both marked met: kappa undefined


def test_a_period_without_activity_says_so(admin, decided):
    response = admin.get(PAGE + "?from=2020-01-01&to=2020-03-31")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "No reviews in this period." in text and "Assessor 1" not in text
    assert 'value="2020-01-01"' in text and 'value="2020-03-31"' in text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=yesterday", "&#39;yesterday&#39; is not a date"),
        ("to=2026-13-01", "is not a date"),
        ("from=2026-05-02&to=2026-05-01", "The period starts after it ends"),
    ],
)
def test_a_bad_period_is_a_clear_400(admin, query, message):
    response = admin.get(PAGE + "?" + query)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


# -- CSV -------------------------------------------------------------------------------------
def read_csv(response) -> list[dict]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_csv_exports_of_the_three_tables(admin, decided):
    today = datetime.now(UTC).date()
    query = f"?from={(today - timedelta(days=7)).isoformat()}&to={today.isoformat()}"
    response = admin.get(PAGE + "assessors.csv" + query)
    assert (
        f"assessment-assessors-{today - timedelta(days=7)}-to-{today}.csv"
        in response.headers["Content-Disposition"]
    )
    assessors = read_csv(response)
    assert len(assessors) == 3
    # A name that a spreadsheet would run as a formula is quoted.
    assert {row["name"] for row in assessors} == {f"'=Assessor {n}" for n in (1, 2, 3)}
    paired = [row for row in assessors if row["paired_marks"] == "5"]
    assert len(paired) == 2 and all(row["agreement_rate"] == "0.8000" for row in paired)

    (credential,) = read_csv(admin.get(PAGE + "micro-credentials.csv" + query))
    assert credential["cases_decided"] == "1" and credential["adjudication_rate"] == "1.0000"
    criteria = read_csv(admin.get(PAGE + "criteria.csv" + query))
    assert [row["criterion_key"] for row in criteria] == [k for _, k, _ in seed.CRITERIA]
    aligned = next(row for row in criteria if row["criterion_key"] == "aligned")
    assert (aligned["agreement_rate"], aligned["kappa"]) == ("0.0000", "0.0000")
    context = next(row for row in criteria if row["criterion_key"] == "context")
    assert context["kappa"] == ""  # undefined


def test_an_unknown_table_is_a_404(admin):
    response = admin.get(PAGE + "learners.csv")
    assert response.status_code == 404
    assert "There is no table" in response.get_data(as_text=True)


def test_links_keep_the_lms_token_inside_an_iframe(app, services, decided):
    from lti_tool.web.identity import TOKEN_PARAM, _serializer

    with app.test_request_context():
        token = _serializer().dumps(lms_identity(ADMINISTRATOR))
    client = app.test_client()  # no cookie at all, as in a third-party iframe
    response = client.get(PAGE, query_string={TOKEN_PARAM: token})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert f'name="lt" value="{token}"' in text
    assert "assessors.csv?from=" in text and f"lt={token}" in text
    assert client.get(PAGE + "assessors.csv", query_string={TOKEN_PARAM: token}).status_code == 200
