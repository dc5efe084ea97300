"""Double-blind: nothing an assessor reads (portal pages, the service results the API
serialises, file names) carries who the learner is; nothing the learner reads carries who the
assessors are."""

from __future__ import annotations

import dataclasses
import json

import pytest
from sqlalchemy import select

from lti_tool.accounts.models import Account
from lti_tool.assessment import service
from lti_tool.assessment.models import ADJUDICATOR, FIRST, SECOND, Assessor
from lti_tool.db import transaction
from lti_tool.evidence.models import Attempt
from tests.support import assessment as seed
from tests.unit.assess_web_support import ensure_signin_endpoint, post_form, sign_in

LEARNER = seed.Learner(
    name="Zelda Quibbleworth",
    email="zelda.quibbleworth@riverbend-district.example",
    subject="lms-sub-8842919",
    platform="Riverbend District Canvas",
    course="Formative Assessment Cohort Winterhaven",
    context_id="ctx-winterhaven-77",
    original_file_name="Zelda_Quibbleworth_lesson_plan.pdf",
)
ASSESSORS = {
    "ada.lovelace@analytical-institute.example": ("Ada Lovelace", "Analytical Institute"),
    "grace.hopper@cobol-college.example": ("Grace Hopper", "Cobol College"),
    "katherine.johnson@orbit-university.example": ("Katherine Johnson", "Orbit University"),
}


def learner_strings(services, user_id: int) -> list[str]:
    from lti_tool.lti.models import Platform
    from lti_tool.roster.models import LmsUser

    with services.session_factory() as session:
        user = session.get(LmsUser, user_id)
        platform = session.get(Platform, user.platform_id)
        found = [
            user.name,
            user.email,
            user.subject,
            platform.name,
            platform.issuer,
            platform.client_id,
        ]
    return [
        *found,
        "Quibbleworth",
        "riverbend",
        "Riverbend",
        LEARNER.course,
        "Winterhaven",
        LEARNER.context_id,
        LEARNER.original_file_name,
        str(user_id) + "-1/plan",  # the learner's own storage key
    ]


def assert_blind(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret.lower() not in text.lower(), f"{secret!r} appears in {where}"


def serialised(value) -> str:
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    return json.dumps(value, default=str)


@pytest.fixture
def seeded(app, services):
    ensure_signin_endpoint(app)
    seed.import_catalog(services)
    for email, (name, institution) in ASSESSORS.items():
        seed.add_assessor(services, email, institution, name=name)
    user_id = seed.add_learner(services, LEARNER)
    attempt_id = seed.submit_attempt(services, user_id, LEARNER)
    case = seed.case_of(services, attempt_id)
    accounts = {}
    with services.session_factory() as session:
        for assignment in case.assignments:
            accounts[assignment.role] = session.get(Assessor, assignment.assessor_id).account_id
    return {
        "user_id": user_id,
        "attempt_id": attempt_id,
        "code": case.code,
        "accounts": accounts,
        "secrets": learner_strings(services, user_id),
    }


def service_results(services, account_id: int, code: str) -> str:
    """Everything the API would serialise for this assessor."""
    with services.session_factory() as session:
        assessor = session.scalar(select(Assessor).where(Assessor.account_id == account_id))
        parts = [serialised(c) for c in service.list_cases_for(session, assessor)]
        parts.append(serialised(service.case_view(session, assessor, code)))
        stream, record = service.open_blind_file(
            session, services.storage, assessor, code, "tickets-1.pdf"
        )
        stream.close()
        parts.append(
            json.dumps(
                {
                    "name": record.neutral_name,
                    "type": record.media_type,
                    "size": record.size,
                    "sha256": record.sha256,
                }
            )
        )
    return "\n".join(parts)


def test_no_assessor_facing_page_or_result_names_the_learner(client, services, seeded):
    code, secrets = seeded["code"], seeded["secrets"]
    page_url = f"/assess/cases/{code}"
    for role in (FIRST, SECOND):
        sign_in(client, seeded["accounts"][role])
        assert_blind(client.get("/assess/").get_data(as_text=True), secrets, f"{role}: list")
        assert_blind(client.get(page_url).get_data(as_text=True), secrets, f"{role}: case")
        post_form(client, f"{page_url}/start", page_url, {})
        started = client.get(page_url).get_data(as_text=True)
        assert_blind(started, secrets, f"{role}: started case")
        refused = post_form(client, f"{page_url}/review", page_url, {})
        assert refused.status_code == 400
        assert_blind(refused.get_data(as_text=True), secrets, f"{role}: refused review")
        assert_blind(
            service_results(services, seeded["accounts"][role], code),
            secrets,
            f"{role}: service results",
        )
        download = client.get(f"{page_url}/files/tickets-1.pdf")
        assert_blind(download.headers["Content-Disposition"], secrets, "file name")
    # The first assessor finds "aligned" not met, the second met: an adjudicator decides it.
    marks_first = seed.marks({("artifacts", "aligned"): False})
    with transaction(services.session_factory) as session:
        for role, given in ((FIRST, marks_first), (SECOND, seed.marks())):
            assessor = session.scalar(
                select(Assessor).where(Assessor.account_id == seeded["accounts"][role])
            )
            service.submit_review(session, services.settings, assessor, code, given)
    case = seed.case_of(services, seeded["attempt_id"])
    with services.session_factory() as session:
        adjudicator = next(a for a in case.assignments if a.role == ADJUDICATOR)
        adjudicator_account = session.get(Assessor, adjudicator.assessor_id).account_id
    for account_id in (*seeded["accounts"].values(), adjudicator_account):
        sign_in(client, account_id)
        for url in ("/assess/", page_url):
            assert_blind(client.get(url).get_data(as_text=True), secrets, url)
        assert_blind(service_results(services, account_id, code), secrets, "service results")


def test_assessors_never_see_each_other_nor_each_others_reviews(client, services, seeded):
    code = seeded["code"]
    page_url = f"/assess/cases/{code}"
    first_feedback = "Only the first assessor wrote this sentence."
    given = seed.marks({("artifacts", "acted"): False})
    given[3]["feedback"] = first_feedback
    with transaction(services.session_factory) as session:
        assessor = session.scalar(
            select(Assessor).where(Assessor.account_id == seeded["accounts"][FIRST])
        )
        service.submit_review(session, services.settings, assessor, code, given)
    sign_in(client, seeded["accounts"][SECOND])
    page = client.get(page_url).get_data(as_text=True)
    assert first_feedback not in page
    assert_blind(
        service_results(services, seeded["accounts"][SECOND], code),
        [first_feedback],
        "second's results",
    )
    with services.session_factory() as session:
        viewer = session.get(Account, seeded["accounts"][SECOND]).email
    for email, (name, _institution) in ASSESSORS.items():
        if email == viewer:
            continue  # their own name is in the page header ("Signed in as ...")
        assert name not in page
        assert email not in page


def test_the_learners_feedback_names_no_assessor(services, seeded):
    code = seeded["code"]
    failing = {("artifacts", "acted"): False}
    with transaction(services.session_factory) as session:
        for role in (FIRST, SECOND):
            assessor = session.scalar(
                select(Assessor).where(Assessor.account_id == seeded["accounts"][role])
            )
            service.submit_review(session, services.settings, assessor, code, seed.marks(failing))
    with services.session_factory() as session:
        feedback = json.dumps(session.get(Attempt, seeded["attempt_id"]).feedback)
    assert "Assessor 1" in feedback and "Assessor 2" in feedback
    for email, (name, institution) in ASSESSORS.items():
        for secret in (email, name, institution, name.split()[1]):
            assert secret not in feedback


def test_a_blind_file_carries_no_learner_metadata(services, seeded):
    case = seed.case_of(services, seeded["attempt_id"])
    assert all(f.metadata_removed for f in case.files)
    from lti_tool.evidence.documents import extract

    with services.storage.open(case.files[0].storage_key) as handle:
        content = handle.read()
    original = seed.pdf_by(LEARNER.name)
    assert LEARNER.name.encode() in original  # the learner's copy names them
    assert_blind(content.decode("latin-1"), seeded["secrets"], "the blind file's bytes")
    path = services.settings.instance_dir / "evidence" / case.files[0].storage_key
    found = extract(path, "application/pdf")
    assert_blind(str(found.metadata), seeded["secrets"], "the blind file's metadata")
