"""E-mail to assessors through a real SMTP server on loopback: a reminder before a review is
due and a notice of new cases, sent by the outbox after the run commits, saying nothing of the
learner; no e-mail at all when LTI_TOOL_SMTP_URL is unset."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from lti_tool.assessment.assignment import process_deadlines
from lti_tool.assessment.models import FIRST, SECOND, Assignment
from lti_tool.assessment.notices import ASSIGNED, REMINDER
from lti_tool.db import transaction
from lti_tool.mail import parse_smtp_url
from lti_tool.outbox.models import DELIVERED, PENDING, OutboxMessage
from lti_tool.outbox.service import deliver
from lti_tool.services import Services
from lti_tool.settings import SettingsError, load_settings
from tests.support import assessment as seed
from tests.support.servers import free_port
from tests.support.smtp import LoopbackSmtp

SENDER = "Micro-credentials <no-reply@tool.test>"
# The loopback server takes AUTH without TLS (a test of the credentials, not of TLS).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
LEARNER = seed.Learner()
LEARNER_STRINGS = [
    LEARNER.name,
    *LEARNER.name.split(),
    LEARNER.email,
    LEARNER.subject,
    LEARNER.platform,
    LEARNER.course,
    LEARNER.context_id,
    LEARNER.original_file_name,
]


@pytest.fixture
def smtp():
    server = LoopbackSmtp(login=("tool", "s3cret:p@ss"))
    yield server
    server.stop()


@pytest.fixture
def settings(settings, smtp):
    # The password holds reserved characters, percent-encoded in the URL.
    url = f"smtp://tool:s3cret%3Ap%40ss@127.0.0.1:{smtp.port}"
    return settings.replace(smtp_url=url, mail_from=SENDER)


@pytest.fixture
def case(services):
    seed.import_catalog(services)
    for n in (1, 2, 3):
        seed.add_assessor(
            services, f"a{n}@inst-{n}.example", f"Institute {n}", name=f"Assessor {n}"
        )
    attempt_id = seed.submit_attempt(services, seed.add_learner(services))
    return seed.case_of(services, attempt_id)


def live(case) -> dict[str, Assignment]:
    return {a.role: a for a in case.assignments if a.state in ("assigned", "started")}


def emails_of(services, case) -> dict[int, str]:
    with services.session_factory() as session:
        return {
            a.id: session.get(Assignment, a.id).assessor.account.email for a in case.assignments
        }


def process_deadlines_at(services, when):
    with transaction(services.session_factory) as session:
        return process_deadlines(session, services.settings, now=when)


def messages_of_kind(services, kind: str) -> list[OutboxMessage]:
    with services.session_factory() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)))


def assert_blind(message) -> None:
    text = message.as_string()
    for secret in LEARNER_STRINGS:
        assert secret.lower() not in text.lower(), secret


def assert_mailed_to_the_two_assessors(services, case, smtp) -> None:
    """One message to each of the case's two assessors, nobody else."""
    emails = emails_of(services, case)
    assigned = live(case)
    assert sorted(to for to, _ in smtp.messages) == sorted(
        [[emails[assigned[FIRST].id]], [emails[assigned[SECOND].id]]]
    )


def test_each_assessor_is_told_of_a_new_case_without_the_learner(services, case, smtp):
    assert_mailed_to_the_two_assessors(services, case, smtp)
    for _to, message in smtp.messages:
        assert message["From"] == SENDER
        assert message["Message-ID"].endswith("@tool.test>")
        assert message["Subject"] == f"New case to assess: {case.code}"
        body = message.get_content()
        assert case.code in body and "Exit Tickets" in body
        assert f"https://tool.test/assess/cases/{case.code}" in body
        assert "https://tool.test/assess/" in body
        assert_blind(message)
    assert all(m.status == DELIVERED for m in messages_of_kind(services, ASSIGNED))


def test_a_reminder_is_mailed_once_after_the_run_commits(services, case, smtp):
    smtp.messages.clear()
    first = live(case)[FIRST]
    just_before = first.due_at - timedelta(hours=2)
    assert process_deadlines_at(services, just_before).reminded == 2
    assert process_deadlines_at(services, just_before).reminded == 0
    assert_mailed_to_the_two_assessors(services, case, smtp)
    for _to, message in smtp.messages:
        assert message["Subject"] == f"Reminder: case {case.code} is due {first.due_at:%d %B %Y}"
        body = message.get_content()
        assert case.code in body and "Exit Tickets" in body
        assert f"{first.due_at:%A %d %B %Y, %H:%M} UTC" in body
        assert "https://tool.test/assess/" in body
        assert_blind(message)
    assert [m.status for m in messages_of_kind(services, REMINDER)] == [DELIVERED, DELIVERED]


def test_a_mail_server_that_is_down_delays_the_reminder_and_loses_nothing(services, case, smtp):
    smtp.messages.clear()
    nobody = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there
    down = Services(services.settings.replace(smtp_url=nobody))
    first = live(case)[FIRST]
    try:
        with transaction(down.session_factory) as session:
            run = process_deadlines(session, down.settings, now=first.due_at - timedelta(hours=1))
        assert run.reminded == 2
        # The run committed (reminded_at is recorded) although no mail could be sent.
        reminded = live(seed.case_of(services, case.attempt_id))[FIRST]
        assert reminded.reminded_at is not None
        pending = messages_of_kind(services, REMINDER)
        assert [m.status for m in pending] == [PENDING, PENDING]
        assert all(m.attempts == 1 and "Connection refused" in m.last_error for m in pending)
        assert smtp.messages == []
        with transaction(services.session_factory) as session:  # the retry, now due
            for message in pending:
                session.get(OutboxMessage, message.id).next_attempt_at = first.assigned_at
        for message in pending:  # the server is back (the original settings)
            assert deliver(services, message.id) == DELIVERED
        assert len(smtp.messages) == 2
    finally:
        down.engine.dispose()


def test_no_reminder_is_mailed_for_a_review_no_longer_open(services, case, smtp):
    smtp.messages.clear()
    first = live(case)[FIRST]
    with transaction(services.session_factory) as session:
        # Posted by a run, then the assessor declined before it was delivered.
        session.get(Assignment, first.id).state = "declined"
        message = OutboxMessage(
            kind=REMINDER, key=f"{REMINDER}:{first.id}", payload={"assignment_id": first.id}
        )
        session.add(message)
    assert deliver(services, message.id) == DELIVERED
    assert smtp.messages == []


def test_without_a_mail_server_reminders_are_recorded_and_shown_only(tmp_path, monkeypatch, smtp):
    monkeypatch.delenv("LTI_TOOL_SMTP_URL", raising=False)
    quiet = Services(
        load_settings(base_url="https://tool.test", instance_path=str(tmp_path / "quiet"))
    )
    from lti_tool import migrate

    migrate.upgrade(quiet.engine)
    try:
        assert quiet.settings.smtp_url == ""
        seed.import_catalog(quiet)
        for n in (1, 2):
            seed.add_assessor(quiet, f"a{n}@inst-{n}.example", f"Institute {n}")
        case = seed.case_of(quiet, seed.submit_attempt(quiet, seed.add_learner(quiet)))
        first = live(case)[FIRST]
        assert process_deadlines_at(quiet, first.due_at - timedelta(hours=2)).reminded == 2
        assert live(seed.case_of(quiet, case.attempt_id))[FIRST].reminded_at is not None
        assert messages_of_kind(quiet, REMINDER) == []
        assert messages_of_kind(quiet, ASSIGNED) == []
        assert smtp.messages == []
    finally:
        quiet.engine.dispose()


@pytest.mark.parametrize(
    ("url", "sender", "complaint"),
    [
        ("mail.example.org:25", SENDER, "must start with smtp://"),
        ("http://mail.example.org", SENDER, "must start with smtp://"),
        ("smtp://:25", SENDER, "must name the mail server's host"),
        ("smtp://mail.example.org:port", SENDER, "port that is not a number"),
        ("smtps://mail.example.org", "", "LTI_TOOL_MAIL_FROM"),
    ],
)
def test_wrong_mail_settings_are_refused_with_what_to_set(url, sender, complaint):
    with pytest.raises(SettingsError, match=complaint):
        load_settings(smtp_url=url, mail_from=sender).check()


def test_smtp_urls_give_the_server_and_the_default_ports():
    assert parse_smtp_url("smtp://relay.example.org").port == 25
    assert parse_smtp_url("smtp+starttls://u:p@relay.example.org").port == 587
    secure = parse_smtp_url("smtps://tool%40example.org:p%40ss@relay.example.org:2465")
    assert (secure.host, secure.port, secure.username, secure.password) == (
        "relay.example.org",
        2465,
        "tool@example.org",
        "p@ss",
    )
