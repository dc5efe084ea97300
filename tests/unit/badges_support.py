"""Helpers of the Open Badges tests: a platform with learners, the sample catalog, and
issuing through the credentials service as an earned decision would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from lti_tool.catalog.models import MicroCredential, MicroCredentialVersion, Stack
from lti_tool.catalog.service import current_versions
from lti_tool.credentials import service as badges
from lti_tool.db import transaction, utcnow
from lti_tool.evidence.models import EARNED, Attempt
from lti_tool.lti.models import Platform
from lti_tool.roster.models import Course, LmsUser
from lti_tool.services import Services
from tests.unit.catalog_support import SAMPLE, SMALL, import_paths

SAMPLE_KEYS = ("active-listening", "effective-leadership", "productive-teamwork",
               "resolving-conflicts")  # fmt: skip


@dataclass(frozen=True)
class Learner:
    id: int
    platform_id: int
    email: str
    name: str
    course_id: int


def load_catalogs(services: Services) -> None:
    import_paths(services, SAMPLE, SMALL)


def add_platform(services: Services) -> int:
    with transaction(services.session_factory) as session:
        platform = Platform(
            name="Test LMS",
            issuer=f"https://lms-{uuid.uuid4().hex[:6]}.example",
            client_id="tool",
            auth_login_url="https://lms.example/auth",
            auth_token_url="https://lms.example/token",
            key_set_url="https://lms.example/jwks",
        )
        session.add(platform)
        session.flush()
        return platform.id


def add_learner(
    services: Services, platform_id: int, name: str = "Ada Lovelace", email: str | None = None
) -> Learner:
    email = f"{name.lower().replace(' ', '.')}@school.example" if email is None else email
    with transaction(services.session_factory) as session:
        course = session.scalars(
            select(Course).where(Course.platform_id == platform_id, Course.context_id == "c1")
        ).first()
        if course is None:
            course = Course(platform_id=platform_id, deployment_id="1", context_id="c1",
                            title="Collaboration for teachers")  # fmt: skip
            session.add(course)
        user = LmsUser(platform_id=platform_id, subject=f"sub-{uuid.uuid4().hex[:8]}", name=name,
                       email=email)  # fmt: skip
        session.add(user)
        session.flush()
        return Learner(user.id, platform_id, email, name, course.id)


def version_id(services: Services, key: str) -> int:
    with services.session_factory() as session:
        mc_id = session.scalars(select(MicroCredential.id).where(MicroCredential.key == key)).one()
        return current_versions(session, [mc_id])[mc_id].id


def stack_id(services: Services, key: str) -> int:
    with services.session_factory() as session:
        return session.scalars(select(Stack.id).where(Stack.key == key)).one()


def earned_attempt(
    services: Services, learner: Learner, key: str, snapshot: dict | None = None
) -> int:
    """An attempt of the learner at `key`'s newest version, decided earned; its id."""
    with transaction(services.session_factory) as session:
        version = session.get(MicroCredentialVersion, version_id(services, key))
        number = session.scalar(
            select(func.count())
            .select_from(Attempt)
            .where(
                Attempt.user_id == learner.id,
                Attempt.micro_credential_id == version.micro_credential_id,
            )
        )
        now = utcnow()
        attempt = Attempt(
            user_id=learner.id,
            micro_credential_id=version.micro_credential_id,
            version_id=version.id,
            number=number + 1,
            status=EARNED,
            decision=EARNED,
            snapshot=snapshot or {},
            submitted_at=now - timedelta(days=3),
            decided_at=now,
            course_id=learner.course_id,
        )
        session.add(attempt)
        session.flush()
        return attempt.id


def issue(
    services: Services, learner: Learner, key: str, attempt_id: int | None = None
) -> badges.Issued:
    """Issue the micro-credential `key` to the learner for an earned attempt (a new one, or
    `attempt_id`), as the `badge.requested` handler does."""
    attempt_id = earned_attempt(services, learner, key) if attempt_id is None else attempt_id
    with transaction(services.session_factory) as session:
        issued = badges.issue_micro_credential(session, services, attempt_id=attempt_id)
        session.expunge_all()
        return issued


def token_for(app, learner: Learner, role: str = "learner", anonymous: bool = False) -> str:
    """The `lt` token of a launch by this learner in their course, with `role`; `anonymous`:
    a launch that did not say who the user is."""
    from dataclasses import asdict

    from lti_tool.web.identity import Identity, _serializer

    identity = Identity(
        platform_id=learner.platform_id,
        user_id=None if anonymous else learner.id,
        course_id=learner.course_id,
        resource_link_id=None,
        role=role,
        launch_id="test-launch",
        message_type="LtiResourceLinkRequest",
    )
    with app.app_context():
        return _serializer().dumps(asdict(identity))


def path_of(url: str) -> str:
    """The path of one of the tool's absolute URLs (the test client takes paths)."""
    return url.removeprefix("https://tool.test")
