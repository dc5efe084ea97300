"""AGS line items the tool creates, against a fake platform: a launch of a mapped link without a
line item creates exactly one (label, scoreMaximum, resourceId, tag, resourceLinkId) and the link
keeps its URL; a second launch creates none; a failure leaves it pending with the platform's
error visible until the sweep creates it; a line item the platform made but never confirmed is
adopted, not made twice; Moodle's query strings are kept; scores URLs in both shapes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from lti_tool import jobs
from lti_tool.catalog import mapping
from lti_tool.catalog.models import LinkCredential
from lti_tool.lti import ags
from lti_tool.lti.service_client import token_cache_key
from lti_tool.roster.models import ResourceLink
from tests.conftest import BASE_URL
from tests.support.advantage import (
    LINEITEM_MEDIA_TYPE,
    LINEITEM_SCOPE,
    SCORE_SCOPE,
    Failure,
    attach_fake_lms,
)
from tests.support.platform import AGS, CLAIM, INSTRUCTOR, LEARNER, launch
from tests.unit.catalog_support import SAMPLE, import_paths

CANVAS_CONTEXT = "4dde05e8ca1973bcca9bffc13e1548820eee93a3"  # what canvas_claims launches from
CANVAS_LINK = "6fd3b9dd-canvas-link"
CUSTOM = {"micro_credential": "effective-leadership", "stack": "collaboration"}


@pytest.fixture
def catalog(services):
    import_paths(services, SAMPLE)


@pytest.fixture
def canvas_lms(services, canvas):
    fake = attach_fake_lms(services, canvas)
    yield fake
    fake.stop()


@pytest.fixture
def moodle_lms(services, moodle):
    fake = attach_fake_lms(services, moodle)
    yield fake
    fake.stop()


def ags_claim(lineitems_url: str) -> dict:
    """What a platform sends for a link without a line item that lets the tool create one."""
    return {"scope": [LINEITEM_SCOPE, SCORE_SCOPE], "lineitems": lineitems_url}


def launch_mapped(client, platform, fake, shape: str = "canvas", roles=None):
    context = CANVAS_CONTEXT if shape == "canvas" else "2"
    claims = {
        CLAIM + "custom": CUSTOM,
        AGS: ags_claim(fake.lineitems_url(context, shape)),
    }
    response = launch(client, platform, BASE_URL, shape, roles=roles or [LEARNER], **claims)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return response


def link_credential(services, link_id: str) -> LinkCredential:
    with services.session_factory() as session:
        return session.scalars(
            select(LinkCredential)
            .join(ResourceLink, ResourceLink.id == LinkCredential.resource_link_id)
            .where(ResourceLink.link_id == link_id)
        ).one()


def pending(services) -> list[mapping.LineItemNeeded]:
    with services.session_factory() as session:
        return mapping.links_needing_line_items(session)


# -- scores URLs --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lineitem", "scores"),
    [
        (
            "https://canvas.example/api/lti/courses/5/line_items/9",
            "https://canvas.example/api/lti/courses/5/line_items/9/scores",
        ),
        (
            "https://moodle.example/mod/lti/services.php/2/lineitems/3/lineitem?type_id=1",
            "https://moodle.example/mod/lti/services.php/2/lineitems/3/lineitem/scores?type_id=1",
        ),
        (
            "https://lms.example/lineitems/3/?a=1&b=2",
            "https://lms.example/lineitems/3/scores?a=1&b=2",
        ),
    ],
    ids=["canvas", "moodle", "trailing slash"],
)
def test_scores_url_keeps_the_query_after_the_path(lineitem, scores):
    assert ags.scores_url(lineitem) == scores


# -- created on launch ----------------------------------------------------------------------------
def test_a_launch_without_a_line_item_creates_exactly_one(
    client, catalog, services, canvas, canvas_lms
):
    launch_mapped(client, canvas, canvas_lms)

    assert len(canvas_lms.line_item_posts) == 1
    post = canvas_lms.line_item_posts[0]
    assert post["path"] == f"/ags/{CANVAS_CONTEXT}/line_items" and post["query"] == ""
    assert post["content_type"] == LINEITEM_MEDIA_TYPE
    assert post["accept"] == LINEITEM_MEDIA_TYPE
    assert post["json"] == {
        "label": "Active Listening",  # the link's title in the LMS
        "scoreMaximum": 100,
        "resourceId": "effective-leadership",
        "tag": "micro-credential",
        "resourceLinkId": CANVAS_LINK,
    }
    (created,) = canvas_lms.line_items[CANVAS_CONTEXT]
    row = link_credential(services, CANVAS_LINK)
    assert row.created_lineitem_url == created["id"]
    assert row.line_item_needed is False
    assert pending(services) == []
    # It looked first (nothing there), with the one token of the line item scope.
    (lookup,) = canvas_lms.line_item_gets
    assert parse_qs(urlsplit(lookup).query) == {
        "resource_link_id": [CANVAS_LINK],
        "resource_id": ["effective-leadership"],
        "tag": ["micro-credential"],
    }
    assert canvas_lms.token_requests == {LINEITEM_SCOPE: 1}

    # Launched again (the platform still sends no line item): nothing more is created.
    launch_mapped(client, canvas, canvas_lms, roles=[INSTRUCTOR])
    assert len(canvas_lms.line_item_posts) == 1
    assert len(canvas_lms.line_item_gets) == 1
    assert link_credential(services, CANVAS_LINK).created_lineitem_url == created["id"]
    assert jobs.sweep(services) == 0


def test_moodle_keeps_its_query_strings(client, catalog, services, moodle, moodle_lms):
    launch_mapped(client, moodle, moodle_lms, shape="moodle")

    (post,) = moodle_lms.line_item_posts
    assert (post["path"], post["query"]) == ("/ags/2/lineitems", "type_id=1")
    assert post["json"]["resourceLinkId"] == "3"
    assert post["json"]["label"] == "Productive Teamwork"
    (lookup,) = moodle_lms.line_item_gets
    assert parse_qs(urlsplit(lookup).query)["type_id"] == ["1"]
    created = link_credential(services, "3").created_lineitem_url
    assert created == f"{moodle_lms.url}/ags/2/lineitems/1/lineitem?type_id=1"
    assert (
        ags.scores_url(created) == f"{moodle_lms.url}/ags/2/lineitems/1/lineitem/scores?type_id=1"
    )


# -- failures stay pending; the sweep retries ----------------------------------------------------
def test_a_failure_stays_pending_and_the_sweep_creates_it(
    client, catalog, services, canvas, canvas_lms, cli
):
    canvas_lms.fail_line_item_posts(Failure(500))
    launch_mapped(client, canvas, canvas_lms)  # the launch itself succeeds

    assert len(canvas_lms.line_item_posts) == 1  # a POST is never retried within a run
    assert canvas_lms.line_items == {}
    (waiting,) = pending(services)
    assert waiting.link_id == CANVAS_LINK
    error = ags.last_error(services, waiting.resource_link_id)
    assert error["status"] == 500
    assert "HTTP 500: scripted failure 500" in error["error"]

    result = cli("sweep")
    assert result.exit_code == 0, result.output
    assert "re-enqueued 1 pending deliveries" in result.output

    assert len(canvas_lms.line_item_posts) == 2
    (created,) = canvas_lms.line_items[CANVAS_CONTEXT]
    assert link_credential(services, CANVAS_LINK).created_lineitem_url == created["id"]
    assert pending(services) == []
    assert ags.last_error(services, waiting.resource_link_id) is None
    assert "re-enqueued 0 pending deliveries" in cli("sweep").output
    assert len(canvas_lms.line_item_posts) == 2


def test_launches_of_a_pending_link_ask_at_most_once_a_minute(
    client, catalog, services, canvas, canvas_lms
):
    canvas_lms.fail_line_item_posts(Failure(500))
    launch_mapped(client, canvas, canvas_lms)
    launch_mapped(client, canvas, canvas_lms, roles=[INSTRUCTOR])  # still pending
    assert len(canvas_lms.line_item_posts) == 1
    (waiting,) = pending(services)
    services.cache.delete(f"line-items-asked:{waiting.resource_link_id}")  # a minute later
    launch_mapped(client, canvas, canvas_lms)
    assert len(canvas_lms.line_item_posts) == 2 and pending(services) == []


def test_a_line_item_made_but_never_confirmed_is_adopted(
    client, catalog, services, canvas, canvas_lms
):
    canvas_lms.fail_line_item_posts(Failure(502, applied=True))
    launch_mapped(client, canvas, canvas_lms)
    assert len(canvas_lms.line_items[CANVAS_CONTEXT]) == 1  # made, but the answer was a 502
    assert len(pending(services)) == 1

    assert jobs.sweep(services) == 1

    assert len(canvas_lms.line_item_posts) == 1  # found on the platform: no second one
    (made,) = canvas_lms.line_items[CANVAS_CONTEXT]
    assert link_credential(services, CANVAS_LINK).created_lineitem_url == made["id"]
    assert pending(services) == []


def test_a_refusal_shows_the_platforms_reason(client, catalog, services, canvas, canvas_lms):
    refusal = {"errors": [{"message": "Requested scope is not allowed for this developer key"}]}
    canvas_lms.fail_line_item_posts(Failure(403, body=refusal))
    launch_mapped(client, canvas, canvas_lms)
    (waiting,) = pending(services)
    error = ags.last_error(services, waiting.resource_link_id)
    assert error["status"] == 403
    assert "Requested scope is not allowed for this developer key" in error["error"]


def test_a_platform_that_refuses_the_token_leaves_it_pending(
    client, catalog, services, canvas, canvas_lms
):
    canvas_lms.token_failures.append(Failure(400, body={"error": "invalid_scope"}))
    launch_mapped(client, canvas, canvas_lms)
    assert canvas_lms.line_item_posts == [] and len(pending(services)) == 1
    key = token_cache_key(canvas.issuer, canvas.client_id, [LINEITEM_SCOPE])
    assert services.cache.get(key) is None
    run = ags.create_pending_line_items(services).to_dict()  # what the job returns
    assert run["failed"] == {}
    assert len(run["created"]) == 1 and pending(services) == []


def test_a_link_busy_in_another_run_is_left_to_it(client, catalog, services, canvas, canvas_lms):
    canvas_lms.fail_line_item_posts(Failure(500))
    launch_mapped(client, canvas, canvas_lms)
    (waiting,) = pending(services)
    assert services.cache.add(f"line-item-lock:{waiting.resource_link_id}", "other", 60)
    run = ags.create_pending_line_items(services)
    assert run.busy == [waiting.resource_link_id] and run.created == []
    assert len(canvas_lms.line_item_posts) == 1


def test_links_that_keep_failing_never_hide_the_ones_after_them(
    client, catalog, services, canvas, canvas_lms
):
    """A run goes through the pending links a page at a time: with one link per page, the
    first failing again does not stop the second from being created."""
    canvas_lms.fail_line_item_posts(*[Failure(500)] * 3)  # every try the launches make
    for link in ("link-a", "link-b"):
        launch_mapped_link(client, canvas, canvas_lms, link)
    canvas_lms.line_item_failures.clear()
    assert [n.link_id for n in pending(services)] == ["link-a", "link-b"]
    canvas_lms.fail_line_item_posts(Failure(500))  # link-a fails again, link-b goes through
    run = ags.create_pending_line_items(services, batch=1)
    assert [n.link_id for n in pending(services)] == ["link-a"]
    assert link_credential(services, "link-b").created_lineitem_url
    assert len(run.created) == 1 and len(run.failed) == 1


def launch_mapped_link(client, platform, fake, link_id: str) -> None:
    claims = {
        CLAIM + "custom": CUSTOM,
        AGS: ags_claim(fake.lineitems_url(CANVAS_CONTEXT, "canvas")),
        CLAIM + "resource_link": {"id": link_id, "title": f"Link {link_id}", "description": ""},
    }
    response = launch(client, platform, BASE_URL, "canvas", roles=[LEARNER], **claims)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
