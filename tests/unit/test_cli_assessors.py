"""`lti-tool assessor add|list|pause|resume`: what an operator types, and the one-line reasons
when it is wrong."""

from __future__ import annotations

import json

import pytest

from lti_tool.settings import SettingsError, load_settings
from tests.support import assessment as seed


@pytest.fixture
def catalog(services):
    seed.import_catalog(services)


def add(cli, email: str, *extra: str):
    return cli(
        "assessor",
        "add",
        "--email",
        email,
        "--name",
        "Pat Reviewer",
        "--institution",
        "North College",
        "--capacity",
        "4",
        *extra,
    )


def test_add_list_pause_and_resume(cli, catalog):
    added = add(
        cli,
        "Pat@North.example",
        "--certify",
        "exit-tickets",
        "--certify",
        "questioning@1",
        "--org",
        "Review Partners",
    )
    assert added.exit_code == 0, added.output
    assert "added assessor pat@north.example" in added.output
    listed = json.loads(cli("assessor", "list", "--json").output)
    assert listed == [
        {
            "id": listed[0]["id"],
            "email": "pat@north.example",
            "name": "Pat Reviewer",
            "organisation": "Review Partners",
            "institution": "North College",
            "weekly_capacity": 4,
            "status": "active",
            "certifications": ["exit-tickets", "questioning@1"],
            "load_this_week": 0,
            "open_reviews": 0,
        }
    ]
    assert cli("assessor", "pause", "pat@north.example").exit_code == 0
    assert "paused" in cli("assessor", "list").output
    resumed = cli("assessor", "resume", "PAT@north.example")
    assert resumed.exit_code == 0 and "resumed pat@north.example" in resumed.output


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (("--certify", "no-such-key"), "there is no micro-credential 'no-such-key'"),
        (("--certify", "exit-tickets@9"), "'exit-tickets' has no version 9"),
        (("--certify", "exit-tickets@two"), "a version is a number"),
        (("--certify", "exit-tickets", "--capacity", "-1"), "weekly capacity"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(cli, catalog, extra, reason):
    result = add(cli, "sam@north.example", *extra)
    assert result.exit_code != 0
    assert reason in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "no assessors" in cli("assessor", "list").output  # nothing half-added


def test_the_same_assessor_twice_and_unknown_ones_are_refused(cli, catalog):
    assert add(cli, "sam@north.example", "--certify", "exit-tickets").exit_code == 0
    again = add(cli, "sam@north.example", "--certify", "exit-tickets")
    assert again.exit_code != 0 and "is an assessor already" in again.output
    unknown = cli("assessor", "pause", "nobody@north.example")
    assert unknown.exit_code != 0 and "nobody@north.example is not an assessor" in unknown.output
    assert add(cli, "not-an-email", "--certify", "exit-tickets").exit_code != 0


def test_assessment_deadline_settings_are_checked():
    with pytest.raises(SettingsError, match="REVIEW_BUSINESS_DAYS"):
        load_settings(environ={}, assessment_review_business_days=0).check()
    with pytest.raises(SettingsError, match="AT_RISK"):
        load_settings(environ={}, assessment_at_risk_business_days=-1).check()


def test_an_assessor_joins_the_organisation_of_that_name_whatever_its_case(cli, catalog, services):
    """`api-token create --org` and `assessor add --org` name one organisation, not two."""
    from sqlalchemy import select

    from lti_tool.accounts.models import Organisation

    assert cli("api-token", "create", "--org", "Assessors United").exit_code == 0
    result = add(cli, "kim@a.example", "--certify", "exit-tickets", "--org", "ASSESSORS UNITED")
    assert result.exit_code == 0, result.output
    with services.session_factory() as session:
        assert [o.name for o in session.scalars(select(Organisation))] == ["Assessors United"]
