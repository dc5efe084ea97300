"""Evidence files as text and metadata, and blind copies without the identifying metadata.

Why: before submitting, the confidentiality check needs the words of a learner's PDF or Office
file and the names hidden in its metadata (author, comment authors, EXIF artist, ID3 tags...);
the assessment job needs a copy of each file without that metadata, so that assessors never
learn who wrote it. Both work on a path on disk and the media type that storage.detect found in
the file's bytes (never the file name).

- `extract(path, media_type) -> DocumentText`: body text by place ("page 3", "paragraph 12",
  "slide 2", "sheet Budget, cell B4") and metadata as (place, value) pairs.
- `strip_metadata(src, dst, media_type) -> StripReport`: writes the copy, then extracts the copy
  again and reports what was removed and what is still there. A type we cannot clean is copied
  as it is and reported as not cleaned (`report.cleaned` is False), never passed as clean.
- A file that cannot be read raises `CorruptDocument` or `EncryptedDocument` (both
  `DocumentError`, with a `message` for the learner), never another exception.

Large files are never read whole: PDFs go through qpdf (pikepdf), which copies streams as
they are, holding one stream at a time; Office files are rewritten member by member (only the
small XML parts that can name people are parsed); JPEG/PNG/GIF are copied segment by segment
without re-encoding; audio, video and WebP are copied (sendfile) and cleaned in place:
MP3/Ogg/FLAC tags with mutagen; MP4/M4A/MOV metadata boxes, WAV/WebP metadata chunks and WebM
tags/title/track names/attachments/chapters become padding of the same size ("free", "JUNK",
EBML Void), so no byte offset in the file moves and the media data is untouched.

What is not read: text inside pictures and recordings, and the content of files embedded in
documents (a PDF attachment, an object inside a Word file); `DocumentText.notes` says so.
"""

from __future__ import annotations

import logging
import re
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import IO, Any

from lxml import etree

log = logging.getLogger(__name__)

NEUTRAL_NAME = "Anonymous"  # what author fields of a blind copy say instead of a name
NEUTRAL_INITIALS = "A"
MAX_BODY_CHARS = 20_000_000  # text kept from one file (a check needs words, not megabytes)
MAX_XML_PART = 256 * 1024 * 1024  # uncompressed size of one Office XML part we agree to parse
MAX_PACKAGE = 4 * 1024**3  # uncompressed size of a whole Office file (a ZIP bomb is refused)
COPY_BLOCK = 1024 * 1024

PDF = "application/pdf"
_OOXML = "application/vnd.openxmlformats-officedocument."
DOCX = _OOXML + "wordprocessingml.document"
XLSX = _OOXML + "spreadsheetml.sheet"
PPTX = _OOXML + "presentationml.presentation"
_ODF = "application/vnd.oasis.opendocument."
ODF_TYPES = (_ODF + "text", _ODF + "spreadsheet", _ODF + "presentation")
JPEG, PNG, GIF, WEBP = "image/jpeg", "image/png", "image/gif", "image/webp"
MP3 = "audio/mpeg"
OGG = "audio/ogg"
FLAC_TYPES = ("audio/flac", "audio/x-flac")
WAV_TYPES = ("audio/wav", "audio/x-wav")
MP4_TYPES = ("audio/mp4", "video/mp4", "video/quicktime")
WEBM = "video/webm"


class DocumentError(Exception):
    """A file we cannot read or clean; `message` says why, for the learner or an admin."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CorruptDocument(DocumentError):
    """The file is damaged or not what its type says."""


class EncryptedDocument(DocumentError):
    """The file is password-protected: nobody but its owner can read it."""


@dataclass(frozen=True)
class TextPart:
    """Text at one place of a file: "page 3", "paragraph 12", "slide 2, notes"..."""

    place: str
    text: str


@dataclass(frozen=True)
class MetadataField:
    """One metadata value and where it sits: "author", "comment author", "EXIF Artist"..."""

    place: str
    value: str


@dataclass
class DocumentText:
    """What a file says: its body text by place and its metadata fields.

    `complete` is False when part of the file could not be read (`notes` say which), so a
    check built on it can say it is partial instead of pretending the file is clean.
    """

    media_type: str
    body: list[TextPart] = field(default_factory=list)
    metadata: list[MetadataField] = field(default_factory=list)
    complete: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(part.text for part in self.body)


@dataclass
class StripReport:
    """What strip_metadata removed from the copy and what it could not.

    `removed`: the fields found in the original and gone (or replaced by a neutral label) in
    the copy. `not_removed`: why the copy is not clean (a field still there, a type we cannot
    clean). `cleaned` is True only when not_removed is empty.
    """

    media_type: str
    removed: list[MetadataField] = field(default_factory=list)
    not_removed: list[str] = field(default_factory=list)

    @property
    def cleaned(self) -> bool:
        return not self.not_removed


# --- public functions ----------------------------------------------------------------------


def extract(path: str | Path, media_type: str) -> DocumentText:
    """The body text and metadata of a file; raises CorruptDocument or EncryptedDocument."""
    return _guarded(lambda: _handler(media_type).extract(Path(path), media_type, True))


def strip_metadata(src_path: str | Path, dst_path: str | Path, media_type: str) -> StripReport:
    """Write a copy of src at dst without identifying metadata, and say what was removed.

    The copy is checked by extracting it again: whatever is still found is listed in
    `not_removed`. Raises CorruptDocument/EncryptedDocument (and leaves no dst) when the file
    cannot be read.
    """
    src, dst = Path(src_path), Path(dst_path)
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError("strip_metadata writes a copy: dst must not be src")
    handler = _handler(media_type)

    def run() -> StripReport:
        before = handler.extract(src, media_type, False)
        limits = handler.strip(src, dst, media_type)
        after = handler.extract(dst, media_type, False)
        return _report(media_type, before, after, limits)

    try:
        return _guarded(run)
    except BaseException:
        dst.unlink(missing_ok=True)
        raise


def _guarded(work: Callable[[], Any]) -> Any:
    """Run a parser: its own errors on a bad file become CorruptDocument; system errors (an
    OSError with an errno: missing file, full disk) and MemoryError stay what they are."""
    try:
        return work()
    except (DocumentError, MemoryError):
        raise
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        log.info("unreadable document: %r", exc)
        raise CorruptDocument(
            "This file seems damaged: it could not be read as its type says. Open it, save it "
            "again (or export it as PDF) and upload the new file."
        ) from exc


def _report(
    media_type: str, before: DocumentText, after: DocumentText, limits: list[str]
) -> StripReport:
    left = {(f.place, f.value) for f in after.metadata}
    removed = [f for f in _unique(before.metadata) if (f.place, f.value) not in left]
    not_removed = list(limits)
    for item in _unique(after.metadata):
        if item.value not in (NEUTRAL_NAME, NEUTRAL_INITIALS, ""):
            not_removed.append(f"{item.place} is still in the copy: {item.value!r}")
    if not after.complete:
        not_removed.extend(after.notes)
    return StripReport(media_type, removed=removed, not_removed=not_removed)


def _unique(fields: Iterable[MetadataField]) -> list[MetadataField]:
    return list(dict.fromkeys(fields))


@dataclass(frozen=True)
class _Handler:
    extract: Callable[[Path, str, bool], DocumentText]
    strip: Callable[[Path, Path, str], list[str]]  # returns what it cannot remove
    cleans: bool = True  # False: strip only copies (the report says not cleaned)


def can_strip(media_type: str) -> bool:
    """Whether strip_metadata can clean this type (else it copies and reports not cleaned)."""
    return _handler(media_type).cleans


def _handler(media_type: str) -> _Handler:
    for types, handler in _HANDLERS:
        if media_type in types:
            return handler
    return _UNSUPPORTED


def _unsupported_extract(path: Path, media_type: str, body: bool) -> DocumentText:
    return DocumentText(
        media_type,
        complete=False,
        notes=[f"Files of type {media_type} are not read: their text and metadata are unchecked."],
    )


def _unsupported_strip(src: Path, dst: Path, media_type: str) -> list[str]:
    shutil.copyfile(src, dst)
    return [f"Metadata cannot be removed from files of type {media_type}: copied unchanged."]


_UNSUPPORTED = _Handler(_unsupported_extract, _unsupported_strip, cleans=False)


class _Text:
    """Collects body text up to MAX_BODY_CHARS, then notes that the rest was not read."""

    def __init__(self, doc: DocumentText) -> None:
        self.doc = doc
        self.size = 0

    def add(self, place: str, text: str) -> bool:
        text = text.strip()
        if not text:
            return True
        if self.size + len(text) > MAX_BODY_CHARS:
            self.doc.complete = False
            self.doc.notes.append(f"Only the first {MAX_BODY_CHARS:,} characters were read.")
            return False
        self.size += len(text)
        self.doc.body.append(TextPart(place, text))
        return True


# --- XML helpers (lxml without entities or network: no XXE, no entity expansion bombs) --------

_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "huge_tree": False,
    "load_dtd": False,
}


def _parser() -> etree.XMLParser:
    return etree.XMLParser(**_PARSER_OPTIONS)


def _local(name: Any) -> str:
    return name.rpartition("}")[2] if isinstance(name, str) else ""


def _qualified(element: Any, name: str) -> str:
    """prefix:local for an element or attribute name, as people read XMP."""
    namespace, _, local = name[1:].partition("}") if name.startswith("{") else ("", "", name)
    for prefix, uri in (element.nsmap or {}).items():
        if uri == namespace and prefix:
            return f"{prefix}:{local}"
    return local


_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


def xmp_fields(packet: bytes | str, prefix: str = "XMP") -> list[MetadataField]:
    """Every value of an XMP packet as ("XMP dc:creator", "Ada Lovelace") pairs."""
    data = packet.encode("utf-8") if isinstance(packet, str) else packet
    data = data.strip(b"\x00 \r\n\t")
    if not data:
        return []
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError:
        return [MetadataField(f"{prefix} (unreadable packet)", data[:200].decode("latin-1"))]
    found: list[MetadataField] = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in element.attrib.items():
            if (
                not name.startswith("{" + _RDF)
                and value.strip()
                and ":" in _qualified(element, name)
            ):
                found.append(MetadataField(f"{prefix} {_qualified(element, name)}", value.strip()))
        if len(element) == 0 and element.text and element.text.strip():
            owner = element
            while owner is not None and owner.tag.startswith("{" + _RDF):
                owner = owner.getparent()
            if owner is not None:
                found.append(
                    MetadataField(f"{prefix} {_qualified(owner, owner.tag)}", element.text.strip())
                )
    return found


# --- PDF: pypdf reads text, pikepdf (qpdf) writes the copy -----------------------------------


def _pdf_extract(path: Path, media_type: str, body: bool) -> DocumentText:
    from pypdf import PasswordType, PdfReader

    doc = DocumentText(media_type)
    with path.open("rb") as stream:  # a path would make pypdf read the whole file into memory
        reader = PdfReader(stream)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise EncryptedDocument(
                "This PDF is password-protected, so nobody else can open it. Save a copy "
                "without a password and upload that."
            )
        for key, value in (reader.metadata or {}).items():
            value = str(_resolved(value))
            if value.strip():
                doc.metadata.append(MetadataField(f"document info {key.lstrip('/')}", value))
        root = reader.trailer["/Root"]
        if "/Metadata" in root:
            doc.metadata.extend(xmp_fields(root["/Metadata"].get_object().get_data()))
        try:
            attached = list(reader.attachments)  # names only: the content is not loaded
        except Exception as exc:  # a broken name tree must not hide the rest of the file
            attached = ["(unreadable list of attached files)"]
            log.info("PDF attachments unreadable: %r", exc)
        for name in attached:
            # An attached file keeps its own metadata: listed, so a copy is never called clean
            # while it carries one.
            doc.metadata.append(MetadataField("attached file (not cleaned)", name))
        text = _Text(doc)
        for number, page in enumerate(reader.pages, start=1):
            place = f"page {number}"
            for annotation in _resolved(page.get("/Annots")) or []:
                annotation = _resolved(annotation)
                if annotation.get("/T"):
                    author = str(_resolved(annotation["/T"]))
                    doc.metadata.append(MetadataField(f"{place}, comment author", author))
                if body and annotation.get("/Contents"):
                    text.add(f"{place}, comment", str(annotation["/Contents"]))
            if body:
                try:
                    page_text = page.extract_text() or ""
                except Exception as exc:  # one odd page must not hide the others
                    doc.complete = False
                    doc.notes.append(f"The text of {place} could not be read ({exc}).")
                    continue
                if not text.add(place, page_text):
                    break
        if body and not doc.body:
            doc.notes.append("This PDF has no text layer (a scan?): its pages were not read.")
    return doc


def _resolved(value: Any) -> Any:
    return value.get_object() if hasattr(value, "get_object") else value


def _pdf_strip(src: Path, dst: Path, media_type: str) -> list[str]:
    import pikepdf

    try:
        pdf = pikepdf.open(src)
    except pikepdf.PasswordError as exc:
        raise EncryptedDocument("This PDF is password-protected, so it cannot be copied.") from exc
    with pdf:
        if "/Info" in pdf.trailer:
            del pdf.trailer["/Info"]
        for obj in pdf.objects:  # XMP can sit on the catalog, pages, images, fonts
            if not isinstance(obj, pikepdf.Dictionary | pikepdf.Stream):
                continue
            for key in ("/Metadata", "/PieceInfo"):
                if key in obj:
                    del obj[key]
            if obj.get("/Type") == "/Annot" and "/T" in obj:
                obj["/T"] = pikepdf.String(NEUTRAL_NAME)
        # A full rewrite keeps only reachable objects: earlier revisions of the info dictionary
        # (incremental updates) are dropped too. Encryption (owner password only) is removed.
        # Streams are copied as they are (not decoded, not recompressed): faster, and the
        # content stays byte for byte. qpdf holds one stream at a time in memory.
        pdf.save(
            dst,
            fix_metadata_version=False,
            compress_streams=False,
            stream_decode_level=pikepdf.StreamDecodeLevel.none,
        )
    return []


# --- Office Open XML and OpenDocument: ZIP packages of XML parts ------------------------------

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# Parts that may name people; other parts (worksheets, slides, media) are copied untouched.
_PEOPLE_PARTS = (
    "docProps/core.xml",
    "docProps/app.xml",
    "docProps/custom.xml",
    "word/*.xml",
    "xl/workbook.xml",
    "xl/comments*.xml",
    "xl/threadedComments/*.xml",
    "xl/persons/*.xml",
    "xl/revisions/*.xml",
    "ppt/commentAuthors.xml",
    "ppt/authors.xml",
    "ppt/comments/*.xml",
    "meta.xml",
    "content.xml",
    "styles.xml",
    "*.rels",  # links to local files: "file:///C:/Users/alovelace/..."
)
_EMBEDDED = {".docx": DOCX, ".xlsx": XLSX, ".pptx": PPTX}  # packages inside packages
MAX_NESTING = 3
_META_PARTS = ("docProps/core.xml", "docProps/app.xml", "meta.xml")
# Elements of the metadata parts: replaced by the neutral name, or removed.
_NEUTRAL_ELEMENTS = {
    "creator": "author",
    "lastModifiedBy": "last modified by",
    "initial-creator": "author",
}
_REMOVED_ELEMENTS = {
    "title": "title", "subject": "subject", "keywords": "keywords", "keyword": "keywords",
    "description": "description", "category": "category", "contentStatus": "status",
    "identifier": "identifier", "Company": "company", "Manager": "manager",
    "HyperlinkBase": "hyperlink base", "Template": "template", "printed-by": "printed by",
    "user-defined": "custom property",
}  # fmt: skip


def _attribute_place(element_name: str, attribute: str) -> str | None:
    """What an attribute of a people-bearing part is, or None when it names nobody."""
    if attribute == "author":
        if element_name == "comment":
            return "comment author"
        return "reviewer" if element_name == "person" else "tracked-change author"
    if attribute == "initials":
        return "comment author initials"
    if attribute == "name" and element_name in ("cmAuthor", "author"):
        return "comment author"
    if attribute == "displayName" and element_name == "person":
        return "comment author"
    if attribute == "userId":
        return "account of a comment author or reviewer"
    if attribute == "userName":
        return "tracked-change author"
    if attribute == "url" and element_name == "absPath":
        return "folder the file was saved from"
    return None


def _relationship_place(element: Any) -> str | None:
    target = element.get("Target", "")
    if element.get("TargetMode") == "External" and _LOCAL_PATH.match(target):
        return "linked file path"
    return None


def _file_name(path: str) -> str:
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1] or "file"


class _Edit:
    """One identifying value in an XML part, and how the blind copy neutralises it."""

    def __init__(self, place: str, value: str, apply: Callable[[], None]) -> None:
        self.field = MetadataField(place, value)
        self.apply = apply


def _neutral_value(attribute: str) -> str:
    if attribute == "initials":
        return NEUTRAL_INITIALS
    return NEUTRAL_NAME


def _edits(root: Any, part: str) -> Iterator[_Edit]:
    """Every identifying value of a parsed part, each with the change that removes it."""
    in_metadata = part in _META_PARTS
    for element in list(root.iter()):
        if not isinstance(element.tag, str):
            continue
        name = _local(element.tag)
        for attribute, value in list(element.attrib.items()):
            if name == "Relationship":
                place = _relationship_place(element) if attribute == "Target" else None
            else:
                place = _attribute_place(name, _local(attribute))
            if place is None or not value.strip():
                continue
            if name == "absPath":
                yield _Edit(place, value, _remover(element))
            elif name == "Relationship":
                yield _Edit(place, value, _setter_to(element, attribute, _file_name(value)))
            else:
                yield _Edit(place, value, _setter(element, attribute, _local(attribute)))
        text = (element.text or "").strip()
        parent = _local(element.getparent().tag) if element.getparent() is not None else ""
        if part == "docProps/custom.xml" and name == "property":
            label = f"custom property {element.get('name', '')}".strip()
            yield _Edit(label, "".join(element.itertext()).strip(), _remover(element))
        elif not text:
            continue
        elif in_metadata and name in _REMOVED_ELEMENTS:
            label = _REMOVED_ELEMENTS[name]
            if name == "user-defined":
                label = f"custom property {element.get(_meta_name(element), '')}".strip()
            yield _Edit(label, text, _remover(element))
        elif name in _NEUTRAL_ELEMENTS and (in_metadata or name == "creator"):
            place = _NEUTRAL_ELEMENTS[name] if in_metadata else _odf_creator_place(parent)
            yield _Edit(place, text, _text_setter(element, NEUTRAL_NAME))
        elif name == "creator-initials":
            yield _Edit("comment author initials", text, _text_setter(element, NEUTRAL_INITIALS))
        elif name == "author" and parent == "authors":  # xlsx legacy comments
            yield _Edit("comment author", text, _text_setter(element, NEUTRAL_NAME))


def _meta_name(element: Any) -> str:
    for attribute in element.attrib:
        if _local(attribute) == "name":
            return attribute
    return "name"


def _odf_creator_place(parent: str) -> str:
    return "comment author" if parent == "annotation" else "tracked-change author"


def _setter(element: Any, attribute: str, local: str) -> Callable[[], None]:
    return _setter_to(element, attribute, _neutral_value(local))


def _setter_to(element: Any, attribute: str, value: str) -> Callable[[], None]:
    return lambda: element.set(attribute, value)


def _text_setter(element: Any, value: str) -> Callable[[], None]:
    def apply() -> None:
        element.text = value

    return apply


def _remover(element: Any) -> Callable[[], None]:
    def apply() -> None:
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)

    return apply


def _open_package(path: Path) -> zipfile.ZipFile:
    with path.open("rb") as stream:
        head = stream.read(8)
    if head == _OLE_MAGIC:  # Office keeps password-protected files in an OLE container
        raise EncryptedDocument(
            "This Office document is password-protected. Remove the password (or save it as "
            "PDF) and upload it again."
        )
    package = zipfile.ZipFile(path)
    if sum(info.file_size for info in package.infolist()) > MAX_PACKAGE:
        package.close()
        raise CorruptDocument("This file expands to more than 4 GB: it cannot be a real document.")
    if "META-INF/manifest.xml" in package.namelist():
        with package.open("META-INF/manifest.xml") as manifest:
            if b"encryption-data" in manifest.read(MAX_XML_PART):
                package.close()
                raise EncryptedDocument(
                    "This OpenDocument file is password-protected. Save it without a password "
                    "and upload it again."
                )
    return package


def _people_parts(package: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return [
        info
        for info in package.infolist()
        if any(fnmatch(info.filename, pattern) for pattern in _PEOPLE_PARTS)
        and (info.filename.count("/") <= 2 or info.filename.endswith(".rels"))
    ]


def _embedded_type(name: str) -> str | None:
    """The type of a package embedded in another (a chart's workbook in a Word file)."""
    if "/embeddings/" not in name:
        return None
    return _EMBEDDED.get(PurePosixPath(name).suffix.lower())


_LOCAL_PATH = re.compile(r"^(file:|[a-zA-Z]:[\\/]|\\\\)", re.IGNORECASE)


def _parse_part(package: zipfile.ZipFile, info: zipfile.ZipInfo) -> Any:
    if info.file_size > MAX_XML_PART:
        raise CorruptDocument(f"The part {info.filename} of this file is too large to read.")
    with package.open(info) as stream:
        return etree.parse(stream, _parser()).getroot()


def _package_extract(path: Path, media_type: str, body: bool, depth: int = 0) -> DocumentText:
    doc = DocumentText(media_type)
    with _open_package(path) as package:
        for info in _people_parts(package):
            root = _parse_part(package, info)
            doc.metadata.extend(edit.field for edit in _edits(root, info.filename))
        for info in package.infolist():
            kind = _embedded_type(info.filename)
            label = PurePosixPath(info.filename).name
            if kind and depth < MAX_NESTING:
                with _member_file(package, info) as inner:
                    embedded = _package_extract(inner, kind, False, depth + 1)
                doc.metadata.extend(
                    MetadataField(f"embedded {label}: {item.place}", item.value)
                    for item in embedded.metadata
                )
            elif "/embeddings/" in info.filename and body:
                doc.notes.append(f"The embedded object {label} is not read.")
        if body:
            _package_body(package, media_type, _Text(doc))
    doc.metadata = _unique(doc.metadata)
    return doc


@contextmanager
def _member_file(package: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[Path]:
    """A ZIP member copied to a temporary file (streamed), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="evidence-embedded-") as folder:
        path = Path(folder) / "member"
        with package.open(info) as source, path.open("wb") as out:
            shutil.copyfileobj(source, out, COPY_BLOCK)
        yield path


def _package_strip(src: Path, dst: Path, media_type: str, depth: int = 0) -> list[str]:
    with _open_package(src) as package, zipfile.ZipFile(dst, "w", allowZip64=True) as copy:
        people = {info.filename for info in _people_parts(package)}
        for info in package.infolist():
            kind = _embedded_type(info.filename)
            target = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            target.compress_type = info.compress_type  # ODF's "mimetype" stays first and stored
            target.external_attr = info.external_attr
            target.file_size = info.file_size  # lets zipfile choose ZIP64 for a huge member
            root = _parse_part(package, info) if info.filename in people else None
            edits = list(_edits(root, info.filename)) if root is not None else []
            if edits:  # parts with nothing to change are copied byte for byte
                for edit in edits:
                    edit.apply()
                data = etree.tostring(
                    root.getroottree(),
                    xml_declaration=True,
                    encoding="UTF-8",
                    standalone=root.getroottree().docinfo.standalone,
                )
                target.file_size = len(data)
                copy.writestr(target, data)
            elif kind and depth < MAX_NESTING:
                with _member_file(package, info) as inner:
                    cleaned = inner.with_name("cleaned")
                    _package_strip(inner, cleaned, kind, depth + 1)
                    target.file_size = cleaned.stat().st_size
                    with cleaned.open("rb") as source, copy.open(target, "w") as out:
                        shutil.copyfileobj(source, out, COPY_BLOCK)
            else:
                with package.open(info) as source, copy.open(target, "w") as out:
                    shutil.copyfileobj(source, out, COPY_BLOCK)
    return []


def _iter_blocks(
    stream: IO[bytes], block: frozenset[str], texts: frozenset[str] | None, skip: frozenset[str]
) -> Iterator[str]:
    """The text of each `block` element (paragraph, shared string) of a part, streamed.

    texts: element names holding text (None: all text); skip: subtrees that are not body text.
    A block inside another (a text box in a paragraph) is read once: it is cleared when done.
    """
    for _, element in etree.iterparse(stream, events=("end",), **_PARSER_OPTIONS):
        if _local(element.tag) not in block:
            continue
        yield _text_of(element, texts, skip)
        element.clear(keep_tail=True)


def _text_of(element: Any, texts: frozenset[str] | None, skip: frozenset[str]) -> str:
    out: list[str] = []

    def walk(node: Any, inside: bool) -> None:
        name = _local(node.tag)
        if name in skip:
            return
        inside = inside or texts is None or name in texts
        if inside and node.text:
            out.append(node.text)
        if name in ("tab", "br", "s", "line-break"):
            out.append(" ")
        for child in node:
            walk(child, inside and texts is None)
            if texts is None and child.tail:
                out.append(child.tail)

    walk(element, False)
    return "".join(out)


_W_TEXT = frozenset({"t", "delText"})
_A_TEXT = frozenset({"t"})
_ODF_SKIP = frozenset({"creator", "date", "creator-initials", "change-info"})


def _package_body(package: zipfile.ZipFile, media_type: str, text: _Text) -> None:
    names = set(package.namelist())

    def blocks(part: str, block: str, texts: frozenset[str] | None, skip=frozenset()) -> list:
        if part not in names:
            return []
        with package.open(part) as stream:
            return list(_iter_blocks(stream, frozenset(block.split()), texts, skip))

    if media_type == DOCX:
        sections = [("word/document.xml", "paragraph")]
        sections += [(n, "header") for n in sorted(names) if fnmatch(n, "word/header*.xml")]
        sections += [(n, "footer") for n in sorted(names) if fnmatch(n, "word/footer*.xml")]
        sections += [
            ("word/footnotes.xml", "footnote"),
            ("word/endnotes.xml", "endnote"),
            ("word/comments.xml", "comment"),
        ]
        for part, label in sections:
            for number, paragraph in enumerate(blocks(part, "p", _W_TEXT), start=1):
                if not text.add(f"{label} {number}", paragraph):
                    return
    elif media_type == PPTX:
        slides = _ordered_parts(package, "ppt/presentation.xml")
        for number, (slide, _name) in enumerate(slides, start=1):
            if not text.add(f"slide {number}", "\n".join(blocks(slide, "p", _A_TEXT))):
                return
            for notes in _related(package, slide, "notesSlide"):
                if not text.add(f"slide {number}, notes", "\n".join(blocks(notes, "p", _A_TEXT))):
                    return
    elif media_type == XLSX:
        _xlsx_body(package, names, blocks, text)
    else:  # OpenDocument
        for number, paragraph in enumerate(blocks("content.xml", "p h", None, _ODF_SKIP), 1):
            if not text.add(f"paragraph {number}", paragraph):
                return


def _xlsx_body(package: zipfile.ZipFile, names: set[str], blocks: Callable, text: _Text) -> None:
    shared = blocks("xl/sharedStrings.xml", "si", _A_TEXT)
    for part, sheet in _ordered_parts(package, "xl/workbook.xml"):
        with package.open(part) as stream:
            for _, cell in etree.iterparse(stream, events=("end",), **_PARSER_OPTIONS):
                if _local(cell.tag) != "c":
                    continue
                kind, value = cell.get("t"), None
                for child in cell:
                    if _local(child.tag) == "v" and kind in ("s", "str"):
                        value = child.text or ""
                        if kind == "s" and value.isdigit() and int(value) < len(shared):
                            value = shared[int(value)]
                    elif _local(child.tag) == "is":
                        value = _text_of(child, _A_TEXT, frozenset())
                ref = cell.get("r", "")
                cell.clear(keep_tail=True)
                if value and not text.add(f"sheet {sheet}, cell {ref}", value):
                    return
    for part in sorted(n for n in names if fnmatch(n, "xl/comments*.xml")):
        for number, comment in enumerate(blocks(part, "comment", _A_TEXT), start=1):
            text.add(f"comment {number}", comment)


def _rels(package: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """A part's relationships: id -> (type's last word, target part name)."""
    path = PurePosixPath(part)
    rels = f"{path.parent}/_rels/{path.name}.rels"
    if rels not in package.namelist():
        return {}
    found: dict[str, tuple[str, str]] = {}
    for element in _parse_part(package, package.getinfo(rels)).iter():
        if _local(element.tag) == "Relationship" and element.get("TargetMode") != "External":
            target = element.get("Target", "")
            resolved = target.lstrip("/") if target.startswith("/") else _join(path.parent, target)
            found[element.get("Id", "")] = (element.get("Type", "").rsplit("/", 1)[-1], resolved)
    return found


def _join(folder: PurePosixPath, target: str) -> str:
    parts: list[str] = [p for p in str(folder).split("/") if p and p != "."]
    for piece in target.split("/"):
        if piece == "..":
            if parts:
                parts.pop()
        elif piece and piece != ".":
            parts.append(piece)
    return "/".join(parts)


def _ordered_parts(package: zipfile.ZipFile, main: str) -> list[tuple[str, str]]:
    """(part, name) of the slides (pptx) or worksheets (xlsx) in the order the presentation
    or workbook lists them."""
    if main not in package.namelist():
        return []
    rels = _rels(package, main)
    ordered = []
    for element in _parse_part(package, package.getinfo(main)).iter():
        if _local(element.tag) in ("sldId", "sheet"):
            for attribute, value in element.attrib.items():
                if _local(attribute) == "id" and attribute.startswith("{") and value in rels:
                    ordered.append((rels[value][1], element.get("name", "")))
    return [(part, name) for part, name in ordered if part in package.namelist()]


def _related(package: zipfile.ZipFile, part: str, kind: str) -> list[str]:
    return [t for k, t in _rels(package, part).values() if k == kind and t in package.namelist()]


# --- images ----------------------------------------------------------------------------------

_EXIF_TEXT_TAGS = {
    0x010D: "DocumentName", 0x010E: "ImageDescription", 0x010F: "Make", 0x0110: "Model",
    0x0131: "Software", 0x013B: "Artist", 0x013C: "HostComputer", 0x8298: "Copyright",
    0x9C9B: "XPTitle", 0x9C9C: "XPComment", 0x9C9D: "XPAuthor", 0x9C9E: "XPKeywords",
    0x9C9F: "XPSubject",
}  # fmt: skip
_EXIF_IFD_TAGS = {
    0x9286: "UserComment", 0xA420: "ImageUniqueID", 0xA430: "CameraOwnerName",
    0xA431: "BodySerialNumber", 0xA435: "LensSerialNumber",
}  # fmt: skip
_IPTC_LABELS = {
    5: "object name", 25: "keywords", 80: "by-line (author)", 85: "by-line title",
    90: "city", 95: "province or state", 101: "country", 105: "headline", 110: "credit",
    115: "source", 116: "copyright", 118: "contact", 120: "caption", 122: "caption writer",
}  # fmt: skip


def _exif_value(tag: int, value: Any) -> str:
    if isinstance(value, bytes):
        if 0x9C9B <= tag <= 0x9C9F:
            return value.decode("utf-16-le", "replace").rstrip("\x00")
        if tag == 0x9286:  # UserComment: 8 bytes naming the character code, then the text
            code, data = value[:8], value[8:]
            return data.decode("utf-16" if code.startswith(b"UNICODE") else "latin-1", "replace")
        return value.decode("utf-8", "replace")
    return str(value)


def _exif_fields(exif: Any) -> list[MetadataField]:
    found = []
    for tag, name in _EXIF_TEXT_TAGS.items():
        if tag in exif:
            found.append(MetadataField(f"EXIF {name}", _exif_value(tag, exif[tag])))
    sub = exif.get_ifd(0x8769)
    for tag, name in _EXIF_IFD_TAGS.items():
        if tag in sub:
            found.append(MetadataField(f"EXIF {name}", _exif_value(tag, sub[tag])))
    gps = exif.get_ifd(0x8825)
    if gps:
        found.append(MetadataField("EXIF GPS position", _gps_text(gps)))
    return [f for f in found if f.value.strip("\x00 ")]


def _gps_text(gps: dict) -> str:
    def degrees(values: Any, ref: Any) -> str:
        try:
            d, m, s = (float(v) for v in values)
        except (TypeError, ValueError):
            return "?"
        sign = -1 if str(ref).upper() in ("S", "W") else 1
        return f"{sign * (d + m / 60 + s / 3600):.5f}"

    if 2 in gps and 4 in gps:
        return f"{degrees(gps[2], gps.get(1))}, {degrees(gps[4], gps.get(3))}"
    return "GPS data present"


def _image_extract(path: Path, media_type: str, body: bool) -> DocumentText:
    from PIL import Image, IptcImagePlugin

    doc = DocumentText(media_type)
    if media_type == PNG:
        doc.metadata = _png_metadata(path)
    elif media_type == GIF:
        doc.metadata = _gif_metadata(path)
    else:
        with Image.open(path) as image:
            doc.metadata.extend(_exif_fields(image.getexif()))
            if image.info.get("xmp"):
                doc.metadata.extend(xmp_fields(image.info["xmp"]))
            if image.info.get("comment"):
                comment = image.info["comment"]
                if isinstance(comment, bytes):
                    comment = comment.decode("utf-8", "replace")
                doc.metadata.append(MetadataField("image comment", comment))
            if media_type == JPEG:
                for (record, dataset), value in (IptcImagePlugin.getiptcinfo(image) or {}).items():
                    if record != 2 or dataset == 0:
                        continue
                    label = _IPTC_LABELS.get(dataset, f"dataset 2:{dataset}")
                    for item in value if isinstance(value, list) else [value]:
                        text = item.decode("utf-8", "replace")
                        doc.metadata.append(MetadataField(f"IPTC {label}", text))
    if body:
        doc.notes.append("Text inside the picture itself is not read.")
    return doc


_PNG_KEEP = {
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT",
    b"bKGD", b"pHYs", b"hIST", b"sPLT", b"acTL", b"fcTL", b"fdAT", b"cICP", b"mDCV", b"cLLI",
    b"mDCv", b"cLLi",
}  # fmt: skip


def _bounded_inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    return inflater.decompress(data, 4 * 1024 * 1024)  # a text chunk is never bigger


def _png_metadata(path: Path) -> list[MetadataField]:
    """Text chunks (tEXt, zTXt, iTXt incl. XMP) and eXIf of a PNG, read chunk by chunk."""
    import png
    from PIL import Image

    found: list[MetadataField] = []
    with path.open("rb") as stream:
        for kind, data in png.Reader(file=stream).chunks():
            if kind == b"tEXt":
                key, _, value = data.partition(b"\x00")
                found.append(
                    MetadataField(f"PNG text {key.decode('latin-1')}", value.decode("latin-1"))
                )
            elif kind == b"zTXt":
                key, _, rest = data.partition(b"\x00")
                found.append(
                    MetadataField(
                        f"PNG text {key.decode('latin-1')}",
                        _bounded_inflate(rest[1:]).decode("latin-1"),
                    )
                )
            elif kind == b"iTXt":
                key, _, rest = data.partition(b"\x00")
                compressed, rest = rest[0], rest[2:]
                _language, _, rest = rest.partition(b"\x00")
                _translated, _, value = rest.partition(b"\x00")
                value = _bounded_inflate(value) if compressed else value
                if key == b"XML:com.adobe.xmp":
                    found.extend(xmp_fields(value))
                else:
                    found.append(
                        MetadataField(
                            f"PNG text {key.decode('latin-1')}", value.decode("utf-8", "replace")
                        )
                    )
            elif kind == b"eXIf":
                exif = Image.Exif()
                exif.load(data)
                found.extend(_exif_fields(exif))
            elif kind not in _PNG_KEEP and kind[:1].islower():
                found.append(
                    MetadataField(f"PNG chunk {kind.decode('latin-1')}", f"{len(data)} bytes")
                )
    return [f for f in found if f.value.strip()]


def _png_strip(src: Path, dst: Path, media_type: str) -> list[str]:
    import png

    with src.open("rb") as stream, dst.open("wb") as out:
        chunks = png.Reader(file=stream).chunks()
        # Critical chunks (upper-case first letter) are always kept; ancillary ones only when
        # they describe the picture (colour, transparency, animation), never text or EXIF.
        kept = ((k, d) for k, d in chunks if k in _PNG_KEEP or k[:1].isupper())
        png.write_chunks(out, kept)
    return []


def _jpeg_keep(marker: int, payload: bytes) -> bool:
    """JFIF/JFXX (APP0), Adobe colour (APP14), ICC profiles (APP2) and every non-APP segment
    stay; EXIF/XMP (APP1), IPTC (APP13), other APPn and comments (COM) go."""
    if marker == 0xFE:
        return False
    if 0xE0 <= marker <= 0xEF:
        return marker in (0xE0, 0xEE) or (marker == 0xE2 and payload.startswith(b"ICC_PROFILE"))
    return True


def _jpeg_strip(src: Path, dst: Path, media_type: str) -> list[str]:
    """Copy a JPEG segment by segment, leaving out metadata segments and anything after the
    end-of-image marker (phones put secondary images with their own EXIF there). The
    compressed image data is copied as it is: no re-encoding, no quality loss."""
    with src.open("rb") as fi, dst.open("wb") as fo:
        if fi.read(2) != b"\xff\xd8":
            raise CorruptDocument("This file is not a JPEG image.")
        fo.write(b"\xff\xd8")
        while True:
            byte = fi.read(1)
            while byte == b"\xff":  # fill bytes before a marker
                byte = fi.read(1)
            if not byte:
                raise CorruptDocument("This JPEG image is cut short.")
            marker = byte[0]
            if marker == 0xD9:
                fo.write(b"\xff\xd9")
                return []
            if marker == 0x01 or 0xD0 <= marker <= 0xD7:
                fo.write(bytes((0xFF, marker)))
                continue
            length_bytes = fi.read(2)
            if len(length_bytes) < 2:
                raise CorruptDocument("This JPEG image is cut short.")
            length = struct.unpack(">H", length_bytes)[0]
            payload = fi.read(length - 2)
            if length < 2 or len(payload) < length - 2:
                raise CorruptDocument("This JPEG image is cut short.")
            if _jpeg_keep(marker, payload):
                fo.write(bytes((0xFF, marker)) + length_bytes + payload)
            if marker == 0xDA:
                _copy_scan(fi, fo)


def _copy_scan(fi: IO[bytes], fo: IO[bytes]) -> None:
    """Copy entropy-coded data up to the next marker (0xFF not followed by 0x00 or RSTn)."""
    while True:
        start = fi.tell()
        chunk = fi.read(COPY_BLOCK)
        if not chunk:
            raise CorruptDocument("This JPEG image is cut short.")
        position = chunk.find(b"\xff")
        while position != -1 and position + 1 < len(chunk):
            following = chunk[position + 1]
            if following != 0x00 and not 0xD0 <= following <= 0xD7:
                fo.write(chunk[:position])
                fi.seek(start + position + 1)  # just after the 0xFF: the marker byte is next
                return
            position = chunk.find(b"\xff", position + 2)
        if position == -1:
            fo.write(chunk)
        else:  # a 0xFF at the very end: read again from it
            if len(chunk) == 1:
                raise CorruptDocument("This JPEG image is cut short.")
            fo.write(chunk[:position])
            fi.seek(start + position)


# --- RIFF (WAV, WebP) and ISO media (MP4, M4A, MOV): metadata turned into padding in place --


def _riff_chunks(stream: IO[bytes], start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(id, payload start, payload size) of each chunk between start and end."""
    position = start
    while position + 8 <= end:
        stream.seek(position)
        kind, size = struct.unpack("<4sI", stream.read(8))
        if position + 8 + size > end:
            raise CorruptDocument("This file is cut short or damaged.")
        yield kind, position + 8, size
        position += 8 + size + (size & 1)


def _riff_end(stream: IO[bytes], form: bytes) -> int:
    stream.seek(0)
    header = stream.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != form:
        raise CorruptDocument("This file is not what its type says.")
    stream.seek(0, 2)
    return min(stream.tell(), 8 + struct.unpack("<I", header[4:8])[0])


_WAV_METADATA = {b"id3 ", b"ID3 ", b"bext", b"iXML", b"_PMX", b"XMP "}
_RIFF_INFO = {
    b"IART": "artist", b"INAM": "title", b"ICMT": "comment", b"ICOP": "copyright",
    b"IENG": "engineer", b"ITCH": "technician", b"ISFT": "software", b"ISBJ": "subject",
    b"IKEY": "keywords", b"ISRC": "source", b"IPRD": "product", b"ICRD": "date",
}  # fmt: skip


def _wav_metadata_chunks(stream: IO[bytes]) -> list[tuple[bytes, int, int]]:
    end = _riff_end(stream, b"WAVE")
    found = []
    for kind, start, size in _riff_chunks(stream, 12, end):
        if kind in _WAV_METADATA:
            found.append((kind, start, size))
        elif kind == b"LIST":
            stream.seek(start)
            if stream.read(4) == b"INFO":
                found.append((kind, start, size))
    return found


def _wav_fields(path: Path) -> list[MetadataField]:
    found = []
    with path.open("rb") as stream:
        for kind, start, size in _wav_metadata_chunks(stream):
            if kind == b"LIST":
                for sub, sub_start, sub_size in _riff_chunks(stream, start + 4, start + size):
                    stream.seek(sub_start)
                    value = stream.read(min(sub_size, 65536)).rstrip(b"\x00")
                    label = _RIFF_INFO.get(sub, sub.decode("latin-1"))
                    found.append(MetadataField(f"RIFF INFO {label}", value.decode("latin-1")))
            elif kind != b"id3 " and kind != b"ID3 ":  # ID3 frames come from mutagen
                found.append(
                    MetadataField(f"WAV {kind.decode('latin-1').strip()} chunk", f"{size} bytes")
                )
    return [f for f in found if f.value.strip()]


def _pad(stream: IO[bytes], header: int, start: int, end: int, kind: bytes) -> None:
    """Turn a chunk or box into padding of the same size: new type, zeroed payload."""
    stream.seek(header)
    stream.write(kind)
    _zero(stream, start, end)


def _zero(stream: IO[bytes], start: int, end: int) -> None:
    stream.seek(start)
    remaining = end - start
    zeros = bytes(min(COPY_BLOCK, remaining))
    while remaining > 0:
        stream.write(zeros[: min(len(zeros), remaining)])
        remaining -= len(zeros)


def _wav_strip(src: Path, dst: Path, media_type: str) -> list[str]:
    shutil.copyfile(src, dst)
    with dst.open("r+b") as stream:
        for _kind, start, size in _wav_metadata_chunks(stream):
            _pad(stream, start - 8, start, start + size, b"JUNK")
    return []


def _webp_strip(src: Path, dst: Path, media_type: str) -> list[str]:
    shutil.copyfile(src, dst)
    with dst.open("r+b") as stream:
        end = _riff_end(stream, b"WEBP")
        for kind, start, size in list(_riff_chunks(stream, 12, end)):
            if kind == b"VP8X":
                stream.seek(start)
                flags = stream.read(1)[0]
                stream.seek(start)
                stream.write(bytes((flags & ~0x0C,)))  # no EXIF (0x08), no XMP (0x04)
            elif kind in (b"EXIF", b"XMP "):
                _pad(stream, start - 8, start, start + size, b"JUNK")
    return []


def _boxes(stream: IO[bytes], start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of each ISO media box between start and end."""
    position = start
    while position + 8 <= end:
        stream.seek(position)
        size, kind = struct.unpack(">I4s", stream.read(8))
        header = 8
        if size == 1:
            size = struct.unpack(">Q", stream.read(8))[0]
            header = 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            raise CorruptDocument("This audio or video file is cut short or damaged.")
        yield kind, position, position + header, position + size
        position += size


_XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")


def _mp4_metadata_boxes(stream: IO[bytes]) -> list[tuple[str, int, int, int]]:
    """(path, box start, payload start, box end) of every box holding metadata: udta and meta
    in the movie and its tracks (iTunes tags, QuickTime ©xyz location, Apple mdta keys), and
    top-level XMP."""
    stream.seek(0, 2)
    end = stream.tell()
    found = []
    for kind, box, start, stop in list(_boxes(stream, 0, end)):
        if kind == b"meta" or (kind == b"uuid" and _read_at(stream, start, 16) == _XMP_UUID):
            found.append((kind.decode("latin-1"), box, start, stop))
        if kind != b"moov":
            continue
        for sub, sub_box, sub_start, sub_stop in list(_boxes(stream, start, stop)):
            if sub in (b"udta", b"meta"):
                found.append((f"moov/{sub.decode('latin-1')}", sub_box, sub_start, sub_stop))
            elif sub == b"trak":
                for leaf, leaf_box, leaf_start, leaf_stop in _boxes(stream, sub_start, sub_stop):
                    if leaf in (b"udta", b"meta"):
                        path = f"track/{leaf.decode('latin-1')}"
                        found.append((path, leaf_box, leaf_start, leaf_stop))
    return found


def _read_at(stream: IO[bytes], position: int, size: int) -> bytes:
    stream.seek(position)
    return stream.read(size)


def _mp4_fields(path: Path) -> list[MetadataField]:
    """Metadata boxes mutagen does not show (QuickTime user data, Apple keys, XMP); the iTunes
    tags inside udta/meta/ilst come from mutagen."""
    found = []
    with path.open("rb") as stream:
        for where, _box, start, stop in _mp4_metadata_boxes(stream):
            if where == "moov/udta":
                for kind, _b, item_start, item_stop in _boxes(stream, start, stop):
                    if kind[:1] == b"\xa9":
                        raw = _read_at(stream, item_start, min(item_stop - item_start, 4096))
                        value = raw[4:].decode("utf-8", "replace") if len(raw) > 4 else ""
                        label = "©" + kind[1:].decode("latin-1")
                        found.append(MetadataField(f"QuickTime user data {label}", value))
                    elif kind != b"meta":
                        found.append(
                            MetadataField(
                                f"QuickTime user data {kind!r}", f"{item_stop - item_start} bytes"
                            )
                        )
            elif where != "moov/udta" and stop > start:
                found.append(MetadataField(f"metadata box {where}", f"{stop - start} bytes"))
    return found


def _mp4_strip(src: Path, dst: Path, media_type: str) -> list[str]:
    shutil.copyfile(src, dst)
    with dst.open("r+b") as stream:
        for _where, box, start, stop in _mp4_metadata_boxes(stream):
            header = box + 4  # the type follows the 32-bit size (a 64-bit size comes after it)
            _pad(stream, header, start, stop, b"free")
    return []


# --- audio and video tags (mutagen) ----------------------------------------------------------

_TAG_LABELS = {
    "TPE1": "artist", "TPE2": "album artist", "TCOM": "composer", "TEXT": "lyricist",
    "TIT2": "title", "TALB": "album", "COMM": "comment", "TCOP": "copyright",
    "TENC": "encoded by", "TXXX": "custom tag", "APIC": "picture", "USLT": "lyrics",
    "WXXX": "link", "PRIV": "private data", "GEOB": "embedded file", "TOWN": "owner",
    "©ART": "artist", "©nam": "title", "©cmt": "comment", "©wrt": "composer",
    "aART": "album artist", "cprt": "copyright", "©too": "encoder", "covr": "picture",
    "©alb": "album", "©xyz": "location", "©day": "date",
}  # fmt: skip


def _tag_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "; ".join(_tag_value(item) for item in value)
    text = getattr(value, "text", None)
    if text is not None:
        return _tag_value(text)
    url = getattr(value, "url", None)
    if url is not None:
        return str(url)
    data = getattr(value, "data", None)
    if isinstance(value, bytes) or data is not None:
        raw = value if isinstance(value, bytes) else data
        if (
            isinstance(raw, bytes)
            and len(raw) < 1024
            and not raw.startswith((b"\xff\xd8", b"\x89"))
        ):
            return raw.decode("utf-8", "replace")
        return f"binary data ({len(raw) if isinstance(raw, bytes) else '?'} bytes)"
    return str(value)


def _media_extract(path: Path, media_type: str, body: bool) -> DocumentText:
    import mutagen

    doc = DocumentText(media_type)
    if media_type in WAV_TYPES:
        doc.metadata.extend(_wav_fields(path))
    elif media_type in MP4_TYPES:
        doc.metadata.extend(_mp4_fields(path))
    audio = mutagen.File(path)
    if audio is None:
        raise CorruptDocument("This audio or video file could not be read.")
    for key, value in (audio.tags or {}).items():
        label = _TAG_LABELS.get(key.split(":", 1)[0])
        text = _tag_value(value)
        if text.strip():
            place = f"{label} tag ({key})" if label else f"{key} tag"
            doc.metadata.append(MetadataField(place, text))
    for picture in getattr(audio, "pictures", []) or []:  # FLAC
        doc.metadata.append(MetadataField("picture", f"binary data ({len(picture.data)} bytes)"))
    if body:
        doc.notes.append("What is said or shown in the recording itself is not checked.")
    return doc


def _mutagen_strip(src: Path, dst: Path, media_type: str) -> list[str]:
    import mutagen
    import mutagen.apev2
    import mutagen.id3

    shutil.copyfile(src, dst)
    if media_type == MP3:
        mutagen.id3.delete(dst)  # ID3v2 at the start and ID3v1 at the end
        with suppress(mutagen.apev2.APENoHeaderError):
            mutagen.apev2.delete(dst)
        return []
    audio = mutagen.File(dst)
    if audio is None:
        raise CorruptDocument("This audio file could not be read.")
    if hasattr(audio, "clear_pictures"):
        audio.clear_pictures()
        audio.save()
    audio.delete()
    return []


# --- WebM (Matroska/EBML): tags, title, track names, attachments and chapters become Void --

_EBML, _SEGMENT, _CLUSTER, _VOID = 0x1A45DFA3, 0x18538067, 0x1F43B675, 0xEC
_INFO, _TITLE, _TRACKS, _TRACK, _TRACK_NAME = 0x1549A966, 0x7BA9, 0x1654AE6B, 0xAE, 0x536E
_TAGS, _TAG, _SIMPLE_TAG, _TAG_NAME, _TAG_STRING = 0x1254C367, 0x7373, 0x67C8, 0x45A3, 0x4487
_ATTACHMENTS, _ATTACHED_FILE, _FILE_NAME, _CHAPTERS = 0x1941A469, 0x61A7, 0x466E, 0x1043A770
_SEGMENT_CHILDREN = {0x114D9B74, _INFO, _TRACKS, _CLUSTER, 0x1C53BB6B, _ATTACHMENTS, _CHAPTERS,
                     _TAGS}  # fmt: skip


def _vint(stream: IO[bytes], keep_marker: bool) -> tuple[int | None, int]:
    """An EBML variable-length integer: (value, length); value None for "unknown size"."""
    first = _read_exact(stream, 1)[0]
    if first == 0:
        raise CorruptDocument("This WebM video is damaged.")
    length = 8 - first.bit_length() + 1
    data = first.to_bytes(1, "big") + _read_exact(stream, length - 1)
    value = int.from_bytes(data, "big")
    if keep_marker:
        return value, length
    value &= (1 << (7 * length)) - 1
    return (None if value == (1 << (7 * length)) - 1 else value), length


def _ebml_children(
    stream: IO[bytes], start: int, end: int
) -> Iterator[tuple[int, int, int, int | None]]:
    """(id, element start, data start, data end or None for unknown size) between start and
    end. A Cluster of unknown size (live recordings) ends where the next top-level element
    starts."""
    position = start
    while position < end:
        stream.seek(position)
        element, id_length = _vint(stream, keep_marker=True)
        size, size_length = _vint(stream, keep_marker=False)
        data = position + id_length + size_length
        if size is None and element == _SEGMENT:  # a live recording: up to the end of the file
            yield element, position, data, end
            return
        if size is None:
            if element != _CLUSTER:
                raise CorruptDocument("This WebM video has an element of unknown size.")
            yield element, position, data, None
            position = _unknown_cluster_end(stream, data, end)
            continue
        if data + size > end:
            raise CorruptDocument("This WebM video is cut short.")
        yield element, position, data, data + size
        position = data + size


def _unknown_cluster_end(stream: IO[bytes], position: int, end: int) -> int:
    while position < end:
        stream.seek(position)
        element, id_length = _vint(stream, keep_marker=True)
        if element in _SEGMENT_CHILDREN:
            return position
        size, size_length = _vint(stream, keep_marker=False)
        if size is None:
            raise CorruptDocument("This WebM video is damaged.")
        position += id_length + size_length + size
    return end


def _webm_metadata(stream: IO[bytes]) -> list[tuple[MetadataField, int, int]]:
    """Identifying elements: (what, element start, element end)."""
    stream.seek(0, 2)
    file_end = stream.tell()
    found: list[tuple[MetadataField, int, int]] = []
    top = list(_ebml_children(stream, 0, file_end))
    if not top or top[0][0] != _EBML:
        raise CorruptDocument("This file is not a WebM video.")

    def text(data: int, stop: int | None) -> str:
        stream.seek(data)
        return stream.read(min((stop or data) - data, 4096)).decode("utf-8", "replace")

    for element, _, data, stop in top:
        if element != _SEGMENT:
            continue
        for child, child_start, child_data, child_stop in _ebml_children(
            stream, data, stop or file_end
        ):
            if child_stop is None:
                continue
            if child in (_TAGS, _ATTACHMENTS, _CHAPTERS):
                for what in _webm_values(stream, child, child_data, child_stop, text):
                    found.append((what, child_start, child_stop))
            elif child in (_INFO, _TRACKS):
                for leaf, leaf_start, leaf_data, leaf_stop in _webm_leaves(
                    stream, child_data, child_stop
                ):
                    if leaf == _TITLE:
                        item = MetadataField("title", text(leaf_data, leaf_stop))
                        found.append((item, leaf_start, leaf_stop))
                    elif leaf == _TRACK_NAME:
                        item = MetadataField("track name", text(leaf_data, leaf_stop))
                        found.append((item, leaf_start, leaf_stop))
    return found


def _webm_leaves(stream: IO[bytes], start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Children of Info, and of each TrackEntry of Tracks."""
    for element, element_start, data, stop in list(_ebml_children(stream, start, end)):
        assert stop is not None
        if element == _TRACK:
            for leaf in list(_ebml_children(stream, data, stop)):
                assert leaf[3] is not None
                yield leaf[0], leaf[1], leaf[2], leaf[3]
        else:
            yield element, element_start, data, stop


def _webm_values(
    stream: IO[bytes], kind: int, start: int, end: int, text: Callable
) -> list[MetadataField]:
    if kind == _CHAPTERS:
        return [MetadataField("chapters", f"{end - start} bytes")]
    found = []
    pending: list[tuple[int, int, int]] = [(start, end, 0)]
    while pending:
        low, high, depth = pending.pop()
        name = ""
        for element, _, data, stop in list(_ebml_children(stream, low, high)):
            assert stop is not None
            if element in (_TAG, _SIMPLE_TAG, _ATTACHED_FILE) and depth < 8:
                pending.append((data, stop, depth + 1))
            elif element == _TAG_NAME:
                name = text(data, stop)
            elif element == _TAG_STRING:
                found.append(MetadataField(f"{name or 'tag'} tag", text(data, stop)))
            elif element == _FILE_NAME:
                found.append(MetadataField("attached file", text(data, stop)))
    if not found:
        label = "tags" if kind == _TAGS else "attachments"
        found.append(MetadataField(label, f"{end - start} bytes"))
    return found


def _void(stream: IO[bytes], start: int, end: int) -> None:
    """Overwrite an element with a Void element of the same total length, zeroed."""
    total = end - start
    length = min(8, total - 1)
    header = bytes((_VOID,)) + ((1 << (7 * length)) | (total - 1 - length)).to_bytes(length, "big")
    stream.seek(start)
    stream.write(header)
    _zero(stream, start + len(header), end)


def _webm_extract(path: Path, media_type: str, body: bool) -> DocumentText:
    doc = DocumentText(media_type)
    with path.open("rb") as stream:
        doc.metadata = _unique(item for item, _, _ in _webm_metadata(stream))
    if body:
        doc.notes.append("What is said or shown in the recording itself is not checked.")
    return doc


def _webm_strip(src: Path, dst: Path, media_type: str) -> list[str]:
    shutil.copyfile(src, dst)
    with dst.open("r+b") as stream:
        for start, end in sorted({(start, end) for _, start, end in _webm_metadata(stream)}):
            _void(stream, start, end)
    return []


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise CorruptDocument("This image is cut short.")
    return data


def _sub_blocks(stream: IO[bytes]) -> Iterator[bytes]:
    """A GIF data sequence: each sub-block with its size byte, then the 0 terminator."""
    while True:
        size = _read_exact(stream, 1)
        if size == b"\x00":
            yield size
            return
        yield size + _read_exact(stream, size[0])


_GIF_KEPT_APPLICATIONS = (b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012")


def _gif_pieces(stream: IO[bytes]) -> Iterator[tuple[bool, bytes, list[MetadataField]]]:
    """A GIF in order as (kept in the blind copy, raw bytes, metadata found in them): comments
    and application data other than looping and colour profiles are metadata."""
    header = _read_exact(stream, 13)
    if header[:6] not in (b"GIF87a", b"GIF89a"):
        raise CorruptDocument("This file is not a GIF image.")

    def colour_table(packed: int) -> bytes:
        return _read_exact(stream, 3 * 2 ** ((packed & 7) + 1)) if packed & 0x80 else b""

    yield True, header + colour_table(header[10]), []
    while True:
        introducer = _read_exact(stream, 1)
        if introducer == b"\x3b":
            yield True, introducer, []
            return  # anything after the trailer is dropped
        if introducer == b"\x2c":
            descriptor = _read_exact(stream, 9)
            yield True, introducer + descriptor + colour_table(descriptor[8]), []
            yield True, _read_exact(stream, 1), []  # LZW minimum code size
            for block in _sub_blocks(stream):
                yield True, block, []
        elif introducer == b"\x21":
            label = _read_exact(stream, 1)
            blocks = list(_sub_blocks(stream))
            raw = introducer + label + b"".join(blocks)
            if label == b"\xfe":
                text = b"".join(block[1:] for block in blocks).decode("latin-1")
                yield False, raw, [MetadataField("GIF comment", text)]
            elif label == b"\xff" and blocks and blocks[0][1:] not in _GIF_KEPT_APPLICATIONS:
                name = blocks[0][1:].decode("latin-1")
                packet = b"".join(blocks[1:])  # XMP is stored raw, not as sub-blocks
                start, end = packet.find(b"<x:xmpmeta"), packet.find(b"</x:xmpmeta>")
                if name == "XMP DataXMP" and 0 <= start < end:
                    found = xmp_fields(packet[start : end + len(b"</x:xmpmeta>")])
                else:
                    found = [MetadataField(f"GIF application data {name}", f"{len(raw)} bytes")]
                yield False, raw, found
            else:
                yield True, raw, []
        else:
            raise CorruptDocument("This GIF image is damaged.")


def _gif_metadata(path: Path) -> list[MetadataField]:
    with path.open("rb") as stream:
        return [item for _, _, found in _gif_pieces(stream) for item in found]


def _gif_strip(src: Path, dst: Path, media_type: str) -> list[str]:
    with src.open("rb") as stream, dst.open("wb") as out:
        for keep, raw, _ in _gif_pieces(stream):
            if keep:
                out.write(raw)
    return []


_HANDLERS: list[tuple[tuple[str, ...], _Handler]] = [
    ((PDF,), _Handler(_pdf_extract, _pdf_strip)),
    ((DOCX, XLSX, PPTX, *ODF_TYPES), _Handler(_package_extract, _package_strip)),
    ((JPEG,), _Handler(_image_extract, _jpeg_strip)),
    ((PNG,), _Handler(_image_extract, _png_strip)),
    ((WEBP,), _Handler(_image_extract, _webp_strip)),
    ((GIF,), _Handler(_image_extract, _gif_strip)),
    ((MP3, OGG, *FLAC_TYPES), _Handler(_media_extract, _mutagen_strip)),
    (WAV_TYPES, _Handler(_media_extract, _wav_strip)),
    (MP4_TYPES, _Handler(_media_extract, _mp4_strip)),
    ((WEBM,), _Handler(_webm_extract, _webm_strip)),
]
