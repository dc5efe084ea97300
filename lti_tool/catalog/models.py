"""Tables of the catalog.

A micro-credential (stable `key`) has numbered versions. A version holds everything a learner
works against and an assessor judges by: competency, key method, parts, prompts, artifact
requirements, rubric. Once a learner has started a version (`started_at` is set, by the evidence
package through `service.mark_version_started`) it is never changed again: an edit of the
catalog then creates the next version, and the started one stays as it was.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.db import Base, UTCDateTime, utcnow

KEY_LENGTH = 100

# Vocabularies of the file format (config/catalog/README.md).
RULE_ALL = "all"
RULE_N_OF_M = "n_of_m"
COMPLETION_RULES = (RULE_ALL, RULE_N_OF_M)
OVERVIEW = "overview"
ARTIFACTS = "artifacts"
REFLECTION = "reflection"
PART_KINDS = (OVERVIEW, ARTIFACTS, REFLECTION)
ROLES = ("teacher", "paraeducator", "team", "leader", "any")
EVIDENCE_KINDS = ("understanding", "application", "implementation", "reflection")
FORMATS = ("pdf", "document", "image", "audio", "video", "link")
RESOURCE_KINDS = ("article", "video", "guide", "book", "other")


class Issuer(Base):
    """The organization that issues micro-credentials (and their badges)."""

    __tablename__ = "issuers"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    url: Mapped[str] = mapped_column(String(1000))
    email: Mapped[str] = mapped_column(String(320))
    description: Mapped[str] = mapped_column(Text, default="")
    image: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Stack(Base):
    """A coherent set of micro-credentials, and the stack-level credential earned by completing
    all of them (`rule` "all") or `required_count` of them (`rule` "n_of_m")."""

    __tablename__ = "stacks"
    __table_args__ = (
        CheckConstraint(
            "(completion_rule = 'all' AND required_count IS NULL) OR "
            "(completion_rule = 'n_of_m' AND required_count >= 1)",
            name="completion",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("issuers.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    completion_rule: Mapped[str] = mapped_column(String(10), default=RULE_ALL)
    required_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    credential_name: Mapped[str] = mapped_column(String(300))
    credential_description: Mapped[str] = mapped_column(Text, default="")
    credential_estimated_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    issuer: Mapped[Issuer] = relationship()
    members: Mapped[list[StackMember]] = relationship(
        back_populates="stack", cascade="all, delete-orphan", order_by="StackMember.position"
    )

    @property
    def needed(self) -> int:
        """How many members a learner must earn to complete the stack."""
        if self.completion_rule == RULE_N_OF_M and self.required_count is not None:
            return self.required_count
        return len(self.members)


class StackMember(Base):
    """A micro-credential's place in a stack (a micro-credential may be in several stacks)."""

    __tablename__ = "stack_members"
    __table_args__ = (UniqueConstraint("stack_id", "micro_credential_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stack_id: Mapped[int] = mapped_column(ForeignKey("stacks.id", ondelete="CASCADE"))
    micro_credential_id: Mapped[int] = mapped_column(
        ForeignKey("micro_credentials.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)

    stack: Mapped[Stack] = relationship(back_populates="members")
    micro_credential: Mapped[MicroCredential] = relationship(back_populates="memberships")


class MicroCredential(Base):
    """The stable identity of a micro-credential; its content lives in its versions."""

    __tablename__ = "micro_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("issuers.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    issuer: Mapped[Issuer] = relationship()
    versions: Mapped[list[MicroCredentialVersion]] = relationship(
        back_populates="micro_credential",
        cascade="all, delete-orphan",
        order_by="MicroCredentialVersion.number",
    )
    memberships: Mapped[list[StackMember]] = relationship(
        back_populates="micro_credential", order_by="StackMember.stack_id"
    )

    @property
    def current(self) -> MicroCredentialVersion:
        """The newest version: the one new learners start."""
        return self.versions[-1]


class MicroCredentialVersion(Base):
    """One immutable-once-started edition of a micro-credential's content."""

    __tablename__ = "micro_credential_versions"
    __table_args__ = (
        UniqueConstraint("micro_credential_id", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    micro_credential_id: Mapped[int] = mapped_column(
        ForeignKey("micro_credentials.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    competency: Mapped[str] = mapped_column(Text)
    key_method: Mapped[str] = mapped_column(Text)
    method_components: Mapped[list] = mapped_column(JSON, default=list)
    # [{"citation": str, "url": str | None}]
    research: Mapped[list] = mapped_column(JSON, default=list)
    # [{"title": str, "url": str | None, "kind": one of RESOURCE_KINDS}]
    resources: Mapped[list] = mapped_column(JSON, default=list)
    estimated_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    fee: Mapped[float | None] = mapped_column(Numeric(10, 2, asdecimal=False), nullable=True)
    # Role restriction (ROLES); empty: open to everyone.
    roles: Mapped[list] = mapped_column(JSON, default=list)
    # What the evidence shows (EVIDENCE_KINDS).
    evidence: Mapped[list] = mapped_column(JSON, default=list)
    # sha256 of the canonical content (fileformat.content_hash): equal hash, equal content.
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the first learner starts this version; from then on it is never edited.
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    micro_credential: Mapped[MicroCredential] = relationship(back_populates="versions")
    parts: Mapped[list[Part]] = relationship(
        back_populates="version", cascade="all, delete-orphan", order_by="Part.position"
    )

    @property
    def locked(self) -> bool:
        return self.started_at is not None

    def part(self, kind: str) -> Part | None:
        return next((p for p in self.parts if p.kind == kind), None)


class Part(Base):
    """Part 1 (overview questions), 2 (artifacts) or 3 (reflection) of a version."""

    __tablename__ = "version_parts"
    __table_args__ = (
        UniqueConstraint("version_id", "kind"),
        CheckConstraint("kind IN ('overview', 'artifacts', 'reflection')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("micro_credential_versions.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(20))
    position: Mapped[int] = mapped_column(Integer)
    instructions: Mapped[str] = mapped_column(Text, default="")
    # The passing criteria in words; which criteria must be met is RubricCriterion.required.
    passing: Mapped[str] = mapped_column(Text, default="")

    version: Mapped[MicroCredentialVersion] = relationship(back_populates="parts")
    prompts: Mapped[list[Prompt]] = relationship(
        back_populates="part", cascade="all, delete-orphan", order_by="Prompt.position"
    )
    requirements: Mapped[list[ArtifactRequirement]] = relationship(
        back_populates="part", cascade="all, delete-orphan", order_by="ArtifactRequirement.position"
    )
    rubric: Mapped[list[RubricCriterion]] = relationship(
        back_populates="part", cascade="all, delete-orphan", order_by="RubricCriterion.position"
    )


class Prompt(Base):
    """A question of an overview or reflection part, with its suggested word range."""

    __tablename__ = "part_prompts"
    __table_args__ = (
        UniqueConstraint("part_id", "key"),
        CheckConstraint(
            "min_words IS NULL OR max_words IS NULL OR min_words <= max_words", name="words"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("version_parts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    # Guidance, not a limit: evidence checks warn outside the range.
    min_words: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_words: Mapped[int | None] = mapped_column(Integer, nullable=True)

    part: Mapped[Part] = relationship(back_populates="prompts")


class ArtifactRequirement(Base):
    """An artifact to upload in the artifacts part, with its preferred formats."""

    __tablename__ = "artifact_requirements"
    __table_args__ = (UniqueConstraint("part_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("version_parts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    formats: Mapped[list] = mapped_column(JSON, default=list)
    required: Mapped[bool] = mapped_column(Boolean, default=True)

    part: Mapped[Part] = relationship(back_populates="requirements")


class RubricCriterion(Base):
    """One criterion of a part's rubric; `required` ones must be met to pass the part."""

    __tablename__ = "rubric_criteria"
    __table_args__ = (UniqueConstraint("part_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("version_parts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    required: Mapped[bool] = mapped_column(Boolean, default=True)

    part: Mapped[Part] = relationship(back_populates="rubric")


# -- Where the catalog is used: LMS courses and resource links (see mapping.py) ----------------
MAPPED_BY = ("deep_linking", "launch", "educator")


class CourseStack(Base):
    """A stack an LMS course (roster `courses`) works towards; a course may hold several."""

    __tablename__ = "course_stacks"
    __table_args__ = (
        UniqueConstraint("course_id", "stack_id"),
        CheckConstraint("mapped_by IN ('deep_linking', 'launch', 'educator')", name="mapped_by"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    stack_id: Mapped[int] = mapped_column(ForeignKey("stacks.id", ondelete="CASCADE"), index=True)
    # How the mapping was made (MAPPED_BY): picked in Deep Linking, by a launch, on the page.
    mapped_by: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    stack: Mapped[Stack] = relationship()


class LinkCredential(Base):
    """The micro-credential an LMS resource link (roster `resource_links`) stands for.

    One per link; many links (courses, platforms, runs of a MOOC) may name the same
    micro-credential, by its stable key, not a version. `line_item_needed` is set when the
    link was launched without a line item but the platform lets the tool create one (AGS
    `lineitems` with the lineitem scope): the gradebook's AGS code creates it and calls
    `mapping.line_item_created`.
    """

    __tablename__ = "link_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_link_id: Mapped[int] = mapped_column(
        ForeignKey("resource_links.id", ondelete="CASCADE"), unique=True
    )
    micro_credential_id: Mapped[int] = mapped_column(
        ForeignKey("micro_credentials.id", ondelete="CASCADE"), index=True
    )
    # The stack the link was added from (the `stack` custom parameter), if any.
    stack_id: Mapped[int | None] = mapped_column(
        ForeignKey("stacks.id", ondelete="SET NULL"), nullable=True, index=True
    )
    line_item_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The platform's line items container (AGS `lineitems`), where a missing one is created.
    lineitems_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # The line item the tool created for this link through AGS.
    created_lineitem_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    micro_credential: Mapped[MicroCredential] = relationship()
    stack: Mapped[Stack | None] = relationship()
