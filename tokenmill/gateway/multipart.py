"""``multipart/form-data`` read as it streams in: small text fields kept, one file part passed on.

The file part's bytes go to a callback chunk by chunk (to disk, under the caller's limits),
called in a worker thread so the event loop never waits on the disk, and never held in
memory as a whole; every other part is a text field of a few KiB at most. A body
that is not well-formed multipart, or stops before its closing boundary, is an
``InvalidRequest``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from tokenmill.errors import InvalidRequest

MAX_FIELD_BYTES = 4096
MAX_FIELDS = 32
MAX_PART_HEADER_BYTES = 8192


@dataclass(slots=True)
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    file_field: str | None = None  # the name of the part that was the file, once seen
    filename: str | None = None


@dataclass(slots=True)
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    header_bytes: int = 0
    name: str = ""
    is_file: bool = False
    value: bytearray = field(default_factory=bytearray)


def _malformed(detail: str) -> InvalidRequest:
    return InvalidRequest(f"The request body is not valid multipart/form-data: {detail}")


def boundary_of(content_type: str | None) -> bytes:
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise InvalidRequest("Expected a multipart/form-data request body.")
    boundary = options.get(b"boundary")
    if not boundary:
        raise _malformed("the content-type has no boundary.")
    return boundary


class FormReader:
    """Feeds on body chunks; ``file_field``'s data goes to ``on_file`` as it arrives."""

    def __init__(
        self, content_type: str | None, file_field: str, on_file: Callable[[bytes], None]
    ) -> None:
        self.form = Form()
        self._file_field = file_field
        self._on_file = on_file
        self._part = _Part()
        self._complete = False
        self._pending: list[bytes] = []  # file bytes parsed from the last chunk, not yet passed on
        self._parser = MultipartParser(
            boundary_of(content_type),
            {
                "on_part_begin": self._begin,
                "on_header_field": self._header_name,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_done,
                "on_part_data": self._data,
                "on_part_end": self._end,
                "on_end": self._finished,
            },
        )

    async def read(self, chunks: AsyncIterator[bytes]) -> Form:
        async for chunk in chunks:
            self.feed(chunk)
            if self._pending:
                pending, self._pending = self._pending, []
                await asyncio.to_thread(self._pass_on, pending)
        return self.close()

    def _pass_on(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self._on_file(piece)

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except MultipartParseError as error:
            raise _malformed(str(error)) from None

    def close(self) -> Form:
        try:
            self._parser.finalize()
        except MultipartParseError as error:
            raise _malformed(str(error)) from None
        if not self._complete:
            raise _malformed("the body ends before its closing boundary.")
        pending, self._pending = self._pending, []  # left only when fed without ``read``
        self._pass_on(pending)
        return self.form

    # parser callbacks

    def _begin(self) -> None:
        self._part = _Part()

    def _header_name(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._part.header_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._part.header_value += data[start:end]

    def _count_header(self, size: int) -> None:
        self._part.header_bytes += size
        if self._part.header_bytes > MAX_PART_HEADER_BYTES:
            raise _malformed("a part's headers are too long.")

    def _header_end(self) -> None:
        part = self._part
        part.headers[bytes(part.header_name).lower()] = bytes(part.header_value)
        part.header_name.clear()
        part.header_value.clear()

    def _headers_done(self) -> None:
        part = self._part
        disposition, options = parse_options_header(part.headers.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise _malformed("a part has no content-disposition form-data name.")
        part.name = options[b"name"].decode("utf-8", "replace")
        if part.name == self._file_field:
            if self.form.file_field is not None:
                raise InvalidRequest(
                    f"Only one '{self._file_field}' part is allowed.", param=self._file_field
                )
            part.is_file = True
            self.form.file_field = part.name
            filename = options.get(b"filename")
            self.form.filename = filename.decode("utf-8", "replace") if filename else None
        elif len(self.form.fields) >= MAX_FIELDS:
            raise _malformed(f"more than {MAX_FIELDS} fields.")

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part.is_file:
            self._pending.append(data[start:end])
            return
        part.value += data[start:end]
        if len(part.value) > MAX_FIELD_BYTES:
            raise InvalidRequest(
                f"The field '{part.name}' is longer than {MAX_FIELD_BYTES} bytes.", param=part.name
            )

    def _end(self) -> None:
        part = self._part
        if not part.is_file:
            self.form.fields[part.name] = part.value.decode("utf-8", "replace")

    def _finished(self) -> None:
        self._complete = True
