"""Assignment and Grade Services 2.0: the line items the tool creates, and where scores go.

A link launched without a line item, from a platform that lets the tool create one, is recorded
by the catalog's mapping as needing one (in the launch's transaction). `create_pending_line_items`
(the `create_line_items` job, re-enqueued by the sweep while any is pending) creates each through
the platform's line items container and records it, one transaction per link. A failure leaves
the link pending, is logged with the platform's answer and kept in the shared cache
(`last_error`), and is tried again by the next run.

Creating a line item is a POST, not idempotent: the platform may have created it and then failed
to answer. So a POST is never retried within a run, and every run first looks for a line item
the platform already holds for the link (same resourceLinkId and resourceId) and adopts it.

URLs are used as the platform gives them: Moodle's carry a query string (`?type_id=1`), kept on
the container URL, and kept after the path on a line item's scores URL (`scores_url`).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lti_tool.catalog import mapping
from lti_tool.catalog.mapping import LineItemNeeded
from lti_tool.db import transaction, utcnow
from lti_tool.gradebook import service as gradebook
from lti_tool.lti.launch import LINEITEM_SCOPE, RESULT_SCOPE
from lti_tool.lti.models import Platform
from lti_tool.lti.service_client import ServiceClient, ServiceError, client_for
from lti_tool.services import Services

log = logging.getLogger(__name__)

LINEITEM_MEDIA_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
RESULT_CONTAINER_MEDIA_TYPE = "application/vnd.ims.lis.v2.resultcontainer+json"
LINEITEM_CONTAINER_MEDIA_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"

# One run creates a link's line item at a time (a lock in the shared cache, per link), held at
# most this long: longer than one lookup and one POST with their timeouts and the token request.
LINK_LOCK_TTL = 300
# How long the last failure of a link is kept for admins to see.
ERROR_TTL = 30 * 86400
# Statuses of a lookup that mean "this platform cannot list line items like that": create anyway.
LOOKUP_UNSUPPORTED = frozenset({400, 404, 405, 406, 415, 501})


class LineItemError(Exception):
    """The platform answered, but not with a usable line item (no id, not JSON)."""


@dataclass(frozen=True)
class LineItem:
    """A line item as the platform holds it; `id` is its URL."""

    id: str
    label: str = ""
    score_maximum: float | None = None
    resource_id: str | None = None
    tag: str | None = None
    resource_link_id: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> LineItem:
        if not isinstance(data, dict):
            raise LineItemError("the line item is not a JSON object")
        item_id = data.get("id")
        if not isinstance(item_id, str) or not item_id.startswith(("https://", "http://")):
            raise LineItemError(f"the line item has no URL as its id ({item_id!r})")
        maximum = data.get("scoreMaximum")
        return cls(
            id=item_id,
            label=str(data.get("label") or ""),
            score_maximum=maximum if isinstance(maximum, int | float) else None,
            resource_id=_optional_text(data.get("resourceId")),
            tag=_optional_text(data.get("tag")),
            resource_link_id=_optional_text(data.get("resourceLinkId")),
        )


def _optional_text(value: Any) -> str | None:
    return str(value) if value is not None and value != "" else None


def scores_url(lineitem_url: str) -> str:
    """Where scores of a line item are posted: its path + "/scores", its query string kept after
    it (Moodle: `.../lineitems/3/lineitem?type_id=1` -> `.../lineitem/scores?type_id=1`)."""
    return _below(lineitem_url, "scores")


def results_url(lineitem_url: str) -> str:
    """Where a line item's results are read: its path + "/results", as `scores_url`."""
    return _below(lineitem_url, "results")


def _below(lineitem_url: str, service: str) -> str:
    parts = urlsplit(lineitem_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + service, fragment=""))


def held_score(client: ServiceClient, lineitem_url: str, user_id: str) -> float | None:
    """The score the platform holds for a learner on a line item (Result service), None when it
    holds none. Raises ServiceError when the platform cannot say."""
    response = client.get(
        results_url(lineitem_url),
        [RESULT_SCOPE],
        params={"user_id": user_id},
        accept=RESULT_CONTAINER_MEDIA_TYPE,
    )
    try:
        results = response.json()
    except ValueError:
        return None
    for result in results if isinstance(results, list) else []:
        if isinstance(result, dict) and str(result.get("userId")) == user_id:
            score = result.get("resultScore")
            return float(score) if isinstance(score, int | float) else None
    return None


# -- the calls of line items ---------------------------------------------------------------------
def find_line_item(
    client: ServiceClient, lineitems_url: str, resource_link_id: str, resource_id: str, tag: str
) -> LineItem | None:
    """The line item the platform already holds for this link and resource, if any (first page
    of the container, filtered by the platform where it can and checked here anyway)."""
    response = client.get(
        lineitems_url,
        [LINEITEM_SCOPE],
        params={"resource_link_id": resource_link_id, "resource_id": resource_id, "tag": tag},
        accept=LINEITEM_CONTAINER_MEDIA_TYPE,
    )
    try:
        items = response.json()
    except ValueError as exc:
        raise LineItemError(f"the line items of {lineitems_url} are not JSON") from exc
    if not isinstance(items, list):
        raise LineItemError(f"the line items of {lineitems_url} are not a JSON array")
    for data in items:
        try:
            item = LineItem.from_json(data)
        except LineItemError:
            continue
        if item.resource_link_id == resource_link_id and item.resource_id == resource_id:
            return item
    return None


def create_line_item(
    client: ServiceClient,
    platform: Platform,
    lineitems_url: str,
    label: str,
    score_maximum: float,
    resource_id: str,
    tag: str,
    resource_link_id: str,
) -> LineItem:
    """POST a new line item to the container URL (used as given, query string and all).

    Tried once (a retry could create a second one); a ServiceError carries the platform's
    status and message, a LineItemError an answer without a usable line item.
    """
    body = {
        "label": label,
        "scoreMaximum": score_maximum,
        "resourceId": resource_id,
        "tag": tag,
        "resourceLinkId": resource_link_id,
    }
    once = dataclasses.replace(client, policy=dataclasses.replace(client.policy, attempts=1))
    response = once.post(
        lineitems_url,
        [LINEITEM_SCOPE],
        json=body,
        accept=LINEITEM_MEDIA_TYPE,
        content_type=LINEITEM_MEDIA_TYPE,
    )
    try:
        data = response.json()
    except ValueError as exc:
        raise LineItemError(
            f"{platform.name} answered the new line item with something that is not JSON"
        ) from exc
    item = LineItem.from_json(data)
    log.info(
        "line item created",
        extra={"issuer": platform.issuer, "client_id": platform.client_id, "lineitem": item.id},
    )
    return item


# -- the pending ones, as the job runs them ------------------------------------------------------
@dataclass
class LineItemRun:
    """What one run did, by resource link id (the tool's)."""

    created: list[int] = field(default_factory=list)
    adopted: list[int] = field(default_factory=list)  # found on the platform already
    failed: dict[int, str] = field(default_factory=dict)
    busy: list[int] = field(default_factory=list)  # another run was creating it

    def to_dict(self) -> dict:
        return {
            "created": self.created,
            "adopted": self.adopted,
            "failed": {str(k): v for k, v in self.failed.items()},
            "busy": self.busy,
        }


def _error_key(resource_link_id: int) -> str:
    return f"line-item-error:{resource_link_id}"


def _lock_key(resource_link_id: int) -> str:
    return f"line-item-lock:{resource_link_id}"


def last_error(services: Services, resource_link_id: int) -> dict | None:
    """The last failure to create a link's line item ({"error", "status", "at"}), while it is
    pending and the shared cache still has it."""
    return services.cache.get(_error_key(resource_link_id))


def pending_line_items(
    services: Services, platform_id: int | None = None, limit: int = 50
) -> list[tuple[LineItemNeeded, dict | None]]:
    """Gradebook columns still to be created (of one platform, when given), each with its last
    failure when the shared cache has it: what an administrator looks at."""
    with services.session_factory() as session:
        needed = mapping.links_needing_line_items(session, limit=limit, platform_id=platform_id)
    return [(n, last_error(services, n.resource_link_id)) for n in needed]


def create_pending_line_items(services: Services, batch: int = 100) -> LineItemRun:
    """Create the line item of every link that needs one; each recorded in its own transaction.

    Each link is tried once per run, in pages (failing links never hide the ones after them);
    failures stay pending for the next run (the sweep's).
    """
    run = LineItemRun()
    clients: dict[int, tuple[Platform, ServiceClient]] = {}
    after = 0
    while True:
        with services.session_factory() as session:
            pending = mapping.links_needing_line_items(session, limit=batch, after=after)
        if not pending:
            return run
        for needed in pending:
            _create_one(services, needed, clients, run)
        after = pending[-1].resource_link_id


def _create_one(
    services: Services,
    needed: LineItemNeeded,
    clients: dict[int, tuple[Platform, ServiceClient]],
    run: LineItemRun,
) -> None:
    link = needed.resource_link_id
    token = secrets.token_urlsafe(8)
    if not services.cache.add(_lock_key(link), token, LINK_LOCK_TTL):
        run.busy.append(link)
        return
    try:
        if needed.platform_id not in clients:
            clients[needed.platform_id] = _client(services, needed.platform_id)
        platform, client = clients[needed.platform_id]
        item = _lookup(client, needed)
        if item is None:
            item = create_line_item(
                client,
                platform,
                needed.lineitems_url,
                needed.label,
                needed.score_maximum,
                needed.resource_id,
                needed.tag,
                needed.link_id,
            )
            run.created.append(link)
        else:
            run.adopted.append(link)
        with transaction(services.session_factory) as session:
            if mapping.line_item_created(session, link, item.id):
                # Learners who submitted before the line item existed get their scores now.
                gradebook.score_new_line_item(session, services, link)
        services.cache.delete(_error_key(link))
    except (ServiceError, LineItemError) as exc:
        status = exc.status if isinstance(exc, ServiceError) else None
        run.failed[link] = str(exc)
        services.cache.set(
            _error_key(link),
            {"error": str(exc), "status": status, "at": utcnow().isoformat()},
            ERROR_TTL,
        )
        log.warning(
            "line item of resource link %s not created (stays pending): %s",
            link,
            exc,
            extra={"resource_link_id": link, "status": status, "url": needed.lineitems_url},
        )
    finally:
        if services.cache.get(_lock_key(link)) == token:
            services.cache.delete(_lock_key(link))


def _client(services: Services, platform_id: int) -> tuple[Platform, ServiceClient]:
    with services.session_factory() as session:
        platform = session.get(Platform, platform_id)
        if platform is None:
            raise LineItemError(f"the platform {platform_id} is no longer registered")
        client = client_for(session, platform, services.cache)
        session.commit()  # the tool's key may just have been made
        return platform, client


def _lookup(client: ServiceClient, needed: LineItemNeeded) -> LineItem | None:
    """The platform's line item for the link, if it has one; None also where the platform
    cannot list line items that way (then a new one is created). A refused token is a failure."""
    try:
        return find_line_item(
            client, needed.lineitems_url, needed.link_id, needed.resource_id, needed.tag
        )
    except ServiceError as exc:
        if exc.stage == "service" and exc.status in LOOKUP_UNSUPPORTED:
            log.info("line items of %s cannot be listed (%s): creating", needed.lineitems_url, exc)
            return None
        raise
