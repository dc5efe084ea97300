"""The catalog file format (config/catalog/README.md): parse and validate, and write it back.

No database here. `parse_catalog` turns a file's text into a `CatalogDocument` of normalised
specs, or raises `CatalogError` listing every problem with its place
(`collab.yaml: stacks[0].credentials[2].parts.artifacts.rubric[1].text: required`).
References that may point into the database (an issuer key, a micro-credential key given as a
stack member) are checked by `check_references` once the database's keys are known.

A micro-credential's content is normalised into one canonical dict (`content`), the same one
the exporter rebuilds from the database, so that `content_hash` tells equal content apart from
changed content regardless of how the file spelled it (defaults, number forms, whitespace).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import yaml

from lti_tool.catalog.models import (
    ARTIFACTS,
    COMPLETION_RULES,
    EVIDENCE_KINDS,
    FORMATS,
    KEY_LENGTH,
    OVERVIEW,
    PART_KINDS,
    REFLECTION,
    RESOURCE_KINDS,
    ROLES,
    RULE_ALL,
    RULE_N_OF_M,
)

FORMAT_VERSION = 1
KEY_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_HOURS = 10_000
MAX_FEE = 99_999_999


# -- problems --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}" if self.path else (
            f"{self.file}: {self.message}"
        )


class CatalogError(Exception):
    """The file (or files) cannot be imported; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the catalog")


# -- specs -----------------------------------------------------------------------------------
@dataclass
class IssuerSpec:
    key: str
    path: str
    fields: dict[str, Any]  # name, url, email, description, image


@dataclass
class CredentialSpec:
    key: str
    path: str
    # An issuer key given in the file, or None: the issuer of the stack that defines it.
    issuer: str | None
    stack: str | None  # the key of the stack whose `credentials` define it, if any
    content: dict[str, Any]  # canonical content of a version (see `content_hash`)


@dataclass
class MemberRef:
    key: str
    path: str
    defined_here: bool  # a full definition at this place, not a reference by key


@dataclass
class StackSpec:
    key: str
    path: str
    issuer: str
    fields: dict[str, Any]  # title, description, completion_rule, required_count, credential_*
    members: list[MemberRef] = field(default_factory=list)


@dataclass
class CatalogDocument:
    file: str
    issuers: list[IssuerSpec] = field(default_factory=list)
    stacks: list[StackSpec] = field(default_factory=list)
    credentials: list[CredentialSpec] = field(default_factory=list)


def content_hash(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- YAML loading ----------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """Safe loading with YAML 1.2 booleans (`no` stays a text), dates left as texts, and
    duplicate fields in one mapping reported instead of silently overwritten."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[yaml.Mark, Any]] = []

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                try:
                    key = self.construct_object(key_node, deep=True)
                    if key in seen:
                        self.duplicates.append((key_node.start_mark, key))
                    seen.add(key)
                except TypeError:
                    pass  # an unhashable key: the base class reports it
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _where(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def load_yaml(text: str, file: str) -> Any:
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{_where(mark)}: " if mark else ""
        raise CatalogError([Problem(file, "", f"{where}not valid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise CatalogError([Problem(file, "", f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise CatalogError(
            [
                Problem(file, "", f"{_where(mark)}: field {key!r} given twice")
                for mark, key in loader.duplicates
            ]
        )
    return data


# -- validation helpers ----------------------------------------------------------------------
def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


_MISSING = object()


class _Checker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.file, path, message))

    def mapping(
        self, value: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
    ) -> dict | None:
        """A mapping with these fields; reports missing and unknown ones."""
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping (got {_kind(value)})")
            return None
        for name in required:
            if value.get(name) is None:
                self.problem(_join(path, name), "required")
        for name in value:
            if name not in required and name not in optional:
                allowed = ", ".join((*required, *optional))
                self.problem(_join(path, str(name)), f"unknown field (expected one of: {allowed})")
        return value

    def items(self, value: Any, path: str, *, required: bool = True) -> list[tuple[str, Any]]:
        """(path, item) of a list; reports a missing or empty list where one is required."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(path, f"must be a list (got {_kind(value)})")
            return []
        if required and not value:
            self.problem(path, "must not be empty")
        return [(_join(path, i), item) for i, item in enumerate(value)]

    def text(
        self, m: dict, name: str, path: str, *, required: bool = True, max_length: int = 0
    ) -> str:
        value = m.get(name)
        where = _join(path, name)
        if value is None:
            return ""  # a missing required field is reported by mapping()
        if not isinstance(value, str):
            self.problem(where, f"must be a text (got {_kind(value)})")
            return ""
        value = value.strip()
        if required and not value:
            self.problem(where, "must not be empty")
        if max_length and len(value) > max_length:
            self.problem(where, f"too long ({len(value)} characters, at most {max_length})")
        return value

    def key(self, m: dict, name: str, path: str) -> str:
        value = m.get(name)
        where = _join(path, name)
        if value is None:
            return ""
        if not isinstance(value, str):
            self.problem(where, f"must be a key (a text, got {_kind(value)})")
            return ""
        if not KEY_PATTERN.match(value):
            self.problem(
                where, f"must be lower-case letters, digits and hyphens (got {value!r})"
            )
        elif len(value) > KEY_LENGTH:
            self.problem(where, f"too long ({len(value)} characters, at most {KEY_LENGTH})")
        # Even a bad key is kept: references to it are then not reported as unknown too.
        return value

    def url(self, m: dict, name: str, path: str, *, required: bool = True) -> str | None:
        value = self.text(m, name, path, required=required, max_length=1000)
        if not value:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            self.problem(_join(path, name), f"must be an http(s) URL (got {value!r})")
        return value

    def number(
        self, m: dict, name: str, path: str, *, maximum: float, decimals: int | None = None
    ) -> int | float | None:
        value = m.get(name)
        where = _join(path, name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value
        ):
            self.problem(where, f"must be a number (got {_kind(value)})")
            return None
        if value < 0 or value > maximum:
            self.problem(where, f"must be between 0 and {maximum} (got {value})")
            return None
        if decimals is not None and round(value, decimals) != value:
            self.problem(where, f"at most {decimals} decimals (got {value})")
            return None
        return normal_number(value)

    def boolean(self, m: dict, name: str, path: str, default: bool) -> bool:
        value = m.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(_join(path, name), f"must be true or false (got {_kind(value)})")
            return default
        return value

    def choices(
        self, m: dict, name: str, path: str, allowed: tuple[str, ...], *, required: bool
    ) -> list[str]:
        """A list of distinct values out of `allowed`."""
        where = _join(path, name)
        result: list[str] = []
        for item_path, item in self.items(m.get(name), where, required=required):
            if item not in allowed:
                self.problem(item_path, f"must be one of {', '.join(allowed)} (got {item!r})")
            elif item in result:
                self.problem(item_path, f"{item!r} is listed twice")
            else:
                result.append(item)
        return result

    def unique(self, specs: list[tuple[str, str]], what: str) -> None:
        """Report keys given twice; `specs` are (key, path of the item)."""
        first: dict[str, str] = {}
        for key, path in specs:
            if not key:
                continue
            if key in first:
                self.problem(
                    _join(path, "key"), f"duplicate {what} key {key!r} (first at {first[key]})"
                )
            else:
                first[key] = path


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def normal_number(value: int | float) -> int | float:
    """One spelling per value: 15, 15.0 and 15.00 are all 15."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# -- the document ----------------------------------------------------------------------------
def parse_catalog(text: str, file: str) -> CatalogDocument:
    """Parse and validate one file; raise CatalogError with every problem found."""
    document, problems = read_catalog(text, file)
    if problems:
        raise CatalogError(problems)
    return document


def read_catalog(text: str, file: str) -> tuple[CatalogDocument, list[Problem]]:
    """The document as far as it can be read, and every problem found in it. A document with
    problems must not be imported; it serves to look for more problems (`check_references`)."""
    document = CatalogDocument(file=file)
    try:
        data = load_yaml(text, file)
    except CatalogError as exc:
        return document, exc.problems
    check = _Checker(file)
    if data is None:
        return document, [Problem(file, "", "the file is empty")]
    top = check.mapping(data, "", ("format",), ("issuers", "stacks", "credentials"))
    if top is None:
        return document, check.problems
    version = top.get("format")
    if version is not None and version != FORMAT_VERSION:
        check.problem("format", f"must be {FORMAT_VERSION} (got {version!r})")

    for path, item in check.items(top.get("issuers"), "issuers", required=False):
        issuer = _issuer(check, item, path)
        if issuer:
            document.issuers.append(issuer)
    check.unique([(i.key, i.path) for i in document.issuers], "issuer")

    for path, item in check.items(top.get("stacks"), "stacks", required=False):
        stack = _stack(check, item, path, document)
        if stack:
            document.stacks.append(stack)
    check.unique([(s.key, s.path) for s in document.stacks], "stack")

    for path, item in check.items(top.get("credentials"), "credentials", required=False):
        credential = _credential(check, item, path, stack=None)
        if credential:
            document.credentials.append(credential)
    check.unique([(c.key, c.path) for c in document.credentials], "micro-credential")
    return document, check.problems


def check_references(
    document: CatalogDocument, issuers: set[str], credentials: set[str]
) -> list[Problem]:
    """Problems with keys that are neither defined in the document nor in the given sets (the
    keys already in the database)."""
    known_issuers = issuers | {i.key for i in document.issuers}
    known_credentials = credentials | {c.key for c in document.credentials}
    problems: list[Problem] = []

    def unknown_issuer(key: str, path: str) -> None:
        if key and key not in known_issuers:
            problems.append(
                Problem(
                    document.file,
                    _join(path, "issuer"),
                    f"unknown issuer {key!r} (define it under `issuers`)",
                )
            )

    for stack in document.stacks:
        unknown_issuer(stack.issuer, stack.path)
        for member in stack.members:
            if member.key and not member.defined_here and member.key not in known_credentials:
                problems.append(
                    Problem(
                        document.file,
                        member.path,
                        f"unknown micro-credential {member.key!r} (define it in full once)",
                    )
                )
    for credential in document.credentials:
        if credential.issuer is not None:
            unknown_issuer(credential.issuer, credential.path)
    return problems


def _issuer(check: _Checker, value: Any, path: str) -> IssuerSpec | None:
    m = check.mapping(value, path, ("key", "name", "url", "email"), ("description", "image"))
    if m is None:
        return None
    email = check.text(m, "email", path, max_length=320)
    if email and not EMAIL_PATTERN.match(email):
        check.problem(_join(path, "email"), f"must be an e-mail address (got {email!r})")
    return IssuerSpec(
        key=check.key(m, "key", path),
        path=path,
        fields={
            "name": check.text(m, "name", path, max_length=300),
            "url": check.url(m, "url", path),
            "email": email,
            "description": check.text(m, "description", path, required=False),
            "image": check.url(m, "image", path, required=False),
        },
    )


def _stack(
    check: _Checker, value: Any, path: str, document: CatalogDocument
) -> StackSpec | None:
    m = check.mapping(
        value,
        path,
        ("key", "title", "issuer", "credential", "credentials"),
        ("description", "completion"),
    )
    if m is None:
        return None
    key = check.key(m, "key", path)
    stack = StackSpec(
        key=key,
        path=path,
        issuer=check.key(m, "issuer", path),
        fields={
            "title": check.text(m, "title", path, max_length=300),
            "description": check.text(m, "description", path, required=False),
        },
    )

    members_path = _join(path, "credentials")
    first: dict[str, str] = {}
    for item_path, item in check.items(m.get("credentials"), members_path):
        if isinstance(item, str):  # a reference to a micro-credential defined elsewhere
            if not KEY_PATTERN.match(item):
                check.problem(
                    item_path,
                    f"must be a micro-credential (a mapping) or the key of one (got {item!r})",
                )
                continue
            ref = MemberRef(item, item_path, defined_here=False)
        else:
            credential = _credential(check, item, item_path, stack=key)
            if credential is None:
                continue
            document.credentials.append(credential)
            ref = MemberRef(credential.key, item_path, defined_here=True)
        if not ref.key:
            continue
        if ref.key in first:
            check.problem(
                item_path, f"micro-credential {ref.key!r} is already a member (at {first[ref.key]})"
            )
            continue
        first[ref.key] = item_path
        stack.members.append(ref)

    completion_path = _join(path, "completion")
    rule, required = RULE_ALL, None
    completion = m.get("completion")
    if completion is not None:
        c = check.mapping(completion, completion_path, ("rule",), ("required",))
        if c is not None and c.get("rule") is not None:
            rule = c["rule"]
            if rule not in COMPLETION_RULES:
                check.problem(
                    _join(completion_path, "rule"),
                    f"must be one of {', '.join(COMPLETION_RULES)} (got {rule!r})",
                )
            elif rule == RULE_N_OF_M:
                required = _required_count(check, c, completion_path, len(stack.members))
            elif c.get("required") is not None:
                check.problem(
                    _join(completion_path, "required"), "only with rule n_of_m (rule is all)"
                )
    stack.fields["completion_rule"] = rule
    stack.fields["required_count"] = required

    credential_path = _join(path, "credential")
    c = None
    if m.get("credential") is not None:  # a missing one is reported by mapping() above
        c = check.mapping(
            m["credential"], credential_path, ("name", "description"), ("estimated_hours",)
        )
    if c is not None:
        stack.fields["credential_name"] = check.text(c, "name", credential_path, max_length=300)
        stack.fields["credential_description"] = check.text(c, "description", credential_path)
        stack.fields["credential_estimated_hours"] = check.number(
            c, "estimated_hours", credential_path, maximum=MAX_HOURS
        )
    return stack


def _required_count(check: _Checker, c: dict, path: str, members: int) -> int | None:
    where = _join(path, "required")
    value = c.get("required")
    if value is None:
        check.problem(where, "required with rule n_of_m (how many members complete the stack)")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        check.problem(where, f"must be a whole number (got {_kind(value)})")
        return None
    if not 1 <= value <= members:
        check.problem(where, f"must be between 1 and {members} (the number of members)")
        return None
    return value


_CREDENTIAL_REQUIRED = ("key", "title", "competency", "key_method", "method_components")
_CREDENTIAL_REQUIRED += ("evidence", "parts")
_CREDENTIAL_OPTIONAL = ("issuer", "research", "resources", "estimated_hours", "fee", "roles")


def _credential(check: _Checker, value: Any, path: str, stack: str | None) -> CredentialSpec | None:
    required = _CREDENTIAL_REQUIRED
    optional = _CREDENTIAL_OPTIONAL
    if stack is None:  # at the top level there is no stack to take the issuer from
        required, optional = (*required, "issuer"), tuple(o for o in optional if o != "issuer")
    m = check.mapping(value, path, required, optional)
    if m is None:
        return None
    key = check.key(m, "key", path)
    issuer = check.key(m, "issuer", path) if m.get("issuer") is not None else None

    components = []
    components_path = _join(path, "method_components")
    for item_path, item in check.items(m.get("method_components"), components_path):
        if not isinstance(item, str) or not item.strip():
            check.problem(item_path, f"must be a text (got {_kind(item)})")
        else:
            components.append(item.strip())

    research = []
    for item_path, item in check.items(m.get("research"), _join(path, "research"), required=False):
        r = check.mapping(item, item_path, ("citation",), ("url",))
        if r is not None:
            research.append(
                {
                    "citation": check.text(r, "citation", item_path),
                    "url": check.url(r, "url", item_path, required=False),
                }
            )

    resources = []
    for item_path, item in check.items(
        m.get("resources"), _join(path, "resources"), required=False
    ):
        r = check.mapping(item, item_path, ("title",), ("url", "kind"))
        if r is None:
            continue
        kind = r.get("kind", "other")
        if kind not in RESOURCE_KINDS:
            check.problem(
                _join(item_path, "kind"),
                f"must be one of {', '.join(RESOURCE_KINDS)} (got {kind!r})",
            )
        resources.append(
            {
                "title": check.text(r, "title", item_path),
                "url": check.url(r, "url", item_path, required=False),
                "kind": kind,
            }
        )

    roles = check.choices(m, "roles", path, ROLES, required=False)
    if "any" in roles and len(roles) > 1:
        check.problem(_join(path, "roles"), "`any` cannot be combined with other roles")

    content = {
        "title": check.text(m, "title", path, max_length=300),
        "competency": check.text(m, "competency", path),
        "key_method": check.text(m, "key_method", path),
        "method_components": components,
        "research": research,
        "resources": resources,
        "estimated_hours": check.number(m, "estimated_hours", path, maximum=MAX_HOURS),
        "fee": check.number(m, "fee", path, maximum=MAX_FEE, decimals=2),
        "roles": roles,
        "evidence": check.choices(m, "evidence", path, EVIDENCE_KINDS, required=True),
        "parts": _parts(check, m.get("parts"), _join(path, "parts")),
    }
    return CredentialSpec(key=key, path=path, issuer=issuer, stack=stack, content=content)


def _parts(check: _Checker, value: Any, path: str) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    if value is None:
        return parts
    m = check.mapping(value, path, (), PART_KINDS)
    if m is None:
        return parts
    if not any(m.get(kind) is not None for kind in PART_KINDS):
        check.problem(path, f"needs at least one of {', '.join(PART_KINDS)}")
    for kind in PART_KINDS:  # canonical order, whatever the file's order
        if m.get(kind) is not None:
            parts[kind] = _part(check, kind, m[kind], _join(path, kind))
    return parts


def _part(check: _Checker, kind: str, value: Any, path: str) -> dict[str, Any]:
    body = "requirements" if kind == ARTIFACTS else "prompts"
    m = check.mapping(value, path, (body, "rubric"), ("instructions", "passing"))
    if m is None:
        return {}
    part: dict[str, Any] = {"instructions": check.text(m, "instructions", path, required=False)}
    if kind in (OVERVIEW, REFLECTION):
        part["prompts"] = _prompts(check, m.get("prompts"), _join(path, "prompts"))
    else:
        part["requirements"] = _requirements(
            check, m.get("requirements"), _join(path, "requirements")
        )
    part["rubric"] = _rubric(check, m.get("rubric"), _join(path, "rubric"))
    part["passing"] = check.text(m, "passing", path, required=False)
    return part


def _keyed_items(
    check: _Checker,
    value: Any,
    path: str,
    what: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    build: Callable[[dict, str], dict[str, Any]],
) -> list[dict[str, Any]]:
    result = []
    seen = []
    for item_path, item in check.items(value, path):
        m = check.mapping(item, item_path, ("key", *required), optional)
        if m is None:
            continue
        key = check.key(m, "key", item_path)
        seen.append((key, item_path))
        result.append({"key": key, **build(m, item_path)})
    check.unique(seen, what)
    return result


def _prompts(check: _Checker, value: Any, path: str) -> list[dict[str, Any]]:
    def build(m: dict, item_path: str) -> dict[str, Any]:
        return {
            "text": check.text(m, "text", item_path),
            "words": _words(check, m.get("words"), _join(item_path, "words")),
        }

    return _keyed_items(check, value, path, "prompt", ("text",), ("words",), build)


def _words(check: _Checker, value: Any, path: str) -> list[int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
    ):
        check.problem(path, "must be two whole numbers [minimum, maximum], for example [250, 300]")
        return None
    low, high = value
    if low < 0 or high < 1:
        check.problem(path, f"must be positive (got [{low}, {high}])")
        return None
    if low > high:
        check.problem(path, f"the minimum {low} is above the maximum {high}")
        return None
    return [low, high]


def _requirements(check: _Checker, value: Any, path: str) -> list[dict[str, Any]]:
    def build(m: dict, item_path: str) -> dict[str, Any]:
        return {
            "title": check.text(m, "title", item_path, max_length=300),
            "description": check.text(m, "description", item_path, required=False),
            "formats": check.choices(m, "formats", item_path, FORMATS, required=True),
            "required": check.boolean(m, "required", item_path, default=True),
        }

    return _keyed_items(
        check, value, path, "requirement", ("title", "formats"), ("description", "required"), build
    )


def _rubric(check: _Checker, value: Any, path: str) -> list[dict[str, Any]]:
    def build(m: dict, item_path: str) -> dict[str, Any]:
        return {
            "text": check.text(m, "text", item_path),
            "required": check.boolean(m, "required", item_path, default=True),
        }

    return _keyed_items(check, value, path, "criterion", ("text",), ("required",), build)


# -- writing ---------------------------------------------------------------------------------
def credential_to_yaml(key: str, issuer: str | None, content: dict[str, Any]) -> dict[str, Any]:
    """The file form of a micro-credential's canonical content (defaults left out)."""
    out: dict[str, Any] = {"key": key, "title": content["title"]}
    if issuer is not None:
        out["issuer"] = issuer
    out["competency"] = content["competency"]
    out["key_method"] = content["key_method"]
    out["method_components"] = list(content["method_components"])
    if content["research"]:
        out["research"] = [_drop_none(r) for r in content["research"]]
    if content["resources"]:
        out["resources"] = [_drop_none(r) for r in content["resources"]]
    for name in ("estimated_hours", "fee"):
        if content[name] is not None:
            out[name] = content[name]
    if content["roles"]:
        out["roles"] = list(content["roles"])
    out["evidence"] = list(content["evidence"])
    parts: dict[str, Any] = {}
    for kind, part in content["parts"].items():
        p: dict[str, Any] = {}
        if part["instructions"]:
            p["instructions"] = part["instructions"]
        if kind == ARTIFACTS:
            p["requirements"] = [
                {k: v for k, v in r.items() if not (k == "description" and not v)}
                for r in part["requirements"]
            ]
        else:
            p["prompts"] = [_drop_none(q) for q in part["prompts"]]
        p["rubric"] = [dict(c) for c in part["rubric"]]
        if part["passing"]:
            p["passing"] = part["passing"]
        parts[kind] = p
    out["parts"] = parts
    return out


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class _PlainDumper(yaml.SafeDumper):
    """Block lists indented under their field; short lists of plain values in flow style
    (`words: [250, 300]`)."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


class _Dumper(_PlainDumper):
    """As _PlainDumper, and long texts as folded blocks (`>-`), texts of several lines as
    literal blocks (`|-`), the way people write the file."""


def _represent_str(dumper: yaml.SafeDumper, value: str):
    style = None
    if "\n" in value:
        style = "|"
    elif len(value) > 60 and "  " not in value and value == value.strip():
        style = ">"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_list(dumper: yaml.SafeDumper, value: list):
    short = all(
        isinstance(v, int | float | bool) or (isinstance(v, str) and "\n" not in v)
        for v in value
    ) and sum(len(str(v)) + 2 for v in value) <= 60
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=short)


_PlainDumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: dict[str, Any], header: str = "") -> str:
    """The YAML text of `data`, checked to read back to the same data (block styles fall back
    to PyYAML's quoting where a text would not survive them)."""
    options = {"sort_keys": False, "allow_unicode": True, "width": 88, "indent": 2}
    text = yaml.dump(data, Dumper=_Dumper, **options)
    if load_yaml(text, "export") != data:
        text = yaml.dump(data, Dumper=_PlainDumper, **options)
    return header + text
