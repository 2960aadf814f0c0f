"""A tenant's MCP servers on SQLite and PostgreSQL: registered, read, changed and deleted by
their tenant only; headers sealed at rest and shown by name only; stdio servers and private
addresses for platform admins only; and a 400 naming the field for what is malformed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tokenmill.clock import ManualClock
from tokenmill.control.sealing import Sealer, new_key
from tokenmill.control.tenants import TenantRepository
from tokenmill.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from tokenmill.plugins.guard import UrlGuard
from tokenmill.plugins.servers import ServerInfo, ServerRepository
from tokenmill.store.db import Database

Json = dict[str, Any]
URL = "https://mcp.example.com/mcp"
SECRET = "sk-live-7f3a9c1e5b"
PUBLIC = {"mcp.example.com": ["93.184.216.34"], "tools.example.org": ["93.184.216.35"]}


def fake_resolver(host: str) -> list[str]:
    return PUBLIC.get(host, [])


@pytest.fixture
def tenants(database: Database, clock: ManualClock) -> tuple[str, str]:
    repo = TenantRepository(database, clock)
    return repo.create("alpha").id, repo.create("beta").id


@pytest.fixture
def repo(database: Database, clock: ManualClock) -> ServerRepository:
    guard = UrlGuard(resolver=fake_resolver)
    return ServerRepository(database, clock, Sealer(new_key()), guard.check)


def register(
    repo: ServerRepository, tenant_id: str, *, platform_admin: bool = False, **body: Any
) -> ServerInfo:
    fields: Json = {"label": "wiki", "url": URL, **body}
    return repo.create(tenant_id, fields, platform_admin=platform_admin, created_by="key_1")


def sealed_column(database: Database, server_id: str) -> bytes | None:
    with database.engine.connect() as connection:
        value = connection.execute(
            text("SELECT sealed_headers FROM mcp_servers WHERE id = :id"), {"id": server_id}
        ).scalar_one()
    return None if value is None else bytes(value)


def test_a_server_is_registered_listed_read_changed_and_deleted(
    repo: ServerRepository, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    created = register(
        repo,
        alpha,
        description="The team wiki.",
        allowed_tools={"tool_names": ["search", "read"]},
        require_approval={"never": {"tool_names": ["search"]}},
    )
    other = register(repo, alpha, label="calendar", url="https://tools.example.org/mcp")

    assert created.id.startswith("mcpsrv_")
    assert (created.tenant_id, created.label, created.description) == (
        alpha, "wiki", "The team wiki."
    )  # fmt: skip
    assert (created.transport, created.url, created.command) == ("streamable_http", URL, None)
    assert created.allowed_tools == ("search", "read")
    assert created.require_approval == {"never": {"tool_names": ["search"]}}
    assert not created.trusted
    assert created.created_at == created.updated_at == clock.utcnow()
    assert other.require_approval == "always" and other.allowed_tools is None
    assert [s.label for s in repo.list(alpha)] == ["calendar", "wiki"]
    assert repo.get(alpha, created.id) == created
    assert repo.by_label(alpha, "wiki") == created
    assert repo.by_label(alpha, "nope") is None

    clock.advance(60)
    updated = repo.update(
        alpha,
        created.id,
        {"description": None, "url": "https://tools.example.org/v2", "allowed_tools": None,
         "require_approval": "never"},
    )  # fmt: skip

    assert updated.url == "https://tools.example.org/v2"
    assert (updated.description, updated.allowed_tools) == (None, None)
    assert updated.require_approval == "never"
    assert updated.created_at == created.created_at
    assert updated.updated_at == clock.utcnow() != created.updated_at
    assert repo.get(alpha, created.id) == updated

    repo.delete(alpha, created.id)

    assert [s.label for s in repo.list(alpha)] == ["calendar"]
    with pytest.raises(NotFound):
        repo.get(alpha, created.id)
    with pytest.raises(NotFound):
        repo.delete(alpha, created.id)


def test_headers_are_sealed_at_rest_and_open_for_the_connection(
    repo: ServerRepository, database: Database, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    headers = {"Authorization": f"Bearer {SECRET}", "X-Team": "red"}
    server = register(repo, alpha, headers=headers)

    sealed = sealed_column(database, server.id)
    assert sealed is not None
    assert SECRET.encode() not in sealed and b"Bearer" not in sealed
    assert repo.headers(alpha, server.id) == headers
    assert server.header_names == ("Authorization", "X-Team")


def test_changing_headers_replaces_them_and_null_clears_them(
    repo: ServerRepository, database: Database, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    server = register(repo, alpha, headers={"X-Api-Key": "old"})

    changed = repo.update(alpha, server.id, {"headers": {"X-Other": "new"}})

    assert changed.header_names == ("X-Other",)
    assert repo.headers(alpha, server.id) == {"X-Other": "new"}

    cleared = repo.update(alpha, server.id, {"headers": None})

    assert cleared.header_names == ()
    assert repo.headers(alpha, server.id) == {}
    assert sealed_column(database, server.id) is None


def test_a_server_without_headers_has_none_sealed(
    repo: ServerRepository, database: Database, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    server = register(repo, alpha)

    assert repo.headers(alpha, server.id) == {}
    assert sealed_column(database, server.id) is None


def test_as_json_shows_header_names_only(repo: ServerRepository, tenants: tuple[str, str]) -> None:
    alpha, _ = tenants
    server = register(repo, alpha, headers={"Authorization": f"Bearer {SECRET}"})

    shown = server.as_json()

    assert shown["headers"] == {"Authorization": "<sealed>"}
    assert SECRET not in repr(shown)
    assert shown["object"] == "mcp_server"
    assert (shown["server_label"], shown["server_url"]) == ("wiki", URL)
    assert shown["created_at"] == int(server.created_at.timestamp())


def test_a_label_is_unique_within_a_tenant_only(
    repo: ServerRepository, tenants: tuple[str, str]
) -> None:
    alpha, beta = tenants
    register(repo, alpha)

    with pytest.raises(Conflict) as conflict:
        register(repo, alpha, url="https://tools.example.org/mcp")
    assert conflict.value.status == 409
    assert conflict.value.param == "label"

    assert register(repo, beta).label == "wiki"
    assert len(repo.list(alpha)) == len(repo.list(beta)) == 1


def test_another_tenant_s_server_does_not_exist_for_it(
    repo: ServerRepository, tenants: tuple[str, str]
) -> None:
    alpha, beta = tenants
    server = register(repo, alpha, headers={"X-Api-Key": SECRET})

    assert repo.list(beta) == []
    assert repo.by_label(beta, "wiki") is None
    for attempt in (
        lambda: repo.get(beta, server.id),
        lambda: repo.update(beta, server.id, {"description": "mine now"}),
        lambda: repo.delete(beta, server.id),
        lambda: repo.headers(beta, server.id),
    ):
        with pytest.raises(NotFound) as missing:
            attempt()
        assert missing.value.status == 404
        assert SECRET not in missing.value.message
    assert repo.get(alpha, server.id) == server
    assert repo.headers(alpha, server.id) == {"X-Api-Key": SECRET}


def test_a_stdio_server_is_for_platform_admins_only(
    repo: ServerRepository, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    command = ["python", "-m", "wiki_mcp"]

    with pytest.raises(PermissionDenied) as refused:
        register(repo, alpha, url=None, command=command)
    assert (refused.value.param, refused.value.code) == ("command", "permission_denied")
    assert repo.list(alpha) == []

    server = register(repo, alpha, url=None, command=command, platform_admin=True)

    assert (server.transport, server.url, server.command) == ("stdio", None, tuple(command))
    assert server.trusted
    assert server.as_json()["command"] == command


def test_an_untrusted_url_on_the_platform_s_network_is_refused(
    repo: ServerRepository, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    local = "http://127.0.0.1:8000/mcp"

    with pytest.raises(InvalidRequest) as refused:
        register(repo, alpha, url=local)
    assert (refused.value.param, refused.value.code) == ("url", "mcp_server_not_allowed")
    assert repo.list(alpha) == []

    server = register(repo, alpha, url=local, platform_admin=True)

    assert server.url == local and server.trusted


def test_a_changed_url_passes_the_guard_again(
    repo: ServerRepository, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    server = register(repo, alpha, description="before")

    with pytest.raises(InvalidRequest) as refused:
        repo.update(
            alpha, server.id, {"description": "after", "url": "http://169.254.169.254/latest"}
        )
    assert refused.value.code == "mcp_server_not_allowed"
    assert repo.get(alpha, server.id) == server  # nothing of the refused change was kept


def test_the_label_cannot_be_changed(repo: ServerRepository, tenants: tuple[str, str]) -> None:
    alpha, _ = tenants
    server = register(repo, alpha)

    with pytest.raises(InvalidRequest) as refused:
        repo.update(alpha, server.id, {"label": "renamed"})
    assert refused.value.param == "label"
    assert repo.get(alpha, server.id).label == "wiki"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"label": None}, "label"),
        ({"label": "has space"}, "label"),
        ({"label": "x" * 65}, "label"),
        ({"label": "wiki\n"}, "label"),
        ({"colour": "red"}, "colour"),
        ({"url": None}, "url"),
        ({"url": 42}, "url"),
        ({"url": "https://mcp.example.com/" + "a" * 2000}, "url"),
        ({"url": "ftp://mcp.example.com/mcp"}, "url"),
        ({"description": 3}, "description"),
        ({"description": "d" * 1001}, "description"),
        ({"allowed_tools": "search"}, "allowed_tools"),
        ({"allowed_tools": ["search", 3]}, "allowed_tools"),
        ({"allowed_tools": {"tool_names": [""]}}, "allowed_tools"),
        ({"require_approval": "sometimes"}, "require_approval"),
        ({"require_approval": {}}, "require_approval"),
        ({"require_approval": {"always": ["search"]}}, "require_approval.always"),
        ({"require_approval": {"never": {"tool_names": [1]}}}, "require_approval.never"),
        ({"headers": ["X-Api-Key", "k"]}, "headers"),
        ({"headers": {f"X-{n}": "v" for n in range(33)}}, "headers"),
        ({"headers": {"Bad Name": "v"}}, "headers.Bad Name"),
        ({"headers": {"X-Api-Key": 7}}, "headers.X-Api-Key"),
        ({"headers": {"X-Api-Key": "k\nX-Injected: 1"}}, "headers.X-Api-Key"),
        ({"headers": {"X-Api-Key": "k\rX-Injected: 1"}}, "headers.X-Api-Key"),
        ({"headers": {"X-Api-Key\n": "k"}}, "headers.X-Api-Key\n"),
    ],
)  # fmt: skip
def test_a_malformed_registration_is_a_400_naming_its_field(
    repo: ServerRepository, tenants: tuple[str, str], body: Json, param: str
) -> None:
    alpha, _ = tenants

    with pytest.raises(InvalidRequest) as refused:
        register(repo, alpha, **body)
    assert refused.value.status == 400
    assert refused.value.param == param
    assert repo.list(alpha) == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"allowed_tools": "search"}, "allowed_tools"),
        ({"require_approval": "sometimes"}, "require_approval"),
        ({"headers": {"Bad Name": "v"}}, "headers.Bad Name"),
        ({"headers": "X-Api-Key: k"}, "headers"),
        ({"transport": "stdio"}, "transport"),
    ],
)
def test_a_malformed_change_is_a_400_naming_its_field(
    repo: ServerRepository, tenants: tuple[str, str], body: Json, param: str
) -> None:
    alpha, _ = tenants
    server = register(repo, alpha, headers={"X-Api-Key": SECRET})

    with pytest.raises(InvalidRequest) as refused:
        repo.update(alpha, server.id, body)
    assert refused.value.param == param
    assert repo.get(alpha, server.id) == server
    assert repo.headers(alpha, server.id) == {"X-Api-Key": SECRET}


def test_url_and_command_together_are_refused(
    repo: ServerRepository, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants

    with pytest.raises(InvalidRequest):
        register(repo, alpha, command=["python", "-m", "wiki"], platform_admin=True)
    with pytest.raises(InvalidRequest):
        register(repo, alpha, url=None, platform_admin=True)
    assert repo.list(alpha) == []
