"""Helpers of the catalog tests: the fixture files, importing them, and snapshots of the
catalog's tables to prove that nothing changed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from lti_tool.catalog.importer import ImportReport, import_files
from lti_tool.catalog.models import (
    ArtifactRequirement,
    Issuer,
    MicroCredential,
    MicroCredentialVersion,
    Part,
    Prompt,
    RubricCriterion,
    Stack,
    StackMember,
)
from lti_tool.db import transaction
from lti_tool.services import Services
from lti_tool.settings import CONFIG_DIR

SMALL = Path(__file__).parent / "fixtures" / "catalog_small.yaml"
SAMPLE = CONFIG_DIR / "catalog" / "collaboration.yaml"
TABLES = (
    Issuer,
    Stack,
    StackMember,
    MicroCredential,
    MicroCredentialVersion,
    Part,
    Prompt,
    ArtifactRequirement,
    RubricCriterion,
)

_SMALL_DATA = yaml.safe_load(SMALL.read_text(encoding="utf-8"))


def small() -> dict[str, Any]:
    """The small fixture as data, to edit and write back."""
    return copy.deepcopy(_SMALL_DATA)


def write(tmp_path: Path, data: dict[str, Any], name: str = "catalog.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def import_paths(services: Services, *paths: Path | str) -> ImportReport:
    with transaction(services.session_factory) as session:
        return import_files(session, list(paths))


def import_data(
    services: Services, tmp_path: Path, data: dict[str, Any], name: str = "catalog.yaml"
) -> ImportReport:
    return import_paths(services, write(tmp_path, data, name))


def snapshot(services: Services) -> dict[str, list[tuple]]:
    """Every row of every catalog table, every column: equal snapshots, nothing changed."""
    result: dict[str, list[tuple]] = {}
    with transaction(services.session_factory) as session:
        for model in TABLES:
            columns = list(model.__table__.columns)
            rows = session.execute(select(*columns).order_by(model.__table__.c.id)).all()
            result[model.__tablename__] = [tuple(row) for row in rows]
    return result


def counts(services: Services) -> dict[str, int]:
    return {table: len(rows) for table, rows in snapshot(services).items()}


def credential(data: dict[str, Any], key: str) -> dict[str, Any]:
    """The full definition of a micro-credential in file data, by key."""
    for stack in data.get("stacks", []):
        for item in stack["credentials"]:
            if isinstance(item, dict) and item["key"] == key:
                return item
    for item in data.get("credentials", []):
        if item["key"] == key:
            return item
    raise KeyError(key)
