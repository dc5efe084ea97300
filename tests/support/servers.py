"""Serve a WSGI app on a loopback port in a thread, for tests that need real HTTP."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable

from werkzeug.serving import BaseWSGIServer, make_server


class LoopbackServer:
    """A threaded werkzeug server on 127.0.0.1 and a free port (with TLS when given an SSL
    context); stop() shuts it down."""

    def __init__(
        self, app: Callable | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._app = app
        self.server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._dispatch, threaded=True, ssl_context=ssl_context
        )
        self.port = self.server.port
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set_app(self, app: Callable) -> None:
        self._app = app

    def _dispatch(self, environ, start_response):
        if self._app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"no app yet"]
        return self._app(environ, start_response)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
