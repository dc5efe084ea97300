"""Confidentiality check: names and e-mails of the learner and course members are found where
they are, with their place, and ordinary words are not mistaken for names."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lti_tool.evidence import documents
from lti_tool.evidence.confidentiality import (
    EMAIL,
    FAMILY_NAME,
    FULL_NAME,
    GIVEN_NAME,
    HIGH,
    IN_ANSWER,
    IN_FILE_METADATA,
    IN_FILE_NAME,
    IN_FILE_TEXT,
    LOW,
    OTHER,
    OWN,
    FileToCheck,
    IdentityIndex,
    Person,
    check,
)
from lti_tool.evidence.documents import DocumentText, MetadataField, TextPart
from tests.unit import document_samples as samples

ADA = Person(name="Ada Lovelace", given_name="Ada", family_name="Lovelace",
             email="Ada.Lovelace@Example.org")  # fmt: skip
GRACE = Person(name="Grace Hopper", email="grace@example.org")


def found(index: IdentityIndex, text: str) -> list[tuple[str, str, str]]:
    return [(m.matched, m.identity, m.kind) for m in index.find(text)]


@pytest.fixture
def index() -> IdentityIndex:
    return IdentityIndex(ADA, [GRACE, Person(name="José Núñez"), Person(name="Mark Green")])


def test_full_names_in_any_case_and_accents(index: IdentityIndex) -> None:
    text = "ADA LOVELACE met grace hopper and Jose Nunez; later JOSÉ NÚÑEZ came."
    assert found(index, text) == [
        ("ADA LOVELACE", OWN, FULL_NAME),
        ("grace hopper", OTHER, FULL_NAME),
        ("Jose Nunez", OTHER, FULL_NAME),
        ("JOSÉ NÚÑEZ", OTHER, FULL_NAME),
    ]


def test_family_name_first_and_punctuation_between(index: IdentityIndex) -> None:
    assert found(index, "Signed: Lovelace, Ada.") == [("Lovelace, Ada", OWN, FULL_NAME)]
    assert found(index, "Hopper Grace said") == [("Hopper Grace", OTHER, FULL_NAME)]


def test_whole_words_only(index: IdentityIndex) -> None:
    assert found(index, "Adamson and Lovelaces; gracehopper; Adalovelace") == []


def test_emails_in_any_case_without_a_second_name_hit(index: IdentityIndex) -> None:
    text = "Write to ADA.LOVELACE@example.ORG or <mailto:Grace@Example.org>."
    assert found(index, text) == [
        ("ADA.LOVELACE@example.ORG", OWN, EMAIL),
        ("Grace@Example.org", OTHER, EMAIL),
    ]
    assert found(index, "unknown@example.org") == []


def test_the_learners_single_names_are_low_severity_when_capitalised(index: IdentityIndex) -> None:
    matches = index.find("Then Ada asked; the lovelace data; ada was lower case. Ms Lovelace.")
    assert [(m.matched, m.kind, m.severity) for m in matches] == [
        ("Ada", GIVEN_NAME, LOW),
        ("Lovelace", FAMILY_NAME, LOW),
    ]
    assert index.find("Ada Lovelace")[0].severity == HIGH  # one hit, not three


def test_common_words_are_not_single_name_hits() -> None:
    index = IdentityIndex(Person(name="Grace Will"), [])
    assert found(index, "Grace under pressure. Will they? Grace Will wrote it.") == [
        ("Grace Will", OWN, FULL_NAME)
    ]


def test_a_full_name_of_common_words_must_be_capitalised(index: IdentityIndex) -> None:
    assert found(index, "mark green squares on the sheet") == []
    assert found(index, "ask Mark Green") == [("Mark Green", OTHER, FULL_NAME)]


def test_other_members_single_names_only_when_asked() -> None:
    members = [Person(name="Priya Raman")]
    assert found(IdentityIndex(ADA, members), "Priya helped") == []
    wide = IdentityIndex(ADA, members, others_single_names=True)
    assert [(m.matched, m.identity, m.severity) for m in wide.find("Priya helped")] == [
        ("Priya", OTHER, LOW)
    ]


def test_the_learner_listed_in_the_roster_is_still_own() -> None:
    index = IdentityIndex(ADA, [Person(name="Ada Lovelace", email="ada.lovelace@example.org")])
    assert found(index, "Ada Lovelace") == [("Ada Lovelace", OWN, FULL_NAME)]
    twin = IdentityIndex(ADA, [Person(name="Ada Lovelace", email="other@example.org")])
    assert found(twin, "Ada Lovelace")[0][1] == OWN


def test_hyphens_apostrophes_and_middle_names() -> None:
    index = IdentityIndex(Person(name="Jean-Luc O'Brien"), [Person(name="Mary Ann Smith Jones")])
    assert found(index, "Jean Luc O’Brien and jean-luc obrien") == [
        ("Jean Luc O’Brien", OWN, FULL_NAME)
    ]
    assert found(index, "Mary Ann Smith Jones and Mary Jones") == [
        ("Mary Ann Smith Jones", OTHER, FULL_NAME),
        ("Mary Jones", OTHER, FULL_NAME),
    ]


def test_only_a_name_or_only_an_email() -> None:
    index = IdentityIndex(Person(email="zorro1975@example.org"), [Person(name="Cher")])
    assert found(index, "Cher sang; zorro1975 posted") == [("zorro1975", OWN, "e-mail user name")]


def test_places_of_hits_in_answers_files_and_metadata(index: IdentityIndex) -> None:
    document = DocumentText(
        documents.DOCX,
        body=[TextPart("paragraph 3", "Reviewed by Grace Hopper.")],
        metadata=[MetadataField("author", "Ada Lovelace")],
    )
    heic = DocumentText("image/heic", metadata=[MetadataField("title", "Ada Lovelace")])
    report = check(
        index,
        {"Part 1, question 2": "In my class, Ada Lovelace (me) taught.", "Part 2, question 1": ""},
        [
            FileToCheck("plan-ada-lovelace.docx", documents.DOCX, document),
            FileToCheck("photo.heic", "image/heic", heic),  # a type strip cannot clean
            FileToCheck("broken.pdf", documents.PDF, None),
        ],
    )
    assert [(h.place, h.where, h.removed_automatically) for h in report.hits] == [
        ("Part 1, question 2, word 4", IN_ANSWER, False),
        ("file name plan-ada-lovelace.docx", IN_FILE_NAME, True),
        ("file plan-ada-lovelace.docx, paragraph 3", IN_FILE_TEXT, False),
        ("file plan-ada-lovelace.docx, metadata: author", IN_FILE_METADATA, True),
        ("file photo.heic, metadata: title", IN_FILE_METADATA, False),
    ]
    assert [h.place for h in report.to_edit] == [
        "Part 1, question 2, word 4",
        "file plan-ada-lovelace.docx, paragraph 3",
        "file photo.heic, metadata: title",
    ]
    assert len(report.removed_automatically) == 2
    assert report.unchecked == ["file broken.pdf: could not be read, so it was not checked"]


def test_real_documents_end_to_end(index: IdentityIndex, tmp_path: Path) -> None:
    path = samples.write_docx(tmp_path / "plan.docx")
    report = check(index, {}, [FileToCheck("plan.docx", documents.DOCX,
                                           documents.extract(path, documents.DOCX))])  # fmt: skip
    places = {(h.place, h.matched, h.identity) for h in report.hits}
    assert ("file plan.docx, paragraph 2", "Grace Hopper", OTHER) in places
    assert ("file plan.docx, metadata: author", "Ada Lovelace", OWN) in places
    assert ("file plan.docx, metadata: comment author", "Ada Lovelace", OWN) in places
    assert ("file plan.docx, metadata: tracked-change author", "Grace Hopper", OTHER) in places
    account = "file plan.docx, metadata: account of a comment author or reviewer"
    assert (account, "ada.lovelace@example.org", OWN) in places
    copy = tmp_path / "copy.docx"
    documents.strip_metadata(path, copy, documents.DOCX)
    after = check(index, {}, [FileToCheck("x.docx", documents.DOCX,
                                          documents.extract(copy, documents.DOCX))])  # fmt: skip
    assert [h.where for h in after.hits] == [IN_FILE_TEXT]  # only the body's name is left


def _roster(size: int, seed: int = 7) -> list[Person]:
    rng = random.Random(seed)
    given = [f"Given{n}" for n in range(400)] + ["Maria", "John", "Wei", "Fatima", "Olu"]
    family = [f"Family{n}" for n in range(600)] + ["Garcia", "Smith", "Chen", "Okafor"]
    people = set()
    while len(people) < size:
        people.add((rng.choice(given), rng.choice(family)))
    return [Person(given_name=g, family_name=f, email=f"{g}.{f}@school.example".lower())
            for g, f in sorted(people)]  # fmt: skip


def test_a_50000_member_roster_finds_exactly_the_planted_names() -> None:
    roster = _roster(50_000)
    planted = [roster[123], roster[40_000], roster[-1]]
    index = IdentityIndex(ADA, roster)
    rng = random.Random(3)
    # "Maria" is a given name of thousands of members: alone, it is no hit.
    filler = ["the", "pupils", "worked", "in", "groups", "Maria", "on", "fractions", "Will"]
    words = [rng.choice(filler) for _ in range(5_000)]
    words[100:102] = [planted[0].given_name, planted[0].family_name]
    words[2_500:2_502] = [planted[1].given_name.upper(), planted[1].family_name.upper()]
    words[4_000:4_002] = ["Ada", "Lovelace"]
    words[4_999] = planted[2].email.upper()
    matches = index.find(" ".join(words))
    assert [(m.word, m.identity, m.kind) for m in matches] == [
        (101, OTHER, FULL_NAME),
        (2_501, OTHER, FULL_NAME),
        (4_001, OWN, FULL_NAME),
        (5_000, OTHER, EMAIL),
    ]
    assert matches[0].matched == f"{planted[0].given_name} {planted[0].family_name}"
