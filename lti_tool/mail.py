"""Outgoing e-mail through the SMTP server of LTI_TOOL_SMTP_URL (the standard library's smtplib).

Mail is only ever sent by an outbox handler (lti_tool/outbox), never from the transaction that
decided to send it: a failed send is retried with the outbox's backoff, and a rolled-back change
sends nothing. Without LTI_TOOL_SMTP_URL the tool sends no mail at all.

URL forms: smtp://host[:port] (plain, port 25), smtp+starttls://user:pass@host[:port] (STARTTLS,
port 587) and smtps://user:pass@host[:port] (TLS from the start, port 465). User and password
are percent-encoded when they hold reserved characters (`@` as %40).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

from lti_tool.settings import Settings, SettingsError

DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class SmtpServer:
    scheme: str
    host: str
    port: int
    username: str
    password: str


def parse_smtp_url(url: str) -> SmtpServer:
    """The server of an smtp://, smtp+starttls:// or smtps:// URL; SettingsError says what is
    wrong with any other."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise SettingsError(
            "LTI_TOOL_SMTP_URL must start with smtp://, smtp+starttls:// or smtps://, "
            f"for example smtp+starttls://user:password@mail.example.org:587 (not {parts.scheme!r})"
        )
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise SettingsError("LTI_TOOL_SMTP_URL has a port that is not a number") from None
    if not parts.hostname:
        raise SettingsError("LTI_TOOL_SMTP_URL must name the mail server's host")
    return SmtpServer(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def mail_enabled(settings: Settings) -> bool:
    return bool(settings.smtp_url)


def compose(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text message from the tool's sender address."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    sender_domain = parseaddr(settings.mail_from)[1].rpartition("@")[2]
    message["Message-ID"] = make_msgid(domain=sender_domain or None)
    message.set_content(body)
    return message


def send(settings: Settings, message: EmailMessage) -> None:
    """Hand one message to the SMTP server; any failure raises (the outbox retries)."""
    server = parse_smtp_url(settings.smtp_url)
    context = ssl.create_default_context()
    if server.scheme == "smtps":
        connection: smtplib.SMTP = smtplib.SMTP_SSL(
            server.host, server.port, timeout=TIMEOUT_SECONDS, context=context
        )
    else:
        connection = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT_SECONDS)
    with connection:
        if server.scheme == "smtp+starttls":
            connection.starttls(context=context)
        if server.username:
            connection.login(server.username, server.password)
        connection.send_message(message)
