"""`lti-tool platform add|list|remove`: registrations an administrator makes from the shell."""

from __future__ import annotations

import json
import tomllib

import pytest
from sqlalchemy import select

from lti_tool.app import create_app
from lti_tool.roster.models import Course, LmsUser
from lti_tool.services import Services
from lti_tool.settings import CONFIG_DIR
from tests.conftest import BASE_URL
from tests.support.platform import launch

PRESETS = tomllib.loads((CONFIG_DIR / "lms_presets.toml").read_text())

EXPLICIT = [
    "--issuer",
    "https://lms.example.org",
    "--client-id",
    "tool-17",
    "--deployment-id",
    "dep-1",
    "--deployment-id",
    "dep-2",
    "--auth-login-url",
    "https://lms.example.org/auth",
    "--auth-token-url",
    "https://lms.example.org/token",
    "--key-set-url",
    "https://lms.example.org/jwks",
]


@pytest.fixture
def run(cli, services):
    """`lti-tool ...` against the test's migrated database."""
    return cli


def listed(run) -> list[dict]:
    result = run("platform", "list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def one_line_failure(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def with_option(args: list[str], option: str, value: str) -> list[str]:
    args = list(args)
    args[args.index(option) + 1] = value
    return args


# -- add -----------------------------------------------------------------------------------
def test_add_with_explicit_urls_and_several_deployments(run):
    result = run(
        "platform", "add", *EXPLICIT, "--audience", "https://lms.example.org/token", "--name", "X"
    )
    assert result.exit_code == 0, result.output
    assert "dep-1" in result.output and "dep-2" in result.output
    (row,) = listed(run)
    assert row["issuer"] == "https://lms.example.org"
    assert row["client_id"] == "tool-17"
    assert row["deployment_ids"] == ["dep-1", "dep-2"]
    assert row["auth_login_url"] == "https://lms.example.org/auth"
    assert row["auth_token_url"] == "https://lms.example.org/token"
    assert row["key_set_url"] == "https://lms.example.org/jwks"
    assert row["audience"] == "https://lms.example.org/token"
    assert row["name"] == "X"
    assert row["product"] == "other"


def test_preset_canvas_fills_the_canvas_cloud_endpoints(run):
    result = run(
        "platform",
        "add",
        "--preset",
        "canvas",
        "--client-id",
        "10000000000042",
        "--deployment-id",
        "42:8865aa05b4b79b64a91a86042e43af5ea8ae79eb",
    )
    assert result.exit_code == 0, result.output
    (row,) = listed(run)
    canvas = PRESETS["canvas"]
    assert row["issuer"] == canvas["issuer"] == "https://canvas.instructure.com"
    assert row["auth_login_url"] == canvas["auth_login_url"]
    assert row["auth_token_url"] == canvas["auth_token_url"]
    assert row["key_set_url"] == canvas["key_set_url"]
    assert row["auth_login_url"] == "https://sso.canvaslms.com/api/lti/authorize_redirect"
    assert row["key_set_url"] == "https://sso.canvaslms.com/api/lti/security/jwks"
    assert row["product"] == "canvas"


def test_two_canvas_cloud_registrations_share_the_issuer(run):
    for client_id in ("10000000000001", "10000000000002"):
        result = run(
            "platform", "add", "--preset", "canvas", "--client-id", client_id,
            "--deployment-id", "1:abc",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    rows = listed(run)
    assert {r["issuer"] for r in rows} == {"https://canvas.instructure.com"}
    assert {r["client_id"] for r in rows} == {"10000000000001", "10000000000002"}


@pytest.mark.parametrize("site", ["https://moodle.example", "https://moodle.example/"])
def test_preset_moodle_derives_the_endpoints_from_the_site(run, site):
    result = run(
        "platform", "add", "--preset", "moodle", "--site", site,
        "--client-id", "AbC123", "--deployment-id", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = listed(run)
    assert row["issuer"] == "https://moodle.example"
    assert row["auth_login_url"] == "https://moodle.example/mod/lti/auth.php"
    assert row["auth_token_url"] == "https://moodle.example/mod/lti/token.php"
    assert row["key_set_url"] == "https://moodle.example/mod/lti/certs.php"
    assert row["product"] == "moodle"


def test_preset_moodle_on_a_subpath_keeps_the_path(run):
    result = run(
        "platform", "add", "--preset", "moodle", "--site", "https://school.example/moodle",
        "--client-id", "c", "--deployment-id", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = listed(run)
    assert row["key_set_url"] == "https://school.example/moodle/mod/lti/certs.php"


def test_registered_platform_can_launch(run, client, hub):
    platform = hub.add("https://lms-cli.example", "cli-client", "d-1")
    result = run("platform", "add", *platform.register_args())
    assert result.exit_code == 0, result.output
    response = launch(client, platform, BASE_URL)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]


# -- bad input: one clear line, nothing stored ---------------------------------------------
BAD_INPUT = {
    "moodle without site": (
        ["--preset", "moodle", "--client-id", "c", "--deployment-id", "1"],
        "--site",
    ),
    "malformed issuer": (with_option(EXPLICIT, "--issuer", "lms.example.org"), "issuer"),
    "malformed key set URL": (
        with_option(EXPLICIT, "--key-set-url", "https://"),
        "key set URL",
    ),
    "URL with a space": (
        with_option(EXPLICIT, "--auth-login-url", "https://lms.example.org/a b"),
        "auth login URL",
    ),
    "ftp URL": (with_option(EXPLICIT, "--auth-token-url", "ftp://lms.example.org/t"), "token"),
    "malformed site": (
        [
            "--preset",
            "moodle",
            "--site",
            "moodle.example",
            "--client-id",
            "c",
            "--deployment-id",
            "1",
        ],
        "--site",
    ),  # fmt: skip
    "missing URLs": (
        ["--issuer", "https://lms.example.org", "--client-id", "c", "--deployment-id", "1"],
        "--auth-login-url",
    ),
    "site without preset": ([*EXPLICIT, "--site", "https://lms.example.org"], "--preset"),
    "only a blank deployment id": (
        [*EXPLICIT[:4], "--deployment-id", " ", *EXPLICIT[8:]],
        "deployment id",
    ),
    "same deployment twice": (with_option(EXPLICIT, "--deployment-id", "dep-2"), "deployment"),
}


@pytest.mark.parametrize(("args", "named"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_fails_with_one_line_and_stores_nothing(run, args, named):
    line = one_line_failure(run("platform", "add", *args))
    assert named in line
    assert "Traceback" not in line
    assert listed(run) == []


def test_duplicate_issuer_and_client_id_fails(run):
    assert run("platform", "add", *EXPLICIT).exit_code == 0
    again = with_option(EXPLICIT, "--deployment-id", "dep-9")
    line = one_line_failure(run("platform", "add", *again))
    assert "already registered" in line
    (row,) = listed(run)
    assert row["deployment_ids"] == ["dep-1", "dep-2"]


def test_same_issuer_with_another_client_id_is_accepted(run):
    assert run("platform", "add", *EXPLICIT).exit_code == 0
    other = with_option(EXPLICIT, "--client-id", "tool-18")
    assert run("platform", "add", *other).exit_code == 0
    assert sorted(r["client_id"] for r in listed(run)) == ["tool-17", "tool-18"]


# -- list and remove -------------------------------------------------------------------------
def test_list_shows_each_platform(run):
    assert "no platforms registered" in run("platform", "list").output
    assert run("platform", "add", *EXPLICIT).exit_code == 0
    result = run("platform", "list")
    assert result.exit_code == 0
    (line,) = result.output.strip().splitlines()
    assert "https://lms.example.org" in line and "tool-17" in line and "dep-1,dep-2" in line


def test_remove_deletes_the_platform_and_its_users(run, hub, client, settings, services):
    platform = hub.add("https://lms-gone.example", "gone-client", "d-1")
    assert run("platform", "add", *platform.register_args()).exit_code == 0
    assert launch(client, platform, BASE_URL).status_code == 303  # it has a user now
    (row,) = listed(run)
    result = run("platform", "remove", str(row["id"]))
    assert result.exit_code == 0, result.output
    assert listed(run) == []
    with services.session_factory() as session:
        assert session.scalars(select(LmsUser)).all() == []
        assert session.scalars(select(Course)).all() == []
    # A tool process started now refuses the platform's logins.
    fresh = Services(settings)
    try:
        response = (
            create_app(settings, fresh)
            .test_client()
            .post(
                "/lti/login",
                data={"iss": platform.issuer, "login_hint": "h", "client_id": platform.client_id},
            )
        )
        assert response.status_code == 403
    finally:
        fresh.engine.dispose()


def test_remove_unknown_id_fails(run):
    assert run("platform", "add", *EXPLICIT).exit_code == 0
    line = one_line_failure(run("platform", "remove", "9999"))
    assert "9999" in line
    assert len(listed(run)) == 1


@pytest.mark.parametrize(
    "args", [("platform", "list"), ("platform", "add", *EXPLICIT), ("keys", "rotate")]
)
def test_commands_before_db_upgrade_fail_with_one_line(cli, args):
    """No `services` fixture: the database file is new and has no tables."""
    line = one_line_failure(cli(*args))
    assert "lti-tool db upgrade" in line


def test_unreachable_database_fails_with_one_line(cli, monkeypatch):
    monkeypatch.setenv("LTI_TOOL_DATABASE_URL", "postgresql+psycopg://tool@127.0.0.1:1/none")
    line = one_line_failure(cli("platform", "list"))
    assert "LTI_TOOL_DATABASE_URL" in line


# -- add-deployment ------------------------------------------------------------------------
def test_add_deployment_lets_a_new_deployment_launch(run, client, hub):
    """Canvas creates deployments after registration: the admin adds each one, and only then
    does a launch from it pass."""
    platform = hub.add("https://lms-dep.example", "dep-client", "d-new")
    args = with_option(platform.register_args(), "--deployment-id", "d-first")
    assert run("platform", "add", *args).exit_code == 0
    (row,) = listed(run)
    refused = launch(client, platform, BASE_URL)
    assert refused.status_code == 403
    result = run("platform", "add-deployment", str(row["id"]), "d-new")
    assert result.exit_code == 0, result.output
    assert listed(run)[0]["deployment_ids"] == ["d-first", "d-new"]
    response = launch(client, platform, BASE_URL)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]


@pytest.mark.parametrize(
    ("args", "named"),
    [(["999", "d"], "no platform"), (["{id}", "dep-1"], "already"), (["{id}", " "], "empty")],
)
def test_add_deployment_bad_input_fails_with_one_line(run, args, named):
    assert run("platform", "add", *EXPLICIT).exit_code == 0
    (row,) = listed(run)
    args = [a.replace("{id}", str(row["id"])) for a in args]
    line = one_line_failure(run("platform", "add-deployment", *args))
    assert named in line
    assert listed(run)[0]["deployment_ids"] == ["dep-1", "dep-2"]
