"""Request bodies that carry files, read as a stream: never whole in memory, never spooled.

Flask's `request.files` would parse the whole body first (into memory or a temporary file);
evidence files can be hundreds of MB, so the upload views read `request.stream` in chunks
instead and hand each file's chunks straight to storage, which checks them as they pass.
Two shapes are accepted: an HTML form (multipart/form-data, decoded incrementally with
Werkzeug's sans-IO MultipartDecoder) and a raw body (a script's fetch; the name in `?name=`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from werkzeug.sansio.multipart import (
    NEED_DATA,
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
)

READ_SIZE = 1024 * 1024  # bytes read from the request at a time
MAX_FIELD_BYTES = 64 * 1024  # a form field beside the files (never large)
MAX_PARTS = 50


class MalformedUpload(ValueError):
    """The body is not the form the page sends (a broken or hand-made request)."""


@dataclass
class IncomingFile:
    """One file of the request, its content an iterator of chunks to read once, in order."""

    field: str
    filename: str
    chunks: Iterator[bytes]


def _events(stream: IO[bytes], decoder: MultipartDecoder) -> Iterator[object]:
    while True:
        try:
            event = decoder.next_event()
        except ValueError as exc:  # werkzeug raises ValueError on a malformed part
            raise MalformedUpload(str(exc)) from None
        if event is NEED_DATA:
            chunk = stream.read(READ_SIZE)
            if not chunk and decoder.complete:
                raise MalformedUpload("the upload ended before the form was complete")
            decoder.receive_data(chunk or None)
            continue
        yield event
        if isinstance(event, Epilogue):
            return


def _data(events: Iterator[object]) -> Iterator[bytes]:
    for event in events:
        if not isinstance(event, Data):
            raise MalformedUpload("a file part without its data")
        if event.data:
            yield event.data
        if not event.more_data:
            return
    raise MalformedUpload("the upload ended inside a file")


def multipart_files(stream: IO[bytes], boundary: str) -> Iterator[IncomingFile]:
    """The files of a multipart/form-data body, one after another; each must be read to its
    end before the next is asked for. Small fields beside them are skipped."""
    if not boundary:
        raise MalformedUpload("a multipart body without its boundary")
    decoder = MultipartDecoder(boundary.encode("latin-1"), max_parts=MAX_PARTS)
    events = _events(stream, decoder)
    for event in events:
        if isinstance(event, File):
            incoming = IncomingFile(event.name, event.filename, _data(events))
            yield incoming
            for _rest in incoming.chunks:  # what the consumer left unread
                pass
        elif isinstance(event, Field):
            size = sum(len(chunk) for chunk in _data(events))
            if size > MAX_FIELD_BYTES:
                raise MalformedUpload("a form field is too large")


def raw_chunks(stream: IO[bytes], declared: int | None) -> Iterator[bytes]:
    """A raw body's chunks; MalformedUpload at the end when fewer bytes came than declared
    (the connection dropped), so storage keeps nothing of it."""
    received = 0
    while chunk := stream.read(READ_SIZE):
        received += len(chunk)
        yield chunk
    if declared is not None and received != declared:
        raise MalformedUpload(f"the upload ended after {received} of {declared} bytes")
