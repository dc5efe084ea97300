"""The assessor portal /assess/: who may see what, the rubric beside the evidence, marking,
declining, downloading blind files; and the administrators' assessor pages."""

from __future__ import annotations

import pytest

from lti_tool.assessment.models import FIRST, SECOND
from tests.support import assessment as seed
from tests.unit.assess_web_support import (
    REFERER,
    account_id_of,
    add_admin,
    ensure_signin_endpoint,
    post_form,
    sign_in,
)

A1 = "ada@institute-a.example"
A2 = "bea@institute-b.example"
A3 = "cyd@institute-c.example"


@pytest.fixture
def portal(app, services):
    ensure_signin_endpoint(app)
    seed.import_catalog(services)
    for email, institution in ((A1, "Institute A"), (A2, "Institute B"), (A3, "Institute C")):
        seed.add_assessor(services, email, institution)
    learner = seed.add_learner(services)
    attempt_id = seed.submit_attempt(services, learner)
    case = seed.case_of(services, attempt_id)
    ids = {a.role: a.assessor_id for a in case.assignments}
    by_assessor = {}
    with services.session_factory() as session:
        from lti_tool.assessment.models import Assessor

        for role, assessor_id in ids.items():
            by_assessor[role] = session.get(Assessor, assessor_id).account_id
    return {"code": case.code, "attempt_id": attempt_id, "accounts": by_assessor}


def outsider_account(services, portal) -> int:
    assigned = set(portal["accounts"].values())
    return next(
        account
        for account in (account_id_of(services, e) for e in (A1, A2, A3))
        if account not in assigned
    )


def test_the_portal_sends_someone_not_signed_in_to_sign_in(client, portal):
    response = client.get("/assess/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/assess/login?next=/assess/")
    assert client.get(f"/assess/cases/{portal['code']}").status_code == 302


def test_an_account_that_is_not_an_assessor_is_refused(client, services, portal):
    sign_in(client, add_admin(services, "not-an-assessor@example.org"))
    response = client.get("/assess/")
    assert response.status_code == 403
    assert "not an assessor" in response.get_data(as_text=True)


def test_an_assessor_sees_their_case_with_its_due_dates(client, portal):
    sign_in(client, portal["accounts"][FIRST])
    page = client.get("/assess/").get_data(as_text=True)
    assert portal["code"] in page
    assert "Exit Tickets" in page
    assert "Your review is due" in page


def test_another_assessor_cannot_open_the_case_or_its_files(client, services, portal):
    sign_in(client, outsider_account(services, portal))
    assert portal["code"] not in client.get("/assess/").get_data(as_text=True)
    assert client.get(f"/assess/cases/{portal['code']}").status_code == 404
    assert client.get(f"/assess/cases/{portal['code']}/files/tickets-1.pdf").status_code == 404


def test_the_case_page_shows_the_rubric_beside_the_blind_evidence(client, portal):
    sign_in(client, portal["accounts"][FIRST])
    page = client.get(f"/assess/cases/{portal['code']}").get_data(as_text=True)
    assert "Describe your class and the unit you teach." in page  # the prompt
    assert "A class of 28 in year 8 mathematics" in page  # the answer as written
    assert "https://video.example/v/123" in page  # the link
    assert "tickets-1.pdf" in page  # the file's neutral name
    assert "Each ticket targets the lesson" in page  # a rubric criterion
    assert "metadata not removed" not in page  # said plainly only when a file is not clean


def test_a_blind_file_downloads_under_its_neutral_name(client, portal):
    sign_in(client, portal["accounts"][SECOND])
    response = client.get(f"/assess/cases/{portal['code']}/files/tickets-1.pdf")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="tickets-1.pdf"'
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF") and b"Zelda" not in response.data
    missing = client.get(f"/assess/cases/{portal['code']}/files/other.pdf")
    assert missing.status_code == 404


def test_start_then_submit_a_review_through_the_forms(client, services, portal):
    code = portal["code"]
    page_url = f"/assess/cases/{code}"
    sign_in(client, portal["accounts"][FIRST])
    started = post_form(client, f"{page_url}/start", page_url, {})
    assert started.status_code == 302
    from lti_tool.evidence.models import Attempt

    with services.session_factory() as session:
        assert session.get(Attempt, portal["attempt_id"]).status == "in_review"
    form = {f"met:{part}/{key}": "met" for part, key, _ in seed.CRITERIA}
    form["met:artifacts/acted"] = "not_met"  # and no feedback: refused, with the reason
    refused = post_form(client, f"{page_url}/review", page_url, form)
    assert refused.status_code == 400
    text = refused.get_data(as_text=True)
    assert "Write feedback for a criterion that is not met" in text
    assert 'value="not_met" checked' in text  # what was chosen is kept
    form["feedback:artifacts/acted"] = "Say what changed in the next lesson."
    done = post_form(client, f"{page_url}/review", page_url, form)
    assert done.status_code == 302
    page = client.get(page_url).get_data(as_text=True)
    assert "You submitted your review" in page
    assert "Say what changed in the next lesson." in page


def test_a_form_without_the_csrf_token_is_refused(client, portal):
    sign_in(client, portal["accounts"][FIRST])
    response = client.post(
        f"/assess/cases/{portal['code']}/start", data={}, headers={"Referer": REFERER}
    )
    assert response.status_code == 400


def test_declining_needs_confirmation_and_hands_the_case_on(client, services, portal):
    code = portal["code"]
    page_url = f"/assess/cases/{code}"
    sign_in(client, portal["accounts"][FIRST])
    assert post_form(client, f"{page_url}/decline", page_url, {}).status_code == 400
    note = {"confirm": "yes", "reason": "  I mentored this teacher.  "}
    declined = post_form(client, f"{page_url}/decline", page_url, note)
    assert declined.status_code == 302
    declined_by = [
        a for a in seed.case_of(services, portal["attempt_id"]).assignments if a.state == "declined"
    ]
    assert [a.decline_reason for a in declined_by] == ["I mentored this teacher."]
    assert client.get(page_url).status_code == 404
    sign_in(client, outsider_account(services, portal))  # the third assessor has it now
    assert code in client.get("/assess/").get_data(as_text=True)
    sign_in(client, add_admin(services))  # administrators see who declined what, and why
    overview = client.get("/admin/assessment").get_data(as_text=True)
    declined_table = overview[overview.index('id="declined-cases"') :]
    assert code in declined_table and "I mentored this teacher." in declined_table


# -- administration ----------------------------------------------------------------------------
def test_the_admin_pages_are_for_administrators_only(client, services, portal):
    sign_in(client, portal["accounts"][FIRST])
    assert client.get("/admin/assessors").status_code == 403
    assert client.get("/admin/assessment").status_code == 403


def test_an_admin_adds_certifies_and_pauses_an_assessor(client, services, portal):
    sign_in(client, add_admin(services))
    added = post_form(
        client,
        "/admin/assessors",
        "/admin/assessors",
        {
            "email": "dee@institute-d.example",
            "name": "Dee Assessor",
            "institution": "Institute D",
            "capacity": "4",
            "certify": "questioning",
        },
    )
    assert added.status_code == 302, added.get_data(as_text=True)
    page = client.get("/admin/assessors").get_data(as_text=True)
    assert "dee@institute-d.example" in page and "questioning" in page
    dee = account_id_of(services, "dee@institute-d.example")
    from sqlalchemy import select

    from lti_tool.assessment.models import Assessor

    with services.session_factory() as session:
        assessor_id = session.scalar(select(Assessor.id).where(Assessor.account_id == dee))
    certified = post_form(
        client,
        f"/admin/assessors/{assessor_id}/certify",
        "/admin/assessors",
        {"certify": "exit-tickets"},
    )
    assert certified.status_code == 302
    unknown = post_form(
        client,
        f"/admin/assessors/{assessor_id}/certify",
        "/admin/assessors",
        {"certify": "no-such-thing"},
    )
    assert unknown.status_code == 400
    assert "no micro-credential" in unknown.get_data(as_text=True)
    paused = post_form(client, f"/admin/assessors/{assessor_id}/pause", "/admin/assessors", {})
    assert paused.status_code == 302
    with services.session_factory() as session:
        assert session.get(Assessor, assessor_id).status == "paused"


def test_the_admin_sees_waiting_and_at_risk_cases(client, services, portal, cli):
    from datetime import timedelta

    from lti_tool.assessment.models import Case
    from lti_tool.db import transaction, utcnow

    with transaction(services.session_factory) as session:
        case = session.query(Case).filter_by(code=portal["code"]).one()
        case.decision_due_at = utcnow() + timedelta(hours=30)
    for email in (A1, A2, A3):
        assert cli("assessor", "pause", email).exit_code == 0
    other = seed.Learner(subject="second-learner", context_id="ctx-2")
    waiting_attempt = seed.submit_attempt(services, seed.add_learner(services, other), other)
    waiting_code = seed.case_of(services, waiting_attempt).code
    sign_in(client, add_admin(services))
    page = client.get("/admin/assessment")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Waiting for an assessor (1)" in text
    waiting_part, risk_part = text.split('id="risk-heading"')
    assert waiting_code in waiting_part
    assert portal["code"] in risk_part and waiting_code not in risk_part


def lms_token(app, role: str) -> str:
    from dataclasses import asdict

    from lti_tool.web.identity import Identity, _serializer

    identity = Identity(
        platform_id=1,
        user_id=None,
        course_id=None,
        resource_link_id=None,
        role=role,
        launch_id="launch-1",
        message_type="LtiResourceLinkRequest",
    )
    with app.test_request_context():
        return _serializer().dumps(asdict(identity))


def test_an_lms_administrator_uses_the_pages_with_the_lt_token_inside_the_iframe(
    app, client, portal
):
    token = lms_token(app, "administrator")
    home = client.get(f"/home?lt={token}").get_data(as_text=True)
    assert "/admin/assessors?lt=" in home
    assert client.get(f"/admin/assessors?lt={token}").status_code == 200
    added = client.post(
        "/admin/assessors",
        data={
            "lt": token,
            "email": "eve@inst-e.example",
            "name": "Eve",
            "institution": "E",
            "capacity": "2",
            "certify": "exit-tickets",
        },
    )
    assert added.status_code == 302
    assert "lt=" in added.headers["Location"]
    learner = lms_token(app, "learner")
    assert client.get(f"/admin/assessors?lt={learner}").status_code == 403
    refused = client.post("/admin/assessors", data={"lt": learner, "email": "x@y.example"})
    assert refused.status_code == 403


def test_assessors_see_a_similar_submission_by_its_case_code_only(client, services, portal):
    """The similarity flag evidence stored at submission reaches the assessors, naming the
    other submission by its case code, never by who wrote it; it blocks nothing."""
    from lti_tool.db import transaction
    from lti_tool.evidence.models import AttemptNotes

    copier = seed.Learner(
        name="Quentin Copley",
        email="quentin.copley@elsewhere.example",
        subject="copy-1",
        platform="Elsewhere Moodle",
        course="Another course",
        context_id="ctx-another",
        original_file_name="Quentin_Copley_plan.pdf",
    )
    copied = seed.submit_attempt(services, seed.add_learner(services, copier), copier)
    with transaction(services.session_factory) as session:
        session.add(
            AttemptNotes(
                attempt_id=copied,
                similar_attempts=[
                    {"attempt_id": portal["attempt_id"], "score": 0.93,
                     "parts": [{"part": "reflection", "score": 0.97}], "declared": False}
                ],
            )
        )  # fmt: skip
    case = seed.case_of(services, copied)
    with services.session_factory() as session:
        from lti_tool.assessment.models import Assessor

        account = session.get(Assessor, case.assignments[0].assessor_id).account_id
    sign_in(client, account)
    page = client.get(f"/assess/cases/{case.code}").get_data(as_text=True)
    assert "Similar submissions" in page
    assert f"93% like case {portal['code']}" in page and "reflection 97%" in page
    assert "Quentin" not in page and "Copley" not in page
    original = client.get(f"/assess/cases/{portal['code']}")
    assert original.status_code in (200, 404)  # their own case or not: no flag either way
    assert "Similar submissions" not in original.get_data(as_text=True)
    # Administrators see the flagged open cases listed.
    sign_in(client, add_admin(services, "admin@tool.example"))
    admin_page = client.get("/admin/assessment").get_data(as_text=True)
    assert f"93% like case {portal['code']}" in admin_page
    assert case.code in admin_page and "Quentin" not in admin_page
