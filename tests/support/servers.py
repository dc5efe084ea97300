"""Serve a WSGI app on a loopback port in a thread, for tests that need real HTTP."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from werkzeug.serving import BaseWSGIServer, make_server


def lti_tool_command() -> list[str]:
    """The installed console script beside this Python, or the module if it is missing."""
    script = Path(sys.executable).with_name("lti-tool")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "lti_tool.cli"]


def stop_gracefully(process: subprocess.Popen, timeout: float = 20) -> bool:
    """SIGTERM, then SIGKILL to its process group if it has not exited within `timeout`
    (started with start_new_session=True); whether it stopped on SIGTERM."""
    if process.poll() is not None:
        return True
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return False


def free_port() -> int:
    """A loopback port nothing listens on (a moment later something else may take it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


# -- loopback TLS ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Certificate:
    cert_path: Path
    key_path: Path


def make_certificate(folder: Path) -> Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "loopback.crt", folder / "loopback.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_path, key_path)


def tls_context(certificate: Certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert_path, certificate.key_path)
    return context
