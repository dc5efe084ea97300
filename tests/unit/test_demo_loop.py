"""The whole loop of `lti-tool demo`, through HTTP only, as a newcomer walks it: Lee launches
from the demo course, opens the workspace, writes the answers, adds a link per artifact and
submits; the two demo assessors sign in to /assess/ and mark every criterion met; the learner's
page, the demo gradebook (score and badge link) and the public badge page show the result."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

import pytest
import requests
from sqlalchemy import select

from lti_tool.assessment.assessors import list_assessors
from lti_tool.catalog.models import MicroCredential
from lti_tool.db import transaction
from lti_tool.demo_lms import setup as demo_setup
from lti_tool.evidence.models import EARNED, REVISE, Attempt
from tests.unit import test_course_mapping
from tests.unit.test_course_mapping import DemoWorld, course_page_link, submit_auto_form

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TEXTAREA = re.compile(r'<textarea [^>]*name="(answer:[^"]+)"[^>]*data-min="(\d*)"')
LINK_FORM = re.compile(r'<form method="post" class="link" action="([^"]+)">(.*?)</form>', re.S)
DRAFT_FORM = re.compile(r'<form id="draft-form" method="post" action="([^"]+)">(.*?)</form>', re.S)
SUBMIT_FORM = re.compile(r'<form method="post" action="([^"]+/submit)">(.*?)</form>', re.S)
CHECK_LINK = re.compile(r'href="([^"]*/evidence/[^"/]+/submit[^"]*)"')
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


demo_lms = test_course_mapping.demo  # the demo LMS and the sample catalog, over loopback


@pytest.fixture
def demo(demo_lms: DemoWorld) -> DemoWorld:
    """The world `lti-tool demo` seeds: the demo LMS, the sample catalog, and the assessors."""
    for _start in range(2):  # a second start adds nothing and breaks nothing
        with transaction(demo_lms.services.session_factory) as session:
            demo_setup.ensure_demo_assessors(session)
    return demo_lms


def browser() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    return http


def hidden_fields(form_html: str) -> dict[str, str]:
    return {html.unescape(n): html.unescape(v) for n, v in HIDDEN.findall(form_html)}


def words(count: int) -> str:
    sentence = "my co-teacher paused, paraphrased the concern and checked a summary with me"
    pool = sentence.split()
    return " ".join(pool[i % len(pool)] for i in range(max(count, 40)))


def fill_in_and_submit(http: requests.Session, workspace: requests.Response) -> requests.Response:
    page = workspace.text
    draft = DRAFT_FORM.search(page)
    assert draft, page[:800]
    fields = hidden_fields(draft.group(2))
    answers = TEXTAREA.findall(page)
    assert answers, "the workspace has no answer fields"
    for name, minimum in answers:
        fields[html.unescape(name)] = words(int(minimum or 0) + 5)
    fields.update({"collaborative": "no", "how": ""})
    saved = http.post(urljoin(workspace.url, html.unescape(draft.group(1))), data=fields)
    assert saved.status_code == 200 and "Your draft is saved." in saved.text, saved.text[:1500]
    link_forms = LINK_FORM.findall(saved.text)
    assert link_forms, "the workspace offers no link per artifact"
    for action, form_html in link_forms:
        data = hidden_fields(form_html)
        data.update({"url": "https://video.example.org/lee/conversation", "title": "Recording"})
        added = http.post(urljoin(saved.url, html.unescape(action)), data=data)
        assert added.status_code == 200 and "The link was added." in added.text, added.text[:1500]
        saved = added
    check_link = CHECK_LINK.search(saved.text)
    assert check_link, "the workspace has no link to the submission check"
    check = http.get(urljoin(saved.url, html.unescape(check_link.group(1))))
    assert check.status_code == 200, check.text[:1500]
    form = SUBMIT_FORM.search(check.text)
    assert form, check.text[:1500]
    submitted = http.post(urljoin(check.url, html.unescape(form.group(1))),
                          data=hidden_fields(form.group(2)))  # fmt: skip
    assert submitted.status_code == 200, submitted.text[:1500]
    return submitted


def review_as(base: str, assessor: demo_setup.DemoAssessor, feedback: str | None = None) -> None:
    """Sign in at /assess/login, open the one case, start it, mark every criterion: met, or
    not met with `feedback`."""
    http = browser()
    login_page = http.get(base + "/assess/login")
    token = CSRF.search(login_page.text).group(1)
    cases = http.post(
        base + "/assess/login",
        data={"csrf_token": token, "email": assessor.email, "password": assessor.password},
    )
    assert cases.status_code == 200, cases.text[:1500]
    case_path = re.search(r'href="(/assess/cases/[^"/]+)"', cases.text)
    assert case_path, f"{assessor.email} has no case: {cases.text[:1500]}"
    case = http.get(base + case_path.group(1))
    start = re.search(r'<form method="post" action="([^"]+/start)">(.*?)</form>', case.text, re.S)
    if start:
        case = http.post(base + html.unescape(start.group(1)), data=hidden_fields(start.group(2)))
        assert case.status_code == 200, case.text[:1500]
    review = re.search(r'<form method="post" action="([^"]+/review)"[^>]*>(.*?)</form>',
                       case.text, re.S)  # fmt: skip
    assert review, case.text[:1500]
    data = hidden_fields(review.group(2))
    for name in sorted(set(re.findall(r'name="(met:[^"]+)"', review.group(2)))):
        data[html.unescape(name)] = "met" if feedback is None else "not_met"
        if feedback is not None:
            data["feedback:" + html.unescape(name).removeprefix("met:")] = feedback
    done = http.post(base + html.unescape(review.group(1)), data=data)
    assert done.status_code == 200, done.text[:1500]


def launch_and_submit_as_lee(demo: DemoWorld) -> tuple[requests.Session, requests.Response]:
    """Lee's part: launch from the course page, open the workspace in one click, submit."""
    course = browser().get(demo.url + "/demo/").text
    for assessor in demo_setup.ASSESSORS:
        assert assessor.email in course and assessor.password in course
    assert 'href="/assess/login"' in course

    lee = browser()
    home = submit_auto_form(lee, lee.get(course_page_link(course, "data-launch", "lee")))
    assert home.status_code == 200, home.text[:1500]
    workspace_link = re.search(r'id="launched-workspace" href="([^"]+)"', home.text)
    assert workspace_link, "the learner's page offers no workspace: " + home.text[:1500]
    workspace = lee.get(urljoin(home.url, html.unescape(workspace_link.group(1))))
    assert workspace.status_code == 200 and "Active Listening" in workspace.text
    fill_in_and_submit(lee, workspace)
    return lee, home


def test_the_whole_loop_of_the_demo(demo):
    lee, home = launch_and_submit_as_lee(demo)
    for assessor in demo_setup.ASSESSORS:
        review_as(demo.url, assessor)

    with demo.services.session_factory() as session:
        attempt = session.scalars(select(Attempt)).one()
        assert attempt.status == EARNED and attempt.decision == "earned"
    again = lee.get(home.url).text
    member = re.search(r'id="credential-collaboration-active-listening".*?</li>', again, re.S)
    assert member and "state-earned" in member.group(0), again[:3000]

    gradebook = lee.get(demo.url + "/demo/gradebook").text
    lee_row = re.search(r'<th scope="row">Lee Marsh</th>(.*?)</tr>', gradebook, re.S)
    assert lee_row and "100 / 100" in lee_row.group(1), gradebook[:3000]
    badge = re.search(r'Your badge: <a href="([^"]*/badges/[0-9a-f]+)"', lee_row.group(1))
    assert badge, "the gradebook has no badge link: " + lee_row.group(1)
    page = lee.get(html.unescape(badge.group(1)))
    assert page.status_code == 200, page.text[:1500]
    assert 'id="status">Valid<' in page.text and "Active Listening" in page.text


def test_a_revise_decision_reaches_lee_as_feedback(demo):
    lee, home = launch_and_submit_as_lee(demo)
    notes = ["Label your three paraphrases.", "Quote the moment that changed the decision."]
    for assessor, note in zip(demo_setup.ASSESSORS, notes, strict=True):
        review_as(demo.url, assessor, feedback=note)
    with demo.services.session_factory() as session:
        attempt = session.scalars(select(Attempt)).one()
        assert attempt.status == REVISE and attempt.decision == "revise"
        attempt_id = attempt.id
    token = re.search(r"[?&]lt=([^&#]+)", home.url).group(1)
    page = lee.get(f"{demo.url}/evidence/attempts/{attempt_id}?lt={token}").text
    assert all(note in page for note in notes), page[:3000]
    assert "Assessor 1" in page and "Assessor 2" in page
    for assessor in demo_setup.ASSESSORS:  # learners never see who the assessors are
        assert assessor.name not in page and assessor.email not in page
    gradebook = lee.get(demo.url + "/demo/gradebook").text
    lee_row = re.search(r'<th scope="row">Lee Marsh</th>(.*?)</tr>', gradebook, re.S)
    assert lee_row and "Please revise and resubmit" in lee_row.group(1), gradebook[:3000]
    assert "/badges/" not in lee_row.group(1)


def test_the_demo_assessors_hold_every_micro_credential_of_the_catalog(demo):
    with demo.services.session_factory() as session:
        keys = session.scalars(select(MicroCredential.key)).all()
        rows = {row.email: row for row in list_assessors(session)}
    assert len(keys) > 1
    for assessor in demo_setup.ASSESSORS:
        assert sorted(rows[assessor.email].certifications) == sorted(keys)  # once each
        assert rows[assessor.email].institution != "Demo LMS"
