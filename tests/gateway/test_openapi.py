"""The OpenAPI document: valid OpenAPI 3.1, served without a key, and built from the route
tables so that a route without an entry (or an entry without a route) fails the build."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openapi_spec_validator import validate

from tokenmill.clock import SystemClock
from tokenmill.gateway import admin, openapi_public, routes, vector_stores
from tokenmill.gateway.app import EXACT, PREFIXED, build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.openapi import UndocumentedRoute, build_document, document_bytes
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return dict(orjson.loads(document_bytes()))


@pytest.fixture
async def http(database: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    gateway = build_gateway(
        Settings(data_dir=tmp_path),
        database,
        SystemClock(),
        Router(),
        admission=False,
        journal=False,
        worker=False,
    )
    transport = httpx.ASGITransport(app=build_app(gateway.services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client
    gateway.close()


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, item in document["paths"].items() for m in item}


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["jsonSchemaDialect"] == "https://json-schema.org/draft/2020-12/schema"


async def test_it_is_served_without_a_key(http: httpx.AsyncClient) -> None:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == orjson.loads(document_bytes())


def test_every_admin_route_is_an_operation(document: dict[str, Any]) -> None:
    admin_ops = {op for op in _operations(document) if op[1].startswith("/admin/v1/")}
    assert len(admin_ops) == len(admin.ROUTES)
    assert ("POST", "/admin/v1/tenants/{tenant_id}/keys") in admin_ops
    assert ("GET", "/admin/v1/tenants/{tenant_id}/statements/{month}") in admin_ops
    assert ("GET", "/admin/v1/datasets/{dataset_id}/versions/{version}/rows") in admin_ops


def test_every_public_route_is_an_operation(document: dict[str, Any]) -> None:
    ops = _operations(document)
    for path, methods in EXACT.items():
        if not path.startswith("/console"):
            assert {(m, path) for m in methods} <= ops
    for prefix, _, methods in PREFIXED:
        if prefix.startswith("/console"):
            continue
        for method in methods:
            assert any(m == method and p.startswith(prefix) for m, p in ops), (method, prefix)
    assert ("POST", "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel") in ops
    assert ("GET", "/v1/vector_stores/{vector_store_id}/files/{file_id}/chunks") in ops
    assert not any(p.startswith("/console") for _, p in ops)


def test_a_route_without_an_entry_fails_the_build() -> None:
    extra = {**EXACT, "/v1/widgets": {"GET": routes.health}}
    with pytest.raises(UndocumentedRoute, match="/v1/widgets"):
        build_document(extra, PREFIXED)


def test_an_admin_route_without_an_entry_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    routes_now = [*admin.ROUTES, ("GET", ("widgets",), admin.AdminApi.list_tenants)]
    monkeypatch.setattr(admin, "ROUTES", routes_now)
    with pytest.raises(UndocumentedRoute, match="widgets"):
        build_document(EXACT, PREFIXED)


def test_a_vector_store_route_without_an_entry_fails_the_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(vector_stores.GET, ("widgets",), vector_stores.GET[()])
    with pytest.raises(UndocumentedRoute, match="widgets"):
        build_document(EXACT, PREFIXED)


def test_an_entry_without_a_route_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    stale = {**openapi_public.OPERATIONS, ("GET", "/v1/widgets"): openapi_public.OPERATIONS[
        ("GET", "/health")
    ]}  # fmt: skip
    monkeypatch.setattr(openapi_public, "OPERATIONS", stale)
    with pytest.raises(UndocumentedRoute, match="widgets"):
        build_document(EXACT, PREFIXED)


def test_errors_security_and_tags(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["required"] == ["message", "type", "param", "code"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["paths"]["/health"]["get"]["security"] == []
    assert "security" not in document["paths"]["/v1/chat/completions"]["post"]
    tags = {t["name"] for t in document["tags"]}
    assert {"chat", "embeddings", "files", "vector_stores", "batches", "responses"} <= tags
    assert any(tag.startswith("admin") for tag in tags)
    for item in document["paths"].values():
        for op in item.values():
            assert op["responses"]["4XX"] == {"$ref": "#/components/responses/Error"}
            assert len(op["tags"]) == 1


def test_bodies_name_the_handlers_fields(document: dict[str, Any]) -> None:
    create = document["paths"]["/v1/batches"]["post"]["requestBody"]["content"]
    schema = create["application/json"]["schema"]
    assert set(schema["properties"]) == {
        "input_file_id",
        "endpoint",
        "completion_window",
        "metadata",
    }
    assert schema["additionalProperties"] is False
    upload = document["paths"]["/v1/files"]["post"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data"}
