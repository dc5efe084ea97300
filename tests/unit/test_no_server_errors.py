"""Bad input never gets a server error: every URL rule of the app, with each method it accepts,
is sent malformed requests (hostile values in its path, garbage query strings and form bodies,
broken or wrongly shaped JSON and multipart bodies) by someone not signed in, two learners, an
educator, an LMS administrator, a tool administrator, an assessor and an API client; every
answer is below 500, and has headers a WSGI server can send (else the server answers 500).

Building the world (migrations, a catalog, an attempt and its case, a draft, a badge, people)
takes longer than all of one rule's requests, so it is built once per module and each test
starts from a copy of its database and files: every rule still gets the conftest's app fixture,
a fresh app and a database of its own, and no rule sees what another one changed.
"""

from __future__ import annotations

import io
import logging
import random
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import pytest
from sqlalchemy import select

from lti_tool import migrate
from lti_tool.app import create_app
from lti_tool.assessment.models import Assessor
from lti_tool.db import transaction
from lti_tool.demo_lms import gradebook as demo_gradebook
from lti_tool.demo_lms import setup as demo_setup
from lti_tool.demo_lms import store as demo_store
from lti_tool.evidence import service as evidence
from lti_tool.evidence.models import AttemptFile
from lti_tool.roster.models import ADMINISTRATOR, EDUCATOR, LEARNER
from lti_tool.services import Services
from lti_tool.settings import load_settings
from tests.conftest import BASE_URL
from tests.support import assessment as seed
from tests.unit import badges_support
from tests.unit.assess_web_support import account_id_of, add_admin, sign_in
from tests.unit.badges_support import token_for
from tests.unit.evidence_support import PDF, add_learner, fill, make_course
from tests.unit.test_api import bearer, issue_token, join
from tests.unit.test_signin import csrf_of

SKIPPED_METHODS = {"HEAD", "OPTIONS"}
BODY_METHODS = {"POST", "PUT", "PATCH"}
FORM = "application/x-www-form-urlencoded"


def _rules(app) -> list[tuple[str, str]]:
    return sorted(
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - SKIPPED_METHODS
    )


# The rules must be known to parametrize the test: an app that is built, never served, on a
# database it never opens. test_the_walk_covers_every_rule_of_the_app checks the fixture's app.
RULES = _rules(create_app(load_settings(environ={}, base_url=BASE_URL, instance_path="/nowhere")))

# -- what is sent -------------------------------------------------------------------------------
HUGE_INT = 2**63  # one past the largest integer SQLite holds
PG_HUGE_INT = 2**31  # one past the largest of PostgreSQL's INTEGER columns (SQLite takes it)
NON_ASCII = "ünïcødé-ß-名前-😀"
# Hostile path values: an int converter gets the number, the others the text. Someone signed in
# sends the first two (a guard lets them reach the lookups); someone signed out, all of them.
HOSTILE_PATHS = [(HUGE_INT, "..%2f"), (0, NON_ASCII), (0, "x" * 300), (PG_HUGE_INT, "x")]
NOT_UTF8 = b"\xff\xfe\xc3("
LONG = "x" * 10_000
GARBAGE_VALUES: list[str | bytes] = [
    "", "null", LONG, NOT_UTF8, NON_ASCII, "²", "9" * 25, "-1", "9999-12-31", "0001-01-01",
]  # fmt: skip
# Values a view may read as a number or a date: also sent in half of the names, the other half
# left out, so that a number meets the absence of a name read beside it (a flag, the other
# end of a period) and falls back on nothing.
NUMBER_LIKE = GARBAGE_VALUES[6:]
HALF = "half of the fields"
# The names the views read (so that garbage reaches their parsing; names read together are
# neighbours, so that each half holds one of them without the other), and a few made-up ones.
FIELD_NAMES = [
    "lt", "csrf_token", "next", "q", "page", "size", "state", "credential", "course", "from",
    "to", "notice", "revision", "score", "all", "capacity", "certify", "email", "name",
    "password", "institution", "organisation", "url", "title", "reason", "confirm", "stack",
    "action", "show_name", "assessor_id", "marks", "storage", "error", "submitted", "declined",
    "done", "retried", "saved", "roster", "stacks", "collaborative", "with_whom", "how",
    "answer:overview:setting", "answer:", "answer:x", "plan:overview", "plan:",
    "met:overview/context", "feedback:overview/context", "iss", "login_hint", "target_link_uri",
    "client_id", "lti_message_hint", "lti_deployment_id", "id_token", "lti_storage_secret",
    "registration_token", "openid_configuration", "redirect_uri", "response_type", "scope",
    "nonce", "JWT", "grant_type", "client_assertion_type", "client_assertion",
]  # fmt: skip
_random = random.Random(20260412)
FIELD_NAMES += [
    "".join(_random.choice("abcxyz_[].:-%$ü") for _ in range(_random.randint(1, 12)))
    for _ in range(6)
]
JSON_BODIES = {
    "json-malformed": '{"marks": [',
    "json-list": '[{"marks": []}, "reason"]',
    "json-wrong-types": '{"marks": [{"part": [], "criterion_key": {}, "met": "yes", "feedback": 5},'
    ' null], "reason": ["x"]}',
    "json-wrong-marks": '{"marks": [{"part": "overview", "criterion_key": "context", "met": 1,'
    ' "feedback": null}, {}], "reason": "  "}',
}
MULTIPART_BODIES = {
    "multipart-no-boundary": ("multipart/form-data", b"--x\r\n\r\nhello"),
    "multipart-broken": (
        "multipart/form-data; boundary=xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n%PDF',
    ),
}


def _label(value: str | bytes) -> str:
    shown = repr(value)
    return shown if len(shown) < 20 else f"{shown[:12]}... ({len(value)})"


def _garbage(leave_out: frozenset[str]) -> list[tuple[str, str, str]]:
    """(what, query string, form body): each value in every field at once, then each number
    or date in one half of the fields (by position) and then the other. In a query string the
    10,000 characters are 1,000: servers refuse request lines that long."""
    names = [name for name in FIELD_NAMES if name not in leave_out]
    variants = [
        (f"every field {_label(value)}", [(name, value) for name in names])
        for value in GARBAGE_VALUES
    ]
    variants += [
        (f"{HALF} {half} {_label(value)}", [(name, value) for name in names[half::2]])
        for value in NUMBER_LIKE
        for half in (0, 1)
    ]
    return [
        (
            what,
            urlencode([(k, LONG[:1000] if v is LONG else v) for k, v in pairs]),
            urlencode(pairs),
        )
        for what, pairs in variants
    ]


_GARBAGE: dict[frozenset[str], list[tuple[str, str, str]]] = {}


def garbage(leave_out: frozenset[str]) -> list[tuple[str, str, str]]:
    if leave_out not in _GARBAGE:
        _GARBAGE[leave_out] = _garbage(leave_out)
    return _GARBAGE[leave_out]


# -- the world ----------------------------------------------------------------------------------
@dataclass
class World:
    instance: str
    path_values: dict[str, object]  # a real value per path argument name
    learner: badges_support.Learner  # submitted an attempt (its case is with the assessor)
    drafter: badges_support.Learner  # has a complete draft with files, and a badge
    draft_file_id: int  # named in NON_ASCII, as is the attempt's file
    educator: badges_support.Learner
    lms_admin: badges_support.Learner
    admin_account: int
    assessor_account: int
    api_token: str


@pytest.fixture
def settings(settings):
    # Educators may read their learners' evidence: those pages are walked too, not only refused.
    return settings.replace(educators_see_evidence=True)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> World:
    """A migrated database, built once: a course with a learner who submitted an attempt (its
    case assigned to two assessors), a learner with a draft and a badge, an educator and an
    LMS administrator; a tool administrator and an API token of the first assessor's
    organisation."""
    instance = tmp_path_factory.mktemp("no-server-errors") / "instance"
    settings = load_settings(
        environ={}, base_url=BASE_URL, instance_path=str(instance), educators_see_evidence=True
    )
    services = Services(settings)
    migrate.upgrade(services.engine)
    course_id = make_course(services)  # of the first platform: id 1

    def person(name: str, role: str = LEARNER) -> badges_support.Learner:
        user_id = add_learner(services, course_id, name, role=role)
        return badges_support.Learner(user_id, 1, "", name, course_id)

    seed.import_catalog(services)
    learner, drafter = person("Lee Learner"), person("Dee Drafter")
    educator, lms_admin = person("Eda Educator", EDUCATOR), person("Al Admin", ADMINISTRATOR)
    assessor_id = seed.add_assessor(services, "ada@institute-a.example", "Institute A")
    seed.add_assessor(services, "bea@institute-b.example", "Institute B")
    named = seed.Learner(name=learner.name, context_id="C1", original_file_name=f"{NON_ASCII}.pdf")
    attempt_id = seed.submit_attempt(services, learner.id, named)
    case = seed.case_of(services, attempt_id)
    assert case is not None and assessor_id in {a.assessor_id for a in case.assignments}
    with services.session_factory() as session:
        mc_id = evidence.credential_id(session, seed.CREDENTIAL)
    fill(services, drafter.id, mc_id, course_id)
    draft_file = evidence.add_file(services.session_factory, services.storage, drafter.id, mc_id,
                                   "tickets", f"{NON_ASCII}.pdf", io.BytesIO(PDF))  # fmt: skip
    badge = badges_support.issue(services, drafter, "questioning").credential
    join(services, assessor_id, "Org A")
    with services.session_factory() as session:
        file_id = session.scalar(select(AttemptFile.id).where(AttemptFile.attempt_id == attempt_id))
        assessor_account = session.get(Assessor, assessor_id).account_id
    assert account_id_of(services, "ada@institute-a.example") == assessor_account
    world = World(
        instance=str(instance),
        path_values={
            "key": seed.CREDENTIAL,
            "requirement": "tickets",
            "file_id": file_id,
            "attempt_id": attempt_id,
            "user_id": learner.id,
            "code": case.code,
            "name": case.files[0].neutral_name,
            "assessor_id": assessor_id,
            "credential_id": badge.id,
            "number": 1,
            "table": "assessors",
            "list_id": badge.status_list_id,
            "action": "pause",
        },
        learner=learner,
        drafter=drafter,
        draft_file_id=draft_file.id,
        educator=educator,
        lms_admin=lms_admin,
        admin_account=add_admin(services),
        assessor_account=assessor_account,
        api_token=issue_token(services, "Org A"),
    )
    services.engine.dispose()
    return world


@pytest.fixture
def services(settings, template):
    """The conftest's services, on a copy of the template's database and files."""
    shutil.copytree(template.instance, settings.instance_dir)
    services = Services(settings)
    yield services
    services.engine.dispose()


# -- who asks -----------------------------------------------------------------------------------
@dataclass
class Asker:
    name: str
    query: str = ""  # sent with every request
    form: str = ""  # sent with every form body
    headers: dict[str, str] = field(default_factory=dict)
    leave_out: frozenset[str] = frozenset()  # garbage never replaces these
    path_values: dict[str, object] = field(default_factory=dict)  # their own real values

    @property
    def address(self) -> str:
        """Each person's own network address: one's wrong passwords or API tokens (counted per
        address) do not lock the others out."""
        return f"192.0.2.{ASKER_NAMES.index(self.name) + 1}"


ASKER_NAMES = ["anonymous", "learner", "drafter", "educator", "lms-admin", "admin", "assessor",
               "api"]  # fmt: skip


def askers(app, client, world: World, rule: str):
    """Each kind of person, signed in on `client` in turn (a generator). The API takes nobody
    but a bearer token, and the pages no bearer token: each gets its own people."""
    with client.session_transaction() as s:
        s.clear()
    if rule.startswith("/api/"):
        yield Asker("anonymous", headers={"Authorization": "Bearer null"})
        yield Asker("api", headers=bearer(world.api_token))
        return
    yield Asker("anonymous")
    lms_people = [
        ("learner", world.learner, LEARNER, {}),
        ("drafter", world.drafter, LEARNER, {"file_id": world.draft_file_id}),
        ("educator", world.educator, EDUCATOR, {}),
        ("lms-admin", world.lms_admin, ADMINISTRATOR, {}),
    ]
    for name, person, role, own in lms_people:
        token = token_for(app, person, role)
        yield Asker(name, urlencode({"lt": token}), leave_out=frozenset({"lt"}), path_values=own)
    for name, account_id in (("admin", world.admin_account), ("assessor", world.assessor_account)):
        with client.session_transaction() as s:
            s.clear()
        sign_in(client, account_id)
        form = urlencode({"csrf_token": csrf_of(client)})
        yield Asker(name, form=form, leave_out=frozenset({"lt", "csrf_token"}))


# -- the requests -------------------------------------------------------------------------------
_ARGUMENT = re.compile(r"<(?:(?P<converter>[a-z]+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")


def fill_path(rule: str, hostile: tuple[int, str] | None, real: dict) -> str:
    """The rule's path with its arguments filled: hostile values, or (None) real ones."""

    def value(match: re.Match) -> str:
        converter, name = match.group("converter") or "default", match.group("name")
        if hostile is None:
            chosen = real.get(name, 1 if converter == "int" else "x")
        elif converter == "int":
            chosen = hostile[0]
        elif converter == "any":  # a value the rule accepts, or routing alone answers 404
            chosen = match.group("args").split(",")[0].strip()
        else:
            chosen = hostile[1]
        return quote(str(chosen), safe="")

    return _ARGUMENT.sub(value, rule)


@dataclass
class Case:
    what: str
    path: str
    query: str = ""
    body: bytes | str | None = None
    content_type: str | None = None
    headers: dict = field(default_factory=dict)


def cases(rule: str, method: str, asker: Asker, real: dict) -> tuple[list[Case], list[Case]]:
    """The requests of one person to one rule: (the plain ones, which end with the rule's
    path filled with real values; those with garbage in them)."""
    has_body = method != "GET"
    content_type = FORM if has_body else None
    form = asker.form if has_body else None
    real_path = fill_path(rule, None, {**real, **asker.path_values})
    hostile = HOSTILE_PATHS if asker.name == "anonymous" else HOSTILE_PATHS[:2]
    paths = [fill_path(rule, values, real) for values in hostile] if "<" in rule else []
    plain = [
        Case(f"hostile path {i}", path, body=form, content_type=content_type)
        for i, path in enumerate(dict.fromkeys(paths))
    ]
    plain.append(Case("real path", real_path, body=form, content_type=content_type))
    found = [
        Case(
            what,
            real_path,
            query,
            "&".join(filter(None, [asker.form, body])) if has_body else None,
            content_type,
            {"Accept": "application/json"} if i % 2 else {},
        )
        for i, (what, query, body) in enumerate(garbage(asker.leave_out))
    ]
    raw = b"x=\xff\xfe&email=\xc3(&" + asker.form.encode()
    found.append(
        Case("not utf-8", real_path, "q=%FF%FE&next=%C3%28", raw if has_body else None,
             content_type)
    )  # fmt: skip
    if method in BODY_METHODS:
        for what, body in JSON_BODIES.items():
            found.append(Case(what, real_path, body=body, content_type="application/json"))
        for what, (multipart, body) in MULTIPART_BODIES.items():
            found.append(Case(what, real_path, body=body, content_type=multipart))
    return plain, found


def refused(response) -> bool:
    """The route's guard turned this person away (the body never read)."""
    location = response.headers.get("Location", "")
    return response.status_code in (401, 403) or location.startswith("/assess/login")


class _Unexpected(logging.Handler):
    """The exceptions the app's catch-all error handler logged: the cause of a 500."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.seen.append(_named(record.exc_info[1]))


def _latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _named(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def test_the_walk_covers_every_rule_of_the_app(app):
    assert _rules(app) == RULES


def test_the_people_are_signed_in_and_the_real_path_values_name_real_things(app, client, template):
    """Else the walk would only ever meet the refusals of someone signed out, and 404s."""
    v = template.path_values
    pages = {
        "anonymous": f"/badges/{v['credential_id']}",
        "learner": f"/evidence/attempts/{v['attempt_id']}/files/{v['file_id']}",
        "drafter": f"/evidence/{v['key']}/files/{template.draft_file_id}",
        "educator": f"/course/learners/{v['user_id']}/attempts/{v['attempt_id']}",
        "lms-admin": "/admin/grades",
        "admin": f"/admin/assessors?done={v['assessor_id']}",
        "assessor": f"/assess/cases/{v['code']}/files/{v['name']}",
        "api": f"/api/v1/assessors/{v['assessor_id']}/cases/{v['code']}",
    }
    seen = {}
    for rule in ("/", "/api/"):
        for asker in askers(app, client, template, rule):
            if asker.name in pages:
                page = pages[asker.name] + ("&" if "?" in pages[asker.name] else "?") + asker.query
                seen[asker.name] = client.get(page, headers=asker.headers).status_code
    assert seen == dict.fromkeys(pages, 200)


def _sender(client, method: str, unexpected: _Unexpected, failures: list[str]):
    """send(asker, case): one request; a 500, an exception the app logged, an answer a server
    cannot send or a person locked out is added to `failures`."""

    def send(asker: Asker, case: Case):
        query = "&".join(filter(None, [asker.query, case.query]))
        unexpected.seen.clear()
        response = None
        try:
            response = client.open(
                case.path,
                method=method,
                query_string=query,
                data=case.body,
                content_type=case.content_type,
                headers={**asker.headers, **case.headers},
                environ_overrides={"REMOTE_ADDR": asker.address},
            )
            response.get_data()  # a streamed body fails only while it is read
            # What a WSGI server cannot send, it answers with a 500 of its own (gunicorn does).
            unsendable = [name for name, value in response.headers.items() if not _latin1(value)]
            if unsendable:
                unexpected.seen.append(f"headers a server cannot send: {unsendable}")
            if response.status_code == 429 and asker.name != "anonymous":
                unexpected.seen.append("locked out: the walk would miss what follows the guard")
        except Exception as exc:  # reported with the others below
            unexpected.seen = [_named(exc)]
            response = None
        if response is None or response.status_code >= 500 or unexpected.seen:
            status = response.status_code if response is not None else "raised"
            cause = "; ".join(unexpected.seen) or response.get_data(as_text=True)[:200]
            url = f"{case.path}?{query}"[:160]
            failures.append(f"{asker.name}, {case.what}: {status} {url} -> {cause}")
        return response

    return send


@contextmanager
def _watching() -> Iterator[_Unexpected]:
    unexpected = _Unexpected()
    logging.getLogger("lti_tool").addHandler(unexpected)
    try:
        yield unexpected
    finally:
        logging.getLogger("lti_tool").removeHandler(unexpected)


@pytest.mark.parametrize(("rule", "method"), RULES, ids=[f"{m} {r}" for r, m in RULES])
def test_malformed_requests_never_get_a_server_error(app, client, template, rule, method):
    """Everybody sends the plain requests. Garbage is sent by someone not signed in (in half
    of the fields only where they are let in), and when the route is not public, by each
    person it lets in: the others are turned away by its guard before it reads anything."""
    failures: list[str] = []
    with _watching() as unexpected:
        send = _sender(client, method, unexpected, failures)
        public = False
        for asker in askers(app, client, template, rule):
            plain, with_garbage = cases(rule, method, asker, template.path_values)
            for case in plain:
                last = send(asker, case)
            let_in = last is not None and not refused(last)
            if asker.name == "anonymous":
                public = let_in
            elif public or not let_in:
                continue
            for case in with_garbage:
                if let_in or not case.what.startswith(HALF):  # a guard reads few fields
                    send(asker, case)
    assert not failures, f"{method} {rule}:\n" + "\n".join(failures)


# -- the demo LMS (served in demo mode only) ---------------------------------------------------
def _demo_settings(instance: str):
    return load_settings(environ={}, base_url=BASE_URL, instance_path=instance, demo=True)


DEMO_RULES = sorted(set(_rules(create_app(_demo_settings("/nowhere")))) - set(RULES))
WALK_TOKEN = "demo-walk-access-token"  # noqa: S105 - an AGS access token of the demo gradebook
GRANTED = {"Authorization": "Bearer " + WALK_TOKEN}


@pytest.fixture
def demo_app(tmp_path):
    """The tool in demo mode, its demo platform registered, and an access token the demo
    gradebook grants (so that its AGS endpoints read their bodies, not only refuse)."""
    settings = _demo_settings(str(tmp_path / "demo-instance"))
    services = Services(settings)
    migrate.upgrade(services.engine)
    with transaction(services.session_factory) as session:
        demo_setup.ensure_demo_platform(session, settings)
    demo_store.add_access_token(
        settings, WALK_TOKEN, list(demo_gradebook.SCOPES), time.time() + 3600
    )
    app = create_app(settings, services)
    app.config["TESTING"] = False
    yield app
    services.engine.dispose()


def test_the_demo_walk_covers_the_demo_lms():
    assert DEMO_RULES and all(rule.startswith("/demo/") for rule, _ in DEMO_RULES)


@pytest.mark.parametrize(("rule", "method"), DEMO_RULES, ids=[f"{m} {r}" for r, m in DEMO_RULES])
def test_the_demo_lms_never_gets_a_server_error(demo_app, rule, method):
    """The demo LMS is public (a newcomer's first sight of the tool): someone with nothing, and
    the tool's own AGS client with a granted token, send it every plain and garbage request."""
    client = demo_app.test_client()
    failures: list[str] = []
    real = {"item_id": demo_setup.LINKS[0]["id"]}
    with _watching() as unexpected:
        send = _sender(client, method, unexpected, failures)
        for asker in (Asker("anonymous"), Asker("api", headers=GRANTED)):
            plain, with_garbage = cases(rule, method, asker, real)
            for case in [*plain, *with_garbage]:
                send(asker, case)
    assert not failures, f"{method} {rule}:\n" + "\n".join(failures)


SCORE = {
    "userId": "demo-user-lee",
    "activityProgress": "Completed",
    "gradingProgress": "FullyGraded",
}


@pytest.mark.parametrize(
    "odd",
    [
        {"scoreGiven": "lots", "scoreMaximum": 10},
        {"scoreGiven": 5, "scoreMaximum": [1]},
        {"scoreGiven": 5},
        {"scoreGiven": -5, "scoreMaximum": 10},
        {"scoreGiven": True, "scoreMaximum": 10},
        {"scoreGiven": 5, "scoreMaximum": 10, "comment": {"a": 1}},
        {"userId": ["demo-user-lee"]},
        {"gradingProgress": "Graded"},
    ],
)
def test_the_demo_gradebook_refuses_a_score_a_platform_refuses(demo_app, odd):
    """As a platform does (AGS types and values), so that its gradebook page always shows what
    it holds: the score it refused is not there, and the page still renders."""
    client = demo_app.test_client()
    item = demo_setup.LINKS[0]["id"]
    score = {**SCORE, "timestamp": datetime.now(UTC).isoformat(), **odd}
    posted = client.post(f"/demo/ags/lineitems/{item}/scores", json=score, headers=GRANTED)
    assert posted.status_code == 400, posted.get_data(as_text=True)
    assert "error_description" in posted.get_json()
    assert client.get("/demo/gradebook").status_code == 200
    assert not demo_store.results(demo_app.extensions["lti_tool"].settings)


def test_the_demo_gradebook_shows_an_accepted_score_as_text(demo_app):
    client = demo_app.test_client()
    item = demo_setup.LINKS[0]["id"]
    score = {**SCORE, "timestamp": datetime.now(UTC).isoformat(), "scoreGiven": 1e300,
             "scoreMaximum": 1e308, "comment": "<script>x</script>"}  # fmt: skip
    posted = client.post(f"/demo/ags/lineitems/{item}/scores", json=score, headers=GRANTED)
    assert posted.status_code == 204
    page = client.get("/demo/gradebook").get_data(as_text=True)
    assert "1e+300 / 1e+308" in page
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
