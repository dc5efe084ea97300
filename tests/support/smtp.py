"""A real SMTP server (aiosmtpd) on a loopback port in a thread, keeping what it receives."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.servers import free_port


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 OK"


class LoopbackSmtp:
    """An SMTP server on 127.0.0.1; with `login` it requires AUTH with that (user, password).
    `url` is what LTI_TOOL_SMTP_URL would be; `messages` the (recipients, message) received."""

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.inbox = _Inbox()
        self.port = free_port()
        options: dict = {}
        if login is not None:
            expected = LoginPassword(login[0].encode(), login[1].encode())

            def authenticate(server, session, envelope, mechanism, data) -> AuthResult:
                return AuthResult(success=data == expected)

            options = {"authenticator": authenticate, "auth_required": True,
                       "auth_require_tls": False}  # fmt: skip
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()
        credentials = f"{login[0]}:{login[1]}@" if login else ""
        self.url = f"smtp://{credentials}127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        return self.inbox.messages

    def stop(self) -> None:
        self.controller.stop()
