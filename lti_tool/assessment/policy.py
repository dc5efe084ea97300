"""Who assesses a case: the assignment policy, as a pure function over candidates.

The rules (DOMAIN.md, issue 5): every case gets a first and a second assessor, two different
people, each certified for the case's micro-credential version, active, under their weekly
capacity and not from the learner's institution; the least loaded first, ties broken by the
lower assessor id (deterministic). A resubmission goes back to the previous attempt's
assessors when they are still eligible. An adjudicator is a third eligible assessor, never one
of the first two. Anyone who declined or lost a case (overdue) never gets it back.

The learner's institution is known by what the tool knows of them: the name of the platform
(the LMS registration, named after the institution that runs it) and the domain of their
e-mail address. An assessor's is their declared institution and their account's e-mail
domain. Both sides are reduced to `conflict_key`s (salted SHA-256 of the normalised value, so a
case row carries no readable name) and a shared key is a conflict. Webmail domains (gmail.com
...) say nothing about an institution and are left out. What this cannot see (an assessor who
knows the learner personally) is what declining a case is for.

`plan` needs no database: the DB layer (assignment.py) loads candidates and needs in a few
set-based queries, plans every waiting case in memory and writes the result in bulk.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from lti_tool.assessment.models import FIRST, SECOND

KEY_SALT = b"lti-tool conflict of interest v1:"
WEBMAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
    }
)


def _normalise(value: str) -> str:
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9.@]+", " ", folded).split())


def conflict_key(kind: str, value: str) -> str | None:
    """The comparable, non-readable form of an institution name or an e-mail domain."""
    normal = _normalise(value)
    if not normal:
        return None
    return hashlib.sha256(KEY_SALT + kind.encode() + b":" + normal.encode()).hexdigest()[:24]


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower() if "@" in email else ""


def institution_keys(names: Iterable[str], emails: Iterable[str]) -> frozenset[str]:
    """Conflict keys of a person: their institution names and (non-webmail) e-mail domains."""
    keys = {conflict_key("name", name) for name in names}
    for email in emails:
        domain = email_domain(email)
        if domain and domain not in WEBMAIL_DOMAINS:
            keys.add(conflict_key("domain", domain))
    keys.discard(None)
    return frozenset(k for k in keys if k is not None)


@dataclass(frozen=True)
class Candidate:
    """An assessor as the policy sees them. `load`: cases taken in the last 7 days.
    `certified`: (micro_credential_id, version_id) pairs, version None for every version."""

    assessor_id: int
    capacity: int
    load: int
    certified: frozenset[tuple[int, int | None]]
    conflict_keys: frozenset[str] = frozenset()
    active: bool = True

    def certified_for(self, micro_credential_id: int, version_id: int) -> bool:
        return (micro_credential_id, None) in self.certified or (
            micro_credential_id,
            version_id,
        ) in self.certified


class Need(NamedTuple):
    """Roles a case still needs. `excluded`: whoever holds or held a role on it. (A named
    tuple: a run builds one per waiting case, 100,000 at a time.)"""

    case_id: int
    micro_credential_id: int
    version_id: int
    roles: tuple[str, ...] = (FIRST, SECOND)
    excluded: frozenset[int] = frozenset()
    conflict_keys: frozenset[str] = frozenset()
    preferred: tuple[int, ...] = ()  # the previous attempt's assessors, first assessor first


class Choice(NamedTuple):
    case_id: int
    role: str
    assessor_id: int


class Allocator:
    """Least-loaded choice over many cases in one pass: one heap of (load, id) per
    micro-credential version, fixed lazily when an assessor's load has grown since (loads only
    grow during a run). A few heap operations per choice: 100,000 cases plan in about 0.6 s of
    CPU (the benchmark's pool of 1,000 assessors)."""

    def __init__(self, candidates: Sequence[Candidate]) -> None:
        usable = [c for c in candidates if c.active and c.load < c.capacity]
        self._by_id = {c.assessor_id: c for c in usable}
        self._load = {c.assessor_id: c.load for c in usable}
        self._capacity = {c.assessor_id: c.capacity for c in usable}
        self._conflicts = {c.assessor_id: c.conflict_keys for c in usable}
        self._by_credential: dict[int, list[Candidate]] = {}
        for candidate in usable:
            for credential_id in {mc for mc, _version in candidate.certified}:
                self._by_credential.setdefault(credential_id, []).append(candidate)
        self._heaps: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def _eligible(self, assessor_id: int, need: Need, taken: set[int]) -> bool:
        """Everything the policy asks of one assessor for one case, at this point of the run."""
        candidate = self._by_id.get(assessor_id)
        return (
            candidate is not None
            and assessor_id not in taken
            and assessor_id not in need.excluded
            and self._load[assessor_id] < self._capacity[assessor_id]
            and candidate.certified_for(need.micro_credential_id, need.version_id)
            and candidate.conflict_keys.isdisjoint(need.conflict_keys)
        )

    def _heap(self, group: tuple[int, int]) -> list[tuple[int, int]]:
        heap = self._heaps.get(group)
        if heap is None:
            heap = [
                (self._load[c.assessor_id], c.assessor_id)
                for c in self._by_credential.get(group[0], ())
                if c.certified_for(*group)
            ]
            heapq.heapify(heap)
            self._heaps[group] = heap
        return heap

    def _least_loaded(self, heap: list[tuple[int, int]], need: Need, taken: set[int]) -> int | None:
        """The least loaded eligible assessor of the heap (certified for the need's version),
        its entry already counting the case. Looks at the top and replaces it in place
        (one sift instead of a pop and a push): this runs twice per case."""
        load, capacity, conflicts = self._load, self._capacity, self._conflicts
        excluded, keys = need.excluded, need.conflict_keys
        aside: list[tuple[int, int]] = []
        found = None
        while heap:
            entry_load, assessor_id = heap[0]
            current = load[assessor_id]
            if current >= capacity[assessor_id]:
                heapq.heappop(heap)  # full: it leaves this heap for good
            elif entry_load != current:
                heapq.heapreplace(heap, (current, assessor_id))  # loaded elsewhere since
            elif (
                assessor_id in taken
                or assessor_id in excluded
                or (keys and not conflicts[assessor_id].isdisjoint(keys))
            ):
                aside.append(heapq.heappop(heap))
            else:
                heapq.heapreplace(heap, (current + 1, assessor_id))
                found = assessor_id
                break
        for entry in aside:
            heapq.heappush(heap, entry)
        return found

    def choose(self, need: Need) -> list[Choice]:
        """Fill as many of the need's roles as eligible assessors allow (in role order)."""
        taken: set[int] = set()
        choices = []
        heap = self._heap((need.micro_credential_id, need.version_id))
        for role in need.roles:
            pick = None
            for preferred in need.preferred:
                if self._eligible(preferred, need, taken):
                    pick = preferred
                    break
            if pick is None:
                pick = self._least_loaded(heap, need, taken)
            if pick is None:
                break
            taken.add(pick)
            self._load[pick] += 1
            choices.append(Choice(need.case_id, role, pick))
        return choices


def plan(needs: Iterable[Need], candidates: Sequence[Candidate]) -> list[Choice]:
    """The assignments to make, case by case in the order given (oldest first)."""
    allocator = Allocator(candidates)
    return [choice for need in needs for choice in allocator.choose(need)]
