"""The threaded gunicorn worker that `lti-tool serve` runs.

gunicorn's gthread worker hands every request on a kept-alive connection from its event loop
to a thread and back: two thread wake-ups per request, often on the other core. When the
worker is otherwise idle (one person clicking through pages, a launch and its redirect) that
hand-off is a large part of the answer's time. Here a thread that has just answered, while no
other thread of the worker is busy, waits a few milliseconds for the same connection's next
request and serves it itself, as a sync worker would, without the hand-off. Under load
(another thread busy) it returns the connection to the event loop at once, exactly as gthread
does, so a waiting thread never keeps a request of someone else waiting.

Written against gunicorn 27's gthread worker (`handle` answers True for a connection to keep
alive, and read-ahead bytes sit in the parser's unreader); tests/unit/test_gunicorn_worker.py
runs it for real and fails if a gunicorn release changes that.
"""

from __future__ import annotations

import select
import threading

from gunicorn.workers.gthread import ThreadWorker

# Long enough for a browser's next request on the same connection (the redirect after a
# launch, a page's styles), short enough that a thread is back in the pool almost at once.
NEXT_REQUEST_WAIT_MS = 10


class KeepAliveThreadWorker(ThreadWorker):
    """gthread, but an idle worker serves a connection's next request in the same thread."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._busy = 0
        self._busy_lock = threading.Lock()

    def handle(self, conn):
        with self._busy_lock:
            self._busy += 1
        try:
            keep_alive = super().handle(conn)
            while keep_alive is True and self._alone() and self._next_request_arrives(conn):
                keep_alive = super().handle(conn)
            return keep_alive
        finally:
            with self._busy_lock:
                self._busy -= 1

    def _alone(self) -> bool:
        """Whether this thread is the only busy one of a worker that is not stopping."""
        return self.alive and self._busy == 1

    def _next_request_arrives(self, conn) -> bool:
        if self.cfg.is_ssl:
            return False  # bytes TLS already decrypted are invisible to poll: leave it to gthread
        if conn.parser.unreader.buf.getvalue():
            return True  # the client sent its next request with the last one
        waiter = select.poll()  # not select(): a busy process has descriptors above 1023
        waiter.register(conn.sock, select.POLLIN)
        return bool(waiter.poll(NEXT_REQUEST_WAIT_MS))
