"""Map LTI role URIs (full, short, sub-roles, institution and system roles) to the tool's roles.

Anything not recognised gets the least privilege: learner (sees only their own work).
"""

from __future__ import annotations

from collections.abc import Iterable

from lti_tool.roster.models import ADMINISTRATOR, EDUCATOR, LEARNER

_MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
_INSTITUTION = "http://purl.imsglobal.org/vocab/lis/v2/institution/person"
_SYSTEM = "http://purl.imsglobal.org/vocab/lis/v2/system/person"

# Principal context roles that make someone an educator of the course.
_EDUCATOR_CONTEXT_ROLES = {"Instructor", "ContentDeveloper", "Administrator"}
# Institution and system roles that make someone an administrator of the tool.
_ADMIN_ROLES = {f"{_INSTITUTION}#Administrator", f"{_SYSTEM}#Administrator", f"{_SYSTEM}#SysAdmin"}


def _context_role(role: str) -> str | None:
    """The principal context role named by a full, sub-role or short form, if any."""
    if role.startswith(_MEMBERSHIP):
        rest = role[len(_MEMBERSHIP) :]
        if rest.startswith("#"):
            return rest[1:]
        if rest.startswith("/"):
            # Sub-role: .../membership/Instructor#TeachingAssistant -> Instructor
            return rest[1:].split("#", 1)[0]
        return None
    if "/" not in role and ":" not in role and "#" not in role:
        return role  # deprecated short form, e.g. "Learner"
    return None


def map_roles(roles: Iterable[str]) -> str:
    """The tool role for a set of LTI roles: administrator, educator or learner."""
    roles = [r.strip() for r in roles if isinstance(r, str)]
    if any(r in _ADMIN_ROLES for r in roles):
        return ADMINISTRATOR
    if any(_context_role(r) in _EDUCATOR_CONTEXT_ROLES for r in roles):
        return EDUCATOR
    return LEARNER
