"""The demo LMS's gradebook, over loopback HTTP: its launches carry the AGS claim, its token
endpoint checks the tool's client assertion against the tool's JWKS, and the scores the tool
posts for a learner's submission and decision show on its gradebook page."""

from __future__ import annotations

import time

import requests

from lti_tool.demo_lms import gradebook as demo_gradebook
from lti_tool.demo_lms import store as demo_store
from tests.support.gradebook import decide, learner, submit_attempt
from tests.unit import test_course_mapping

demo = test_course_mapping.demo
LINK = {
    "id": "demo-dl-listening",
    "title": "Active Listening",
    "text": "",
    "url": "",
    "custom": {"micro_credential": "active-listening", "stack": "collaboration"},
    "line_item": {"label": "Active Listening", "scoreMaximum": 100, "tag": "micro-credential"},
}


def test_scores_reach_the_demo_gradebook(demo):
    settings = demo.services.settings
    demo_store.add_links(
        settings, [{**LINK, "url": settings.url("/lti/launch"), "added_at": time.time()}]
    )
    http = requests.Session()
    http.trust_env = False
    course = http.get(demo.url + "/demo/", timeout=30)
    assert 'id="gradebook-link"' in course.text
    login = http.get(
        test_course_mapping.course_page_link(course.text, "data-launch", f"lee@{LINK['id']}"),
        timeout=30,
    )
    home = test_course_mapping.submit_auto_form(http, login)
    assert home.status_code == 200, home.text[:800]

    lee = learner(
        demo.services, None, "demo-user-lee", demo_gradebook.lineitem_url(settings, LINK["id"])
    )
    attempt = submit_attempt(demo.services, lee, credential="active-listening")
    page = http.get(demo.url + "/demo/gradebook", timeout=30).text
    assert "Submitted · Pending" in page and "no score" in page

    decide(demo.services, attempt, "earned")
    page = http.get(demo.url + "/demo/gradebook", timeout=30).text
    assert "100 / 100" in page and "Completed · FullyGraded" in page
    assert "Earned: Active Listening" in page
    held = demo_store.results(settings)[LINK["id"]]["demo-user-lee"]
    assert held["scoreGiven"] == 100


def test_the_demo_token_endpoint_refuses_what_a_platform_refuses(demo):
    http = requests.Session()
    http.trust_env = False
    url = demo_gradebook.token_url(demo.services.settings)
    bad = http.post(url, data={"grant_type": "password"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"] == "unsupported_grant_type"
    forged = http.post(
        url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": demo_gradebook.ASSERTION_TYPE,
            "client_assertion": "not-a-jwt",
            "scope": demo_gradebook.SCORE_SCOPE,
        },
        timeout=30,
    )
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_client"
    scores = http.post(demo.url + "/demo/ags/lineitems/x/scores", json={"userId": "u"}, timeout=30)
    assert scores.status_code == 401
