"""A WSGI app and a worker subclass for running the tool's gunicorn worker for real in tests.

The app answers each request with what a test needs to see: which request of the worker it
was, how many times the worker's event loop handed a connection to a thread so far, and the
length of the body it read. `/slow?ms=N` holds its thread for N milliseconds, so that a test
can keep the worker busy.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

from lti_tool.gunicorn_worker import KeepAliveThreadWorker

_hand_offs = 0  # connections the event loop gave to the thread pool in this worker process
_requests = 0


class CountingWorker(KeepAliveThreadWorker):
    """The tool's worker, counting the event loop's hand-offs of a connection to a thread."""

    def enqueue_req(self, conn) -> None:
        global _hand_offs
        _hand_offs += 1
        super().enqueue_req(conn)


def app(environ, start_response):
    global _requests
    _requests += 1
    body = environ["wsgi.input"].read()
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if environ["PATH_INFO"] == "/slow":
        time.sleep(int(query.get("ms", ["200"])[0]) / 1000)
    answer = json.dumps(
        {"request": _requests, "hand_offs": _hand_offs, "body_length": len(body)}
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
    )
    return [answer]
