"""Evidence file storage: uploads are checked while they stream, then kept locally or in S3.

Why checking happens on the way in: a learner's file is never held whole in memory (a video can
be hundreds of MB), so its type comes from its first bytes (never from its name), its size is
counted as it arrives and the SHA-256 is computed on the fly. A refused or interrupted upload
leaves nothing behind: locally the file only gets its name once complete and accepted; in S3 the
multipart upload is aborted.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, cast

import filetype

from lti_tool.settings import Settings, SettingsError

log = logging.getLogger(__name__)

MB = 1024 * 1024
# filetype looks at this many leading bytes (its own _NUM_SIGNATURE_BYTES); enough for the
# first ZIP entries that tell a .docx or .odt from a plain ZIP archive.
HEAD_SIZE = 8192
READ_SIZE = 1 * MB  # bytes read at a time from a file-like source
S3_PART_SIZE = 8 * MB  # above S3's 5 MiB minimum; 10,000 parts allow files up to 78 GiB
TEMP_PREFIX = ".upload-"
TEMP_SUFFIX = ".part"

KINDS = ("pdf", "document", "image", "audio", "video")
KIND_PHRASES = {
    "pdf": "a PDF",
    "document": "a document (Word, Excel, PowerPoint or OpenDocument)",
    "image": "an image (PNG, JPEG, GIF or WebP)",
    "audio": "audio (MP3, M4A, WAV or Ogg)",
    "video": "a video (MP4, MOV or WebM)",
}


@dataclass(frozen=True)
class FileType:
    """A type we can accept: its kind (what settings allow), MIME type, extension, a name."""

    kind: str
    content_type: str
    extension: str
    label: str


_OOXML = "application/vnd.openxmlformats-officedocument."
_ODF = "application/vnd.oasis.opendocument."
# filetype's MIME type -> the type as we store and name it.
ACCEPTABLE: dict[str, FileType] = {
    "application/pdf": FileType("pdf", "application/pdf", "pdf", "PDF"),
    _OOXML + "wordprocessingml.document": FileType(
        "document", _OOXML + "wordprocessingml.document", "docx", "Word document"
    ),
    _OOXML + "spreadsheetml.sheet": FileType(
        "document", _OOXML + "spreadsheetml.sheet", "xlsx", "Excel workbook"
    ),
    _OOXML + "presentationml.presentation": FileType(
        "document", _OOXML + "presentationml.presentation", "pptx", "PowerPoint presentation"
    ),
    _ODF + "text": FileType("document", _ODF + "text", "odt", "OpenDocument text"),
    _ODF + "spreadsheet": FileType(
        "document", _ODF + "spreadsheet", "ods", "OpenDocument spreadsheet"
    ),
    _ODF + "presentation": FileType(
        "document", _ODF + "presentation", "odp", "OpenDocument presentation"
    ),
    "image/png": FileType("image", "image/png", "png", "PNG image"),
    "image/apng": FileType("image", "image/png", "png", "PNG image"),
    "image/jpeg": FileType("image", "image/jpeg", "jpg", "JPEG image"),
    "image/gif": FileType("image", "image/gif", "gif", "GIF image"),
    "image/webp": FileType("image", "image/webp", "webp", "WebP image"),
    "audio/mpeg": FileType("audio", "audio/mpeg", "mp3", "MP3 audio file"),
    "audio/mp4": FileType("audio", "audio/mp4", "m4a", "M4A audio file"),
    "audio/x-wav": FileType("audio", "audio/wav", "wav", "WAV audio file"),
    "audio/ogg": FileType("audio", "audio/ogg", "ogg", "Ogg audio file"),
    "video/mp4": FileType("video", "video/mp4", "mp4", "MP4 video"),
    "video/quicktime": FileType("video", "video/quicktime", "mov", "MOV video"),
    "video/webm": FileType("video", "video/webm", "webm", "WebM video"),
}
# How to name, to a learner, a recognised type that is never accepted.
REFUSED_NAMES = {
    "application/zip": "a ZIP archive",
    "application/x-msdownload": "a Windows program",
    "application/x-executable": "a program (executable file)",
    "application/msword": "an old-format Word document (.doc)",
    "application/vnd.ms-excel": "an old-format Excel workbook (.xls)",
    "application/vnd.ms-powerpoint": "an old-format PowerPoint presentation (.ppt)",
}
OLD_OFFICE = ("application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint")


class UploadRefused(Exception):
    """An upload we will not keep: `code` for programs, `message` for the learner.

    Codes: empty, unknown_type, type_not_allowed, too_large.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class StoredFile:
    """What was kept: the key, its size in bytes, hex SHA-256 and the type found in its bytes."""

    key: str
    size: int
    sha256: str
    type: FileType

    @property
    def content_type(self) -> str:
        return self.type.content_type


@dataclass(frozen=True)
class UploadPolicy:
    """What an upload may be: at most max_bytes, of one of the allowed kinds."""

    max_bytes: int
    kinds: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadPolicy:
        listed = settings.evidence_allowed_types.split(",")
        kinds = frozenset(kind.strip() for kind in listed if kind.strip())
        unknown = sorted(kinds - set(KINDS))
        if unknown or not kinds:
            raise SettingsError(
                "LTI_TOOL_EVIDENCE_ALLOWED_TYPES must list some of "
                f"{', '.join(KINDS)}, not {settings.evidence_allowed_types!r}"
            )
        if settings.evidence_max_upload_mb <= 0:
            raise SettingsError("LTI_TOOL_EVIDENCE_MAX_UPLOAD_MB must be a positive number of MB")
        return cls(max_bytes=settings.evidence_max_upload_mb * MB, kinds=kinds)

    def allowed_phrase(self) -> str:
        phrases = [KIND_PHRASES[kind] for kind in KINDS if kind in self.kinds]
        if len(phrases) == 1:
            return phrases[0]
        return ", ".join(phrases[:-1]) + " or " + phrases[-1]


def _mb(size: int) -> str:
    return f"{math.ceil(size / MB)} MB"


def too_large(policy: UploadPolicy, size: int | None) -> UploadRefused:
    limit = _mb(policy.max_bytes)
    if size is None:
        message = f"The file is larger than {limit}, the limit for uploads."
    else:
        message = f"The file is {_mb(size)}; the limit is {limit}."
    return UploadRefused(
        "too_large", message + " Make it smaller, or put it online and add a link instead."
    )


def detect(head: bytes, policy: UploadPolicy) -> FileType:
    """The type of a file from its first bytes, or UploadRefused saying what it is instead."""
    guess = filetype.guess(head)
    found = ACCEPTABLE.get(guess.mime) if guess is not None else None
    if found is not None and found.kind in policy.kinds:
        return found
    allowed = policy.allowed_phrase()
    if guess is None:
        raise UploadRefused(
            "unknown_type",
            f"This file's content is not recognised as {allowed}. Only what is inside the file "
            "counts, not its name.",
        )
    what = (
        f"a {found.label}" if found else REFUSED_NAMES.get(guess.mime, f"a .{guess.extension} file")
    )
    message = f"This file is {what}, not {allowed}."
    if guess.mime in OLD_OFFICE and "document" in policy.kinds:
        message += " Save it as PDF or in the current format (.docx, .xlsx, .pptx) and try again."
    raise UploadRefused("type_not_allowed", message)


Source = IO[bytes] | Iterable[bytes] | bytes


def _chunks(source: Source) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield bytes(source)
    elif hasattr(source, "read"):
        stream = cast(IO[bytes], source)
        while chunk := stream.read(READ_SIZE):
            yield chunk
    else:
        yield from cast(Iterable[bytes], source)


class _Inspector:
    """Checks one upload as it passes: type from the head, running size, SHA-256."""

    def __init__(self, policy: UploadPolicy, size_hint: int | None) -> None:
        if size_hint is not None and size_hint > policy.max_bytes:
            raise too_large(policy, size_hint)
        self.policy = policy
        self.size = 0
        self.digest = hashlib.sha256()
        self.head = bytearray()
        self.type: FileType | None = None

    def checked(self, source: Source) -> Iterator[bytes]:
        """The source's chunks, each only once it passed; raises UploadRefused at the first
        sign of trouble, without reading further."""
        for chunk in _chunks(source):
            if not chunk:
                continue
            if self.type is None:
                self.head += chunk[: HEAD_SIZE - len(self.head)]
                if len(self.head) >= HEAD_SIZE:
                    self.type = detect(bytes(self.head), self.policy)
            self.size += len(chunk)
            if self.size > self.policy.max_bytes:
                raise too_large(self.policy, None)
            self.digest.update(chunk)
            yield chunk
        if self.size == 0:
            raise UploadRefused("empty", "This file is empty.")
        if self.type is None:
            self.type = detect(bytes(self.head), self.policy)

    def result(self, key: str) -> StoredFile:
        assert self.type is not None, "result() before the whole source was checked"
        return StoredFile(key=key, size=self.size, sha256=self.digest.hexdigest(), type=self.type)


_KEY_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def check_key(key: str) -> str:
    """Keys are relative paths of plain names: never absolute, no '..', no hidden names."""
    parts = key.split("/")
    if len(key) > 512 or not all(_KEY_PART.fullmatch(part) for part in parts):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class Storage(Protocol):
    """Where evidence files live; every backend checks uploads the same way."""

    policy: UploadPolicy

    def save(self, key: str, source: Source, *, size_hint: int | None = None) -> StoredFile:
        """Check and keep the source under key (replacing any file there), or raise
        UploadRefused and keep nothing. size_hint (a declared length) refuses early."""
        ...

    def open(self, key: str) -> IO[bytes]:
        """A binary stream to read the file (close it); FileNotFoundError if absent."""
        ...

    def delete(self, key: str) -> None:
        """Remove the file; nothing happens if it is absent."""
        ...

    def exists(self, key: str) -> bool: ...


class LocalStorage:
    """Files under one folder (instance/evidence by default), written whole or not at all."""

    def __init__(self, root: Path, policy: UploadPolicy) -> None:
        self.root = root.resolve()
        self.policy = policy

    def path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):  # a symlink inside the folder pointing out
            raise ValueError(f"invalid storage key {key!r}")
        return path

    def save(self, key: str, source: Source, *, size_hint: int | None = None) -> StoredFile:
        path = self.path(key)
        inspector = _Inspector(self.policy, size_hint)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX
        )
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in inspector.checked(source):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        _fsync_dir(path.parent)
        return inspector.result(key)

    def open(self, key: str) -> IO[bytes]:
        return self.path(key).open("rb")

    def delete(self, key: str) -> None:
        with suppress(FileNotFoundError):
            self.path(key).unlink()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def remove_stale_temporaries(self, older_than_seconds: float = 24 * 3600) -> int:
        """Remove temporary files left by a killed process (an upload lasts far less than a
        day); returns how many were removed."""
        limit = time.time() - older_than_seconds
        removed = 0
        for path in self.root.rglob(TEMP_PREFIX + "*" + TEMP_SUFFIX):
            with suppress(FileNotFoundError):
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
        return removed


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a crash right after save keeps the file)."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class S3Storage:
    """Objects in an S3-compatible bucket, under an optional prefix.

    Uploads go in parts of S3_PART_SIZE (a file smaller than one part goes in one request);
    an object only appears once complete, and a refused or failed upload is aborted so no
    parts are left to pay for.
    """

    def __init__(self, client: Any, bucket: str, prefix: str, policy: UploadPolicy) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.policy = policy

    @classmethod
    def from_settings(cls, settings: Settings, policy: UploadPolicy) -> S3Storage:
        import boto3  # only here: local storage needs no AWS SDK at import time
        from botocore.config import Config

        config = Config(retries={"mode": "standard"})
        if settings.s3_endpoint_url:
            # Stores other than AWS may not know the checksums botocore sends by default;
            # the SHA-256 we compute ourselves covers the content.
            config = config.merge(
                Config(
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
            )
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.s3_region or None,
            config=config,
        )
        return cls(client, settings.s3_bucket, settings.s3_prefix, policy)

    def name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def save(self, key: str, source: Source, *, size_hint: int | None = None) -> StoredFile:
        name = self.name(key)
        inspector = _Inspector(self.policy, size_hint)
        part = bytearray()
        parts: list[dict[str, Any]] = []
        upload_id: str | None = None
        try:
            for chunk in inspector.checked(source):
                part += chunk
                if len(part) >= S3_PART_SIZE:
                    if upload_id is None:
                        assert inspector.type is not None  # decided within HEAD_SIZE bytes
                        upload_id = self.client.create_multipart_upload(
                            Bucket=self.bucket, Key=name, ContentType=inspector.type.content_type
                        )["UploadId"]
                    parts.append(self._upload_part(name, upload_id, len(parts) + 1, part))
                    part = bytearray()
            stored = inspector.result(key)
            if upload_id is None:
                self.client.put_object(
                    Bucket=self.bucket, Key=name, Body=part, ContentType=stored.content_type
                )
            else:
                if part:
                    parts.append(self._upload_part(name, upload_id, len(parts) + 1, part))
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            if upload_id is not None:
                self._abort(name, upload_id)
            raise
        return stored

    def _upload_part(self, name: str, upload_id: str, number: int, data: bytearray) -> dict:
        # data is sent as it is (no copy); the caller starts a new buffer afterwards.
        response = self.client.upload_part(
            Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=data
        )
        return {"ETag": response["ETag"], "PartNumber": number}

    def _abort(self, name: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
        except Exception:
            # The original error matters more; a bucket lifecycle rule
            # (AbortIncompleteMultipartUpload) removes what is left.
            log.exception("could not abort multipart upload %s of %s", upload_id, name)

    def open(self, key: str) -> IO[bytes]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.name(key))
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"no stored file {key!r}") from None
        return cast(IO[bytes], response["Body"])  # botocore's StreamingBody, an IOBase

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.name(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


def make_storage(settings: Settings) -> Storage:
    """S3 when a bucket is configured, otherwise files under instance_path/evidence."""
    policy = UploadPolicy.from_settings(settings)
    if settings.s3_bucket:
        return S3Storage.from_settings(settings, policy)
    if settings.s3_endpoint_url or settings.s3_prefix:
        raise SettingsError(
            "LTI_TOOL_S3_ENDPOINT_URL or LTI_TOOL_S3_PREFIX is set but LTI_TOOL_S3_BUCKET is "
            "empty: set the bucket, or unset both to keep evidence files locally"
        )
    return LocalStorage(settings.instance_dir / "evidence", policy)
