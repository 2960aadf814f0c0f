"""HTTP pieces every engine replica shares: request ids and errors in OpenAI's shape.

Kept apart from the servers so the embeddings replica does not import llama.cpp.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenmill.errors import InvalidRequest, MethodNotAllowed, NotFound, TokenmillError

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestIdMiddleware:
    """Takes the caller's ``x-request-id`` (or makes one), and echoes it on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER)
        request_id = incoming or uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        if not _VALID_REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex
            error = InvalidRequest(
                "'x-request-id' must be 1 to 128 letters, digits or '.', '_', ':', '-'.",
                param=REQUEST_ID_HEADER,
            )
            await error_response(error)(scope, receive, send_with_id)
            return
        scope.setdefault("state", {})["request_id"] = request_id
        await self.app(scope, receive, send_with_id)


def error_response(error: TokenmillError, status_code: int | None = None) -> Response:
    return Response(
        error.body_bytes(),
        status_code=status_code or error.status,
        headers=error.headers,
        media_type="application/json",
    )


async def _tokenmill_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, TokenmillError):
        return await _unexpected_error(request, exc)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        return await _unexpected_error(request, exc)
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        return error_response(NotFound(f"There is no route {where}.", code="not_found"))
    if exc.status_code == 405:
        allowed = dict(exc.headers or {})
        return error_response(MethodNotAllowed(f"{where} is not allowed.", headers=allowed))
    return error_response(InvalidRequest(str(exc.detail)), exc.status_code)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(TokenmillError("The engine hit an internal error."))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    TokenmillError: _tokenmill_error,
    HTTPException: _http_error,
    Exception: _unexpected_error,
}


GRACEFUL_SHUTDOWN_SECONDS = 10  # then open streams are cancelled and the process exits


def replica_app(
    routes: list[Route],
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]],
) -> Starlette:
    """A replica's app: its routes, errors in OpenAI's shape, request ids on everything."""
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)
    return app


def serve_replica(app: Starlette, host: str, port: int, log_level: str) -> None:
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        log_level=log_level,
    )
