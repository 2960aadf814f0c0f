"""What the gateway needs to run tenants' MCP servers: the registry, the guard, the client."""

from __future__ import annotations

from dataclasses import dataclass

from tokenmill.clock import Clock
from tokenmill.control.sealing import Sealer
from tokenmill.plugins.client import McpClient
from tokenmill.plugins.guard import UrlGuard
from tokenmill.plugins.servers import ServerRepository
from tokenmill.settings import Settings
from tokenmill.store.db import Database


@dataclass(frozen=True, slots=True)
class McpService:
    servers: ServerRepository
    guard: UrlGuard
    client: McpClient

    @classmethod
    def build(cls, settings: Settings, db: Database, clock: Clock) -> McpService:
        guard = UrlGuard(settings.mcp_allowed_hosts)
        sealer = Sealer.for_platform(settings.secret_key, settings.ensure_data_dir())
        return cls(
            ServerRepository(db, clock, sealer, guard.check),
            guard,
            McpClient(settings.mcp_timeout_seconds, settings.mcp_max_output_bytes),
        )
