"""The demo LMS's own memory, a JSON file in the instance folder: the links instructors added to
the course through Deep Linking, the deep-linking requests it is waiting on, the response
nonces it has seen, and its gradebook (access tokens it gave the tool, line items the tool
created, results per line item and learner). A real LMS keeps these in its database; the tool
never reads this file.

Every change is a read-modify-write under an exclusive lock (the dev server is threaded, and
gunicorn may run several processes), written to a temporary file and renamed into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lti_tool.settings import Settings

FILE_NAME = "demo-lms.json"
# How long the LMS waits for the tool to answer a deep-linking request.
REQUEST_TTL = 3600


def _path(settings: Settings) -> Path:
    return settings.instance_dir / FILE_NAME


def _empty() -> dict[str, Any]:
    return {
        "links": [],
        "deep_link_requests": {},
        "seen_nonces": {},
        "access_tokens": {},
        "line_items": {},
        "results": {},
    }


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return _empty()
    return {**_empty(), **data} if isinstance(data, dict) else _empty()


@contextlib.contextmanager
def _changing(settings: Settings) -> Iterator[dict[str, Any]]:
    """The state, locked for a change; written back when the block ends without error."""
    path = _path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = _read(path)
            now = time.time()
            state["deep_link_requests"] = {
                k: v for k, v in state["deep_link_requests"].items() if v["expires"] > now
            }
            state["seen_nonces"] = {k: v for k, v in state["seen_nonces"].items() if v > now}
            state["access_tokens"] = {
                k: v for k, v in state["access_tokens"].items() if v["expires"] > now
            }
            yield state
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(state, indent=1), encoding="utf-8")
            os.replace(temporary, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def added_links(settings: Settings) -> list[dict[str, Any]]:
    """Links added to the demo course through Deep Linking, oldest first."""
    return list(_read(_path(settings))["links"])


def add_links(settings: Settings, links: list[dict[str, Any]]) -> None:
    with _changing(settings) as state:
        state["links"].extend(links)


def new_deep_link_request(settings: Settings, person: str) -> str:
    """Remember a deep-linking request; its `data` value (returned) identifies it."""
    data = "demo-dl-" + secrets.token_urlsafe(18)
    with _changing(settings) as state:
        state["deep_link_requests"][data] = {
            "person": person,
            "created": time.time(),
            "expires": time.time() + REQUEST_TTL,
        }
    return data


def take_deep_link_request(settings: Settings, data: Any) -> dict[str, Any] | None:
    """The pending request a response's `data` names, forgotten as it is taken (single use)."""
    if not isinstance(data, str):
        return None
    with _changing(settings) as state:
        return state["deep_link_requests"].pop(data, None)


def first_use_of_nonce(settings: Settings, nonce: str, expires: float) -> bool:
    """True the first time a response nonce is seen (kept until its token expires)."""
    with _changing(settings) as state:
        if nonce in state["seen_nonces"]:
            return False
        state["seen_nonces"][nonce] = max(expires, time.time() + 60)
        return True


# -- the gradebook (demo_lms/gradebook.py) ------------------------------------------------------
def add_access_token(settings: Settings, token: str, scopes: list[str], expires: float) -> None:
    with _changing(settings) as state:
        state["access_tokens"][token] = {"scopes": scopes, "expires": expires}


def token_grants(settings: Settings, token: str, scope: str) -> bool:
    held = _read(_path(settings))["access_tokens"].get(token)
    return bool(held and held["expires"] > time.time() and scope in held["scopes"])


def add_line_item(settings: Settings, item_id: str, fields: dict[str, Any]) -> None:
    with _changing(settings) as state:
        state["line_items"][item_id] = fields


def created_line_items(settings: Settings) -> dict[str, dict[str, Any]]:
    return dict(_read(_path(settings))["line_items"])


def put_result(settings: Settings, item_id: str, user_id: str, result: dict[str, Any]) -> bool:
    """Keep a result unless the one held is as new or newer (then False)."""
    from datetime import datetime

    with _changing(settings) as state:
        held = state["results"].setdefault(item_id, {}).get(user_id)
        if held and datetime.fromisoformat(held["timestamp"]) >= datetime.fromisoformat(
            result["timestamp"]
        ):
            return False
        state["results"][item_id][user_id] = result
        return True


def results(settings: Settings) -> dict[str, dict[str, dict[str, Any]]]:
    """Results per line item id and learner (userId)."""
    return dict(_read(_path(settings))["results"])
