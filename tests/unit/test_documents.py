"""Evidence documents: text and metadata are found, and blind copies lose every identifying
field while the body stays as it was. In the samples the learner's family name (Lovelace)
appears only in metadata, so a copy must not contain it anywhere; the body names Grace Hopper,
who must still be there."""

from __future__ import annotations

import io
import struct
import tracemalloc
import wave
import zipfile
from collections.abc import Callable
from pathlib import Path

import mutagen
import pikepdf
import pytest
from PIL import Image

from lti_tool.evidence import documents
from lti_tool.evidence.documents import (
    CorruptDocument,
    DocumentError,
    EncryptedDocument,
    extract,
    strip_metadata,
)
from tests.unit import document_samples as samples
from tests.unit.test_evidence_storage import pdf_bytes, webm_bytes

ODT = "application/vnd.oasis.opendocument.text"
# name -> (builder, media type, body text expected in original and copy)
CASES: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "pdf": (samples.write_pdf, documents.PDF, samples.BODY_SENTENCE),
    "docx": (samples.write_docx, documents.DOCX, samples.BODY_SENTENCE),
    "xlsx": (samples.write_xlsx, documents.XLSX, "Checked by Grace Hopper"),
    "pptx": (samples.write_pptx, documents.PPTX, "Say thank you to Grace Hopper"),
    "odt": (samples.write_odt, ODT, samples.BODY_SENTENCE),
    "jpg": (samples.write_jpeg, documents.JPEG, ""),
    "png": (samples.write_png, documents.PNG, ""),
    "webp": (samples.write_webp, documents.WEBP, ""),
    "gif": (samples.write_gif, documents.GIF, ""),
    "mp3": (samples.write_mp3, documents.MP3, ""),
    "opus": (samples.write_opus, documents.OGG, ""),
    "wav": (samples.write_wav, "audio/wav", ""),
    "mp4": (samples.write_mp4, "video/mp4", ""),
    "webm": (samples.write_webm, documents.WEBM, ""),
}


def all_bytes(path: Path, media_type: str) -> bytes:
    """Everything a reader of the file could get at: raw bytes, ZIP members inflated, PDF
    streams decoded."""
    data = path.read_bytes()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as package:
            data += b"".join(package.read(name) for name in package.namelist())
    if media_type == documents.PDF:
        with pikepdf.open(path) as pdf:
            for obj in pdf.objects:
                if isinstance(obj, pikepdf.Stream):
                    data += obj.read_bytes()
    return data


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path, str, str]:
    build, media_type, body = CASES[request.param]
    return request.param, build(tmp_path / f"original.{request.param}"), media_type, body


def test_extract_finds_the_names_in_metadata_and_body(case) -> None:
    name, path, media_type, body = case
    found = extract(path, media_type)
    values = " | ".join(field.value for field in found.metadata)
    assert "Lovelace" in values, found.metadata
    if body:
        assert body in found.text
    assert found.complete


def test_strip_removes_every_identifying_field_and_keeps_the_body(case, tmp_path: Path) -> None:
    name, path, media_type, body = case
    copy = tmp_path / f"copy.{name}"
    report = strip_metadata(path, copy, media_type)
    assert report.cleaned, report.not_removed
    assert any("Lovelace" in field.value for field in report.removed)
    after = extract(copy, media_type)
    assert not [f for f in after.metadata if "Lovelace" in f.value or "Hopper" in f.value]
    assert b"lovelace" not in all_bytes(copy, media_type).lower()
    if body:
        assert body in after.text
        assert [p.text for p in after.body] == [p.text for p in extract(path, media_type).body]


def test_metadata_places_say_what_each_field_is(tmp_path: Path) -> None:
    docx = extract(samples.write_docx(tmp_path / "a.docx"), documents.DOCX)
    places = {(f.place, f.value) for f in docx.metadata}
    assert ("author", samples.LEARNER) in places
    assert ("last modified by", samples.OTHER) in places
    assert ("comment author", samples.LEARNER) in places
    assert ("tracked-change author", samples.OTHER) in places
    assert ("company", "Lovelace Academy") in places
    pdf = extract(samples.write_pdf(tmp_path / "a.pdf"), documents.PDF)
    places = {(f.place, f.value) for f in pdf.metadata}
    assert ("document info Author", samples.LEARNER) in places
    assert ("XMP dc:creator", samples.LEARNER) in places
    assert ("page 1, comment author", samples.LEARNER) in places
    assert [p.place for p in pdf.body] == ["page 1, comment", "page 1", "page 2"]
    jpeg = extract(samples.write_jpeg(tmp_path / "a.jpg"), documents.JPEG)
    places = {f.place for f in jpeg.metadata}
    assert {"EXIF Artist", "EXIF GPS position", "XMP dc:creator", "IPTC by-line (author)"} <= places
    assert "51.50000, -0.11667" in {f.value for f in jpeg.metadata}


def test_office_body_places_follow_the_document_order(tmp_path: Path) -> None:
    pptx = extract(samples.write_pptx(tmp_path / "a.pptx"), documents.PPTX)
    assert [(p.place, p.text) for p in pptx.body] == [
        ("slide 1", "First slide"),  # slide2.xml comes first in the presentation
        ("slide 2", "Second slide"),
        ("slide 2, notes", "Say thank you to Grace Hopper"),
    ]
    xlsx = extract(samples.write_xlsx(tmp_path / "a.xlsx"), documents.XLSX)
    assert ("sheet Budget, cell A2", "Checked by Grace Hopper") in [
        (p.place, p.text) for p in xlsx.body
    ]
    odt = extract(samples.write_odt(tmp_path / "a.odt"), ODT)
    assert "Second paragraph" in odt.text
    assert samples.LEARNER not in odt.text  # the comment's author is metadata, not body text


def test_office_copy_keeps_other_parts_byte_for_byte_and_namespace_prefixes(
    tmp_path: Path,
) -> None:
    original = samples.write_docx(tmp_path / "a.docx")
    copy = tmp_path / "b.docx"
    strip_metadata(original, copy, documents.DOCX)
    with zipfile.ZipFile(original) as before, zipfile.ZipFile(copy) as after:
        assert before.namelist() == after.namelist()
        for name in ("[Content_Types].xml", "word/_rels/document.xml.rels"):
            assert before.read(name) == after.read(name)
        document = after.read("word/document.xml").decode()
    # Word refuses a file whose prefixes listed in mc:Ignorable were renamed (ns0:...).
    assert 'mc:Ignorable="w15"' in document and "<w:ins " in document
    assert 'w:author="Anonymous"' in document


def test_opendocument_copy_keeps_mimetype_first_and_stored(tmp_path: Path) -> None:
    copy = tmp_path / "b.odt"
    strip_metadata(samples.write_odt(tmp_path / "a.odt"), copy, ODT)
    with zipfile.ZipFile(copy) as package:
        first = package.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED


@pytest.mark.parametrize("name", ["jpg", "png", "webp", "gif"])
def test_images_are_not_re_encoded(name: str, tmp_path: Path) -> None:
    build, media_type, _ = CASES[name]
    original = build(tmp_path / f"a.{name}")
    copy = tmp_path / f"b.{name}"
    strip_metadata(original, copy, media_type)
    with Image.open(original) as before, Image.open(copy) as after:
        assert after.size == before.size
        assert getattr(after, "n_frames", 1) == getattr(before, "n_frames", 1)
        for frame in range(getattr(before, "n_frames", 1)):
            before.seek(frame)
            after.seek(frame)
            assert after.tobytes() == before.tobytes()
        assert "comment" not in after.info
        if name == "gif":
            assert after.info.get("loop") == 0  # still loops: NETSCAPE2.0 is kept
    if name == "jpg":  # the compressed scan is the same bytes: not decoded and encoded again
        scan = original.read_bytes().split(b"\xff\xda", 1)[1].split(b"\xff\xd9", 1)[0]
        assert scan in copy.read_bytes()
        assert copy.read_bytes().endswith(b"\xff\xd9")  # the trailer after the image is gone


def test_audio_and_video_stay_playable_with_the_same_data(tmp_path: Path) -> None:
    mp3 = samples.write_mp3(tmp_path / "a.mp3")
    strip_metadata(mp3, tmp_path / "b.mp3", documents.MP3)
    frames = samples.mp3_bytes(40)[10:]
    assert (tmp_path / "b.mp3").read_bytes() == frames  # ID3v2 and ID3v1 gone, frames intact
    movie = samples.write_mp4(tmp_path / "a.mp4", mdat_size=4096)
    strip_metadata(movie, tmp_path / "b.mp4", "video/mp4")
    assert (tmp_path / "b.mp4").stat().st_size == movie.stat().st_size  # nothing moved
    assert not mutagen.File(tmp_path / "b.mp4").tags
    wav = samples.write_wav(tmp_path / "a.wav")
    strip_metadata(wav, tmp_path / "b.wav", "audio/wav")
    with wave.open(str(wav)) as before, wave.open(str(tmp_path / "b.wav")) as after:
        assert after.readframes(1000) == before.readframes(1000)
    opus = samples.write_opus(tmp_path / "a.opus")
    strip_metadata(opus, tmp_path / "b.opus", documents.OGG)
    assert not mutagen.File(tmp_path / "b.opus").tags


def _with_update(pdf: bytes, author: str) -> bytes:
    """pdf plus an incremental update: a new info dictionary, the earlier one left in place."""
    size = int(pdf.rsplit(b"/Size ", 1)[1].split()[0])
    previous = int(pdf.rsplit(b"startxref", 1)[1].split()[0])
    offset = len(pdf)
    update = b"%d 0 obj\n<< /Author (%s) >>\nendobj\n" % (size, author.encode())
    xref = offset + len(update)
    update += b"xref\n%d 1\n%010d 00000 n \n" % (size, offset)
    update += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R /Prev %d >>\n" % (
        size + 1,
        size,
        previous,
    )
    return pdf + update + b"startxref\n%d\n%%%%EOF\n" % xref


def test_pdf_copy_drops_earlier_revisions_of_the_metadata(tmp_path: Path) -> None:
    original = tmp_path / "a.pdf"
    data = _with_update(_with_update(pdf_bytes("Lesson plan"), samples.LEARNER), "Someone Else")
    original.write_bytes(data)
    assert [f.value for f in extract(original, documents.PDF).metadata] == ["Someone Else"]
    assert b"Lovelace" in original.read_bytes()  # still inside the file, in an old revision
    copy = tmp_path / "b.pdf"
    report = strip_metadata(original, copy, documents.PDF)
    assert report.cleaned
    assert b"lovelace" not in all_bytes(copy, documents.PDF).lower()
    assert b"Someone Else" not in all_bytes(copy, documents.PDF)
    assert extract(copy, documents.PDF).text == "Lesson plan"


def test_password_protected_files_raise_encrypted(tmp_path: Path) -> None:
    pdf = samples.write_pdf(tmp_path / "a.pdf")
    locked = tmp_path / "locked.pdf"
    with pikepdf.open(pdf) as document:
        document.save(locked, encryption=pikepdf.Encryption(user="secret", owner="secret"))
    with pytest.raises(EncryptedDocument) as raised:
        extract(locked, documents.PDF)
    assert "password" in raised.value.message
    with pytest.raises(EncryptedDocument):
        strip_metadata(locked, tmp_path / "copy.pdf", documents.PDF)
    assert not (tmp_path / "copy.pdf").exists()
    office = tmp_path / "locked.docx"  # Office encrypts into an OLE container, not a ZIP
    office.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4000))
    with pytest.raises(EncryptedDocument):
        extract(office, documents.DOCX)


def test_a_pdf_with_only_an_owner_password_is_read_and_cleaned(tmp_path: Path) -> None:
    pdf = samples.write_pdf(tmp_path / "a.pdf")
    restricted = tmp_path / "restricted.pdf"
    with pikepdf.open(pdf) as document:
        document.save(restricted, encryption=pikepdf.Encryption(user="", owner="owner"))
    assert samples.BODY_SENTENCE in extract(restricted, documents.PDF).text
    report = strip_metadata(restricted, tmp_path / "copy.pdf", documents.PDF)
    assert report.cleaned


def _truncated(build: Callable[[Path], Path], tmp_path: Path, name: str) -> Path:
    path = build(tmp_path / f"whole.{name}")
    broken = tmp_path / f"broken.{name}"
    broken.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])
    return broken


@pytest.mark.parametrize("name", sorted(CASES))
def test_cut_files_give_a_document_error_or_a_report_never_a_crash(
    name: str, tmp_path: Path
) -> None:
    """A file cut short: some readers recover what is there (qpdf rebuilds a PDF's table),
    others cannot; either way the caller gets a DocumentError or a result, and no copy is
    left behind after an error."""
    build, media_type, _ = CASES[name]
    broken = _truncated(build, tmp_path, name)
    errors = 0
    for attempt in (lambda: extract(broken, media_type),
                    lambda: strip_metadata(broken, tmp_path / "copy", media_type)):  # fmt: skip
        try:
            attempt()
        except DocumentError as error:
            assert error.message
            errors += 1
    if not (tmp_path / "copy").exists():
        assert errors
    if name in ("docx", "xlsx", "pptx", "odt", "mp4", "wav", "png", "jpg"):
        assert errors  # these formats cannot be read without their end


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (b"%PDF-1.7\n garbage", documents.PDF),
        (b"PK\x03\x04 not really a zip", documents.DOCX),
        (b"\xff\xd8\xff\xe1\x00\x02", documents.JPEG),
        (b"\x89PNG\r\n\x1a\n\x00\x00", documents.PNG),
        (b"RIFF\x00\x00\x00\x00WAVE", "audio/wav"),
        (b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(20), documents.MP3),
        (b"OggS" + bytes(30), documents.OGG),
    ],
)
def test_garbage_raises_corrupt(data: bytes, media_type: str, tmp_path: Path) -> None:
    path = tmp_path / "garbage"
    path.write_bytes(data)
    with pytest.raises(DocumentError):
        extract(path, media_type)
    with pytest.raises(DocumentError):
        strip_metadata(path, tmp_path / "copy", media_type)


def test_types_that_cannot_be_cleaned_are_reported_not_passed(tmp_path: Path) -> None:
    other = tmp_path / "a.bin"
    other.write_bytes(webm_bytes())
    report = strip_metadata(other, tmp_path / "b.bin", "application/x-unknown")
    assert not report.cleaned and report.not_removed
    assert (tmp_path / "b.bin").read_bytes() == other.read_bytes()
    assert not documents.can_strip("application/x-unknown")
    assert not extract(other, "application/x-unknown").complete


@pytest.mark.parametrize("live", [False, True])
def test_webm_tags_become_void_elements_of_the_same_size(live: bool, tmp_path: Path) -> None:
    original = samples.write_webm(tmp_path / "a.webm", live=live)
    places = {f.place for f in extract(original, documents.WEBM).metadata}
    assert places == {"title", "track name", "ARTIST tag"}
    copy = tmp_path / "b.webm"
    assert strip_metadata(original, copy, documents.WEBM).cleaned
    data = copy.read_bytes()
    assert len(data) == original.stat().st_size
    assert samples.FRAME in data and b"V_VP8" in data  # the video and its codec are kept
    assert b"Lovelace" not in data and b"ARTIST" not in data


def test_xml_entities_are_not_expanded(tmp_path: Path) -> None:
    """A document cannot make the server read its files (XXE) or expand entity bombs."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    core = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
        'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<dc:creator>&x;</dc:creator></cp:coreProperties>"
    )
    path = samples.write_docx(tmp_path / "a.docx")
    data = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(data, "w") as target:
        for info in source.infolist():
            content = core if info.filename == "docProps/core.xml" else source.read(info)
            target.writestr(info.filename, content)
    path.write_bytes(data.getvalue())
    try:
        found = extract(path, documents.DOCX)
    except CorruptDocument:
        return
    assert "TOP-SECRET" not in " ".join(f.value for f in found.metadata)


def test_strip_streams_large_files(tmp_path: Path) -> None:
    """A 24 MB video and a document holding a 24 MB picture are copied without holding them in
    memory (the bench does 200 MB)."""
    movie = samples.write_mp4(tmp_path / "big.mp4", mdat_size=24 * 1024 * 1024)
    docx = samples.write_docx(tmp_path / "big.docx")
    block = bytes(range(256)) * 4096
    with (
        zipfile.ZipFile(docx, "a") as package,
        package.open("word/media/image1.png", "w", force_zip64=True) as out,
    ):
        for _ in range(24):
            out.write(block)
    tracemalloc.start()
    try:
        strip_metadata(movie, tmp_path / "copy.mp4", "video/mp4")
        strip_metadata(docx, tmp_path / "copy.docx", documents.DOCX)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1024 / 1024:.1f} MB"
    with zipfile.ZipFile(tmp_path / "copy.docx") as package:
        assert package.getinfo("word/media/image1.png").file_size == 24 * 1024 * 1024


def test_body_text_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "MAX_BODY_CHARS", 20)
    path = samples.write_docx(tmp_path / "a.docx", ["x" * 15, "y" * 15])
    found = extract(path, documents.DOCX)
    assert [p.text for p in found.body] == ["x" * 15]
    assert not found.complete and found.notes


@pytest.mark.parametrize("name", ["mp3", "mp4", "docx", "pdf"])
def test_the_original_is_left_untouched(name: str, tmp_path: Path) -> None:
    build, media_type, _ = CASES[name]
    original = build(tmp_path / f"a.{name}")
    before = original.read_bytes()
    strip_metadata(original, tmp_path / f"b.{name}", media_type)
    assert original.read_bytes() == before


def test_wav_chunks_become_padding_of_the_same_size(tmp_path: Path) -> None:
    wav = samples.write_wav(tmp_path / "a.wav")
    copy = tmp_path / "b.wav"
    strip_metadata(wav, copy, "audio/wav")
    data = copy.read_bytes()
    assert len(data) == wav.stat().st_size
    assert b"JUNK" in data and b"INFO" not in data
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8


def test_embedded_workbooks_and_local_file_links_are_cleaned(tmp_path: Path) -> None:
    """A chart's workbook inside a Word file has its own author; a template linked from the
    author's folder names their account."""
    workbook = samples.write_xlsx(tmp_path / "chart.xlsx")
    path = samples.write_docx(tmp_path / "a.docx")
    template = (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
        'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
        'schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate" '
        'Target="file:///C:\\Users\\alovelace\\Templates\\Normal.dotm" TargetMode="External"/>'
        "</Relationships>"
    )
    with zipfile.ZipFile(path, "a") as package:
        package.write(workbook, "word/embeddings/Microsoft_Excel_Worksheet.xlsx")
        package.writestr("word/_rels/settings.xml.rels", template)
    found = {(f.place, f.value) for f in extract(path, documents.DOCX).metadata}
    assert ("embedded Microsoft_Excel_Worksheet.xlsx: author", samples.LEARNER) in found
    assert ("linked file path", "file:///C:\\Users\\alovelace\\Templates\\Normal.dotm") in found
    copy = tmp_path / "b.docx"
    report = strip_metadata(path, copy, documents.DOCX)
    assert report.cleaned, report.not_removed
    assert b"lovelace" not in all_bytes(copy, documents.DOCX).lower()
    with zipfile.ZipFile(copy) as package:
        inner = package.read("word/embeddings/Microsoft_Excel_Worksheet.xlsx")
        assert b"Normal.dotm" in package.read("word/_rels/settings.xml.rels")
    (tmp_path / "inner.xlsx").write_bytes(inner)
    inner_found = extract(tmp_path / "inner.xlsx", documents.XLSX)
    assert "Checked by Grace Hopper" in inner_found.text  # the workbook itself is intact
    assert b"lovelace" not in all_bytes(tmp_path / "inner.xlsx", documents.XLSX).lower()


def test_a_pdf_attachment_keeps_the_copy_from_being_called_clean(tmp_path: Path) -> None:
    path = samples.write_pdf(tmp_path / "a.pdf")
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        pdf.attachments["notes.docx"] = pikepdf.AttachedFileSpec(pdf, b"anything")
        pdf.save(path)
    assert ("attached file (not cleaned)", "notes.docx") in {
        (f.place, f.value) for f in extract(path, documents.PDF).metadata
    }
    report = strip_metadata(path, tmp_path / "b.pdf", documents.PDF)
    assert not report.cleaned
    assert any("notes.docx" in reason for reason in report.not_removed)


def test_zip_bombs_and_copies_onto_the_original_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = samples.write_docx(tmp_path / "a.docx")
    with pytest.raises(ValueError):
        strip_metadata(path, path, documents.DOCX)
    monkeypatch.setattr(documents, "MAX_PACKAGE", 1000)
    with pytest.raises(CorruptDocument, match="expands"):
        extract(path, documents.DOCX)
