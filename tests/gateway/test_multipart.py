"""The streaming form reader: fields and one file part, however the body is cut into chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.gateway.multipart import MAX_FIELD_BYTES, FormReader

CONTENT_TYPE = "multipart/form-data; boundary=BOUND"
FILE = b"line one\r\n--BOUN not the boundary\r\n\x00\xff" * 50


def body(file: bytes = FILE, purpose: bytes = b"batch") -> bytes:
    return (
        b"--BOUND\r\n"
        b'Content-Disposition: form-data; name="file"; filename="dir/data.jsonl"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + file + b"\r\n"
        b"--BOUND\r\n"
        b'Content-Disposition: form-data; name="purpose"\r\n\r\n' + purpose + b"\r\n"
        b"--BOUND--\r\n"
    )


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("size", [1, 2, 7, 64, 100_000])
async def test_the_file_and_fields_come_through_whatever_the_chunking(size: int) -> None:
    received: list[bytes] = []
    form = await FormReader(CONTENT_TYPE, "file", received.append).read(chunks_of(body(), size))
    assert b"".join(received) == FILE
    assert form.fields == {"purpose": "batch"}
    assert form.file_field == "file" and form.filename == "dir/data.jsonl"


async def test_a_field_over_its_limit_is_refused() -> None:
    reader = FormReader(CONTENT_TYPE, "file", lambda _: None)
    with pytest.raises(InvalidRequest) as refused:
        await reader.read(chunks_of(body(purpose=b"x" * (MAX_FIELD_BYTES + 1)), 1000))
    assert refused.value.param == "purpose"


async def test_two_file_parts_are_refused() -> None:
    part = body().split(b"--BOUND--")[0]
    twice = part * 2 + b"--BOUND--\r\n"
    with pytest.raises(InvalidRequest, match="Only one 'file' part"):
        await FormReader(CONTENT_TYPE, "file", lambda _: None).read(chunks_of(twice, 512))


@pytest.mark.parametrize("content_type", [None, "text/plain", "multipart/form-data"])
def test_a_body_that_is_not_multipart_with_a_boundary_is_refused(
    content_type: str | None,
) -> None:
    with pytest.raises(InvalidRequest):
        FormReader(content_type, "file", lambda _: None)


async def test_a_body_cut_short_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="closing boundary"):
        await FormReader(CONTENT_TYPE, "file", lambda _: None).read(chunks_of(body()[:-20], 64))
