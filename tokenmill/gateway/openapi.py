"""The OpenAPI 3.1 document of the public and admin APIs, served at ``GET /openapi.json``.

Why it cannot drift from what the gateway serves:
- **Paths and methods** are read from the route tables: ``app.EXACT`` and ``app.PREFIXED``,
  the vector stores' sub-route tables (``vector_stores.GET``/``POST``/``DELETE``) and
  ``admin.ROUTES``. Each routed operation must have its entry in ``openapi_public`` or
  ``openapi_admin``; building fails, naming it, when one has none or when an entry has no
  route, so a new route cannot ship undocumented (tests/gateway/test_openapi.py builds it).
  Families that dispatch their sub-paths in code list them in ``openapi_public``; the fuzz
  test fails on any listed operation the gateway does not route.
- **Bodies** are JSON Schemas declared once: the inference bodies beside their parsers
  (``protocol.schemas``, which a property test proves every schema-valid body passes), the
  family bodies over the handlers' own field sets (``openapi_ops.closed``), so a field added
  to a handler fails at import until the schema names it.
- **Behaviour**: tests/gateway/test_fuzz.py (and bench/fuzz.py, longer) runs schemathesis
  against this document on a live gateway: no 5xx, every error in OpenAI's shape.

The parsers are not generated from the schemas: they name the exact ``param`` of a refusal,
the engine shares them, and the hot path stays free of a schema validator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

import orjson

from tokenmill.console.assets import ConsoleAssets
from tokenmill.gateway import admin, openapi_admin, openapi_public, routes, vector_stores
from tokenmill.gateway.http import HttpRequest, Response
from tokenmill.gateway.openapi_ops import JSON, OBJECT, Op, as_json, query_of
from tokenmill.gateway.services import Services

Tables = Mapping[str, Mapping[str, Callable[..., Any]]]
Prefixed = Iterable[tuple[str, str, Mapping[str, Callable[..., Any]]]]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ERROR = "#/components/responses/Error"
# A path segment holds an id: no "/", no control character, and not "." or "..".
ID: dict[str, Any] = {"type": "string", "pattern": "^[^/\\x00-\\x1f\\x7f.][^/\\x00-\\x1f\\x7f]*$"}
# The name of the id after each collection in a path (else the collection's singular + _id).
PARAM_NAMES = {
    "statements": "month",
    "versions": "version",
    "file_batches": "batch_id",
    "mcp_servers": "server_id",
}
TAGS = {
    "meta": "Health, metrics and this document.",
    "models": "The models a key may use.",
    "chat": "Chat completions.",
    "completions": "Text completions.",
    "embeddings": "Embeddings.",
    "files": "Uploads: datasets, knowledge and batch input.",
    "vector_stores": "Knowledge: files indexed for search.",
    "batches": "Requests run in bulk from a file.",
    "fine-tuning": "LoRA fine-tuning jobs.",
    "responses": "The Responses API and its agent loop.",
    "apps": "Apps: versioned bundles of model, instructions, knowledge and tools.",
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "OpenAI's error shape.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
            "required": ["message", "type", "param", "code"],
            "additionalProperties": False,
        }
    },
    "required": ["error"],
    "additionalProperties": False,
}


class UndocumentedRoute(Exception):
    """The route tables and the operation entries disagree."""


def segment_path(parts: Iterable[str]) -> str:
    """``("tenants", "*", "keys")`` as ``tenants/{tenant_id}/keys``."""
    out: list[str] = []
    for part in parts:
        if part != "*":
            out.append(part)
            continue
        before = out[-1] if out else ""
        name = PARAM_NAMES.get(before) or f"{before.removesuffix('s')}_id"
        out.append(f"{{{name}}}")
    return "/".join(out)


def _admin_ops() -> dict[tuple[str, str], Op]:
    found = {
        (method, admin.PREFIX + segment_path(pattern)): openapi_admin.OPERATIONS.get(
            (method, pattern)
        )
        for method, pattern, _ in admin.ROUTES
    }
    missing = sorted(key for key, op in found.items() if op is None)
    if missing:
        raise UndocumentedRoute(f"admin routes with no openapi_admin entry: {missing}")
    stale = set(openapi_admin.OPERATIONS) - {(m, p) for m, p, _ in admin.ROUTES}
    if stale:
        raise UndocumentedRoute(f"openapi_admin entries with no admin route: {sorted(stale)}")
    return {key: op for key, op in found.items() if op is not None}


def _vector_store_ops(method: str) -> dict[tuple[str, str], Op]:
    table = {"GET": vector_stores.GET, "POST": vector_stores.POST, "DELETE": vector_stores.DELETE}
    described = {shape for m, shape in openapi_public.VECTOR_STORE_BODIES if m == method}
    if described != set(table[method]):
        raise UndocumentedRoute(
            f"vector store {method} routes with no entry: {sorted(set(table[method]) - described)}"
            f"; entries with no route: {sorted(described - set(table[method]))}"
        )
    base = "/v1/vector_stores/{vector_store_id}"
    return {
        (method, "/".join([base, segment_path(shape)]).rstrip("/")): openapi_public.vector_store_op(
            method, shape
        )
        for shape in table[method]
    }


STORE_HANDLERS = (vector_stores.store_get, vector_stores.store_post, vector_stores.store_delete)


def _is_console(handler: Callable[..., Any]) -> bool:
    return isinstance(getattr(handler, "__self__", None), ConsoleAssets)


def routed_operations(exact: Tables, prefixed: Prefixed) -> dict[tuple[str, str], Op]:
    """Every operation the route tables serve, with its entry; ``UndocumentedRoute`` when
    a route has no entry or an entry no route."""
    declared = openapi_public.OPERATIONS
    found: dict[tuple[str, str], Op] = {}
    missing: list[tuple[str, str]] = []
    for path, methods in exact.items():
        for method, handler in methods.items():
            if _is_console(handler):
                continue  # the web console's pages are not an API
            if (method, path) in declared:
                found[(method, path)] = declared[(method, path)]
            else:
                missing.append((method, path))
    for prefix, _, methods in prefixed:
        for method, handler in methods.items():
            if _is_console(handler):
                continue
            if handler is routes.admin_api:
                under = {k: v for k, v in _admin_ops().items() if k[0] == method}
            elif handler in STORE_HANDLERS:
                under = _vector_store_ops(method)
            else:
                under = {
                    key: op
                    for key, op in declared.items()
                    if key[0] == method and key[1].startswith(prefix)
                }
            if not under:
                missing.append((method, prefix + "..."))
            found.update(under)
    stale = sorted(set(declared) - set(found))
    if missing or stale:
        raise UndocumentedRoute(f"routes with no entry: {missing}; entries with no route: {stale}")
    return found


def _parameters(path: str, op: Op) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": ID}
        for name in re.findall(r"\{(\w+)\}", path)
    ]
    params += [
        {"name": name, "in": "query", "required": False, "schema": query_of(schema)}
        for name, schema in op.query.items()
    ]
    return params


def operation(method: str, path: str, op: Op) -> dict[str, Any]:
    success = {media: {"schema": OBJECT} if media == JSON else {} for media in op.media}
    out: dict[str, Any] = {
        "operationId": re.sub(r"\W+", "_", f"{method.lower()}{path}").strip("_"),
        "tags": [op.tag],
        "summary": op.summary,
        "parameters": _parameters(path, op),
        "responses": {
            "200": {"description": "Success.", "content": success},
            "4XX": {"$ref": ERROR},
            "5XX": {"$ref": ERROR},
        },
    }
    if op.body is not None:
        media = "multipart/form-data" if op.form else JSON
        out["requestBody"] = {"required": True, "content": {media: {"schema": op.body}}}
    if not op.auth:
        out["security"] = []
    return out


def build_document(exact: Tables, prefixed: Prefixed) -> dict[str, Any]:
    operations = routed_operations(exact, prefixed)
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in sorted(operations.items(), key=lambda item: item[0][::-1]):
        paths.setdefault(path, {})[method.lower()] = operation(method, path, op)
    tags = sorted({op.tag for op in operations.values()}, key=lambda t: (t.startswith("admin"), t))
    document: dict[str, Any] = as_json(
        {
            "openapi": "3.1.0",
            "jsonSchemaDialect": DIALECT,
            "info": {
                "title": "tokenmill",
                "version": "1",
                "description": (
                    "OpenAI-compatible model APIs and the platform's admin API. Errors are "
                    'OpenAI\'s shape: {"error": {"message", "type", "param", "code"}}.'
                ),
            },
            "tags": [{"name": tag, "description": TAGS.get(tag, tag)} for tag in tags],
            "security": [{"bearerAuth": []}],
            "paths": paths,
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key."}
                },
                "schemas": {"Error": ERROR_SCHEMA},
                "responses": {
                    "Error": {
                        "description": "An error in OpenAI's shape.",
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
                    }
                },
            },
        }
    )
    return document


@cache
def document_bytes() -> bytes:
    """The document of the gateway's own route tables, built once."""
    from tokenmill.gateway.app import EXACT, PREFIXED  # app routes to this module

    return orjson.dumps(build_document(EXACT, PREFIXED))


async def openapi_json(services: Services, request: HttpRequest) -> Response:
    return Response(document_bytes(), headers={"cache-control": "public, max-age=300"})
