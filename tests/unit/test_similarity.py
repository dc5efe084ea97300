"""Similarity check: copied submissions are found among thousands, scores estimate the real
overlap, fingerprints survive JSON, and reflections show the passages two learners share."""

from __future__ import annotations

import json
import random

import pytest

from lti_tool.evidence.similarity import (
    WHOLE,
    Fingerprint,
    compare,
    compare_reflections,
    fingerprint,
    most_similar,
)

RNG = random.Random(11)
VOCABULARY = [f"word{n}" for n in range(5_000)]


def essay(words: int, rng: random.Random = RNG) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))


def exact_jaccard(a: str, b: str, size: int = 5) -> float:
    def shingles(text: str) -> set[tuple[str, ...]]:
        words = text.split()
        return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}

    first, second = shingles(a), shingles(b)
    return len(first & second) / len(first | second)


def score_of(a: Fingerprint, b: Fingerprint, part: str) -> tuple[float, float]:
    scores = {s.part: s for s in compare(a, b)}
    return scores[part].jaccard, scores[part].containment


def test_identical_text_scores_one_whatever_case_and_punctuation() -> None:
    text = essay(300)
    shouted = ", ".join(text.upper().split())
    assert score_of(fingerprint({"p": text}), fingerprint({"p": shouted}), "p") == (1.0, 1.0)


def test_unrelated_texts_score_zero() -> None:
    assert score_of(fingerprint({"p": essay(400)}), fingerprint({"p": essay(400)}), "p") == (
        0.0,
        0.0,
    )


def test_a_copy_with_additions_keeps_a_high_containment() -> None:
    original = essay(400)
    padded = original + " " + essay(400)
    jaccard, containment = score_of(fingerprint({"p": original}), fingerprint({"p": padded}), "p")
    assert containment > 0.9
    assert 0.35 < jaccard < 0.65  # half of the longer text is new


@pytest.mark.parametrize("shared", [0.2, 0.5, 0.8])
def test_the_estimate_is_close_to_the_exact_jaccard(shared: float) -> None:
    common = essay(int(2_000 * shared))
    a = essay(2_000 - len(common.split())) + " " + common
    b = common + " " + essay(2_000 - len(common.split()))
    estimate, _ = score_of(fingerprint({"p": a}), fingerprint({"p": b}), "p")
    assert abs(estimate - exact_jaccard(a, b)) < 0.1


def test_short_parts_are_not_compared() -> None:
    a = fingerprint({"yes": "Yes, I did.", "long": essay(100)})
    b = fingerprint({"yes": "Yes, I did.", "long": essay(100)})
    assert {s.part for s in compare(a, b)} == {"long", WHOLE}


def test_text_moved_between_parts_is_found_in_the_whole() -> None:
    text = essay(300)
    a = fingerprint({"Part 1": text, "Part 2": essay(300)})
    b = fingerprint({"Part 1": essay(300), "Part 2": text})
    scores = {s.part: s.score for s in compare(a, b)}
    assert scores["Part 1"] == 0 and scores["Part 2"] == 0
    assert scores[WHOLE] > 0.4


def test_fingerprints_round_trip_through_json() -> None:
    original = fingerprint({"Part 1, question 1": essay(500), "file: lesson plan": essay(50)})
    stored = json.loads(json.dumps(original.to_json()))
    assert Fingerprint.from_json(stored) == original
    assert all(h < 2**53 for h in stored["parts"][WHOLE]["hashes"])
    assert len(json.dumps(stored)) < 10_000
    with pytest.raises(ValueError):
        Fingerprint.from_json({**stored, "format": 99})
    with pytest.raises(ValueError):
        compare(original, fingerprint({"p": essay(100)}, sketch_size=64))


def test_most_similar_finds_the_copies_among_thousands() -> None:
    rng = random.Random(5)
    new_text = essay(600, rng)
    earlier = [(n, fingerprint({"p": essay(300, rng)})) for n in range(2_000)]
    changed = [w if n % 40 else "changed" for n, w in enumerate(new_text.split())]
    earlier.insert(700, ("near copy", fingerprint({"p": " ".join(changed)})))
    earlier.insert(1500, ("exact copy", fingerprint({"p": new_text})))
    earlier.insert(30, ("half", fingerprint({"p": " ".join(new_text.split()[:200]) + " "
                                                    + essay(400, rng)})))  # fmt: skip
    new = fingerprint({"p": new_text})
    found = most_similar(new, earlier, threshold=0.8)
    assert [s.key for s in found] == ["exact copy", "near copy"]
    assert found[0].score == 1.0 and found[0].parts[0].part in ("p", WHOLE)
    assert [s.key for s in most_similar(new, earlier, threshold=0.1, limit=3)] == [
        "exact copy",
        "near copy",
        "half",
    ]


def test_reflections_show_the_shared_passages_as_written() -> None:
    mine = (
        "This term I learned that Planning Ahead, with the pupils, matters more than I thought. "
        "My own surprise was how quickly the quiet ones joined in."
    )
    theirs = (
        "We learned that planning ahead with the pupils matters more than we expected, "
        "and the team met every week."
    )
    result = compare_reflections(mine, theirs)
    assert result.shared_passages == [
        "learned that Planning Ahead, with the pupils, matters more than"
    ]
    assert 0 < result.containment < 0.5
    assert not result.too_similar(0.8)
    assert compare_reflections(mine, mine).too_similar(0.8)
    unrelated = compare_reflections(mine, "Completely different words about other things here.")
    assert unrelated.containment == 0 and unrelated.shared_passages == []
    assert compare_reflections(mine, "").shared_passages == []


def test_boilerplate_such_as_a_template_is_not_counted_as_copying() -> None:
    template = essay(300)  # a lesson-plan template given with the micro-credential
    a = template + " " + essay(200)
    b = template + " " + essay(200)
    assert compare(fingerprint({"p": a}), fingerprint({"p": b}))[0].score > 0.5
    plain = compare(fingerprint({"p": a}, boilerplate=[template]),
                    fingerprint({"p": b}, boilerplate=[template]))  # fmt: skip
    assert plain[0].score < 0.05


def test_a_quoted_reflection_prompt_is_not_a_shared_passage() -> None:
    prompt = "Describe what you would do differently next time and why."
    mine = f"{prompt} I would start the group work earlier in the lesson."
    theirs = f"{prompt} Next time our team would plan the materials on Monday."
    assert compare_reflections(mine, theirs).shared_passages
    assert compare_reflections(mine, theirs, boilerplate=[prompt]).shared_passages == []
