"""Catalog import: valid files are stored in full; every problem is reported with its place and
nothing is stored; the `lti-tool catalog` commands."""

from __future__ import annotations

import pytest
import yaml

from lti_tool.catalog import importer, service
from lti_tool.catalog.fileformat import CatalogError, parse_catalog
from lti_tool.catalog.models import PART_KINDS
from lti_tool.db import transaction
from tests.unit.catalog_support import (
    SAMPLE,
    SMALL,
    counts,
    credential,
    import_data,
    import_paths,
    small,
    snapshot,
    write,
)

EMPTY = {
    "issuers": 0,
    "stacks": 0,
    "stack_members": 0,
    "micro_credentials": 0,
    "micro_credential_versions": 0,
    "version_parts": 0,
    "part_prompts": 0,
    "artifact_requirements": 0,
    "rubric_criteria": 0,
}


# -- valid files -----------------------------------------------------------------------------
def test_small_catalog_is_stored_in_full(services):
    report = import_paths(services, SMALL)
    assert report.summary() == (
        "created 8 (2 issuers, 2 stacks, 4 micro-credentials), updated 0, new versions 0, "
        "unchanged 0"
    )
    with transaction(services.session_factory) as session:
        stacks = {s.key: s for s in service.list_stacks(session)}
        assessment, foundations = stacks["assessment"], stacks["foundations"]
        assert assessment.issuer == "North Board of Education"
        assert (assessment.completion_rule, assessment.needed) == ("n_of_m", 1)
        assert assessment.credential_name == "Assessment Practitioner"
        assert assessment.credential_estimated_hours == 7.5
        assert [m.key for m in assessment.members] == ["exit-tickets", "questioning"]
        assert (foundations.completion_rule, foundations.needed) == ("all", 2)
        assert [m.key for m in foundations.members] == ["exit-tickets", "routines"]
        assert foundations.credential_estimated_hours is None
        assert assessment.members[0].stacks == ("assessment", "foundations")

        version = service.current_version(session, "exit-tickets")
        assert version.number == 1 and version.started_at is None and not version.locked
        assert version.micro_credential.issuer.key == "north-board"
        assert version.title == "Exit Tickets"
        assert version.method_components[0] == "Write one question aimed at the lesson's objective."
        assert version.research[1] == {
            "citation": "Black, P., & Wiliam, D. (1998). Inside the black box.",
            "url": "https://example.org/black-box",
        }
        assert version.research[0]["url"] is None
        assert version.resources[1] == {
            "title": "Embedded Formative Assessment",
            "url": None,
            "kind": "other",
        }
        assert (version.estimated_hours, version.fee) == (10, 25.5)
        assert version.roles == ["teacher", "paraeducator"]
        assert version.evidence == ["understanding", "implementation", "reflection"]
        assert len(version.content_hash) == 64
        assert [p.kind for p in version.parts] == list(PART_KINDS)

        overview = version.part("overview")
        assert overview.instructions == "Answer both questions about your class."
        assert overview.passing == "The context criterion must be met."
        assert [(p.key, p.min_words, p.max_words) for p in overview.prompts] == [
            ("setting", 150, 200),
            ("current-practice", None, None),
        ]
        assert [(c.key, c.required, c.position) for c in overview.rubric] == [
            ("context", True, 0),
            ("practice", False, 1),
        ]
        artifacts = version.part("artifacts")
        assert [(r.key, r.formats, r.required) for r in artifacts.requirements] == [
            ("tickets", ["pdf", "image"], True),
            ("sorting", ["document"], False),
        ]
        assert artifacts.requirements[1].description == ""
        assert artifacts.prompts == []
        assert [c.key for c in version.part("reflection").rubric] == ["evidence-of-impact"]

        questioning = service.current_version(session, "questioning")
        assert questioning.micro_credential.issuer.key == "east-university"  # its own issuer
        assert [p.kind for p in questioning.parts] == ["artifacts"]
        routines = service.current_version(session, "routines")
        assert routines.micro_credential.issuer.key == "east-university"  # its stack's
        feedback = service.current_version(session, "feedback")  # in no stack
        assert feedback.micro_credential.issuer.key == "north-board"
        assert service.current_version(session, "nothing-like-it") is None


@pytest.mark.skipif(not SAMPLE.exists(), reason="the sample catalog is not written yet")
def test_sample_catalog_imports(services):
    report = import_paths(services, SAMPLE)
    assert not report.updated and not report.new_versions and not report.unchanged
    with transaction(services.session_factory) as session:
        stacks = service.list_stacks(session)
        assert [m.title for s in stacks for m in s.members] == [
            "Active Listening",
            "Effective Leadership",
            "Productive Teamwork",
            "Resolving Conflicts",
        ]
        for member in stacks[0].members:
            version = service.current_version(session, member.key)
            assert [p.kind for p in version.parts] == list(PART_KINDS)
            assert all(p.rubric for p in version.parts)
            assert any(q.min_words for p in version.parts for q in p.prompts)
            assert version.part("artifacts").requirements
    assert import_paths(services, SAMPLE).changed is False


def test_search_and_stacks(services):
    import_paths(services, SMALL)
    with transaction(services.session_factory) as session:
        assert [c.key for c in service.search(session, "EXIT")] == ["exit-tickets"]
        assert [c.key for c in service.search(session, "students think")] == ["questioning"]
        # By title: Classroom Routines, Exit Tickets.
        assert [c.key for c in service.search(session, "foundations")] == [
            "routines",
            "exit-tickets",
        ]
        assert [c.key for c in service.search(session, "routine  time")] == ["routines"]
        assert service.search(session, "100%") == []
        assert len(service.search(session, "")) == 4
        assert len(service.search(session, "", limit=2)) == 2


# -- problems --------------------------------------------------------------------------------
def _problems(services, tmp_path, data) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        import_data(services, tmp_path, data)
    assert counts(services) == EMPTY, "a failed import stored something"
    return [str(p).removeprefix(f"{tmp_path}/") for p in caught.value.problems]


def _edit_missing_rubric_text(data):
    del credential(data, "exit-tickets")["parts"]["artifacts"]["rubric"][1]["text"]


def _edit_wrong_types(data):
    item = credential(data, "exit-tickets")
    item["title"] = 5
    item["estimated_hours"] = "ten"
    item["method_components"] = "one text"
    item["parts"]["artifacts"]["requirements"][0]["required"] = "yes"
    item["parts"]["overview"]["prompts"] = {"key": "setting"}


def _edit_word_ranges(data):
    prompts = credential(data, "exit-tickets")["parts"]["overview"]["prompts"]
    prompts[0]["words"] = [300, 250]
    prompts[1]["words"] = [250]
    credential(data, "routines")["parts"]["reflection"]["prompts"][0]["words"] = [-5, 10]


def _edit_duplicate_keys(data):
    rubric = credential(data, "exit-tickets")["parts"]["artifacts"]["rubric"]
    rubric[1]["key"] = "aligned"
    data["stacks"][1]["key"] = "assessment"
    data["issuers"].append(dict(data["issuers"][0], name="The North Board"))
    data["credentials"][0]["key"] = "questioning"


def _edit_unknown_issuer(data):
    data["stacks"][0]["issuer"] = "nobody"
    credential(data, "questioning")["issuer"] = "nobody-either"


def _edit_n_of_m_without_required(data):
    del data["stacks"][0]["completion"]["required"]


def _edit_n_of_m_too_many(data):
    data["stacks"][0]["completion"]["required"] = 3


def _edit_all_with_required(data):
    data["stacks"][1]["completion"]["required"] = 1


def _edit_unknown_things(data):
    data["stacks"][0]["credentials"][0]["competence"] = "typo"
    data["stacks"][1]["credentials"][0] = "no-such-credential"
    credential(data, "exit-tickets")["roles"] = ["teacher", "principal"]
    credential(data, "exit-tickets")["parts"]["artifacts"]["requirements"][0]["formats"] = ["zip"]
    data["stacks"][0]["completion"]["rule"] = "most"


def _edit_bad_values(data):
    data["issuers"][0]["url"] = "north-board.example"
    data["issuers"][0]["email"] = "nobody"
    data["stacks"][0]["key"] = "Classroom Assessment"
    credential(data, "exit-tickets")["fee"] = 10.555
    credential(data, "exit-tickets")["evidence"] = []
    credential(data, "routines")["parts"] = {}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            _edit_missing_rubric_text,
            ["catalog.yaml: stacks[0].credentials[0].parts.artifacts.rubric[1].text: required"],
        ),
        (
            _edit_wrong_types,
            [
                "catalog.yaml: stacks[0].credentials[0].title: must be a text (got a number)",
                "catalog.yaml: stacks[0].credentials[0].estimated_hours: "
                "must be a number (got a text)",
                "catalog.yaml: stacks[0].credentials[0].method_components: "
                "must be a list (got a text)",
                "catalog.yaml: stacks[0].credentials[0].parts.artifacts.requirements[0].required:"
                " must be true or false (got a text)",
                "catalog.yaml: stacks[0].credentials[0].parts.overview.prompts: "
                "must be a list (got a mapping)",
            ],
        ),
        (
            _edit_word_ranges,
            [
                "catalog.yaml: stacks[0].credentials[0].parts.overview.prompts[0].words: "
                "the minimum 300 is above the maximum 250",
                "catalog.yaml: stacks[0].credentials[0].parts.overview.prompts[1].words: "
                "must be two whole numbers [minimum, maximum], for example [250, 300]",
                "catalog.yaml: stacks[1].credentials[1].parts.reflection.prompts[0].words: "
                "must be positive (got [-5, 10])",
            ],
        ),
        (
            _edit_duplicate_keys,
            [
                "catalog.yaml: issuers[2].key: duplicate issuer key 'north-board' "
                "(first at issuers[0])",
                "catalog.yaml: stacks[0].credentials[0].parts.artifacts.rubric[1].key: "
                "duplicate criterion key 'aligned' (first at "
                "stacks[0].credentials[0].parts.artifacts.rubric[0])",
                "catalog.yaml: stacks[1].key: duplicate stack key 'assessment' "
                "(first at stacks[0])",
                "catalog.yaml: credentials[0].key: duplicate micro-credential key 'questioning' "
                "(first at stacks[0].credentials[1])",
            ],
        ),
        (
            _edit_unknown_issuer,
            [
                "catalog.yaml: stacks[0].issuer: unknown issuer 'nobody' "
                "(define it under `issuers`)",
                "catalog.yaml: stacks[0].credentials[1].issuer: unknown issuer 'nobody-either' "
                "(define it under `issuers`)",
            ],
        ),
        (
            _edit_n_of_m_without_required,
            [
                "catalog.yaml: stacks[0].completion.required: required with rule n_of_m "
                "(how many members complete the stack)"
            ],
        ),
        (
            _edit_n_of_m_too_many,
            [
                "catalog.yaml: stacks[0].completion.required: must be between 1 and 2 "
                "(the number of members)"
            ],
        ),
        (
            _edit_all_with_required,
            ["catalog.yaml: stacks[1].completion.required: only with rule n_of_m (rule is all)"],
        ),
        (
            _edit_unknown_things,
            [
                "catalog.yaml: stacks[0].credentials[0].competence: unknown field (expected one "
                "of: key, title, competency, key_method, method_components, evidence, parts, "
                "issuer, research, resources, estimated_hours, fee, roles)",
                "catalog.yaml: stacks[0].credentials[0].roles[1]: must be one of teacher, "
                "paraeducator, team, leader, any (got 'principal')",
                "catalog.yaml: stacks[0].credentials[0].parts.artifacts.requirements[0]."
                "formats[0]: must be one of pdf, document, image, audio, video, link "
                "(got 'zip')",
                "catalog.yaml: stacks[0].completion.rule: must be one of all, n_of_m "
                "(got 'most')",
                "catalog.yaml: stacks[1].credentials[0]: unknown micro-credential "
                "'no-such-credential' (define it in full once)",
            ],
        ),
        (
            _edit_bad_values,
            [
                "catalog.yaml: issuers[0].url: must be an http(s) URL "
                "(got 'north-board.example')",
                "catalog.yaml: issuers[0].email: must be an e-mail address (got 'nobody')",
                "catalog.yaml: stacks[0].key: must be lower-case letters, digits and hyphens "
                "(got 'Classroom Assessment')",
                "catalog.yaml: stacks[0].credentials[0].fee: at most 2 decimals (got 10.555)",
                "catalog.yaml: stacks[0].credentials[0].evidence: must not be empty",
                "catalog.yaml: stacks[1].credentials[1].parts: needs at least one of overview, "
                "artifacts, reflection",
            ],
        ),
    ],
    ids=lambda value: getattr(value, "__name__", "")[len("_edit_") :] or None,
)
def test_every_problem_is_reported_with_its_place_and_nothing_is_stored(
    services, tmp_path, edit, expected
):
    data = small()
    edit(data)
    problems = _problems(services, tmp_path, data)
    assert sorted(problems) == sorted(expected)


def test_missing_required_fields_are_each_reported(services, tmp_path):
    data = small()
    item = credential(data, "exit-tickets")
    for name in ("competency", "key_method", "parts"):
        del item[name]
    del data["issuers"][1]["email"]
    del data["stacks"][1]["credential"]
    problems = _problems(services, tmp_path, data)
    assert sorted(problems) == sorted(
        [
            "catalog.yaml: issuers[1].email: required",
            "catalog.yaml: stacks[0].credentials[0].competency: required",
            "catalog.yaml: stacks[0].credentials[0].key_method: required",
            "catalog.yaml: stacks[0].credentials[0].parts: required",
            "catalog.yaml: stacks[1].credential: required",
        ]
    )


def test_yaml_level_problems(services, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("format: 1\nstacks:\n  - key: [unclosed\n", encoding="utf-8")
    twice = tmp_path / "twice.yaml"
    twice.write_text("format: 1\nformat: 1\nissuers: []\n", encoding="utf-8")
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        import_paths(services, broken, twice, empty, tmp_path / "absent.yaml")
    problems = [str(p) for p in caught.value.problems]
    assert problems[0].startswith(f"{broken}: line ")
    assert "not valid YAML" in problems[0]
    assert problems[1:] == [
        f"{twice}: line 2, column 1: field 'format' given twice",
        f"{empty}: the file is empty",
        f"{tmp_path / 'absent.yaml'}: cannot read the file: No such file or directory",
    ]
    assert counts(services) == EMPTY


def test_yaml_1_1_words_stay_texts():
    """`no`, `off` and dates are texts in this format (YAML 1.2), not booleans and dates."""
    text = SMALL.read_text(encoding="utf-8")
    text = text.replace("title: Exit Tickets", "title: no")
    text = text.replace("citation: Wiliam, D. (2011)", "citation: 2011-01-01 (Wiliam, D. 2011)")
    document = parse_catalog(text, "small.yaml")
    exit_tickets = document.credentials[0].content
    assert exit_tickets["title"] == "no"
    assert exit_tickets["research"][0]["citation"].startswith("2011-01-01")
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text.replace("required: false", "required: off", 1), "small.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "small.yaml: stacks[0].credentials[0].parts.overview.rubric[1].required: "
        "must be true or false (got a text)"
    ]
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text.replace("title: no", "title: no\n        title: again"), "x.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "x.yaml: line 32, column 9: field 'title' given twice"
    ]


def test_a_problem_in_one_file_stores_nothing_from_the_others(services, tmp_path):
    good = write(tmp_path, small(), "good.yaml")
    other = {
        "format": 1,
        "stacks": [
            {
                "key": "more",
                "title": "More",
                "issuer": "north-board",  # defined in good.yaml: later files may refer to it
                "credential": {"name": "More", "description": "More."},
                "credentials": ["routines", "unknown-one"],
            }
        ],
    }
    bad = write(tmp_path, other, "bad.yaml")
    with pytest.raises(CatalogError) as caught:
        import_paths(services, good, bad)
    assert [str(p) for p in caught.value.problems] == [
        f"{bad}: stacks[0].credentials[1]: unknown micro-credential 'unknown-one' "
        "(define it in full once)"
    ]
    assert counts(services) == EMPTY

    other["stacks"][0]["credentials"] = ["routines", "feedback"]
    write(tmp_path, other, "bad.yaml")
    report = import_paths(services, good, bad)
    assert ("stack", "more", "") in report.created


def test_a_key_defined_in_two_files_is_a_problem(services, tmp_path):
    first = write(tmp_path, small(), "first.yaml")
    second = write(tmp_path, {"format": 1, "issuers": [small()["issuers"][0]]}, "second.yaml")
    with pytest.raises(CatalogError) as caught:
        import_paths(services, first, second)
    assert [str(p) for p in caught.value.problems] == [
        f"{second}: issuers[0].key: issuer 'north-board' is also defined in {first}: issuers[0]"
    ]


def test_references_may_point_into_the_database(services, tmp_path):
    import_paths(services, SMALL)
    later = {
        "format": 1,
        "stacks": [
            {
                "key": "more",
                "title": "More",
                "issuer": "east-university",
                "completion": {"rule": "n_of_m", "required": 2},
                "credential": {"name": "More", "description": "More."},
                "credentials": ["feedback", "questioning", "routines"],
            }
        ],
    }
    report = import_data(services, tmp_path, later)
    assert report.summary() == (
        "created 1 (1 stack), updated 0, new versions 0, unchanged 0"
    )


def test_an_error_while_writing_rolls_everything_back(services, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(importer, "_import_stack", fail)
    with pytest.raises(RuntimeError):
        import_paths(services, SMALL)
    assert counts(services) == EMPTY


# -- the command -----------------------------------------------------------------------------
def test_cli_import_and_export(services, cli, tmp_path):
    result = cli("catalog", "import", str(SMALL))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "created issuer north-board" in lines
    assert "created micro-credential exit-tickets" in lines
    assert lines[-1] == (
        "created 8 (2 issuers, 2 stacks, 4 micro-credentials), updated 0, new versions 0, "
        "unchanged 0"
    )
    before = snapshot(services)

    result = cli("catalog", "import", str(SMALL))
    assert result.exit_code == 0
    assert result.output == (
        "created 0, updated 0, new versions 0, "
        "unchanged 8 (2 issuers, 2 stacks, 4 micro-credentials)\n"
    )

    exported = tmp_path / "exported.yaml"
    result = cli("catalog", "export", str(exported))
    assert result.exit_code == 0
    assert result.output == f"exported 2 stacks and 4 micro-credentials to {exported}\n"
    assert yaml.safe_load(exported.read_text())["format"] == 1

    result = cli("catalog", "import", str(exported))
    assert result.exit_code == 0
    assert "created 0, updated 0, new versions 0, unchanged 8" in result.output
    assert snapshot(services) == before

    result = cli("catalog", "export", "-")
    assert result.exit_code == 0
    assert result.output == exported.read_text()


def test_cli_import_errors_exit_1_with_every_problem(services, cli, tmp_path):
    data = small()
    _edit_missing_rubric_text(data)
    _edit_unknown_issuer(data)
    path = write(tmp_path, data)
    result = cli("catalog", "import", str(path))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"{path}: stacks[0].credentials[0].parts.artifacts.rubric[1].text: required" in lines
    assert f"{path}: stacks[0].issuer: unknown issuer 'nobody' (define it under `issuers`)" in (
        lines
    )
    assert lines[-1] == "Error: 3 problems in the catalog: nothing was imported"
    assert counts(services) == EMPTY

    result = cli("catalog", "import", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: 1 problem in the catalog: nothing was imported"
    )
    result = cli("catalog", "import")
    assert result.exit_code == 2  # click's usage error


def test_cli_needs_a_migrated_database(settings, cli, tmp_path):
    result = cli("catalog", "import", str(SMALL))
    assert result.exit_code == 1
    assert result.output == (
        "Error: the database is not at the newest migration: run 'lti-tool db upgrade' first\n"
    )
    result = cli("catalog", "export", str(tmp_path / "out.yaml"))
    assert result.exit_code == 1


def test_cli_export_to_an_unwritable_place(services, cli, tmp_path):
    result = cli("catalog", "export", str(tmp_path / "no-such-dir" / "out.yaml"))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot write {tmp_path / 'no-such-dir' / 'out.yaml'}")


@pytest.mark.skipif(not SAMPLE.exists(), reason="the sample catalog is not written yet")
def test_demo_loads_the_sample_catalog_at_every_start(settings, cli, monkeypatch):
    from lti_tool import cli as cli_module

    monkeypatch.setattr(cli_module, "_serve", lambda *args: None)
    first = cli("demo")
    assert first.exit_code == 0, first.output
    assert "created micro-credential active-listening" in first.output
    assert "Catalog: created " in first.output
    again = cli("demo")
    assert again.exit_code == 0, again.output
    catalog_line = next(line for line in again.output.splitlines() if "Catalog:" in line)
    assert catalog_line.startswith("Catalog: created 0, updated 0, new versions 0, unchanged ")
