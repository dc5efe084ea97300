"""Catalog versioning: re-importing changes nothing; an edit updates a version nobody started in
place and creates the next version of a started one; export -> import is a no-op."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from sqlalchemy import select

from lti_tool.catalog import service
from lti_tool.catalog.fileformat import content_hash, parse_catalog
from lti_tool.catalog.importer import export_catalog, import_documents, version_content
from lti_tool.catalog.models import MicroCredentialVersion, Stack
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
)

STARTED = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def _start(services, key: str) -> int:
    with transaction(services.session_factory) as session:
        version = service.current_version(session, key)
        assert service.mark_version_started(session, version.id, STARTED) is True
        assert service.mark_version_started(session, version.id) is False  # already started
        return version.id


def _rubric(services, version_id: int, kind: str) -> list[tuple[str, str, bool]]:
    with transaction(services.session_factory) as session:
        part = service.get_version(session, version_id).part(kind)
        return [(c.key, c.text, c.required) for c in part.rubric]


def test_importing_the_same_file_twice_changes_nothing(services):
    import_paths(services, SMALL)
    before = snapshot(services)
    report = import_paths(services, SMALL)
    assert not report.changed
    assert report.summary() == (
        "created 0, updated 0, new versions 0, "
        "unchanged 8 (2 issuers, 2 stacks, 4 micro-credentials)"
    )
    # Every row of every catalog table, timestamps included, is as it was.
    assert snapshot(services) == before


def test_the_same_content_spelled_differently_changes_nothing(services, tmp_path):
    import_paths(services, SMALL)
    before = snapshot(services)
    data = small()
    item = credential(data, "exit-tickets")
    item["estimated_hours"] = 10.0  # 10
    item["title"] = "  Exit Tickets\n"  # surrounding whitespace
    item["parts"]["overview"]["rubric"][0]["required"] = True  # the default, now explicit
    item["parts"]["reflection"]["instructions"] = ""  # empty, as if absent
    item["resources"][0]["kind"] = "guide"
    item["parts"] = dict(reversed(list(item["parts"].items())))  # parts in another order
    assert not import_data(services, tmp_path, data).changed
    assert snapshot(services) == before


def test_editing_a_version_nobody_started_updates_it_in_place(services, tmp_path):
    import_paths(services, SMALL)
    before = counts(services)
    with transaction(services.session_factory) as session:
        old = service.current_version(session, "exit-tickets")
    data = small()
    rubric = credential(data, "exit-tickets")["parts"]["artifacts"]["rubric"]
    rubric[1]["text"] = "The next lesson's opening changed because of the answers."
    rubric.append({"key": "shared", "text": "Students saw the sorted answers.", "required": False})

    report = import_data(services, tmp_path, data)
    assert report.updated == [("micro-credential", "exit-tickets", " (version 1, in place)")]
    assert not report.created and not report.new_versions
    assert len(report.unchanged) == 7
    with transaction(services.session_factory) as session:
        new = service.current_version(session, "exit-tickets")
        assert (new.id, new.number) == (old.id, 1)
        assert new.content_hash != old.content_hash
        assert new.updated_at > old.updated_at
        assert new.created_at == old.created_at
    assert _rubric(services, old.id, "artifacts") == [
        ("aligned", "Each ticket targets the lesson's objective.", True),
        ("acted", "The next lesson's opening changed because of the answers.", True),
        ("shared", "Students saw the sorted answers.", False),
    ]
    after = counts(services)
    assert after["micro_credential_versions"] == before["micro_credential_versions"]
    assert after["rubric_criteria"] == before["rubric_criteria"] + 1


def test_editing_a_started_version_creates_the_next_one(services, tmp_path):
    import_paths(services, SMALL)
    first_id = _start(services, "exit-tickets")
    first_rubric = _rubric(services, first_id, "artifacts")
    with transaction(services.session_factory) as session:
        first = service.get_version(session, first_id)
        first_row = (first.content_hash, first.updated_at, first.title)

    data = small()
    item = credential(data, "exit-tickets")
    item["title"] = "Exit Tickets (revised)"
    item["parts"]["artifacts"]["rubric"][0]["text"] = "Each ticket targets one objective."
    del item["parts"]["reflection"]
    report = import_data(services, tmp_path, data)
    assert report.new_versions == [
        (
            "micro-credential",
            "exit-tickets",
            ": version 2 (learners started version 1, which stays)",
        )
    ]
    assert not report.updated and not report.created

    with transaction(services.session_factory) as session:
        second = service.current_version(session, "exit-tickets")
        assert second.number == 2 and second.id != first_id
        assert second.started_at is None
        assert second.title == "Exit Tickets (revised)"
        assert [p.kind for p in second.parts] == ["overview", "artifacts"]
        first = service.get_version(session, first_id)
        assert (first.content_hash, first.updated_at, first.title) == first_row
        assert first.started_at == STARTED
        assert [p.kind for p in first.parts] == ["overview", "artifacts", "reflection"]
        summary = service.list_stacks(session)[0].members[0]
        assert (summary.key, summary.version, summary.version_id) == (
            "exit-tickets",
            2,
            second.id,
        )
        second_id = second.id
    # The learner's version keeps its rubric: assessment uses it.
    assert _rubric(services, first_id, "artifacts") == first_rubric
    assert _rubric(services, second_id, "artifacts")[0] == (
        "aligned",
        "Each ticket targets one objective.",
        True,
    )

    # The same edited file again: nothing changes, no version 3.
    before = snapshot(services)
    assert not import_data(services, tmp_path, data).changed
    assert snapshot(services) == before

    # Version 2 is not started yet: a further edit updates it in place.
    item["competency"] = "The educator uses exit tickets to plan the next lesson."
    report = import_data(services, tmp_path, data)
    assert report.updated == [("micro-credential", "exit-tickets", " (version 2, in place)")]
    with transaction(services.session_factory) as session:
        numbers = session.scalars(
            select(MicroCredentialVersion.number)
            .where(MicroCredentialVersion.micro_credential_id == second.micro_credential_id)
            .order_by(MicroCredentialVersion.number)
        ).all()
        assert numbers == [1, 2]
    assert _rubric(services, first_id, "artifacts") == first_rubric


def test_issuers_and_stacks_are_updated_in_place(services, tmp_path):
    import_paths(services, SMALL)
    with transaction(services.session_factory) as session:
        stamps = {s.key: s.updated_at for s in session.scalars(select(Stack))}
    data = small()
    data["issuers"][1]["name"] = "East University (School of Education)"
    stack = data["stacks"][1]
    stack["credentials"] = list(reversed(stack["credentials"]))  # new order of members
    stack["completion"] = {"rule": "n_of_m", "required": 1}
    credential(data, "questioning")["issuer"] = "north-board"

    report = import_data(services, tmp_path, data)
    assert sorted(report.updated) == [
        ("issuer", "east-university", ""),
        ("micro-credential", "questioning", " (issuer north-board)"),
        ("stack", "foundations", ""),
    ]
    with transaction(services.session_factory) as session:
        after = {s.key: s.updated_at for s in session.scalars(select(Stack))}
        assert after["assessment"] == stamps["assessment"]
        assert after["foundations"] > stamps["foundations"]
        foundations = next(s for s in service.list_stacks(session) if s.key == "foundations")
        assert [m.key for m in foundations.members] == ["routines", "exit-tickets"]
        assert (foundations.completion_rule, foundations.needed) == ("n_of_m", 1)
        assert foundations.issuer == "East University (School of Education)"
        version = service.current_version(session, "questioning")
        assert (version.number, version.micro_credential.issuer.key) == (1, "north-board")

    before = snapshot(services)
    assert not import_data(services, tmp_path, data).changed
    assert snapshot(services) == before


def test_export_then_import_is_a_no_op(services, tmp_path):
    import_paths(services, SMALL)
    _start(services, "routines")
    data = small()
    credential(data, "routines")["key_method"] = "Explicit teaching, practice and feedback."
    credential(data, "questioning")["issuer"] = "east-university"
    import_data(services, tmp_path, data)  # routines gets version 2
    before = snapshot(services)

    with transaction(services.session_factory) as session:
        exported = export_catalog(session)
        for version in session.scalars(select(MicroCredentialVersion)):
            # What the exporter writes hashes to what the importer stored.
            assert content_hash(version_content(version)) == version.content_hash
    with transaction(services.session_factory) as session:
        report = import_documents(session, [parse_catalog(exported, "exported.yaml")])
    assert not report.changed
    assert snapshot(services) == before

    written = yaml.safe_load(exported)
    assert [s["key"] for s in written["stacks"]] == ["assessment", "foundations"]
    # Defined in full at its first stack, named by key in the next.
    assert written["stacks"][1]["credentials"][0] == "exit-tickets"
    assert written["stacks"][0]["credentials"][1]["issuer"] == "east-university"
    assert "issuer" not in written["stacks"][0]["credentials"][0]
    assert written["stacks"][0]["completion"] == {"rule": "n_of_m", "required": 1}
    assert [c["key"] for c in written["credentials"]] == ["feedback"]
    routines = written["stacks"][1]["credentials"][1]
    assert routines["key_method"] == "Explicit teaching, practice and feedback."  # the newest
    # The export of the export is the same text.
    with transaction(services.session_factory) as session:
        assert export_catalog(session) == exported


def test_export_into_an_empty_database_recreates_the_catalog(services, settings, tmp_path):
    from lti_tool import migrate
    from lti_tool.services import Services

    import_paths(services, SMALL)
    with transaction(services.session_factory) as session:
        exported = export_catalog(session)

    other = Services(settings.replace(instance_path=str(tmp_path / "other")))
    migrate.upgrade(other.engine)
    try:
        with transaction(other.session_factory) as session:
            import_documents(session, [parse_catalog(exported, "exported.yaml")])
        with transaction(other.session_factory) as session:
            assert export_catalog(session) == exported
        assert counts(other) == counts(services)
    finally:
        other.engine.dispose()


@pytest.mark.skipif(not SAMPLE.exists(), reason="the sample catalog is not written yet")
def test_sample_round_trips(services):
    import_paths(services, SAMPLE)
    before = snapshot(services)
    with transaction(services.session_factory) as session:
        exported = export_catalog(session)
    with transaction(services.session_factory) as session:
        assert not import_documents(session, [parse_catalog(exported, "sample.yaml")]).changed
    assert snapshot(services) == before
