"""Evidence uploads on local storage: checked by content while streaming, kept whole or not at
all, bounded in memory. The sample builders here are shared with the S3 integration tests."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from lti_tool.evidence.storage import (
    MB,
    LocalStorage,
    Storage,
    UploadPolicy,
    UploadRefused,
    make_storage,
)
from lti_tool.services import Services
from lti_tool.settings import SettingsError, load_settings


# -- samples ---------------------------------------------------------------------------------
def pdf_bytes(text: str = "Evidence") -> bytes:
    """A real one-page PDF with a correct cross-reference table."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _zip(entries: list[tuple[str, str]], stored_first: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, text) in enumerate(entries):
            if stored_first and index == 0:
                archive.writestr(zipfile.ZipInfo(name), text, compress_type=zipfile.ZIP_STORED)
            else:
                archive.writestr(name, text)
    return buffer.getvalue()


CT = "http://schemas.openxmlformats.org/package/2006/content-types"
RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
OFFICE_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"


def ooxml_bytes(folder: str, main: str, content_type: str, body: str) -> bytes:
    """A minimal Office Open XML package, in the order Word and Excel write it."""
    return _zip(
        [
            (
                "[Content_Types].xml",
                f'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="{CT}">'
                '<Default Extension="rels" '
                'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                f'<Override PartName="/{folder}/{main}" ContentType="{content_type}"/></Types>',
            ),
            (
                "_rels/.rels",
                f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{RELS}">'
                f'<Relationship Id="rId1" Type="{OFFICE_DOC}" Target="{folder}/{main}"/>'
                "</Relationships>",
            ),
            (f"{folder}/{main}", body),
        ]
    )


def docx_bytes() -> bytes:
    """A real Word document (opens in Word and LibreOffice): one paragraph."""
    return ooxml_bytes(
        "word",
        "document.xml",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
        '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w='
        '"http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r>'
        "<w:t>My reflection</w:t></w:r></w:p></w:body></w:document>",
    )


def xlsx_bytes() -> bytes:
    return ooxml_bytes(
        "xl",
        "workbook.xml",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        "<workbook/>",
    )


def pptx_bytes() -> bytes:
    return ooxml_bytes(
        "ppt",
        "presentation.xml",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
        "<presentation/>",
    )


def odt_bytes() -> bytes:
    """OpenDocument: the first entry is `mimetype`, stored uncompressed, as the standard says."""
    return _zip(
        [
            ("mimetype", "application/vnd.oasis.opendocument.text"),
            ("content.xml", "<office:document-content/>"),
            ("META-INF/manifest.xml", "<manifest:manifest/>"),
        ],
        stored_first=True,
    )


def plain_zip_bytes() -> bytes:
    return _zip([("notes.txt", "not a document"), ("more.txt", "still not")])


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes() -> bytes:
    """A real 2x2 RGB PNG."""
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def mp3_bytes(frames: int = 20) -> bytes:
    """MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz: 417 bytes each) after an ID3v2 tag."""
    tag = b"ID3\x03\x00\x00\x00\x00\x00\x00"
    frame = b"\xff\xfb\x90\x64" + bytes(417 - 4)
    return tag + frame * frames


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def iso_bytes(major: bytes, compatible: list[bytes]) -> bytes:
    """An ISO base media file (MP4, M4A, MOV): ftyp box, then an (empty) mdat box."""
    return _box(b"ftyp", major + b"\x00\x00\x02\x00" + b"".join(compatible)) + _box(
        b"mdat", bytes(256)
    )


def mp4_bytes() -> bytes:
    return iso_bytes(b"isom", [b"isom", b"iso2", b"avc1", b"mp41"])


def wav_bytes() -> bytes:
    """A real WAV: 0.01 s of 8 kHz 16-bit mono silence."""
    data = bytes(160)
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webm_bytes() -> bytes:
    ebml = b"\x42\x86\x81\x01" + b"\x42\x82\x84webm" + b"\x42\x87\x81\x04" + b"\x42\x85\x81\x02"
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(ebml)]) + ebml + bytes(64)


# name -> (bytes, kind, content type)
SAMPLES: dict[str, tuple[bytes, str, str]] = {
    "pdf": (pdf_bytes(), "pdf", "application/pdf"),
    "docx": (
        docx_bytes(),
        "document",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    "xlsx": (
        xlsx_bytes(),
        "document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    "pptx": (
        pptx_bytes(),
        "document",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    "odt": (odt_bytes(), "document", "application/vnd.oasis.opendocument.text"),
    "png": (png_bytes(), "image", "image/png"),
    "jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00" + bytes(200), "image", "image/jpeg"),
    "gif": (
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
        b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
        "image",
        "image/gif",
    ),
    "webp": (b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(40), "image", "image/webp"),
    "mp3": (mp3_bytes(), "audio", "audio/mpeg"),
    "m4a": (iso_bytes(b"M4A ", [b"M4A ", b"mp42", b"isom"]), "audio", "audio/mp4"),
    "wav": (wav_bytes(), "audio", "audio/wav"),
    "ogg": (b"OggS\x00\x02" + bytes(22) + b"\x01\x1e\x01vorbis" + bytes(40), "audio", "audio/ogg"),
    "mp4": (mp4_bytes(), "video", "video/mp4"),
    "mov": (iso_bytes(b"qt  ", [b"qt  "]), "video", "video/quicktime"),
    "webm": (webm_bytes(), "video", "video/webm"),
}
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(56)
MZ = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(50)


def pdf_stream(total: int, chunk: int = 64 * 1024, counter: list[int] | None = None):
    """A PDF-looking stream of `total` bytes in chunks; counts what was taken from it."""
    head = pdf_bytes()
    block = bytes(chunk)
    produced = 0
    while produced < total:
        piece = head if produced == 0 else block[: min(chunk, total - produced)]
        produced += len(piece)
        if counter is not None:
            counter[0] = produced
        yield piece


def files_in(folder: Path) -> list[Path]:
    """Every file under folder, hidden temporaries included."""
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


# -- fixtures --------------------------------------------------------------------------------
def local_storage(tmp_path: Path, **overrides: object) -> Storage:
    settings = load_settings(environ={}, instance_path=str(tmp_path / "instance"), **overrides)
    return make_storage(settings)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return local_storage(tmp_path)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "instance" / "evidence"


# -- accepted --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_allowed_type_is_accepted_by_its_content(storage: Storage, name: str) -> None:
    data, kind, content_type = SAMPLES[name]
    # The key says nothing about the type: the bytes decide.
    stored = storage.save(f"learner-1/{name}-upload.bin", data)
    assert stored.type.kind == kind
    assert stored.content_type == content_type
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert storage.exists(stored.key)
    with storage.open(stored.key) as handle:
        assert handle.read() == data


def test_real_pdf_and_docx_samples_are_well_formed() -> None:
    pdf = pdf_bytes()
    xref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[xref:].startswith(b"xref\n")
    with zipfile.ZipFile(io.BytesIO(docx_bytes())) as archive:
        assert archive.testzip() is None
        assert archive.namelist()[0] == "[Content_Types].xml"
        assert b"My reflection" in archive.read("word/document.xml")


def test_file_like_sources_are_read_in_chunks(storage: Storage, tmp_path: Path) -> None:
    from werkzeug.datastructures import FileStorage

    data = pdf_bytes() + bytes(3 * MB)  # several reads of READ_SIZE
    upload = FileStorage(stream=io.BytesIO(data), filename="essay.pdf")
    stored = storage.save("a/from-werkzeug", upload)
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    path = tmp_path / "on-disk.pdf"
    path.write_bytes(data)
    with path.open("rb") as handle:
        assert storage.save("a/from-file", handle).sha256 == stored.sha256
    assert storage.save("a/from-bytes", data).size == len(data)


def test_saving_again_replaces_and_delete_removes(storage: Storage) -> None:
    storage.save("k", pdf_bytes("first"))
    storage.save("k", pdf_bytes("second"))
    with storage.open("k") as handle:
        assert b"second" in handle.read()
    storage.delete("k")
    assert not storage.exists("k")
    storage.delete("k")  # absent: nothing happens
    with pytest.raises(FileNotFoundError):
        storage.open("k")


# -- refused ---------------------------------------------------------------------------------
def test_a_zip_named_pdf_is_refused(storage: Storage, root: Path) -> None:
    with pytest.raises(UploadRefused) as refused:
        storage.save("learner-1/report.pdf", plain_zip_bytes())
    assert refused.value.code == "type_not_allowed"
    assert refused.value.message.startswith("This file is a ZIP archive, not a PDF, a document")
    assert files_in(root) == []


@pytest.mark.parametrize("data", [ELF, MZ], ids=["elf", "mz"])
def test_executables_are_refused(storage: Storage, root: Path, data: bytes) -> None:
    with pytest.raises(UploadRefused) as refused:
        storage.save("learner-1/essay.pdf", data)
    assert refused.value.code == "type_not_allowed"
    assert "program" in refused.value.message
    assert files_in(root) == []


def test_an_old_word_document_is_refused_with_advice(storage: Storage) -> None:
    doc = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + b"\xec\xa5\xc1\x00" + bytes(600)
    with pytest.raises(UploadRefused) as refused:
        storage.save("essay.docx", doc)
    assert refused.value.message.startswith("This file is an old-format Word document (.doc)")
    assert refused.value.message.endswith(
        "Save it as PDF or in the current format (.docx, .xlsx, .pptx) and try again."
    )


def test_unknown_and_empty_content_is_refused(storage: Storage, root: Path) -> None:
    with pytest.raises(UploadRefused) as refused:
        storage.save("notes.pdf", b"just some text, not a PDF\n" * 1000)
    assert refused.value.code == "unknown_type"
    with pytest.raises(UploadRefused) as refused:
        storage.save("nothing.pdf", iter([b"", b""]))
    assert (refused.value.code, refused.value.message) == ("empty", "This file is empty.")
    assert files_in(root) == []


def test_the_type_is_refused_from_the_first_bytes(storage: Storage) -> None:
    counter = [0]

    def zip_then_more() -> Iterator[bytes]:
        head = plain_zip_bytes() + bytes(16 * 1024)
        counter[0] = len(head)
        yield head
        for _ in range(10_000):
            counter[0] += 64 * 1024
            yield bytes(64 * 1024)

    with pytest.raises(UploadRefused):
        storage.save("x", zip_then_more())
    assert counter[0] < 64 * 1024


def test_a_kind_left_out_by_configuration_is_refused(tmp_path: Path) -> None:
    storage = local_storage(tmp_path, evidence_allowed_types="pdf")
    assert storage.save("a", pdf_bytes()).type.kind == "pdf"
    with pytest.raises(UploadRefused) as refused:
        storage.save("b", png_bytes())
    assert refused.value.code == "type_not_allowed"
    assert refused.value.message == "This file is a PNG image, not a PDF."
    with pytest.raises(UploadRefused) as refused:
        storage.save("c", docx_bytes())
    assert refused.value.message == "This file is a Word document, not a PDF."


def test_too_large_is_refused_as_soon_as_the_limit_is_crossed(tmp_path: Path) -> None:
    storage = local_storage(tmp_path, evidence_max_upload_mb=1)
    counter = [0]
    chunk = 64 * 1024
    with pytest.raises(UploadRefused) as refused:
        storage.save("big", pdf_stream(1024 * MB, chunk, counter))
    assert refused.value.code == "too_large"
    assert refused.value.message.startswith("The file is larger than 1 MB, the limit for uploads.")
    assert MB < counter[0] <= MB + chunk  # stopped at the crossing, not at the end
    assert files_in(tmp_path / "instance" / "evidence") == []


def test_a_declared_size_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    storage = local_storage(tmp_path, evidence_max_upload_mb=100)
    counter = [0]
    with pytest.raises(UploadRefused) as refused:
        storage.save("big", pdf_stream(300 * MB, counter=counter), size_hint=212 * MB)
    assert refused.value.message.startswith("The file is 212 MB; the limit is 100 MB.")
    assert counter[0] == 0


# -- interrupted -----------------------------------------------------------------------------
def test_an_interrupted_upload_leaves_nothing_and_keeps_the_last_good_file(
    storage: Storage, root: Path
) -> None:
    def broken() -> Iterator[bytes]:
        yield pdf_bytes("half")
        yield bytes(2 * MB)
        raise ConnectionResetError("the browser went away")

    with pytest.raises(ConnectionResetError):
        storage.save("learner-1/new", broken())
    assert files_in(root) == []

    storage.save("learner-1/kept", pdf_bytes("good"))
    with pytest.raises(ConnectionResetError):
        storage.save("learner-1/kept", broken())
    assert files_in(root) == [root / "learner-1" / "kept"]
    with storage.open("learner-1/kept") as handle:
        assert b"good" in handle.read()


def test_stale_temporaries_of_a_killed_process_are_swept(storage: Storage, root: Path) -> None:
    assert isinstance(storage, LocalStorage)
    storage.save("learner-1/kept", pdf_bytes())
    stale = root / "learner-1" / ".upload-abc.part"
    stale.write_bytes(b"half")
    os.utime(stale, (1, 1))
    fresh = root / "learner-1" / ".upload-def.part"
    fresh.write_bytes(b"in progress")
    assert storage.remove_stale_temporaries() == 1
    assert sorted(p.name for p in files_in(root)) == [".upload-def.part", "kept"]


# -- memory ----------------------------------------------------------------------------------
def test_memory_stays_bounded_for_a_large_upload(tmp_path: Path) -> None:
    storage = local_storage(tmp_path, evidence_max_upload_mb=400)
    total = 300 * MB
    expected = hashlib.sha256()
    for piece in pdf_stream(total, chunk=MB):
        expected.update(piece)
    tracemalloc.start()
    try:
        stored = storage.save("learner-1/video", pdf_stream(total, chunk=MB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.size == total
    assert stored.sha256 == expected.hexdigest()
    assert peak < 16 * MB, f"peak {peak / MB:.1f} MB"


# -- keys and settings -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "key", ["", "../x", "a/../../x", "/etc/passwd", ".hidden", "a//b", "a/.upload-x.part", "a\\b"]
)
def test_keys_cannot_escape_or_hide(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError):
        storage.save(key, pdf_bytes())


def test_a_symlink_cannot_lead_outside(storage: Storage, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir(parents=True)
    (root / "link").symlink_to(outside)
    with pytest.raises(ValueError):
        storage.save("link/x", pdf_bytes())
    assert list(outside.iterdir()) == []


def test_settings_choose_the_storage_and_its_policy(tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            "LTI_TOOL_INSTANCE_PATH": str(tmp_path / "inst"),
            "LTI_TOOL_EVIDENCE_MAX_UPLOAD_MB": "5",
            "LTI_TOOL_EVIDENCE_ALLOWED_TYPES": "pdf, image",
        }
    )
    storage = Services(settings).storage
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "inst" / "evidence").resolve()
    assert storage.policy == UploadPolicy(5 * MB, frozenset({"pdf", "image"}))
    defaults = load_settings(environ={})
    assert UploadPolicy.from_settings(defaults) == UploadPolicy(
        200 * MB, frozenset({"pdf", "document", "image", "audio", "video"})
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"evidence_allowed_types": "pdf,spreadsheet"},
        {"evidence_allowed_types": " , "},
        {"evidence_max_upload_mb": 0},
        {"s3_endpoint_url": "http://127.0.0.1:9000"},
    ],
)
def test_wrong_storage_settings_say_what_to_set(tmp_path: Path, overrides: dict) -> None:
    with pytest.raises(SettingsError, match="LTI_TOOL_"):
        local_storage(tmp_path, **overrides)
