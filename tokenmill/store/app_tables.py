"""Tables of what tenants build on the models: stored responses, MCP servers and Apps.

They join ``tables.Base``'s metadata when ``tokenmill.store`` is imported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tokenmill.store.tables import Base


class StoredResponse(Base):
    """A response of the Responses API (``store: true``): the response object, its own input
    items, and the previous response it continues; the conversation is the chain of them."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    key_id: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    previous_response_id: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[dict[str, Any]]
    input_items: Mapped[list[Any]] = mapped_column(JSON)
    include: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_responses_tenant_created", "tenant_id", "created_at"),)


class McpServer(Base):
    """An MCP server a tenant's responses may call (``tools: [{"type": "mcp", ...}]``).

    ``headers`` are sealed (``control.sealing``); a stdio server (``command``) is registered
    only by a platform admin; ``trusted`` (a platform admin's registration) may be on a
    private network."""

    __tablename__ = "mcp_servers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    label: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(1000))
    transport: Mapped[str] = mapped_column(String(20))  # streamable_http | stdio
    url: Mapped[str | None] = mapped_column(String(2000))
    command: Mapped[list[str] | None] = mapped_column(JSON)  # stdio: argv
    sealed_headers: Mapped[bytes | None] = mapped_column(LargeBinary)
    header_names: Mapped[list[str]] = mapped_column(JSON)
    allowed_tools: Mapped[list[str] | None] = mapped_column(JSON)
    require_approval: Mapped[Any] = mapped_column(JSON)
    trusted: Mapped[bool]
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("tenant_id", "label", name="uq_mcp_servers_tenant_label"),)


class App(Base):
    """A tenant's App: a name, its published version, whether its chat page is public."""

    __tablename__ = "apps"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(200))
    published_version: Mapped[int | None]
    latest_version: Mapped[int]
    embed: Mapped[bool]
    embed_key_id: Mapped[str | None] = mapped_column(String(40))  # the public page acts as it
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_apps_tenant", "tenant_id"),)


class AppVersion(Base):
    """One immutable configuration of an App (``apps.config``)."""

    __tablename__ = "app_versions"

    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    config: Mapped[dict[str, Any]]
    note: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
