"""A roster sync as production runs it: the educator's request enqueues it in Redis, a real
`lti-tool worker` process fetches the NRPS pages from a loopback LMS and writes PostgreSQL
(members' status in enrollments.status, the memberships URL from the launch on the course), and
the web shows its progress from the shared cache."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from lti_tool.lti.service_client import token_cache_key
from tests.conftest import BASE_URL
from tests.integration.test_launch_postgresql_redis import https_client, rows
from tests.integration.test_worker_and_health import worker  # noqa: F401 - a fixture
from tests.support.advantage import (
    NRPS_SCOPE,
    Roster,
    attach_fake_lms,
    canvas_member,
)
from tests.support.platform import INSTRUCTOR, NRPS, launch

CONTEXT = "4dde05e8ca1973bcca9bffc13e1548820eee93a3"  # what canvas_claims launches from
SYNC_TIMEOUT = 60


@pytest.fixture
def lms(services, canvas):
    fake = attach_fake_lms(services, canvas)
    yield fake
    fake.stop()


def wait_until_finished(client, token: str, worker) -> tuple[dict, list[dict]]:  # noqa: F811
    """Poll the status URL as the page does; the last status and every distinct one seen."""
    seen: list[dict] = []
    deadline = time.monotonic() + SYNC_TIMEOUT
    while time.monotonic() < deadline:
        assert worker.process.poll() is None, worker.log.read_text()
        body = client.get("/course/roster/status", query_string={"lt": token}).get_json()
        if not seen or body["sync"] != seen[-1]["sync"]:
            seen.append(body)
        if not body["running"]:
            return body, seen
        time.sleep(0.1)
    pytest.fail(f"the sync did not finish; worker log:\n{worker.log.read_text()}")


def test_roster_sync_runs_in_the_worker(app, services, canvas, lms, worker, pg_url):  # noqa: F811
    members = [canvas_member(n) for n in range(1200)]
    members[0] = canvas_member(0, "Instructor")
    members[1] = {k: v for k, v in canvas_member(1).items() if k not in ("email", "name")}
    members[2] = canvas_member(2, status="Deleted")
    members[3] = canvas_member(3, status="Inactive")
    lms.rosters[CONTEXT] = Roster(CONTEXT, members, page_delay=0.3)
    claim = {"context_memberships_url": lms.memberships_url(CONTEXT), "service_versions": ["2.0"]}
    client = https_client(app)
    response = launch(client, canvas, BASE_URL, roles=[INSTRUCTOR], **{NRPS: claim})
    token = parse_qs(urlsplit(response.headers["Location"]).query)["lt"][0]
    (course,) = rows(
        pg_url,
        "SELECT context_memberships_url FROM courses WHERE context_id = :context",
        context=CONTEXT,
    )
    assert course.context_memberships_url == lms.memberships_url(CONTEXT)

    started = client.post("/course/roster/sync", data={"lt": token})
    assert parse_qs(urlsplit(started.headers["Location"]).query)["roster"] == ["started"]
    # A second click while the first sync is queued or running starts nothing.
    again = client.post("/course/roster/sync", data={"lt": token})
    assert parse_qs(urlsplit(again.headers["Location"]).query)["roster"] == ["running"]

    final, seen = wait_until_finished(client, token, worker)
    assert final["sync"]["state"] == "done", (final, worker.log.read_text())
    assert (final["sync"]["pages"], final["sync"]["members"]) == (3, 1200)
    assert final["learners"] == 1198  # 1200 - the instructor - the Deleted one
    # Progress was visible page by page, from another process's writes.
    assert [s["sync"]["pages"] for s in seen if s["sync"]["state"] == "running"][-1] >= 1
    assert len(lms.nrps_requests) == 3
    assert parse_qs(urlsplit(lms.nrps_requests[0]).query)["limit"] == ["500"]

    learners = rows(
        pg_url,
        "SELECT u.subject, u.email, u.last_launch_at, e.role, e.status, e.roster_synced_at "
        "FROM enrollments e JOIN lms_users u ON u.id = e.user_id "
        "JOIN courses c ON c.id = e.course_id WHERE c.context_id = :context",
        context=CONTEXT,
    )
    by_subject = {r.subject: r for r in learners}
    assert len(by_subject) == 1199 + 1  # 1199 members (not the Deleted) + the launching teacher
    assert by_subject["canvas-00000-5f0c"].role == "educator"
    assert by_subject["canvas-00001-5f0c"].email == ""
    assert "canvas-00002-5f0c" not in by_subject
    # Status from the roster; the launching teacher, not in it, absent; sync-made users never
    # launched.
    statuses = {}
    for row in learners:
        statuses[row.status] = statuses.get(row.status, 0) + 1
    assert statuses == {"active": 1198, "inactive": 1, "absent": 1}
    assert by_subject["canvas-00003-5f0c"].status == "inactive"
    teacher = next(r for r in learners if r.roster_synced_at is None)
    assert teacher.status == "absent" and teacher.last_launch_at is not None
    assert by_subject["canvas-00004-5f0c"].last_launch_at is None
    assert final["not_active"] == 2

    # A second sync runs in another work horse process: the access token is shared through
    # Redis, so the platform still saw one token request.
    assert lms.total_token_requests() == 1
    lms.rosters[CONTEXT].page_delay = 0
    client.post("/course/roster/sync", data={"lt": token})
    final, _ = wait_until_finished(client, token, worker)
    assert final["sync"]["state"] == "done"
    assert lms.total_token_requests() == 1
    key = token_cache_key(canvas.issuer, canvas.client_id, [NRPS_SCOPE])
    assert services.cache.get(key) is not None
