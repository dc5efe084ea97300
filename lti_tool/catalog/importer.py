"""Import catalog files into the database (all-or-nothing), and export the catalog back.

Import rules, per micro-credential (compared by the hash of its canonical content):
- content equal to its newest version: nothing is written (no new version, no new timestamp);
- changed, and no learner has started the newest version: that version is updated in place;
- changed, and the newest version is started: version N+1 is created, N stays as it was.
Issuers and stacks are updated in place when they differ. Nothing that is absent from a file is
deleted: removing a micro-credential from the catalog is not an import's business, since
learners may hold it. A stack's membership is replaced by the file's list when the file names
the stack.

The caller owns the transaction (`db.transaction`): any problem raises `CatalogError` before
a single row is written, and anything raised later rolls the whole import back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session, selectinload

from lti_tool.catalog.fileformat import (
    FORMAT_VERSION,
    CatalogDocument,
    CatalogError,
    CredentialSpec,
    IssuerSpec,
    Problem,
    StackSpec,
    check_references,
    content_hash,
    credential_to_yaml,
    dump_yaml,
    normal_number,
    read_catalog,
)
from lti_tool.catalog.models import (
    ARTIFACTS,
    PART_KINDS,
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
from lti_tool.catalog.service import current_versions
from lti_tool.db import utcnow

# Serialises concurrent imports on PostgreSQL (pg_advisory_xact_lock); any fixed number.
IMPORT_LOCK = 0x6361_7461  # "cata"

ISSUER, STACK, CREDENTIAL = "issuer", "stack", "micro-credential"
_PLURAL = {ISSUER: "issuers", STACK: "stacks", CREDENTIAL: "micro-credentials"}


@dataclass
class ImportReport:
    """What an import did; each entry is (kind, key, detail)."""

    created: list[tuple[str, str, str]] = field(default_factory=list)
    updated: list[tuple[str, str, str]] = field(default_factory=list)
    new_versions: list[tuple[str, str, str]] = field(default_factory=list)
    unchanged: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.new_versions)

    def summary(self) -> str:
        def count(entries: list[tuple[str, str, str]]) -> str:
            if not entries:
                return "0"
            details = ", ".join(
                f"{n} {kind if n == 1 else _PLURAL[kind]}"
                for kind in (ISSUER, STACK, CREDENTIAL)
                if (n := sum(1 for e in entries if e[0] == kind))
            )
            return f"{len(entries)} ({details})"

        return (
            f"created {count(self.created)}, updated {count(self.updated)}, "
            f"new versions {count(self.new_versions)}, unchanged {count(self.unchanged)}"
        )

    def lines(self) -> list[str]:
        """One line per change, for operators."""
        out = [f"created {kind} {key}{detail}" for kind, key, detail in self.created]
        out += [f"updated {kind} {key}{detail}" for kind, key, detail in self.updated]
        out += [f"new version of {key}{detail}" for _kind, key, detail in self.new_versions]
        return out


# -- reading files ---------------------------------------------------------------------------
def read_files(paths: Iterable[str | Path]) -> tuple[list[CatalogDocument], list[Problem]]:
    """Parse and validate files: their documents (as far as they could be read), and the
    problems of all of them."""
    documents: list[CatalogDocument] = []
    problems: list[Problem] = []
    for path in paths:
        label = str(path)
        try:
            source = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(Problem(label, "", f"cannot read the file: {reason}"))
            documents.append(CatalogDocument(file=label))
            continue
        document, found = read_catalog(source, label)
        documents.append(document)
        problems.extend(found)
    return documents, problems


def import_files(session: Session, paths: Iterable[str | Path]) -> ImportReport:
    """Import catalog files as one change; CatalogError lists every problem of every file."""
    documents, problems = read_files(paths)
    return import_documents(session, documents, problems)


# -- importing -------------------------------------------------------------------------------
def import_documents(
    session: Session,
    documents: list[CatalogDocument],
    problems: Iterable[Problem] = (),
    now: datetime | None = None,
) -> ImportReport:
    """Import parsed documents in the caller's transaction, as one change. `problems` found
    while parsing them are reported together with those of their references, and stop the
    import before anything is written."""
    now = now or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": IMPORT_LOCK})

    issuers = {i.key: i for i in session.scalars(select(Issuer))}
    stacks = {
        s.key: s
        for s in session.scalars(
            select(Stack).options(
                selectinload(Stack.members).selectinload(StackMember.micro_credential)
            )
        )
    }
    credentials = {
        c.key: c
        for c in session.scalars(
            select(MicroCredential).options(selectinload(MicroCredential.versions))
        )
    }
    _check(documents, set(issuers), set(credentials), list(problems))

    report = ImportReport()
    for document in documents:
        for spec in document.issuers:
            _import_issuer(session, spec, issuers, report, now)
        stack_issuer = {s.key: s.issuer for s in document.stacks}
        for spec in document.credentials:
            issuer = issuers[spec.issuer or stack_issuer[spec.stack or ""]]
            _import_credential(session, spec, issuer, credentials, report, now)
        for spec in document.stacks:
            _import_stack(session, spec, issuers[spec.issuer], credentials, stacks, report, now)
    session.flush()
    return report


def _check(
    documents: list[CatalogDocument],
    issuers: set[str],
    credentials: set[str],
    problems: list[Problem],
) -> None:
    """Add the problems that need the database or several files (unknown keys, keys defined
    in two files) to those of parsing; raise CatalogError if there are any."""
    defined: dict[tuple[str, str], tuple[str, str]] = {}  # (kind, key) -> (file, path)
    for document in documents:
        problems += check_references(document, issuers, credentials)
        specs: list[tuple[str, IssuerSpec | StackSpec | CredentialSpec]] = [
            *((ISSUER, s) for s in document.issuers),
            *((STACK, s) for s in document.stacks),
            *((CREDENTIAL, s) for s in document.credentials),
        ]
        for kind, spec in specs:
            if not spec.key:
                continue
            first = defined.setdefault((kind, spec.key), (document.file, spec.path))
            if first[0] != document.file:  # duplicates within a file are parse problems
                problems.append(
                    Problem(
                        document.file,
                        f"{spec.path}.key",
                        f"{kind} {spec.key!r} is also defined in {first[0]}: {first[1]}",
                    )
                )
        # Later files may refer to what earlier ones define.
        issuers = issuers | {s.key for s in document.issuers}
        credentials = credentials | {s.key for s in document.credentials}
    if problems:
        order = {d.file: i for i, d in enumerate(documents)}
        raise CatalogError(sorted(problems, key=lambda p: order.get(p.file, -1)))


def _assign(row: Any, values: dict[str, Any]) -> bool:
    """Set the attributes that differ; True when any did."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _import_issuer(
    session: Session,
    spec: IssuerSpec,
    issuers: dict[str, Issuer],
    report: ImportReport,
    now: datetime,
) -> None:
    row = issuers.get(spec.key)
    if row is None:
        row = Issuer(key=spec.key, **spec.fields, created_at=now, updated_at=now)
        session.add(row)
        issuers[spec.key] = row
        report.created.append((ISSUER, spec.key, ""))
    elif _assign(row, spec.fields):
        row.updated_at = now
        report.updated.append((ISSUER, spec.key, ""))
    else:
        report.unchanged.append((ISSUER, spec.key, ""))


def _import_credential(
    session: Session,
    spec: CredentialSpec,
    issuer: Issuer,
    credentials: dict[str, MicroCredential],
    report: ImportReport,
    now: datetime,
) -> None:
    digest = content_hash(spec.content)
    row = credentials.get(spec.key)
    if row is None:
        row = MicroCredential(key=spec.key, issuer=issuer, created_at=now, updated_at=now)
        row.versions.append(_new_version(1, spec.content, digest, now))
        session.add(row)
        credentials[spec.key] = row
        report.created.append((CREDENTIAL, spec.key, ""))
        return

    issuer_changed = row.issuer is not issuer
    if issuer_changed:
        row.issuer = issuer
        row.updated_at = now
    current = _lock(session, row.current)
    if current.content_hash == digest:
        entry = (CREDENTIAL, spec.key, f" (issuer {issuer.key})" if issuer_changed else "")
        (report.updated if issuer_changed else report.unchanged).append(entry)
    elif current.started_at is None:
        _replace_content(session, current, spec.content, digest)
        current.updated_at = now
        report.updated.append((CREDENTIAL, spec.key, f" (version {current.number}, in place)"))
    else:
        number = current.number + 1
        row.versions.append(_new_version(number, spec.content, digest, now))
        report.new_versions.append(
            (
                CREDENTIAL,
                spec.key,
                f": version {number} (learners started version {current.number}, which stays)",
            )
        )


def _lock(session: Session, version: MicroCredentialVersion) -> MicroCredentialVersion:
    """The version row, locked against a concurrent `mark_version_started` (PostgreSQL) and with
    a fresh `started_at`."""
    return session.scalars(
        select(MicroCredentialVersion)
        .where(MicroCredentialVersion.id == version.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


_SCALARS = (
    "title",
    "competency",
    "key_method",
    "method_components",
    "research",
    "resources",
    "estimated_hours",
    "fee",
    "roles",
    "evidence",
)


def _new_version(
    number: int, content: dict[str, Any], digest: str, now: datetime
) -> MicroCredentialVersion:
    version = MicroCredentialVersion(
        number=number,
        content_hash=digest,
        created_at=now,
        updated_at=now,
        **{name: content[name] for name in _SCALARS},
    )
    version.parts = _parts(content)
    return version


def _replace_content(
    session: Session, version: MicroCredentialVersion, content: dict[str, Any], digest: str
) -> None:
    for name in _SCALARS:
        setattr(version, name, content[name])
    version.content_hash = digest
    # Nobody started this version, so nothing refers to its parts: replace them. Flush the
    # deletes first, since the new rows reuse the same unique keys.
    version.parts.clear()
    session.flush()
    version.parts = _parts(content)


def _parts(content: dict[str, Any]) -> list[Part]:
    parts = []
    for kind, spec in content["parts"].items():
        part = Part(
            kind=kind,
            position=PART_KINDS.index(kind),
            instructions=spec["instructions"],
            passing=spec["passing"],
        )
        if kind == ARTIFACTS:
            part.requirements = [
                ArtifactRequirement(
                    key=r["key"],
                    position=i,
                    title=r["title"],
                    description=r["description"],
                    formats=list(r["formats"]),
                    required=r["required"],
                )
                for i, r in enumerate(spec["requirements"])
            ]
        else:
            part.prompts = [
                Prompt(
                    key=p["key"],
                    position=i,
                    text=p["text"],
                    min_words=p["words"][0] if p["words"] else None,
                    max_words=p["words"][1] if p["words"] else None,
                )
                for i, p in enumerate(spec["prompts"])
            ]
        part.rubric = [
            RubricCriterion(key=c["key"], position=i, text=c["text"], required=c["required"])
            for i, c in enumerate(spec["rubric"])
        ]
        parts.append(part)
    return parts


def _import_stack(
    session: Session,
    spec: StackSpec,
    issuer: Issuer,
    credentials: dict[str, MicroCredential],
    stacks: dict[str, Stack],
    report: ImportReport,
    now: datetime,
) -> None:
    members = [credentials[m.key] for m in spec.members]
    row = stacks.get(spec.key)
    if row is None:
        row = Stack(key=spec.key, issuer=issuer, **spec.fields, created_at=now, updated_at=now)
        row.members = [StackMember(micro_credential=c, position=i) for i, c in enumerate(members)]
        session.add(row)
        stacks[spec.key] = row
        report.created.append((STACK, spec.key, ""))
        return
    changed = _assign(row, spec.fields)
    if row.issuer is not issuer:
        row.issuer = issuer
        changed = True
    if [m.micro_credential for m in row.members] != members:
        row.members.clear()
        session.flush()
        row.members = [StackMember(micro_credential=c, position=i) for i, c in enumerate(members)]
        changed = True
    if changed:
        row.updated_at = now
        report.updated.append((STACK, spec.key, ""))
    else:
        report.unchanged.append((STACK, spec.key, ""))


# -- exporting -------------------------------------------------------------------------------
def version_content(version: MicroCredentialVersion) -> dict[str, Any]:
    """A stored version's canonical content: what `fileformat` makes of the file that would
    produce it, so `content_hash(version_content(v)) == v.content_hash`."""
    parts: dict[str, Any] = {}
    for part in sorted(version.parts, key=lambda p: PART_KINDS.index(p.kind)):
        spec: dict[str, Any] = {"instructions": part.instructions}
        if part.kind == ARTIFACTS:
            spec["requirements"] = [
                {
                    "key": r.key,
                    "title": r.title,
                    "description": r.description,
                    "formats": list(r.formats),
                    "required": r.required,
                }
                for r in part.requirements
            ]
        else:
            spec["prompts"] = [
                {
                    "key": p.key,
                    "text": p.text,
                    "words": [p.min_words, p.max_words] if p.min_words is not None else None,
                }
                for p in part.prompts
            ]
        spec["rubric"] = [
            {"key": c.key, "text": c.text, "required": c.required} for c in part.rubric
        ]
        spec["passing"] = part.passing
        parts[part.kind] = spec
    return {
        "title": version.title,
        "competency": version.competency,
        "key_method": version.key_method,
        "method_components": list(version.method_components),
        "research": [{"citation": r["citation"], "url": r.get("url")} for r in version.research],
        "resources": [
            {"title": r["title"], "url": r.get("url"), "kind": r["kind"]}
            for r in version.resources
        ],
        "estimated_hours": _maybe_number(version.estimated_hours),
        "fee": _maybe_number(round(version.fee, 2) if version.fee is not None else None),
        "roles": list(version.roles),
        "evidence": list(version.evidence),
        "parts": parts,
    }


def _maybe_number(value: float | None) -> int | float | None:
    return None if value is None else normal_number(value)


EXPORT_HEADER = (
    "# The micro-credential catalog, as exported by `lti-tool catalog export`.\n"
    "# Format: config/catalog/README.md. `lti-tool catalog import` reads it back.\n"
)


def export_catalog(session: Session) -> str:
    """The whole catalog in the file format: every issuer and stack, and the newest version of
    every micro-credential (defined in full at its first stack, named by key in the others;
    those in no stack under the top-level `credentials`)."""
    issuers = session.scalars(select(Issuer).order_by(Issuer.id)).all()
    stacks = session.scalars(
        select(Stack)
        .order_by(Stack.id)
        .options(selectinload(Stack.members).selectinload(StackMember.micro_credential))
    ).all()
    credentials = session.scalars(
        select(MicroCredential)
        .order_by(MicroCredential.id)
        .options(selectinload(MicroCredential.issuer))
    ).all()
    current = current_versions(session)
    issuer_keys = {i.id: i.key for i in issuers}

    data: dict[str, Any] = {"format": FORMAT_VERSION}
    if issuers:
        data["issuers"] = [_issuer_yaml(i) for i in issuers]
    written: set[int] = set()
    if stacks:
        data["stacks"] = []
        for stack in stacks:
            members: list[Any] = []
            for member in stack.members:
                credential = member.micro_credential
                if credential.id in written:
                    members.append(credential.key)
                    continue
                written.add(credential.id)
                own = credential.issuer_id != stack.issuer_id
                members.append(
                    credential_to_yaml(
                        credential.key,
                        issuer_keys[credential.issuer_id] if own else None,
                        version_content(current[credential.id]),
                    )
                )
            data["stacks"].append(_stack_yaml(stack, issuer_keys[stack.issuer_id], members))
    loose = [c for c in credentials if c.id not in written]
    if loose:
        data["credentials"] = [
            credential_to_yaml(c.key, issuer_keys[c.issuer_id], version_content(current[c.id]))
            for c in loose
        ]
    return dump_yaml(data, header=EXPORT_HEADER)


def _issuer_yaml(issuer: Issuer) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": issuer.key,
        "name": issuer.name,
        "url": issuer.url,
        "email": issuer.email,
    }
    if issuer.description:
        out["description"] = issuer.description
    if issuer.image:
        out["image"] = issuer.image
    return out


def _stack_yaml(stack: Stack, issuer: str, members: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"key": stack.key, "title": stack.title}
    if stack.description:
        out["description"] = stack.description
    out["issuer"] = issuer
    completion: dict[str, Any] = {"rule": stack.completion_rule}
    if stack.required_count is not None:
        completion["required"] = stack.required_count
    out["completion"] = completion
    credential: dict[str, Any] = {
        "name": stack.credential_name,
        "description": stack.credential_description,
    }
    if stack.credential_estimated_hours is not None:
        credential["estimated_hours"] = normal_number(stack.credential_estimated_hours)
    out["credential"] = credential
    out["credentials"] = members
    return out
