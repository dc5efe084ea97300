"""Evidence files with identifying metadata, built here so tests and benchmarks need no fixtures.

The learner is Ada Lovelace (ada.lovelace@example.org); Grace Hopper is another course member.
Each builder writes a real file of its type (readable by the libraries people use) whose body
text and metadata name them.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import mutagen.id3
import mutagen.mp4
import mutagen.wave
import pikepdf
from mutagen.ogg import OggPage
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.unit.test_evidence_storage import CT, OFFICE_DOC, RELS, _box, mp3_bytes, wav_bytes

LEARNER = "Ada Lovelace"
LEARNER_EMAIL = "ada.lovelace@example.org"
OTHER = "Grace Hopper"
BODY_SENTENCE = "The lesson plan was tried with year 9 and reviewed by Grace Hopper."

XMP = f"""<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Writer of {LEARNER}">
<dc:creator><rdf:Seq><rdf:li>{LEARNER}</rdf:li></rdf:Seq></dc:creator>
</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>"""


def write_pdf(path: Path, pages: list[str] | None = None) -> Path:
    """A PDF with text pages, document info, XMP and a comment (annotation) by the learner."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                           BaseFont=pikepdf.Name.Helvetica)
    )  # fmt: skip
    for text in pages or ["Lesson plan", BODY_SENTENCE]:
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        page = pikepdf.Page(
            pikepdf.Dictionary(
                Type=pikepdf.Name.Page,
                MediaBox=[0, 0, 612, 792],
                Contents=pdf.make_stream(content),
                Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)),
            )
        )
        pdf.pages.append(page)
    annotation = pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Text,
                           Rect=[10, 10, 20, 20], T=pikepdf.String(LEARNER),
                           Contents=pikepdf.String("Check this part"))
    )  # fmt: skip
    pdf.pages[0].obj["/Annots"] = pikepdf.Array([annotation])
    pdf.docinfo["/Author"] = LEARNER
    pdf.docinfo["/Title"] = f"Lesson plan by {LEARNER}"
    pdf.Root.Metadata = pdf.make_stream(XMP.encode())
    pdf.Root.Metadata.Type = pikepdf.Name.Metadata
    pdf.Root.Metadata.Subtype = pikepdf.Name.XML
    pdf.save(path)
    return path


W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
W15 = "http://schemas.microsoft.com/office/word/2012/wordml"
CORE = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
    'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    f"<dc:title>Plan of {LEARNER}</dc:title><dc:creator>{LEARNER}</dc:creator>"
    f"<cp:lastModifiedBy>{OTHER}</cp:lastModifiedBy>"
    '<dcterms:created xsi:type="dcterms:W3CDTF">2026-01-02T10:00:00Z</dcterms:created>'
    "</cp:coreProperties>"
)
APP = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
    'extended-properties"><Application>Microsoft Office Word</Application>'
    "<Company>Lovelace Academy</Company></Properties>"
)


def _package(entries: list[tuple[str, str]], overrides: list[tuple[str, str]]) -> bytes:
    types = "".join(f'<Override PartName="/{n}" ContentType="{t}"/>' for n, t in overrides)
    content_types = (
        f'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="{CT}">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        f'<Default Extension="xml" ContentType="application/xml"/>{types}</Types>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", content_types)
        for name, text in entries:
            archive.writestr(name, text)
    return buffer.getvalue()


def _rels(targets: list[tuple[str, str, str]]) -> str:
    items = "".join(
        f'<Relationship Id="{i}" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        f'relationships/{kind}" Target="{target}"/>'
        for i, kind, target in targets
    )
    head = f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{RELS}">'
    return head + items + "</Relationships>"


ROOT_RELS = (
    f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{RELS}">'
    '<Relationship Id="rId1" Type="{doc}" Target="{main}"/></Relationships>'
)


def write_docx(path: Path, paragraphs: list[str] | None = None) -> Path:
    """A Word document: core/app properties, a comment, a tracked insertion, a reviewer."""
    paragraphs = paragraphs or ["Lesson plan", BODY_SENTENCE]
    body = "".join(f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>" for text in paragraphs)
    body += (
        f'<w:p><w:ins w:id="1" w:author="{OTHER}" w:date="2026-01-02T10:00:00Z">'
        "<w:r><w:t>Inserted words.</w:t></w:r></w:ins></w:p>"
    )
    document = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<w:document xmlns:w="{W}" xmlns:w15="{W15}" xmlns:mc="http://schemas.openxmlformats'
        f'.org/markup-compatibility/2006" mc:Ignorable="w15"><w:body>{body}</w:body></w:document>'
    )
    comments = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:comments xmlns:w="{W}">'
        f'<w:comment w:id="0" w:author="{LEARNER}" w:initials="AL"><w:p><w:r>'
        "<w:t>Remember the timings.</w:t></w:r></w:p></w:comment></w:comments>"
    )
    people = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w15:people xmlns:w15="{W15}">'
        f'<w15:person w15:author="{OTHER}"><w15:presenceInfo w15:providerId="AD" '
        f'w15:userId="{LEARNER_EMAIL}"/></w15:person></w15:people>'
    )
    main = "application/vnd.openxmlformats-officedocument.wordprocessingml"
    data = _package(
        [
            ("_rels/.rels", ROOT_RELS.format(doc=OFFICE_DOC, main="word/document.xml")),
            ("word/document.xml", document),
            ("word/_rels/document.xml.rels", _rels([("rId5", "comments", "comments.xml")])),
            ("word/comments.xml", comments),
            ("word/people.xml", people),
            ("docProps/core.xml", CORE),
            ("docProps/app.xml", APP),
        ],
        [
            ("word/document.xml", main + ".document.main+xml"),
            ("word/comments.xml", main + ".comments+xml"),
        ],
    )
    path.write_bytes(data)
    return path


S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def write_xlsx(path: Path) -> Path:
    """A workbook whose cell names a member, with a comment author and a saved-from path."""
    workbook = (
        f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{S}" xmlns:r="{R}" '
        'xmlns:x15ac="http://schemas.microsoft.com/office/spreadsheetml/2010/11/ac">'
        '<x15ac:absPath url="C:\\Users\\alovelace\\Documents\\"/>'
        '<sheets><sheet name="Budget" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{S}"><sheetData>'
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1"><v>42</v></c></row>'
        f'<row r="2"><c r="A2" t="inlineStr"><is><t>Checked by {OTHER}</t></is></c></row>'
        "</sheetData></worksheet>"
    )
    shared = f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{S}"><si><t>Total</t></si></sst>'
    comments = (
        f'<?xml version="1.0" encoding="UTF-8"?><comments xmlns="{S}"><authors>'
        f"<author>{LEARNER}</author></authors><commentList>"
        '<comment ref="B1" authorId="0"><text><r><t>Estimate</t></r></text></comment>'
        "</commentList></comments>"
    )
    data = _package(
        [
            ("_rels/.rels", ROOT_RELS.format(doc=OFFICE_DOC, main="xl/workbook.xml")),
            ("xl/workbook.xml", workbook),
            ("xl/_rels/workbook.xml.rels", _rels([("rId1", "worksheet", "worksheets/sheet1.xml")])),
            ("xl/worksheets/sheet1.xml", sheet),
            ("xl/sharedStrings.xml", shared),
            ("xl/comments1.xml", comments),
            ("docProps/core.xml", CORE),
        ],
        [
            (
                "xl/workbook.xml",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
            )
        ],
    )
    path.write_bytes(data)
    return path


P = "http://schemas.openxmlformats.org/presentationml/2006/main"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"


def write_pptx(path: Path) -> Path:
    """A presentation: two slides in an order other than their file names, speaker notes."""
    presentation = (
        f'<?xml version="1.0" encoding="UTF-8"?><p:presentation xmlns:p="{P}" xmlns:r="{R}">'
        '<p:sldIdLst><p:sldId id="256" r:id="rId2"/><p:sldId id="257" r:id="rId1"/>'
        "</p:sldIdLst></p:presentation>"
    )

    def slide(text: str) -> str:
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><p:sld xmlns:p="{P}" xmlns:a="{A}">'
            f"<p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>{text}</a:t></a:r></a:p>"
            "</p:txBody></p:sp></p:spTree></p:cSld></p:sld>"
        )

    notes = (
        slide("Say thank you to Grace Hopper")
        .replace("p:sld ", "p:notes ")
        .replace("</p:sld>", "</p:notes>")
    )
    authors = (
        f'<?xml version="1.0" encoding="UTF-8"?><p:cmAuthorLst xmlns:p="{P}">'
        f'<p:cmAuthor id="0" name="{LEARNER}" initials="AL" lastIdx="1" clrIdx="0"/>'
        "</p:cmAuthorLst>"
    )
    data = _package(
        [
            ("_rels/.rels", ROOT_RELS.format(doc=OFFICE_DOC, main="ppt/presentation.xml")),
            ("ppt/presentation.xml", presentation),
            (
                "ppt/_rels/presentation.xml.rels",
                _rels(
                    [("rId1", "slide", "slides/slide1.xml"), ("rId2", "slide", "slides/slide2.xml")]
                ),
            ),
            ("ppt/slides/slide1.xml", slide("Second slide")),
            ("ppt/slides/slide2.xml", slide("First slide")),
            (
                "ppt/slides/_rels/slide1.xml.rels",
                _rels([("rId1", "notesSlide", "../notesSlides/notesSlide1.xml")]),
            ),
            ("ppt/notesSlides/notesSlide1.xml", notes),
            ("ppt/commentAuthors.xml", authors),
            ("docProps/core.xml", CORE),
        ],
        [
            (
                "ppt/presentation.xml",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
            )
        ],
    )
    path.write_bytes(data)
    return path


ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0"'
)


def write_odt(path: Path) -> Path:
    """An OpenDocument text with meta.xml authors, a comment and a tracked change."""
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODF_NS}>'
        "<office:body><office:text><text:tracked-changes><text:changed-region text:id='c1'>"
        f"<text:insertion><office:change-info><dc:creator>{OTHER}</dc:creator>"
        "<dc:date>2026-01-02T10:00:00</dc:date></office:change-info></text:insertion>"
        "</text:changed-region></text:tracked-changes>"
        "<text:h>Lesson plan</text:h>"
        f"<text:p>{BODY_SENTENCE}<office:annotation><dc:creator>{LEARNER}</dc:creator>"
        "<dc:date>2026-01-02T10:00:00</dc:date><text:p>Shorten this</text:p>"
        "</office:annotation></text:p><text:p>Second<text:s/>paragraph</text:p>"
        "</office:text></office:body></office:document-content>"
    )
    meta = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-meta {ODF_NS}><office:meta>'
        f"<meta:initial-creator>{LEARNER}</meta:initial-creator><dc:creator>{LEARNER}</dc:creator>"
        f"<dc:title>Plan of {LEARNER}</dc:title><meta:generator>LibreOffice</meta:generator>"
        "</office:meta></office:document-meta>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest='
        '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry '
        'manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/>'
        "</manifest:manifest>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"),
            "application/vnd.oasis.opendocument.text",
            compress_type=zipfile.ZIP_STORED,
        )
        archive.writestr("content.xml", content)
        archive.writestr("meta.xml", meta)
        archive.writestr("META-INF/manifest.xml", manifest)
    path.write_bytes(buffer.getvalue())
    return path


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x013B] = LEARNER  # Artist
    exif[0x8298] = f"(c) {LEARNER}"  # Copyright
    exif[0x9C9D] = LEARNER.encode("utf-16-le") + b"\x00\x00"  # XPAuthor
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (51.0, 30.0, 0.0), "W", (0.0, 7.0, 0.0)
    return exif


def _picture() -> Image.Image:
    image = Image.new("RGB", (32, 16))
    for x in range(32):
        for y in range(16):
            image.putpixel((x, y), (x * 8, y * 16, 100))
    return image


def _iptc_segment() -> bytes:
    """An APP13 Photoshop segment with an IPTC by-line (author)."""
    name = LEARNER.encode()
    iptc = b"\x1c\x02\x50" + struct.pack(">H", len(name)) + name
    iptc += b"\x00" * (len(iptc) % 2)
    block = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    payload = b"Photoshop 3.0\x00" + block
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def write_jpeg(path: Path) -> Path:
    """A JPEG with EXIF (artist, copyright, XPAuthor, GPS), XMP, IPTC, a comment and a
    trailer after the end-of-image marker."""
    buffer = io.BytesIO()
    _picture().save(buffer, "JPEG", quality=90, exif=_exif(), xmp=XMP.encode(),
                    comment=f"Photo by {LEARNER}")  # fmt: skip
    data = buffer.getvalue()
    data = data[:2] + _iptc_segment() + data[2:] + b"trailing phone data " + LEARNER.encode()
    path.write_bytes(data)
    return path


def write_png(path: Path) -> Path:
    info = PngInfo()
    info.add_text("Author", LEARNER)
    info.add_itxt("Comment", f"Drawn by {OTHER}", zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP)
    _picture().save(path, "PNG", pnginfo=info, exif=_exif())
    return path


def write_gif(path: Path) -> Path:
    """A two-frame looping GIF with a comment and an XMP application extension."""
    second = _picture().transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    _picture().save(path, "GIF", save_all=True, append_images=[second], loop=0, duration=100,
                    comment=f"Made by {LEARNER}")  # fmt: skip
    data = path.read_bytes()
    packed = data[10]
    start = 13 + (3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0)
    magic_trailer = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    xmp = b"\x21\xff\x0bXMP DataXMP" + XMP.encode() + magic_trailer
    path.write_bytes(data[:start] + xmp + data[start:])
    return path


def write_webp(path: Path) -> Path:
    _picture().save(path, "WEBP", lossless=True, exif=_exif(), xmp=XMP.encode())
    return path


def write_mp3(path: Path) -> Path:
    path.write_bytes(mp3_bytes(40)[10:])  # frames only: mutagen writes the tags
    tags = mutagen.id3.ID3()
    tags.add(mutagen.id3.TPE1(encoding=3, text=[LEARNER]))
    tags.add(mutagen.id3.TIT2(encoding=3, text=["Interview"]))
    tags.add(mutagen.id3.COMM(encoding=3, lang="eng", desc="", text=[f"With {OTHER}"]))
    tags.save(path, v1=2)  # ID3v2 at the start and ID3v1 at the end
    return path


def write_opus(path: Path) -> Path:
    """An Ogg Opus stream: identification and comment headers, one empty audio page."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    vendor = b"test encoder"
    comments = [f"ARTIST={LEARNER}".encode(), b"TITLE=Interview"]
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(comments))
    tags += b"".join(struct.pack("<I", len(c)) + c for c in comments)
    pages = []
    for sequence, (packet, position) in enumerate([(head, 0), (tags, 0), (b"\xf8\xff\xfe", 960)]):
        page = OggPage()
        page.serial, page.sequence, page.position = 1, sequence, position
        page.first = sequence == 0
        page.last = sequence == 2
        page.packets = [packet]
        pages.append(page.write())
    path.write_bytes(b"".join(pages))
    return path


def write_wav(path: Path) -> Path:
    """A WAV with a RIFF INFO list (artist) and an ID3 chunk written by mutagen."""
    data = wav_bytes()
    info = b"IART" + struct.pack("<I", len(LEARNER) + 1) + LEARNER.encode() + b"\x00"
    info += b"\x00" * (len(info) % 2)
    chunk = b"LIST" + struct.pack("<I", 4 + len(info)) + b"INFO" + info
    body = data[8:] + chunk
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    wave = mutagen.wave.WAVE(path)
    wave.add_tags()
    wave.tags.add(mutagen.id3.TPE1(encoding=3, text=[OTHER]))
    wave.save()
    return path


def mp4_movie(mdat_size: int = 256, with_tags: bool = True) -> bytes:
    """An MP4 movie: ftyp, moov (mvhd, udta with a ©xyz location) and an mdat of zeros."""
    mvhd = _box(b"mvhd", bytes(4) + struct.pack(">IIII", 0, 0, 1000, 1000) + bytes(80))
    udta = _box(b"udta", _box(b"\xa9xyz", struct.pack(">HH", 17, 0) + b"+51.5000-000.1167/"))
    moov = _box(b"moov", mvhd + (udta if with_tags else b""))
    return _box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41") + moov


def write_mp4(path: Path, mdat_size: int = 256) -> Path:
    """An MP4 with a QuickTime location and iTunes tags (artist) added by mutagen."""
    with path.open("wb") as out:
        out.write(mp4_movie())
        out.write(struct.pack(">I", 8 + mdat_size) + b"mdat")
        block = bytes(1024 * 1024)
        left = mdat_size
        while left > 0:
            out.write(block[: min(left, len(block))])
            left -= len(block)
    movie = mutagen.mp4.MP4(path)
    movie.add_tags()
    movie.tags["\xa9ART"] = [LEARNER]
    movie.tags["\xa9cmt"] = [f"Filmed with {OTHER}"]
    movie.save()
    return path


def _ebml(element: int, payload: bytes, unknown_size: bool = False) -> bytes:
    """An EBML element with an 8-byte size (or "unknown", as live recorders write)."""
    size = (
        b"\x01\xff\xff\xff\xff\xff\xff\xff"
        if unknown_size
        else b"\x01" + len(payload).to_bytes(7, "big")
    )
    return element.to_bytes((element.bit_length() + 7) // 8, "big") + size + payload


FRAME = bytes(range(256)) * 4  # stands for the compressed video of the cluster


def write_webm(path: Path, live: bool = False) -> Path:
    """A WebM with a title, a track name and tags naming the learner. live: Segment and
    Cluster of unknown size, as a browser's MediaRecorder writes them."""
    header = _ebml(0x1A45DFA3, _ebml(0x4282, b"webm") + _ebml(0x4287, b"\x04"))
    info = _ebml(0x1549A966, _ebml(0x2AD7B1, b"\x0f\x42\x40") + _ebml(0x4D80, b"test")
                 + _ebml(0x7BA9, f"Talk by {LEARNER}".encode()))  # fmt: skip
    track = _ebml(0xAE, _ebml(0xD7, b"\x01") + _ebml(0x83, b"\x01") + _ebml(0x86, b"V_VP8")
                  + _ebml(0x536E, f"Webcam of {LEARNER}".encode()))  # fmt: skip
    tracks = _ebml(0x1654AE6B, track)
    simple = _ebml(0x67C8, _ebml(0x45A3, b"ARTIST") + _ebml(0x4487, LEARNER.encode()))
    tags = _ebml(0x1254C367, _ebml(0x7373, _ebml(0x63C0, b"") + simple))
    cluster = _ebml(0x1F43B675, _ebml(0xE7, b"\x00") + _ebml(0xA3, FRAME), unknown_size=live)
    segment = info + tracks + tags + cluster if live else info + tracks + cluster + tags
    path.write_bytes(header + _ebml(0x18538067, segment, unknown_size=live))
    return path
