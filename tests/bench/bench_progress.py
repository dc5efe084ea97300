"""Benchmark: the educator's course progress page and CSV export for 1,000, 10,000 and 50,000
learners: time and number of SQL statements per size.

Run by hand from the repository root (not collected by pytest):

    .venv/bin/python tests/bench/bench_progress.py [--quick] [--sqlite] [--sizes 1000,10000]

What it does:

1. Uses PostgreSQL (postgresql+psycopg://postgres@127.0.0.1:5432, a fresh database created for
   the run and dropped afterwards) when it answers, as in production; otherwise a SQLite file in
   a temporary folder (the embedded default), and says so.
2. Migrates the database, imports the sample catalog (config/catalog: one stack of the four
   collaboration micro-credentials), registers a platform, creates one course mapped to the
   stack and an educator.
3. Grows the course's roster to each size in turn with bulk inserts (users, learner enrolments,
   and progress rows in mixed states: about a sixth of the cells in each of not started, draft,
   submitted, in review, revise and resubmit, earned), then, through the Flask test client with
   the educator's `lt` token, renders the first page of /course/progress (50 learners) and
   downloads /course/progress.csv (every learner), timing each (median of the repeats) and
   counting the SQL statements each sends.
4. Prints a table, then whether the time grew no faster than linearly with the roster (each
   step's time ratio at most the size ratio, with 25% allowance for noise) and whether the
   number of statements stayed the same. Exits 1 when either does not hold.

Everything stays on 127.0.0.1; the seeded database is thrown away.
"""

from __future__ import annotations

import argparse
import gc
import logging
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import event, insert, select  # noqa: E402

from lti_tool import migrate  # noqa: E402
from lti_tool.app import create_app  # noqa: E402
from lti_tool.catalog import mapping  # noqa: E402
from lti_tool.catalog.importer import import_files  # noqa: E402
from lti_tool.catalog.models import MicroCredential  # noqa: E402
from lti_tool.db import transaction, utcnow  # noqa: E402
from lti_tool.lti.models import Platform  # noqa: E402
from lti_tool.lti.platforms import PlatformSpec, add_platform  # noqa: E402
from lti_tool.progress.models import STORED_STATES, CredentialProgress  # noqa: E402
from lti_tool.roster.models import EDUCATOR, LEARNER, Course, Enrollment, LmsUser  # noqa: E402
from lti_tool.services import Services  # noqa: E402
from lti_tool.settings import CONFIG_DIR, load_settings  # noqa: E402
from lti_tool.web.identity import Identity, _serializer  # noqa: E402

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_SQLALCHEMY_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/"
SIZES = (1_000, 10_000, 50_000)
INSERT_BATCH = 5_000
NOISE = 1.25  # a step may take up to 25% longer than linear before it counts as super-linear
CATALOG = CONFIG_DIR / "catalog" / "collaboration.yaml"


# -- backend -------------------------------------------------------------------------------------
def postgres_note() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any failure: fall back, and say why
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def create_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- seeding -------------------------------------------------------------------------------------
@dataclass
class World:
    services: Services
    course_id: int
    platform_id: int
    credential_ids: list[int]
    token: str = ""
    learners: int = 0


def set_up(services: Services) -> tuple[World, Identity]:
    """Catalog, platform, a course mapped to the collaboration stack, and an educator."""
    with transaction(services.session_factory) as session:
        import_files(session, [CATALOG])  # raises CatalogError on a problem
        add_platform(
            session,
            PlatformSpec(
                issuer="https://bench-lms.example",
                client_id="bench-client",
                auth_login_url="https://bench-lms.example/auth",
                auth_token_url="https://bench-lms.example/token",
                key_set_url="https://bench-lms.example/jwks",
                deployment_ids=["1"],
                name="Bench LMS",
            ),
        )
    with transaction(services.session_factory) as session:
        platform_id = session.scalars(select(Platform.id)).one()
        course = Course(
            platform_id=platform_id,
            deployment_id="1",
            context_id="mooc-1",
            title="Collaboration MOOC",
            label="MOOC",
        )
        session.add(course)
        session.flush()
        mapping.map_course_to_stack(session, course.id, "collaboration")
        teacher = LmsUser(platform_id=platform_id, subject="teacher", name="Tess Teacher")
        session.add(teacher)
        session.flush()
        session.add(
            Enrollment(user_id=teacher.id, course_id=course.id, role=EDUCATOR, lti_roles=[])
        )
        ids = list(session.scalars(select(MicroCredential.id).order_by(MicroCredential.id)))
        world = World(services, course.id, platform_id, ids)
        identity = Identity(
            platform_id=platform_id,
            user_id=teacher.id,
            course_id=course.id,
            resource_link_id=None,
            role=EDUCATOR,
            launch_id="bench",
            message_type="LtiResourceLinkRequest",
        )
    return world, identity


# Mixed states: cell (learner i, micro-credential j) -> not started or one of the stored states.
CELL_STATES = (None, *STORED_STATES)


def grow(world: World, size: int) -> float:
    """Add learners (with their progress rows) until the course has `size`; seconds taken."""
    started = time.perf_counter()
    now = utcnow()
    engine = world.services.engine
    for first in range(world.learners, size, INSERT_BATCH):
        last = min(first + INSERT_BATCH, size)
        with engine.begin() as conn:
            users = conn.execute(
                insert(LmsUser).returning(LmsUser.id, LmsUser.subject),
                [
                    {
                        "platform_id": world.platform_id,
                        "subject": f"learner-{i}",
                        "name": f"Learner {i:06d}",
                        "given_name": "",
                        "family_name": "",
                        "email": f"learner{i}@mooc.example",
                        "created_at": now,
                    }
                    for i in range(first, last)
                ],
            ).all()
            index = {subject: user_id for user_id, subject in users}
            conn.execute(
                insert(Enrollment),
                [
                    {
                        "user_id": user_id,
                        "course_id": world.course_id,
                        "role": LEARNER,
                        "lti_roles": [],
                        "status": "active",
                        "updated_at": now,
                    }
                    for user_id in index.values()
                ],
            )
            cells = []
            for i in range(first, last):
                for j, credential_id in enumerate(world.credential_ids):
                    state = CELL_STATES[(i * 5 + j * 3) % len(CELL_STATES)]
                    if state is not None:
                        cells.append(
                            {
                                "user_id": index[f"learner-{i}"],
                                "micro_credential_id": credential_id,
                                "state": state,
                                "state_changed_at": now,
                            }
                        )
            conn.execute(insert(CredentialProgress), cells)
    if world.services.engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    world.learners = size
    return time.perf_counter() - started


# -- measuring -----------------------------------------------------------------------------------
@dataclass
class Measure:
    seconds: float  # median
    queries: int
    detail: str


def measure(services: Services, call: Callable[[], str], repeats: int) -> Measure:
    statements: list[str] = []

    def note(conn, cursor, statement, *args):
        statements.append(statement)

    call()  # warm-up: templates compiled, statements cached, pages in the database's cache
    times = []
    counts = set()
    detail = ""
    for _ in range(repeats):
        gc.collect()  # each run starts from the same heap, not from the previous run's garbage
        statements.clear()
        event.listen(services.engine, "before_cursor_execute", note)
        try:
            started = time.perf_counter()
            detail = call()
            times.append(time.perf_counter() - started)
        finally:
            event.remove(services.engine, "before_cursor_execute", note)
        counts.add(len(statements))
    if len(counts) != 1:
        raise RuntimeError(f"the statement count varied between repeats: {sorted(counts)}")
    return Measure(statistics.median(times), counts.pop(), detail)


@dataclass
class Row:
    size: int
    seed_s: float
    page: Measure
    csv: Measure


def run(world: World, sizes: list[int], repeats: int) -> list[Row]:
    app = create_app(world.services.settings, world.services)
    client = app.test_client()
    client.environ_base.update({"wsgi.url_scheme": "https", "HTTP_HOST": "tool.test"})
    rows = []

    def page() -> str:
        response = client.get("/course/progress", query_string={"lt": world.token})
        if response.status_code != 200:
            raise RuntimeError(f"progress page: HTTP {response.status_code}")
        text = response.get_data(as_text=True)
        shown = text.count('<th scope="row">') - len(world.credential_ids) - 1  # - counts table
        if shown != min(world.learners, 50):
            raise RuntimeError(f"progress page shows {shown} learners, not 50")
        return f"{shown} learners shown"

    def export() -> str:
        response = client.get("/course/progress.csv", query_string={"lt": world.token})
        if response.status_code != 200:
            raise RuntimeError(f"CSV export: HTTP {response.status_code}")
        body = response.get_data()
        learners = body.count(b"\n") - 1
        if learners != world.learners:
            raise RuntimeError(f"CSV lists {learners:,} learners, not {world.learners:,}")
        return f"{learners:,} learners, {len(body) / 1e6:.1f} MB"

    for size in sizes:
        seed = grow(world, size)
        print(f"  seeded {size:,} learners ({seed:.1f}s); measuring...", flush=True)
        rows.append(
            Row(size, seed, measure(world.services, page, repeats),
                measure(world.services, export, repeats))
        )  # fmt: skip
    return rows


def report(rows: list[Row], backend: str) -> int:
    print()
    print(f"Course progress page (first page, 50 learners) and CSV export, {backend}")
    print(
        f"{'learners':>9} | {'page ms':>8} {'queries':>7} | {'CSV ms':>8} {'queries':>7} "
        f"{'µs/learner':>10} | CSV"
    )
    print("-" * 80)
    for row in rows:
        per = row.csv.seconds / row.size * 1e6
        print(
            f"{row.size:>9,} | {row.page.seconds * 1e3:>8.1f} {row.page.queries:>7} | "
            f"{row.csv.seconds * 1e3:>8.1f} {row.csv.queries:>7} {per:>10.1f} | {row.csv.detail}"
        )
    print()
    ok = True
    for name, pick in (("page", lambda r: r.page), ("CSV", lambda r: r.csv)):
        queries = {pick(r).queries for r in rows}
        constant = len(queries) == 1
        ok &= constant
        print(f"{name}: statements per request {'constant' if constant else 'NOT constant'} "
              f"({', '.join(str(pick(r).queries) for r in rows)})")  # fmt: skip
        for before, after in zip(rows, rows[1:], strict=False):
            size_ratio = after.size / before.size
            time_ratio = pick(after).seconds / pick(before).seconds
            linear = time_ratio <= size_ratio * NOISE
            ok &= linear
            print(
                f"{name}: {before.size:,} -> {after.size:,} learners (x{size_ratio:.0f}): "
                f"time x{time_ratio:.2f} -> "
                f"{'no faster than linear' if linear else 'FASTER THAN LINEAR'}"
            )
    print("result:", "ok" if ok else "FAILED")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats per measurement")
    parser.add_argument("--sqlite", action="store_true", help="use SQLite even if PostgreSQL is up")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="e.g. 1000,10000")
    # run_all.py passes its arguments to every bench: ignore the other benches' options.
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        print(f"note: ignoring {' '.join(ignored)} (options of another bench)")
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    repeats = 3 if args.quick else 7
    logging.getLogger("lti_tool").setLevel(logging.WARNING)

    run_id = uuid.uuid4().hex[:10]
    workdir = Path(tempfile.mkdtemp(prefix="bench-progress-"))
    database = None
    note = "--sqlite given" if args.sqlite else postgres_note()
    try:
        if note is None:
            database = f"bench_progress_{run_id}"
            create_database(database)
            url = PG_SQLALCHEMY_BASE + database
            backend = f"PostgreSQL (database {database} on 127.0.0.1:5432, dropped afterwards)"
        else:
            url = f"sqlite:///{workdir / 'bench.sqlite3'}"
            backend = "SQLite (a file in a temporary folder)"
            print(f"note: PostgreSQL not used ({note}): SQLite, the embedded default.")
        settings = load_settings(
            environ={}, database_url=url, base_url="https://tool.test",
            instance_path=str(workdir / "instance"),
        )  # fmt: skip
        services = Services(settings)
        migrate.upgrade(services.engine)
        world, identity = set_up(services)
        app = create_app(settings, services)
        with app.test_request_context():
            world.token = _serializer().dumps(asdict(identity))
        print(f"bench_progress: {backend}; sizes {', '.join(f'{s:,}' for s in sizes)}; "
              f"{repeats} repeats", flush=True)  # fmt: skip
        rows = run(world, sizes, repeats)
        services.engine.dispose()
        return report(rows, backend)
    finally:
        if database is not None:
            try:
                drop_database(database)
            except Exception as exc:
                print(f"note: could not drop database {database}: {exc}")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
