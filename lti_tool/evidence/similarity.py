"""Similarity check: is a submission nearly identical to an earlier one of the same
micro-credential? Flagged for assessors and admins, never blocked.

How: each part of a submission (a text answer, the text of a file) becomes its set of word
shingles (runs of SHINGLE_WORDS folded words, so case, accents and punctuation do not matter),
and the set is summarised by a bottom-k sketch: the SKETCH_SIZE smallest 53-bit hashes of its
shingles, with the set's size. Two sketches estimate the Jaccard similarity of the two sets
(Broder's bottom-k estimator: the share of the union's k smallest hashes present in both; exact
when both sets have at most k shingles) and from it how much of the shorter part is found in the
other (containment). A fingerprint is a few kilobytes of JSON, computed once at submission and
stored; comparing one against thousands of stored fingerprints is a few set operations each.

The score of a part is its containment: the share of the shorter of the two texts found in the
other, so copying a whole answer and adding a paragraph still scores high. Parts shorter than
MIN_WORDS words are not compared (short answers coincide by nature). Every fingerprint also has
a WHOLE part (all parts together), which finds text moved between parts or a file renamed.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lti_tool.evidence.words import fold, normalized, spans, words_of

SHINGLE_WORDS = 5
SKETCH_SIZE = 128
MIN_WORDS = 25
WHOLE = "(whole submission)"
FORMAT = 1  # version of the JSON form; a different version is recomputed, not misread
_HASH_BITS = 53  # exact as a JSON number in any language


def _hash(shingle: tuple[str, ...]) -> int:
    digest = hashlib.blake2b(" ".join(shingle).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - _HASH_BITS)


def _shingle_hashes(words: list[str], size: int) -> set[int]:
    if len(words) < size:
        return {_hash(tuple(words))} if words else set()
    return {_hash(tuple(words[i : i + size])) for i in range(len(words) - size + 1)}


@dataclass(frozen=True)
class Sketch:
    """One part: its word count, its number of distinct shingles, and the smallest hashes."""

    words: int
    shingles: int
    hashes: frozenset[int]

    @classmethod
    def of_hashes(cls, words: int, hashes: set[int], size: int) -> Sketch:
        return cls(words, len(hashes), frozenset(heapq.nsmallest(size, hashes)))


@dataclass(frozen=True)
class Fingerprint:
    """The sketches of a submission's parts, keyed like the answers (plus WHOLE)."""

    parts: dict[str, Sketch]
    shingle_words: int = SHINGLE_WORDS
    sketch_size: int = SKETCH_SIZE

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict to store with the attempt."""
        return {
            "format": FORMAT,
            "shingle_words": self.shingle_words,
            "sketch_size": self.sketch_size,
            "parts": {
                key: {"words": s.words, "shingles": s.shingles, "hashes": sorted(s.hashes)}
                for key, s in self.parts.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fingerprint:
        """Read a stored fingerprint; ValueError when it is of another format."""
        if data.get("format") != FORMAT:
            raise ValueError(f"fingerprint format {data.get('format')!r}, expected {FORMAT}")
        parts = {
            key: Sketch(int(p["words"]), int(p["shingles"]), frozenset(p["hashes"]))
            for key, p in data["parts"].items()
        }
        return cls(parts, int(data["shingle_words"]), int(data["sketch_size"]))


def fingerprint(
    parts: Mapping[str, str],
    *,
    boilerplate: Iterable[str] = (),
    shingle_words: int = SHINGLE_WORDS,
    sketch_size: int = SKETCH_SIZE,
) -> Fingerprint:
    """Sketch each part of a submission: text answers keyed by prompt ("Part 1, question 2")
    and extracted file text keyed by artifact requirement (not by file name, which differs
    between learners).

    boilerplate: text every learner may reproduce (the prompts, a template file given with the
    micro-credential); its word sequences are left out, so filling in the same template is not
    copying. Use the same boilerplate for every fingerprint of a micro-credential version.
    """
    ignored: set[int] = set()
    for text in boilerplate:
        ignored |= _shingle_hashes(words_of(text or ""), shingle_words)
    sketches: dict[str, Sketch] = {}
    everything: set[int] = set()
    total = 0
    for key, text in parts.items():
        words = words_of(text or "")
        hashes = _shingle_hashes(words, shingle_words) - ignored
        sketches[key] = Sketch.of_hashes(len(words), hashes, sketch_size)
        everything |= hashes
        total += len(words)
    sketches[WHOLE] = Sketch.of_hashes(total, everything, sketch_size)
    return Fingerprint(sketches, shingle_words, sketch_size)


@dataclass(frozen=True)
class PartScore:
    """How alike one part is in two submissions: estimated Jaccard similarity of their
    shingle sets, and containment (the share of the shorter part found in the other)."""

    part: str
    jaccard: float
    containment: float

    @property
    def score(self) -> float:
        return self.containment


def compare_sketches(a: Sketch, b: Sketch, size: int, part: str = "") -> PartScore:
    """Bottom-k estimate of Jaccard and containment between two sketches."""
    if not a.hashes or not b.hashes or a.hashes.isdisjoint(b.hashes):
        return PartScore(part, 0.0, 0.0)
    union = heapq.nsmallest(size, a.hashes | b.hashes)
    # A hash among the union's k smallest is in a set exactly when it is in that set's sketch.
    shared = sum(1 for h in union if h in a.hashes and h in b.hashes)
    jaccard = shared / len(union)
    common = jaccard * (a.shingles + b.shingles) / (1 + jaccard)
    containment = min(1.0, common / min(a.shingles, b.shingles))
    return PartScore(part, round(jaccard, 4), round(containment, 4))


def compare(a: Fingerprint, b: Fingerprint, *, min_words: int = MIN_WORDS) -> list[PartScore]:
    """The score of each part both submissions have (long enough to compare), best first."""
    if (a.shingle_words, a.sketch_size) != (b.shingle_words, b.sketch_size):
        raise ValueError("fingerprints made with different settings cannot be compared")
    scores = []
    for key, sketch in a.parts.items():
        other = b.parts.get(key)
        if other is None or min(sketch.words, other.words) < min_words:
            continue
        scores.append(compare_sketches(sketch, other, a.sketch_size, key))
    return sorted(scores, key=lambda s: -s.score)


@dataclass(frozen=True)
class SimilarSubmission:
    """An earlier submission alike to the new one: its key (e.g. an attempt id), the best
    part score, and the score of every compared part."""

    key: Any
    score: float
    parts: list[PartScore] = field(default_factory=list)


def most_similar(
    new: Fingerprint,
    earlier: Iterable[tuple[Any, Fingerprint]],
    *,
    threshold: float,
    limit: int = 5,
    min_words: int = MIN_WORDS,
) -> list[SimilarSubmission]:
    """The earlier submissions (key, fingerprint) whose best part scores at least threshold
    (0..1; settings.evidence_similarity_percent / 100), most similar first, at most limit.
    The caller leaves out the learner's own earlier attempts (a resubmission is meant to be
    close to the attempt it revises)."""
    found = []
    for key, other in earlier:
        scores = compare(new, other, min_words=min_words)
        if scores and scores[0].score >= threshold:
            found.append(SimilarSubmission(key, scores[0].score, scores))
    # Ties on the score (both contain all of the new text) go to the closer one in size.
    return heapq.nlargest(limit, found, key=lambda s: (s.score, s.parts[0].jaccard))


@dataclass(frozen=True)
class ReflectionComparison:
    """Two learners' reflections compared exactly: Jaccard of their shingles, the share of
    the first reflection found in the second, and the first's passages (as written) that the
    second also has, longest first, so a learner sees what to rewrite in their own words."""

    jaccard: float
    containment: float
    shared_passages: list[str]

    def too_similar(self, threshold: float) -> bool:
        return self.containment >= threshold


def compare_reflections(
    mine: str, theirs: str, *, boilerplate: Iterable[str] = (), shingle_words: int = SHINGLE_WORDS
) -> ReflectionComparison:
    """Compare a learner's reflection with a declared collaborator's (exact, not sketched:
    reflections are short). The passages are runs of the learner's own words; word sequences
    of the boilerplate (the reflection prompt) do not count as shared."""
    text = normalized(mine or "")
    my_spans = spans(text)
    my_words = [fold(word) for _, _, word in my_spans]
    their_words = words_of(theirs or "")
    size = shingle_words
    if len(my_words) < size or len(their_words) < size:
        return ReflectionComparison(0.0, 0.0, [])
    ignored: set[tuple[str, ...]] = set()
    for text_of_prompt in boilerplate:
        prompt = words_of(text_of_prompt or "")
        ignored |= {tuple(prompt[i : i + size]) for i in range(len(prompt) - size + 1)}
    their_shingles = {tuple(their_words[i : i + size]) for i in range(len(their_words) - size + 1)}
    their_shingles -= ignored
    my_shingles = [tuple(my_words[i : i + size]) for i in range(len(my_words) - size + 1)]
    shared_flags = [shingle in their_shingles for shingle in my_shingles]
    mine_set = set(my_shingles) - ignored
    if not mine_set or not their_shingles:
        return ReflectionComparison(0.0, 0.0, [])
    common = len(mine_set & their_shingles)
    jaccard = common / len(mine_set | their_shingles)
    containment = common / len(mine_set)
    passages = []
    index = 0
    while index < len(shared_flags):  # merge overlapping shared shingles into passages
        if not shared_flags[index]:
            index += 1
            continue
        start = index
        while index + 1 < len(shared_flags) and shared_flags[index + 1]:
            index += 1
        last_word = index + size - 1
        passages.append(text[my_spans[start][0] : my_spans[last_word][1]])
        index += 1
    passages.sort(key=len, reverse=True)
    return ReflectionComparison(round(jaccard, 4), round(containment, 4), passages)
