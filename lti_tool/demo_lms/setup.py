"""The demo LMS's fixed world: its registration in the tool, its key, its course and people."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from lti_tool.accounts import service as accounts
from lti_tool.assessment import assessors as assessor_pool
from lti_tool.catalog.models import MicroCredential
from lti_tool.demo_lms import store
from lti_tool.demo_lms.platform import INSTITUTION_ROLE, ROLE, PlatformSigner, new_private_pem
from lti_tool.lti.models import Platform
from lti_tool.lti.platforms import PlatformSpec, add_platform, find_platform
from lti_tool.settings import Settings

CLIENT_ID = "demo-lms-client"
DEPLOYMENT_ID = "demo-deployment-1"


@dataclass(frozen=True)
class DemoPerson:
    key: str
    name: str
    given_name: str
    family_name: str
    email: str
    roles: tuple[str, ...]


PEOPLE = (
    DemoPerson(
        "ada", "Ada Okafor", "Ada", "Okafor", "ada.okafor@demo.example", (ROLE + "Instructor",)
    ),
    DemoPerson("lee", "Lee Marsh", "Lee", "Marsh", "lee.marsh@demo.example", (ROLE + "Learner",)),
    DemoPerson(
        "sam", "Sam Rivera", "Sam", "Rivera", "sam.rivera@demo.example", (ROLE + "Learner",)
    ),
    DemoPerson(
        "root",
        "Robin Admin",
        "Robin",
        "Admin",
        "robin.admin@demo.example",
        (INSTITUTION_ROLE + "Administrator", ROLE + "Instructor"),
    ),
)
COURSE = {
    "id": "demo-course-collab-101",
    "label": "COLLAB-101",
    "title": "Collaboration in Schools (demo course)",
    "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"],
}
# The built-in link names a micro-credential of the sample catalog (its custom parameters) and
# has a gradebook column, so that the whole loop works before anyone uses Deep Linking.
LINKS = (
    {
        "id": "demo-link-module-1",
        "title": "Module 1: Active Listening",
        "custom": {"micro_credential": "active-listening", "stack": "collaboration"},
        "line_item": {"label": "Active Listening", "scoreMaximum": 100, "tag": "micro-credential"},
    },
)
# The lti_message_hint of the instructor's "Add micro-credentials (Deep Linking)" login.
DEEP_LINK_HINT = "deep-linking"
INSTRUCTOR_ROLES = (ROLE + "Instructor", INSTITUTION_ROLE + "Administrator")


@dataclass(frozen=True)
class DemoAssessor:
    """An assessor account of the demo. Its password is public on purpose (shown on /demo/)."""

    name: str
    email: str
    password: str
    institution: str


# From institutions (and e-mail domains) other than the demo LMS's, so no conflict of interest.
ASSESSORS = (
    DemoAssessor(
        "Ayo Bankole", "ayo.bankole@northfield.example", "demo-assessor-1", "Northfield College"
    ),
    DemoAssessor(
        "Mei Tanaka", "mei.tanaka@harbour.example", "demo-assessor-2", "Harbour University"
    ),
)
DEMO_ASSESSOR_CAPACITY = 100


def person(key: str) -> DemoPerson | None:
    return next((p for p in PEOPLE if p.key == key), None)


def teaches(demo_person: DemoPerson) -> bool:
    """Whether the LMS lets this person add content to the course (instructors, admins)."""
    return any(role in INSTRUCTOR_ROLES for role in demo_person.roles)


def all_links(settings: Settings) -> list[dict]:
    """The course's links: the built-in one, then those added through Deep Linking."""
    return [dict(link) for link in LINKS] + store.added_links(settings)


def find_link(settings: Settings, link_id: str) -> dict | None:
    return next((link for link in all_links(settings) if link["id"] == link_id), None)


def lms_url(settings: Settings) -> str:
    """The demo LMS's own public URL: its course page, OIDC endpoint and keys live under it.

    By default the tool's URL (one server serves both). LTI_TOOL_DEMO_LMS_URL puts the LMS on
    another site, as every real LMS is: for example https://localhost:8443 beside a tool at
    https://127.0.0.1:8443, the same server reached under two host names, so that the tool's
    iframe is really cross-site.
    """
    return (settings.demo_lms_url or settings.public_url).rstrip("/")


def lms(settings: Settings, path: str) -> str:
    """Absolute URL of a page of the demo LMS."""
    return lms_url(settings) + "/" + path.lstrip("/")


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def issuer(settings: Settings) -> str:
    return lms(settings, "/demo")


def signer(settings: Settings) -> PlatformSigner:
    """The demo platform's signer; its key lives in the instance folder."""
    path = settings.instance_dir / "demo-lms-key.pem"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(new_private_pem())
    return PlatformSigner(issuer(settings), CLIENT_ID, DEPLOYMENT_ID, path.read_text())


def ensure_demo_platform(session: Session, settings: Settings) -> Platform:
    """Register the demo LMS as a platform, like an administrator would any LMS."""
    existing = find_platform(session, issuer(settings), CLIENT_ID)
    if existing is not None:
        return existing
    return add_platform(
        session,
        PlatformSpec(
            issuer=issuer(settings),
            client_id=CLIENT_ID,
            deployment_ids=[DEPLOYMENT_ID],
            auth_login_url=lms(settings, "/demo/auth"),
            auth_token_url=lms(settings, "/demo/token"),
            key_set_url=lms(settings, "/demo/jwks"),
            name="Demo LMS",
            product="demo",
        ),
    )


def ensure_demo_assessors(session: Session) -> None:
    """The demo's two assessors, certified for every micro-credential in the catalog (run it
    after the catalog import; again on each start: it only adds what is missing)."""
    keys = session.scalars(select(MicroCredential.key).order_by(MicroCredential.key)).all()
    for demo_assessor in ASSESSORS:
        if accounts.find_account(session, demo_assessor.email) is None:
            accounts.add_account(
                session, demo_assessor.email, demo_assessor.name, password=demo_assessor.password
            )
        try:
            assessor = assessor_pool.find_assessor(session, demo_assessor.email)
        except assessor_pool.AssessorError:
            assessor = assessor_pool.add_assessor(
                session,
                demo_assessor.email,
                demo_assessor.name,
                demo_assessor.institution,
                DEMO_ASSESSOR_CAPACITY,
                [],
            )
        for key in keys:
            assessor_pool.certify(session, assessor, key)
