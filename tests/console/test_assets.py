"""The console's files through the gateway: the app, static files, caching, traversal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tokenmill.clock import SystemClock
from tokenmill.console.assets import ConsoleAssets, safe_parts
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database

PAGES = (
    "overview",
    "models",
    "deployments",
    "keys",
    "files",
    "knowledge",
    "knowledge_search",
    "knowledge_chunks",
    "batches",
    "batches_results",
    "fine_tuning",
    "fine_tuning_job",
    "usage",
    "levels",
    "playground",
    "responses",
    "responses_items",
    "mcp",
    "responses_stored",
    "apps",
    "apps_builder",
    "apps_chat",
    "apps_versions",
    "advice",
    "audit",
)

STRICT_POLICY = (
    "script-src 'self'",
    "style-src 'self'",
    "object-src 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    database = Database(f"sqlite:///{tmp_path / 'tokenmill.db'}")
    database.migrate()
    gateway = build_gateway(
        Settings(data_dir=tmp_path),
        database,
        SystemClock(),
        Router(),
        admission=False,
        journal=False,
    )
    transport = httpx.ASGITransport(app=build_app(gateway.services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client
    gateway.close()
    database.dispose()


async def test_console_redirects_to_the_app_and_serves_its_index(http: httpx.AsyncClient) -> None:
    bare = await http.get("/console")
    assert bare.status_code == 308 and bare.headers["location"] == "/console/"
    for path in ("/console/", "/console/index.html"):
        index = await http.get(path)
        assert index.status_code == 200
        assert index.headers["content-type"] == "text/html; charset=utf-8"
        assert '<script type="module" src="/console/app.js">' in index.text
        assert index.headers["cache-control"] == "no-cache"
        policy = [d.strip() for d in index.headers["content-security-policy"].split(";")]
        assert set(STRICT_POLICY) <= set(policy), policy
        assert "'unsafe-inline'" not in index.headers["content-security-policy"]
        assert index.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("charts.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
        *((f"pages/{page}.js", "text/javascript; charset=utf-8") for page in PAGES),
    ],
)
async def test_static_files_have_their_content_type(
    http: httpx.AsyncClient, path: str, kind: str
) -> None:
    response = await http.get(f"/console/{path}")
    assert response.status_code == 200, path
    assert response.headers["content-type"] == kind
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.content) == int(response.headers["content-length"]) > 0


async def test_an_unchanged_file_revalidates_with_a_304(http: httpx.AsyncClient) -> None:
    first = await http.get("/console/app.js")
    etag = first.headers["etag"]
    again = await http.get("/console/app.js", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    other = await http.get("/console/app.js", headers={"if-none-match": '"stale"'})
    assert other.status_code == 200 and other.content == first.content


@pytest.mark.parametrize(
    "path",
    [
        "/console/nope.js",
        "/console/pages/",
        "/console/pages",
        "/console/../admin.py",
        "/console/pages/../../assets.py",
        "/console/..%2fassets.py",
        "/console/.hidden.js",
        "/console/static/app.js",
        "/console/pages\\keys.js",
        "/console/README",
    ],
)
async def test_anything_but_a_file_of_the_app_is_404(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 404, path
    assert response.json()["error"]["code"] == "not_found"


async def test_only_get_is_allowed(http: httpx.AsyncClient) -> None:
    assert (await http.post("/console/app.js")).status_code == 405


def test_safe_parts_refuses_traversal_and_hidden_names() -> None:
    assert safe_parts("pages/keys.js") == ("pages", "keys.js")
    for bad in ("../x.js", "pages/../x.js", "./x.js", ".x", "a//b.js", "a\\b.js", "a\x00.js", ""):
        assert safe_parts(bad) is None, bad


def test_files_outside_the_root_are_unreachable_even_when_they_exist(tmp_path: Path) -> None:
    root = tmp_path / "static"
    root.mkdir()
    (root / "index.html").write_text("<p>app</p>")
    (tmp_path / "secret.js").write_text("leak")
    assets = ConsoleAssets(root)
    assert assets.find("") is not None and assets.find("index.html") is not None
    assert assets.find("../secret.js") is None
    assert assets.find(str(tmp_path / "secret.js").lstrip("/")) is None
