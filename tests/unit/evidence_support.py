"""Helpers of the evidence tests: a catalog, learners of a course, and a complete draft."""

from __future__ import annotations

import io

from sqlalchemy import select

from lti_tool.db import transaction
from lti_tool.evidence import service as evidence
from lti_tool.lti.models import Platform
from lti_tool.roster.models import LEARNER, Course, Enrollment, LmsUser
from lti_tool.services import Services
from tests.unit.catalog_support import SMALL, import_paths

KEY = "exit-tickets"  # overview: setting (150-200 words), current-practice; artifacts:
# tickets (required), sorting (optional); reflection: impact (200-300 words)
PDF = b"%PDF-1.4\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 400 + b"%%EOF\n"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89" + b"\x00" * 9000
)


def load_catalog(services: Services) -> int:
    import_paths(services, SMALL)
    with services.session_factory() as session:
        found = evidence.credential_id(session, KEY)
    assert found is not None
    return found


def make_course(services: Services, label: str = "C1") -> int:
    """A course of a platform (created if none), as a launch would have recorded it."""
    with transaction(services.session_factory) as session:
        platform = session.scalars(select(Platform)).first()
        if platform is None:
            platform = Platform(
                issuer="https://lms.example",
                client_id="client-" + label,
                auth_login_url="https://lms.example/auth",
                auth_token_url="https://lms.example/token",
                key_set_url="https://lms.example/jwks",
                name="Test LMS",
            )
            session.add(platform)
            session.flush()
        course = Course(platform_id=platform.id, deployment_id="1", context_id=label, title=label)
        session.add(course)
        session.flush()
        return course.id


def add_learner(
    services: Services, course_id: int, name: str, email: str = "", role: str = LEARNER
) -> int:
    with transaction(services.session_factory) as session:
        course = session.get(Course, course_id)
        given, _, family = name.partition(" ")
        user = LmsUser(
            platform_id=course.platform_id,
            subject=f"sub-{course_id}-{name}",
            name=name,
            given_name=given,
            family_name=family,
            email=email or f"{name.lower().replace(' ', '.')}@school.example",
        )
        session.add(user)
        session.flush()
        session.add(Enrollment(user_id=user.id, course_id=course_id, role=role, lti_roles=[]))
        return user.id


def words(n: int, word: str = "word") -> str:
    return " ".join([word] * n)


def fill(services: Services, user_id: int, mc_id: int, course_id: int | None = None) -> None:
    """Answer every prompt and add the required file: a draft ready to submit."""
    with transaction(services.session_factory) as session:
        draft = evidence.find_draft(session, user_id, mc_id)
        evidence.save_draft(
            session,
            user_id,
            mc_id,
            draft.revision if draft else 0,
            evidence.DraftChanges(
                answers={
                    "overview": {"setting": words(160), "current-practice": "Questions."},
                    "reflection": {"impact": words(210, "impact")},
                }
            ),
            evidence.Origin(course_id) if course_id else None,
        )
    evidence.add_file(
        services.session_factory, services.storage, user_id, mc_id, "tickets", "tickets.pdf",
        io.BytesIO(PDF),
    )  # fmt: skip
