"""`lti-tool admin add`, `account set-password` and `api-token create|list|revoke`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lti_tool.accounts import service as accounts
from lti_tool.accounts.models import Account, ApiToken, Organisation
from lti_tool.cli import main as cli_main

PASSWORD = "a long enough password"


@pytest.fixture
def run(services):
    """`lti-tool ...` against the test's migrated database, with optional standard input."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli_main, list(args), input=input, catch_exceptions=False)

    return invoke


def one_line_failure(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def stored_account(services, email: str) -> Account | None:
    with services.session_factory() as session:
        return accounts.find_account(session, email)


def test_admin_add_with_a_password_from_stdin_can_sign_in(run, services):
    result = run(
        "admin", "add", "--email", "Root@Example.org", "--name", "Rita Root", "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "added administrator" in result.output and "root@example.org" in result.output
    account = stored_account(services, "root@example.org")
    assert account.is_admin and account.active
    assert account.password_hash.startswith("$argon2id$")
    assert PASSWORD not in account.password_hash
    assert accounts.password_matches(account, PASSWORD)


def test_admin_add_without_a_password_says_how_to_sign_in(run, services):
    result = run("admin", "add", "--email", "sso@example.org", "--name", "Sso Admin")
    assert result.exit_code == 0, result.output
    assert "no local password" in result.output
    assert stored_account(services, "sso@example.org").password_hash is None


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--email", "not-an-email", "--name", "X"], None, "is not an e-mail address"),
        (["--email", "a@example.org", "--name", " "], None, "needs a name"),
        (["--email", "a@example.org", "--name", "A", "--password-stdin"], "short\n", "at least 12"),
        (["--email", "a@example.org", "--name", "A", "--password-stdin"], "", "no password"),
    ],
)
def test_admin_add_refuses_bad_input_in_one_line(run, services, args, stdin, message):
    assert message in one_line_failure(run("admin", "add", *args, input=stdin))
    assert stored_account(services, "a@example.org") is None


def test_admin_add_refuses_a_duplicate_email(run):
    assert run("admin", "add", "--email", "d@example.org", "--name", "D").exit_code == 0
    line = one_line_failure(run("admin", "add", "--email", "D@example.org", "--name", "D2"))
    assert "already exists" in line


def test_set_password_from_stdin_replaces_the_old_one(run, services):
    run("admin", "add", "--email", "p@example.org", "--name", "P")
    result = run("account", "set-password", "P@example.org", "--password-stdin", input=PASSWORD)
    assert result.exit_code == 0, result.output
    assert "password set for p@example.org" in result.output
    assert accounts.password_matches(stored_account(services, "p@example.org"), PASSWORD)


def test_set_password_refuses_unknown_accounts_and_weak_passwords(run):
    line = one_line_failure(run("account", "set-password", "ghost@example.org", input=PASSWORD))
    assert "no account with the e-mail ghost@example.org" in line
    run("admin", "add", "--email", "w@example.org", "--name", "W")
    assert "at least 12" in one_line_failure(
        run("account", "set-password", "w@example.org", input="tiny\n")
    )


def test_disable_and_enable_an_account(run, services):
    run("admin", "add", "--email", "x@example.org", "--name", "X")
    assert run("account", "disable", "X@example.org").output.strip() == "x@example.org disabled"
    assert stored_account(services, "x@example.org").active is False
    assert run("account", "enable", "x@example.org").exit_code == 0
    assert stored_account(services, "x@example.org").active is True
    assert "no account" in one_line_failure(run("account", "disable", "nobody@example.org"))


def test_api_token_create_prints_it_once_and_stores_only_a_hash(run, services):
    result = run("api-token", "create", "--org", "Assessors Ltd", "--label", "nightly sync")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    assert token.startswith("lta_")
    assert "cannot be shown again" in result.stderr
    with services.session_factory() as session:
        (row,) = session.query(ApiToken).all()
        assert row.organisation.name == "Assessors Ltd"
        assert token.split("_", 2)[2] not in row.secret_sha256
        assert accounts.organisation_of_token(session, token).name == "Assessors Ltd"
    listed = run("api-token", "list", "--json")
    assert token not in listed.output
    (entry,) = json.loads(listed.output)
    assert entry["organisation"] == "Assessors Ltd" and entry["label"] == "nightly sync"
    assert entry["revoked_at"] is None


def test_api_token_create_reuses_the_organisation_of_that_name(run, services):
    run("api-token", "create", "--org", "Assessors Ltd")
    run("api-token", "create", "--org", "assessors ltd")
    with services.session_factory() as session:
        assert session.query(Organisation).count() == 1
        assert session.query(ApiToken).count() == 2


def test_api_token_revoke_refuses_the_token_from_then_on(run, services):
    token = run("api-token", "create", "--org", "Org A").stdout.splitlines()[0]
    token_id = token.split("_")[1]
    result = run("api-token", "revoke", token_id)
    assert result.exit_code == 0 and "revoked token" in result.output
    with services.session_factory() as session:
        assert accounts.organisation_of_token(session, token) is None
    assert "revoked" in run("api-token", "list").output
    assert "no API token with id 999" in one_line_failure(run("api-token", "revoke", "999"))


def test_api_token_create_needs_an_organisation_name(run):
    assert "needs a name" in one_line_failure(run("api-token", "create", "--org", "  "))


def test_commands_refuse_an_unmigrated_database(tmp_path, monkeypatch):
    monkeypatch.setenv("LTI_TOOL_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    result = CliRunner().invoke(cli_main, ["api-token", "list"])
    assert "lti-tool db upgrade" in one_line_failure(result)
