"""Principals, recorders and a stand-in replica for gateway unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from tokenmill.billing.usage import UsageEvent
from tokenmill.control.keys import Principal, Role


def principal(
    tenant_id: str = "ten_a",
    role: Role = Role.INFERENCE,
    allowed_models: tuple[str, ...] | None = None,
) -> Principal:
    return Principal(
        tenant_id=tenant_id,
        key_id=f"key_{tenant_id}",
        key_name="test",
        role=role,
        scopes=("*",),
        allowed_models=allowed_models,
        expires_at=None,
        revoked=False,
    )


class ListSink:
    def __init__(self) -> None:
        self.events: list[UsageEvent] = []

    def record(self, event: UsageEvent) -> None:
        self.events.append(event)


class JsonReplica:
    """A replica over plain HTTP/1.1 that answers each JSON request with ``answer(request)``
    and ``status``; what it was sent is in ``requests`` (with the path in ``"_path"`` and the
    headers, names in lower case, in ``"_headers"``)."""

    def __init__(self, answer: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.status = 200

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            request = orjson.loads(await reader.readexactly(length))
            headers = dict(
                line.decode().lower().split(": ", 1) for line in head.split(b"\r\n")[1:] if line
            )
            path = head.split(b" ")[1].decode()
            self.requests.append({**request, "_path": path, "_headers": headers})
            body = orjson.dumps(self.answer(request))
            writer.write(
                f"HTTP/1.1 {self.status} OK\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
