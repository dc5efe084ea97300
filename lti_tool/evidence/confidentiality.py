"""Confidentiality check: where a submission names the learner or another course member.

Why: assessors must not learn who the learner is, and evidence must not expose colleagues or
pupils by name. Before submitting, the learner sees each hit with its place; names in file
metadata and file names go away by themselves in the blind copy (documents.strip_metadata and
the neutral file name), names in the text need the learner's edit.

How matching works (decided to keep false alarms rare without missing real names):
- Text is compared word by word after folding: case-insensitive, accents removed (NFKD),
  "ß" = "ss"; words are runs of letters and digits, so "Jean-Luc", "O'Brien" and
  "ada_lovelace" split as people write them.
- Full names (display name, "given family" and "family given", at least two words) match as
  whole-word phrases in any case: severity "high". When every word of a full name is also a
  common word ("Mark Green", "Will Young") the text must write it capitalised ("Mark Green"),
  so "mark green squares" is not a hit.
- E-mail addresses match in any case: severity "high".
- A single given or family name of the learner ("Ada", "Lovelace") matches only when written
  with a capital, at least 3 letters long and not a common word or name particle ("Will",
  "Grace", "Rose", "van"): severity "low" (a possible mention; the learner judges). The same
  for other members only when asked (`others_single_names=True`): in a roster of thousands
  almost every first name belongs to someone, so by default only their full names and
  e-mails count.
- One pass over the words: a dictionary keyed by the first two words of each phrase (or the
  single word) gives the few candidates at each position, so a 50,000-person roster costs
  the same per word as a 5-person one. Build the IdentityIndex once per course and reuse it.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lti_tool.evidence.documents import DocumentText, can_strip
from lti_tool.evidence.words import fold, normalized, words_of
from lti_tool.evidence.words import spans as word_spans

OWN = "own"  # the learner's own identity
OTHER = "other"  # another course member
HIGH = "high"
LOW = "low"
FULL_NAME = "full name"
EMAIL = "e-mail"
GIVEN_NAME = "given name"
FAMILY_NAME = "family name"
EMAIL_LOCAL_PART = "e-mail user name"

# Where a hit is; the first two need the learner's edit.
IN_ANSWER = "answer"
IN_FILE_TEXT = "file text"
IN_FILE_NAME = "file name"
IN_FILE_METADATA = "file metadata"

MIN_SINGLE_NAME = 3
# Words that are also names (or name particles): never a hit on their own, and a full name made
# only of them must be capitalised. English first, since the programme writes in English.
_COMMON_WORDS = """
    a an and are as at be been but by can could did do does for from had has have he her his
    i if in into is it its me my no not of on or our she so that the their them then there
    these they this those to up us was we were what when which who will with would you your
    all any also back best both day each even few first good great here how just last long
    made make many more most much new next now old only other out over own part same see
    some such take than time two very way well where while year years
    will may june april august mark rose grace hope faith joy bill sue pat art rich frank
    bob jack sky summer autumn dawn eve ivy lily daisy holly heather amber ruby pearl crystal
    violet iris jade olive angel honey ray gene lance chase hunter carter mason cooper baker
    miller turner young white black brown green gray grey wood woods hill king
    little small bell ward hall lane rice price stone cross field fields banks reed page bond
    case love duke earl major noble sterling golden christian cash rocky sunny storm river
    ocean forest rain snow star win guy don dean rod sandy penny max will
    bishop parks park church glass cook hart fox wolf bird swan lamb rose miles
    april may summer winter spring march august young strong sharp moody wise
    van von der den del della des di da du de la le el al bin ibn ben bint mac mc st
"""
COMMON_WORDS = frozenset(_COMMON_WORDS.split())

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True)
class Person:
    """Someone to look for: as the launch (the learner) or the roster (members) gives them."""

    name: str = ""
    given_name: str = ""
    family_name: str = ""
    email: str = ""

    @classmethod
    def of(cls, user: Any) -> Person:
        """From anything with name/given_name/family_name/email (roster.models.LmsUser)."""
        return cls(
            name=getattr(user, "name", "") or "",
            given_name=getattr(user, "given_name", "") or "",
            family_name=getattr(user, "family_name", "") or "",
            email=getattr(user, "email", "") or "",
        )


class _Entry(NamedTuple):  # a tuple: 150,000 of them are made for a 50,000-person roster
    words: tuple[str, ...]
    identity: str
    kind: str
    severity: str
    capitalised: bool  # the text must write each word with a capital letter


_RANK = {FULL_NAME: 0, EMAIL: 0, FAMILY_NAME: 1, GIVEN_NAME: 1, EMAIL_LOCAL_PART: 1}


def _better(new: _Entry, old: _Entry | None) -> bool:
    if old is None:
        return True
    if new.identity != old.identity:
        return new.identity == OWN  # a name the learner shares with a member is theirs
    return _RANK[new.kind] < _RANK[old.kind]


@dataclass(frozen=True)
class Match:
    """A name or e-mail found in one text: its first word (1-based), the text as written."""

    word: int
    matched: str
    identity: str
    kind: str
    severity: str


class IdentityIndex:
    """The learner's and the members' names and e-mails, prepared for one-pass matching."""

    def __init__(
        self,
        learner: Person,
        members: Iterable[Person] = (),
        *,
        others_single_names: bool = False,
        common_words: frozenset[str] = COMMON_WORDS,
    ) -> None:
        self.common_words = common_words
        self._entries: dict[tuple[str, ...], _Entry] = {}
        self.emails: dict[str, str] = {}  # folded e-mail -> identity
        self._add(learner, OWN, single_names=True)
        own_email = learner.email.strip().casefold()
        for member in members:
            if own_email and member.email.strip().casefold() == own_email:
                continue  # the learner as the roster lists them
            self._add(member, OTHER, single_names=others_single_names)
        # Candidates at a position: by its word (single words) or its first two words.
        self._singles: dict[str, _Entry] = {}
        self._pairs: dict[tuple[str, str], list[_Entry]] = {}
        for words, entry in self._entries.items():
            if len(words) == 1:
                self._singles[words[0]] = entry
            else:
                self._pairs.setdefault((words[0], words[1]), []).append(entry)
        for candidates in self._pairs.values():
            candidates.sort(key=lambda e: -len(e.words))  # longest first

    def __len__(self) -> int:
        return len(self._entries) + len(self.emails)

    def _put(self, words: tuple[str, ...], identity: str, kind: str) -> None:
        if not words:
            return
        common = all(word in self.common_words for word in words)
        if len(words) == 1 or kind in (GIVEN_NAME, FAMILY_NAME, EMAIL_LOCAL_PART):
            if common or len("".join(words)) < MIN_SINGLE_NAME:
                return
            entry = _Entry(words, identity, kind, LOW, capitalised=kind != EMAIL_LOCAL_PART)
        else:
            entry = _Entry(words, identity, FULL_NAME, HIGH, capitalised=common)
        if _better(entry, self._entries.get(words)):
            self._entries[words] = entry

    def _add(self, person: Person, identity: str, single_names: bool) -> None:
        name = tuple(words_of(person.name))
        given = tuple(words_of(person.given_name)) or name[:1]
        family = tuple(words_of(person.family_name)) or name[-1:] * (len(name) > 1)
        for phrase in (name, given + family, family + given):
            if len(phrase) >= 2:
                self._put(phrase, identity, FULL_NAME)
        if single_names:
            self._put(given, identity, GIVEN_NAME)
            self._put(family, identity, FAMILY_NAME)
        email = person.email.strip().casefold()
        if "@" in email:
            if self.emails.get(email) != OWN:
                self.emails[email] = identity
            local = tuple(words_of(email.split("@", 1)[0]))
            if single_names and len(local) == 1 and len(local[0]) >= 5:
                self._put(local, identity, EMAIL_LOCAL_PART)

    def find(self, text: str) -> list[Match]:
        """Every name and e-mail of the index in text, in reading order; overlapping
        candidates give the longest match (a full name, not its given name too)."""
        text = normalized(text)
        spans = word_spans(text)
        words = [fold(raw) for _, _, raw in spans]
        starts = [start for start, _, _ in spans]
        found: list[tuple[int, Match]] = []
        email_spans = []
        for email in _EMAIL.finditer(text):
            identity = self.emails.get(email.group().casefold())
            if identity is None:
                continue
            email_spans.append((email.start(), email.end()))
            first = bisect.bisect_left(starts, email.start())
            found.append((email.start(), Match(first + 1, email.group(), identity, EMAIL, HIGH)))
        position, count = 0, len(words)
        while position < count:
            entry = self._match_at(words, spans, position)
            start = spans[position][0]
            if entry is None or any(a <= start < b for a, b in email_spans):
                position += 1
                continue
            last = position + len(entry.words) - 1
            matched = text[start : spans[last][1]]
            found.append(
                (start, Match(position + 1, matched, entry.identity, entry.kind, entry.severity))
            )
            position = last + 1
        return [match for _, match in sorted(found, key=lambda item: item[0])]

    def _match_at(self, words: list[str], spans: list, position: int) -> _Entry | None:
        if position + 1 < len(words):
            for entry in self._pairs.get((words[position], words[position + 1]), ()):
                size = len(entry.words)
                if tuple(words[position : position + size]) == entry.words and (
                    not entry.capitalised or _capitalised(spans, position, size)
                ):
                    return entry
        entry = self._singles.get(words[position])
        if entry is not None and (not entry.capitalised or _capitalised(spans, position, 1)):
            return entry
        return None


def _capitalised(spans: list, position: int, size: int) -> bool:
    return all(raw[:1].isupper() for _, _, raw in spans[position : position + size])


@dataclass(frozen=True)
class FileToCheck:
    """An evidence file: its name as uploaded, its type, and what documents.extract read from
    it (None when it could not be read)."""

    name: str
    media_type: str
    document: DocumentText | None


@dataclass(frozen=True)
class Hit:
    """One mention: where it is, the text as written, whose identity, and what to do.

    place: "Part 1, question 2, word 37", "file lesson-plan.pdf, page 3",
    "file x.docx, metadata: author", "file name ada-lovelace.pdf".
    where: IN_ANSWER, IN_FILE_TEXT (both need the learner's edit), IN_FILE_NAME,
    IN_FILE_METADATA (removed in the blind copy when the type can be cleaned).
    """

    place: str
    matched: str
    identity: str  # OWN or OTHER
    kind: str  # FULL_NAME, EMAIL, GIVEN_NAME, FAMILY_NAME, EMAIL_LOCAL_PART
    severity: str  # HIGH or LOW
    where: str
    removed_automatically: bool

    @property
    def learner_must_edit(self) -> bool:
        return not self.removed_automatically


@dataclass
class ConfidentialityReport:
    """All hits in reading order, and what could not be checked (a file not read, or read
    only in part) so that silence never means "clean" when it is only "unread"."""

    hits: list[Hit] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @property
    def to_edit(self) -> list[Hit]:
        return [hit for hit in self.hits if hit.learner_must_edit]

    @property
    def removed_automatically(self) -> list[Hit]:
        return [hit for hit in self.hits if hit.removed_automatically]


def check(
    index: IdentityIndex, answers: Mapping[str, str], files: Iterable[FileToCheck] = ()
) -> ConfidentialityReport:
    """Find the index's names and e-mails in text answers (keyed by their place, e.g.
    "Part 1, question 2"), in file names, and in file text and metadata."""
    report = ConfidentialityReport()

    def add(place: str, match: Match, where: str, automatic: bool) -> None:
        report.hits.append(
            Hit(place, match.matched, match.identity, match.kind, match.severity, where, automatic)
        )

    for label, text in answers.items():
        for match in index.find(text or ""):
            add(f"{label}, word {match.word}", match, IN_ANSWER, False)
    for file in files:
        for match in index.find(file.name):
            add(f"file name {file.name}", match, IN_FILE_NAME, True)
        if file.document is None:
            report.unchecked.append(f"file {file.name}: could not be read, so it was not checked")
            continue
        for part in file.document.body:
            for match in index.find(part.text):
                add(f"file {file.name}, {part.place}", match, IN_FILE_TEXT, False)
        cleanable = can_strip(file.media_type)
        for item in file.document.metadata:
            for match in index.find(item.value):
                place = f"file {file.name}, metadata: {item.place}"
                add(place, match, IN_FILE_METADATA, cleanable)
        report.unchecked.extend(f"file {file.name}: {note}" for note in file.document.notes)
    return report
