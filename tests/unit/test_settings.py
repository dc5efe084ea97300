"""Settings: LTI_TOOL_* over config/defaults.toml; production refuses unsafe defaults."""

from __future__ import annotations

import tomllib

import pytest

from lti_tool.app import create_app
from lti_tool.settings import DEFAULTS_FILE, SettingsError, load_settings

GOOD_SECRET = "s3cr3t-" + "x" * 40
POSTGRES = "postgresql+psycopg://tool@127.0.0.1:1/nowhere"


@pytest.fixture
def env(settings, monkeypatch):
    """Set LTI_TOOL_* variables for this test (the `settings` fixture clears the others)."""

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv("LTI_TOOL_" + name.upper(), value)

    return set_env


def one_line_failure(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


# -- defaults and the environment ------------------------------------------------------------
def test_defaults_come_from_config_defaults_toml(env):
    defaults = tomllib.loads(DEFAULTS_FILE.read_text())
    settings = load_settings()
    assert settings.env == defaults["env"] == "development"
    assert settings.clock_skew_seconds == defaults["clock_skew_seconds"]
    assert settings.demo is defaults["demo"] is False
    assert settings.base_url == defaults["base_url"]


def test_environment_overrides_defaults(env):
    env(
        base_url="https://tool.example.edu",
        database_url=POSTGRES,
        redis_url="redis://127.0.0.1:6379/3",
        secret_key=GOOD_SECRET,
        clock_skew_seconds="5",
        trusted_proxies="2",
        demo="yes",
        tool_name="Badges",
        instance_path="/srv/tool",
    )
    settings = load_settings()
    assert settings.base_url == "https://tool.example.edu"
    assert settings.resolved_database_url == POSTGRES
    assert settings.redis_url == "redis://127.0.0.1:6379/3"
    assert settings.secret_key == GOOD_SECRET
    assert settings.clock_skew_seconds == 5
    assert settings.trusted_proxies == 2
    assert settings.demo is True
    assert settings.tool_name == "Badges"
    assert settings.instance_path == "/srv/tool"
    assert settings.uses_https


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("ON", True), ("0", False), ("false", False), ("no", False)],
)
def test_boolean_spellings(env, raw, expected):
    env(demo=raw)
    assert load_settings().demo is expected


def test_sqlite_file_lives_in_the_instance_path(env, tmp_path):
    env(instance_path=str(tmp_path / "inst"))
    url = load_settings().resolved_database_url
    assert url == f"sqlite:///{tmp_path / 'inst' / 'lti_tool.sqlite3'}"


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("demo", "maybe", "LTI_TOOL_DEMO must be true or false, not 'maybe'"),
        ("trusted_proxies", "two", "LTI_TOOL_TRUSTED_PROXIES must be a whole number"),
        ("clock_skew_seconds", "1.5", "LTI_TOOL_CLOCK_SKEW_SECONDS must be a whole number"),
    ],
)
def test_bad_values_give_a_clear_error(env, cli, name, raw, expected):
    env(**{name: raw})
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert expected in str(error.value)
    line = one_line_failure(cli("db", "upgrade"))
    assert expected in line


def test_bad_base_url_is_refused(env, cli):
    env(base_url="tool.example.edu")
    assert "LTI_TOOL_BASE_URL" in one_line_failure(cli("platform", "list"))


# -- production mode -------------------------------------------------------------------------
def test_production_refuses_the_default_secret_key(env):
    env(env="production", database_url=POSTGRES)
    with pytest.raises(SettingsError, match="LTI_TOOL_SECRET_KEY"):
        create_app(load_settings())


def test_production_refuses_a_short_secret_key(env):
    env(env="production", database_url=POSTGRES, secret_key="short")
    with pytest.raises(SettingsError, match="LTI_TOOL_SECRET_KEY"):
        create_app(load_settings())


def test_production_refuses_sqlite(env):
    env(env="production", secret_key=GOOD_SECRET)
    with pytest.raises(SettingsError, match="LTI_TOOL_DATABASE_URL"):
        create_app(load_settings())
    env(database_url="sqlite:////var/lib/tool.sqlite3")
    with pytest.raises(SettingsError, match="LTI_TOOL_DATABASE_URL"):
        create_app(load_settings())


def test_production_refuses_the_demo(env):
    env(env="production", secret_key=GOOD_SECRET, database_url=POSTGRES, demo="true")
    with pytest.raises(SettingsError, match="LTI_TOOL_DEMO"):
        create_app(load_settings())


def test_production_starts_with_a_secret_and_postgresql(env):
    env(env="production", secret_key=GOOD_SECRET, database_url=POSTGRES)
    app = create_app(load_settings())  # no connection is made until a request needs one
    assert app.config["SECRET_KEY"] == GOOD_SECRET


def test_unknown_env_is_refused(env):
    env(env="prod")
    with pytest.raises(SettingsError, match="LTI_TOOL_ENV"):
        load_settings().check()


def test_cli_in_production_refuses_the_default_secret_with_one_line(env, cli):
    env(env="production")
    line = one_line_failure(cli("db", "upgrade"))
    assert "LTI_TOOL_SECRET_KEY" in line


def test_cli_in_production_refuses_sqlite_with_one_line(env, cli, tmp_path):
    env(env="production", secret_key=GOOD_SECRET)
    line = one_line_failure(cli("db", "upgrade"))
    assert "LTI_TOOL_DATABASE_URL" in line
    assert not (tmp_path / "instance" / "lti_tool.sqlite3").exists()


def test_cli_upgrade_migrates_in_development(env, cli, tmp_path):
    result = cli("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "instance" / "lti_tool.sqlite3").exists()
    assert cli("platform", "list").output.strip() == "no platforms registered"
