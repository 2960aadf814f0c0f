"""The MCP servers a tenant registered: where they are, their sealed headers, their policy.

    label             how a request names it: tools: [{"type": "mcp", "server_label": ...}]
    url               a streamable HTTP endpoint (checked by ``plugins.guard``)
    command           or, registered by a platform admin only, a stdio server's argv
    headers           sent with every request to it (an API key, say); sealed at rest and
                      never shown again: reads list only their names
    allowed_tools     the tools its responses may see (all when absent)
    require_approval  "always" | "never" | {"always": {"tool_names": [...]},
                      "never": {"tool_names": [...]}}: a call that needs approval ends the
                      response with an ``mcp_approval_request`` for the client to answer

A tenant's servers and secrets are invisible to other tenants: another tenant's server is
answered as if it did not exist.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tokenmill.clock import Clock
from tokenmill.control.sealing import Sealer
from tokenmill.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from tokenmill.plugins.policy import LABEL, parse_allowed_tools, parse_approval, parse_headers
from tokenmill.protocol.requests import refuse_unknown
from tokenmill.store.app_tables import McpServer
from tokenmill.store.db import Database

FIELDS = frozenset(
    {"label", "description", "url", "command", "headers", "allowed_tools", "require_approval"}
)
MUTABLE = FIELDS - {"label"}
MAX_DESCRIPTION = 1000
MAX_URL = 2000


@dataclass(frozen=True, slots=True)
class ServerInfo:
    id: str
    tenant_id: str
    label: str
    description: str | None
    transport: str  # streamable_http | stdio
    url: str | None
    command: tuple[str, ...] | None
    header_names: tuple[str, ...]
    allowed_tools: tuple[str, ...] | None
    require_approval: Any
    trusted: bool
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "mcp_server",
            "id": self.id,
            "tenant_id": self.tenant_id,
            "server_label": self.label,
            "server_description": self.description,
            "transport": self.transport,
            "server_url": self.url,
            "command": list(self.command) if self.command is not None else None,
            "headers": dict.fromkeys(self.header_names, "<sealed>"),
            "allowed_tools": list(self.allowed_tools) if self.allowed_tools is not None else None,
            "require_approval": self.require_approval,
            "created_at": int(self.created_at.timestamp()),
            "updated_at": int(self.updated_at.timestamp()),
        }


class ServerRepository:
    def __init__(
        self, db: Database, clock: Clock, sealer: Sealer, check_url: Callable[..., object]
    ) -> None:
        self._db = db
        self._clock = clock
        self._sealer = sealer
        self._check_url = check_url  # ``UrlGuard.check``

    def create(
        self, tenant_id: str, body: dict[str, Any], *, platform_admin: bool, created_by: str
    ) -> ServerInfo:
        refuse_unknown(body, FIELDS)
        label = body.get("label")
        if not isinstance(label, str) or not LABEL.match(label):
            raise InvalidRequest(
                "'label' must be 1 to 64 letters, digits, '_' or '-'.", param="label"
            )
        now = self._clock.utcnow()
        row = McpServer(
            id=f"mcpsrv_{secrets.token_hex(12)}",
            tenant_id=tenant_id,
            label=label,
            trusted=platform_admin,
            created_by=created_by,
            created_at=now,
            updated_at=now,
            header_names=[],
            require_approval="always",
        )
        self._apply(row, body, creating=True)
        try:
            with self._db.session() as session:
                session.add(row)
        except IntegrityError:
            raise Conflict(
                f"This tenant already has an MCP server labelled {label!r}.", param="label"
            ) from None
        return _info(row)

    def update(
        self,
        tenant_id: str,
        server_id: str,
        body: dict[str, Any],
        *,
        platform_admin: bool = False,
    ) -> ServerInfo:
        """A new ``url`` or ``command`` is held to the rules of whoever sets it: a tenant
        admin may not repoint a platform admin's (trusted) server past the guard."""
        unknown = sorted(set(body) - MUTABLE)
        if unknown:
            raise InvalidRequest(
                f"'{unknown[0]}' cannot be changed."
                if unknown[0] == "label"
                else f"Unknown parameter: '{unknown[0]}'.",
                param=unknown[0],
            )
        with self._db.session() as session:
            row = self._row(session, tenant_id, server_id)
            if "url" in body or "command" in body:
                row.trusted = platform_admin
            self._apply(row, body, creating=False)
            row.updated_at = self._clock.utcnow()
            return _info(row)

    def _apply(self, row: McpServer, body: dict[str, Any], *, creating: bool) -> None:
        if "description" in body:
            description = body["description"]
            if description is not None and (
                not isinstance(description, str) or len(description) > MAX_DESCRIPTION
            ):
                raise InvalidRequest(
                    f"'description' must be a string of at most {MAX_DESCRIPTION} characters.",
                    param="description",
                )
            row.description = description
        if creating or "url" in body or "command" in body:
            self._where(row, body.get("url"), body.get("command"))
        if "headers" in body:
            headers = parse_headers(body["headers"], "headers")
            row.header_names = sorted(headers)
            row.sealed_headers = self._sealer.seal(orjson.dumps(headers)) if headers else None
        if "allowed_tools" in body:
            allowed = parse_allowed_tools(body["allowed_tools"], "allowed_tools")
            row.allowed_tools = list(allowed) if allowed is not None else None
        if "require_approval" in body:
            row.require_approval = parse_approval(body["require_approval"], "require_approval")

    def _where(self, row: McpServer, url: Any, command: Any) -> None:
        """Where the server is: a ``url`` or a ``command`` (setting one drops the other)."""
        if url is None and command is None:
            raise InvalidRequest("Give the server's 'url' (or, for stdio, 'command').", param="url")
        if url is not None and command is not None:
            raise InvalidRequest("Give either 'url' or 'command', not both.", param="url")
        if command is not None:
            if not row.trusted:
                raise PermissionDenied(
                    "Only a platform admin may register a stdio MCP server ('command').",
                    param="command",
                )
            if (
                not isinstance(command, list)
                or not command
                or not all(isinstance(part, str) and part for part in command)
            ):
                raise InvalidRequest("'command' must be a non-empty argv list.", param="command")
            row.transport, row.url, row.command = "stdio", None, list(command)
            return
        if not isinstance(url, str) or len(url) > MAX_URL:
            raise InvalidRequest(
                f"'url' must be a URL of at most {MAX_URL} characters.", param="url"
            )
        self._check_url(url, "url", trusted=row.trusted)
        row.transport, row.url, row.command = "streamable_http", url, None

    def list(self, tenant_id: str) -> list[ServerInfo]:
        with self._db.session() as session:
            rows = session.scalars(
                select(McpServer).where(McpServer.tenant_id == tenant_id).order_by(McpServer.label)
            )
            return [_info(row) for row in rows]

    def get(self, tenant_id: str, server_id: str) -> ServerInfo:
        with self._db.session() as session:
            return _info(self._row(session, tenant_id, server_id))

    def by_label(self, tenant_id: str, label: str) -> ServerInfo | None:
        with self._db.session() as session:
            row = session.scalar(
                select(McpServer).where(McpServer.tenant_id == tenant_id, McpServer.label == label)
            )
            return None if row is None else _info(row)

    def headers(self, tenant_id: str, server_id: str) -> dict[str, str]:
        """The server's headers, unsealed: for the connection only, never for a reply."""
        with self._db.session() as session:
            sealed = self._row(session, tenant_id, server_id).sealed_headers
        return {} if sealed is None else dict(orjson.loads(self._sealer.open(sealed)))

    def delete(self, tenant_id: str, server_id: str) -> None:
        with self._db.session() as session:
            session.delete(self._row(session, tenant_id, server_id))

    @staticmethod
    def _row(session: Any, tenant_id: str, server_id: str) -> McpServer:
        row = session.get(McpServer, server_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(
                f"No MCP server found with id '{server_id}'.", param="server_id", code="not_found"
            )
        return row  # type: ignore[no-any-return]


def _info(row: McpServer) -> ServerInfo:
    return ServerInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        label=row.label,
        description=row.description,
        transport=row.transport,
        url=row.url,
        command=tuple(row.command) if row.command is not None else None,
        header_names=tuple(row.header_names),
        allowed_tools=tuple(row.allowed_tools) if row.allowed_tools is not None else None,
        require_approval=row.require_approval,
        trusted=row.trusted,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
