"""Seeding for assessment tests: the small catalog, a learner of a named platform who submits
an attempt (answers, a link, a PDF), and assessors from given institutions."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pikepdf
from sqlalchemy import select

from lti_tool.assessment import assessors as pool
from lti_tool.assessment.models import Case
from lti_tool.catalog.importer import import_files
from lti_tool.catalog.models import MicroCredential
from lti_tool.db import transaction, utcnow
from lti_tool.evidence.models import Attempt, AttemptFile
from lti_tool.lti.models import Platform
from lti_tool.outbox.service import post
from lti_tool.progress.models import SUBMITTED
from lti_tool.progress.service import set_state
from lti_tool.roster.models import Course, LmsUser
from lti_tool.services import Services

SMALL_CATALOG = Path(__file__).resolve().parent.parent / "unit" / "fixtures" / "catalog_small.yaml"
CREDENTIAL = "exit-tickets"  # overview, artifacts and reflection parts, 5 criteria (4 required)
# (part, criterion key, required) of exit-tickets, in rubric order.
CRITERIA = [
    ("overview", "context", True),
    ("overview", "practice", False),
    ("artifacts", "aligned", True),
    ("artifacts", "acted", True),
    ("reflection", "evidence-of-impact", True),
]


def pdf_by(author: str) -> bytes:
    """A one-page PDF whose document info and XMP name its author (as word processors do)."""
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.docinfo["/Author"] = author
    pdf.docinfo["/Title"] = f"Exit tickets by {author}"
    with pdf.open_metadata() as xmp:
        xmp["dc:creator"] = [author]
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


@dataclass(frozen=True)
class Learner:
    name: str = "Zelda Quibbleworth"
    email: str = "zelda.quibbleworth@riverbend-district.example"
    subject: str = "lms-sub-8842919"
    platform: str = "Riverbend District Canvas"
    course: str = "Formative Assessment Cohort Winterhaven"
    context_id: str = "ctx-winterhaven-77"
    original_file_name: str = "Zelda_Quibbleworth_lesson_plan.pdf"


def import_catalog(services: Services) -> None:
    with transaction(services.session_factory) as session:
        import_files(session, [SMALL_CATALOG])


def add_learner(services: Services, learner: Learner = Learner()) -> int:
    """The learner's lms_users id (platform, course and user created as a launch would)."""
    with transaction(services.session_factory) as session:
        platform = Platform(
            name=learner.platform,
            issuer=f"https://{learner.subject}.lms.example",
            client_id="client-" + learner.subject,
            auth_login_url="https://lms.example/auth",
            auth_token_url="https://lms.example/token",
            key_set_url="https://lms.example/jwks",
        )
        session.add(platform)
        session.flush()
        session.add(
            Course(
                platform_id=platform.id,
                deployment_id="1",
                context_id=learner.context_id,
                title=learner.course,
                label=learner.course,
            )
        )
        user = LmsUser(
            platform_id=platform.id,
            subject=learner.subject,
            name=learner.name,
            email=learner.email,
        )
        session.add(user)
        session.flush()
        return user.id


def submit_attempt(
    services: Services,
    user_id: int,
    learner: Learner = Learner(),
    previous_attempt_id: int | None = None,
    number: int = 1,
    request_assessment: bool = True,
    pdf: bytes | None = None,
) -> int:
    """An attempt with answers, a link and one PDF, submitted: posts assessment.requested
    in the same transaction, as the evidence package does."""
    stored = services.storage.save(
        f"attempts/{user_id}-{number}/plan.pdf", pdf or pdf_by(learner.name)
    )
    with transaction(services.session_factory) as session:
        credential = session.scalar(
            select(MicroCredential).where(MicroCredential.key == CREDENTIAL)
        )
        version = credential.current
        course = session.scalar(select(Course).where(Course.context_id == learner.context_id))
        now = utcnow()
        attempt = Attempt(
            user_id=user_id,
            micro_credential_id=credential.id,
            version_id=version.id,
            number=number,
            snapshot={  # as evidence.service writes it
                "format": 1,
                "title": version.title,
                "answers": {
                    "overview": {
                        "setting": "A class of 28 in year 8 mathematics, fractions unit.",
                        "current-practice": "Thumbs up at the end of each lesson.",
                    },
                    "reflection": {
                        "impact": "Fewer students needed the re-teaching group each week.",
                    },
                },
                "links": {"tickets": [{"url": "https://video.example/v/123", "title": "Day 2"}]},
                "collaboration": {
                    "collaborative": True,
                    "how": "I planned the tickets with a colleague and wrote my own.",
                },
                "files": [{"requirement_key": "tickets", "name": learner.original_file_name}],
                "learner_name": learner.name,  # never copied: only the fields above are read
            },
            submitted_at=now,
            decision_due_at=now + timedelta(days=20),
            previous_attempt_id=previous_attempt_id,
            course_id=course.id if course else None,
        )
        attempt.files.append(
            AttemptFile(
                requirement_key="tickets",
                position=0,
                original_name=learner.original_file_name,
                storage_key=stored.key,
                sha256=stored.sha256,
                size=stored.size,
                media_type=stored.content_type,
            )
        )
        session.add(attempt)
        session.flush()
        set_state(session, user_id, credential.id, SUBMITTED, version_id=version.id)
        if request_assessment:
            post(
                session,
                "assessment.requested",
                f"assessment.requested:{attempt.id}",
                {"attempt_id": attempt.id},
            )
        return attempt.id


def add_assessor(
    services: Services,
    email: str,
    institution: str = "Northern Assessment Institute",
    capacity: int = 10,
    certify: tuple[str, ...] = (CREDENTIAL,),
    name: str | None = None,
) -> int:
    with transaction(services.session_factory) as session:
        assessor = pool.add_assessor(
            session,
            email,
            name or email.split("@")[0].title(),
            institution,
            capacity,
            list(certify),
        )
        return assessor.id


def case_of(services: Services, attempt_id: int) -> Case | None:
    with services.session_factory() as session:
        case = session.scalar(select(Case).where(Case.attempt_id == attempt_id))
        if case is not None:
            _ = case.assignments, case.files
        return case


def marks(met: dict[tuple[str, str], bool] | None = None, default: bool = True) -> list[dict]:
    """Marks for every criterion: `default` unless `met` says otherwise; feedback where not
    met names the criterion."""
    met = met or {}
    result = []
    for part, key, _required in CRITERIA:
        value = met.get((part, key), default)
        result.append(
            {
                "part": part,
                "criterion_key": key,
                "met": value,
                "feedback": "" if value else f"Feedback on {key}: show it in the evidence.",
            }
        )
    return result


def assign_in_batches(services: Services, monkeypatch, cases: int, batch: int) -> tuple:
    """`cases` waiting cases, then three equal assessors (no shared institution), then one
    `assign_waiting` run reading the cases `batch` at a time (the next batch read and planned
    while this one is written). Returns (the run, the three assessors' ids in id order, each
    case's [first, second] assessor ids in case order)."""
    from lti_tool.assessment import assignment
    from lti_tool.assessment.models import FIRST, Assignment

    import_catalog(services)
    for n in range(cases):
        learner = Learner(subject=f"batch-learner-{n}", context_id=f"batch-ctx-{n}")
        submit_attempt(services, add_learner(services, learner), learner)
    people = [
        add_assessor(services, f"a{n}@batch-{n}.example", f"Batch Institute {n}", capacity=100)
        for n in range(3)
    ]
    monkeypatch.setattr(assignment, "CASE_BATCH", batch)
    with transaction(services.session_factory) as session:
        run = assignment.assign_waiting(session, services.settings)
    with services.session_factory() as session:
        rows = session.execute(
            select(Assignment.case_id, Assignment.role, Assignment.assessor_id).order_by(
                Assignment.case_id, Assignment.role != FIRST
            )
        ).all()
    per_case: dict[int, list[int]] = {}
    for case_id, _role, assessor_id in rows:
        per_case.setdefault(case_id, []).append(assessor_id)
    return run, sorted(people), [per_case[case_id] for case_id in sorted(per_case)]
