"""The Files API family: upload, list, retrieve, content, delete (OpenAI's shapes).

    POST   /v1/files                 multipart: file, purpose[, expires_after[anchor|seconds]]
    GET    /v1/files?purpose=&limit=&order=&after=
    GET    /v1/files/{id}
    GET    /v1/files/{id}/content
    DELETE /v1/files/{id}

Any key may use files (as on OpenAI); a key sees only its tenant's files, and another
tenant's file id is answered as if it did not exist (404). Disk and database work runs in
threads, off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from tokenmill.control.keys import Principal
from tokenmill.errors import InvalidRequest, NotFound, PayloadTooLarge
from tokenmill.files.objects import (
    PURPOSES,
    WRITTEN_PURPOSES,
    clean_filename,
    parse_expires_after,
    validate_purpose,
)
from tokenmill.files.repository import MAX_LIST_LIMIT
from tokenmill.files.service import FileService, too_large_message
from tokenmill.gateway.http import (
    AUTHORIZATION,
    ClientDisconnected,
    HttpRequest,
    Response,
    StreamResponse,
    json_response,
)
from tokenmill.gateway.listing import parse_limit
from tokenmill.gateway.multipart import FormReader
from tokenmill.gateway.services import Services

OCTET_STREAM = b"application/octet-stream"
# What multipart framing around one file and a few fields may add to the body.
FRAMING_BYTES = 64 * 1024
LIST_PARAMS = ("purpose", "limit", "order", "after")


async def _caller(services: Services, request: HttpRequest) -> tuple[Principal, FileService]:
    principal = await services.keys.authenticate(request.header(AUTHORIZATION))
    if services.files is None:
        raise NotFound("The Files API is not enabled on this gateway.", code="not_found")
    return principal, services.files


async def _body_chunks(request: HttpRequest) -> AsyncIterator[bytes]:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body"):
            return


def _refuse_oversized_body(request: HttpRequest, max_bytes: int) -> None:
    """A declared body far past the limit is refused before a byte of it is read."""
    declared = request.header(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + FRAMING_BYTES:
        raise PayloadTooLarge(too_large_message(max_bytes), param="file")


async def create_file(services: Services, request: HttpRequest) -> Response:
    principal, files = await _caller(services, request)
    _refuse_oversized_body(request, files.limits.max_bytes)
    upload = await asyncio.to_thread(files.start_upload, principal.tenant_id, principal.key_id)
    try:
        reader = FormReader(request.header(b"content-type"), "file", upload.write)
        form = await reader.read(_body_chunks(request))
        if form.file_field is None:
            raise InvalidRequest("Missing required parameter: 'file'.", param="file")
        filename = clean_filename(form.filename)
        purpose = validate_purpose(form.fields.get("purpose"))
        expires = parse_expires_after(
            form.fields.get("expires_after[anchor]"), form.fields.get("expires_after[seconds]")
        )
        info = await asyncio.to_thread(files.finish_upload, upload, filename, purpose, expires)
    except BaseException:
        upload.abort()
        raise
    return json_response(info.as_openai())


async def list_files(services: Services, request: HttpRequest) -> Response:
    principal, files = await _caller(services, request)
    query = request.query()
    purpose = query.get("purpose") or None
    if purpose is not None:
        validate_purpose(purpose, PURPOSES + WRITTEN_PURPOSES)
    limit = parse_limit(query, MAX_LIST_LIMIT)
    page = await asyncio.to_thread(
        files.list,
        principal.tenant_id,
        purpose=purpose,
        limit=limit,
        order=query.get("order") or "desc",
        after=query.get("after") or None,
    )
    return json_response(page.as_openai())


async def file_resource(services: Services, request: HttpRequest) -> Response | StreamResponse:
    """``GET /v1/files/{id}`` and ``GET /v1/files/{id}/content``."""
    principal, files = await _caller(services, request)
    file_id, _, rest = request.path_params["file_path"].partition("/")
    if rest == "content":
        info, chunks = await asyncio.to_thread(files.content, principal.tenant_id, file_id)
        headers = {
            "content-length": str(info.size_bytes),
            "content-disposition": f'attachment; filename="{_quoted(info.filename)}"',
        }
        return StreamResponse(_in_thread(chunks), media_type=OCTET_STREAM, headers=headers)
    if rest:
        raise NotFound(f"No route GET {request.path}.", code="not_found")
    info = await asyncio.to_thread(files.get, principal.tenant_id, file_id)
    return json_response(info.as_openai())


async def delete_file(services: Services, request: HttpRequest) -> Response:
    principal, files = await _caller(services, request)
    file_id = request.path_params["file_path"]
    info = await asyncio.to_thread(files.delete, principal.tenant_id, file_id)
    return json_response({"id": info.id, "object": "file", "deleted": True})


def _quoted(filename: str) -> str:
    return "".join(c if c.isascii() and c not in '"\\' else "_" for c in filename)


async def _in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Reads the file in a thread, chunk by chunk; closes it however the stream ends."""
    end = object()
    try:
        while True:
            chunk = await asyncio.to_thread(next, chunks, end)
            if chunk is end:
                return
            assert isinstance(chunk, bytes)
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
