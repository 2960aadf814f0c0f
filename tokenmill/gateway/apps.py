"""Apps (``apps.config``): versioned bundles a tenant builds once and calls by id.

    GET  /v1/apps                    POST /v1/apps                {name, config}
    GET  /v1/apps/{id}               POST /v1/apps/{id}           {name, embed, published_version}
    GET  /v1/apps/{id}/versions      POST /v1/apps/{id}/versions  {config, note}
    GET  /v1/apps/{id}/versions/{n}  GET  /v1/apps/{id}/diff?from=1&to=2
    POST /v1/apps/{id}/keys          {name}: a key that may call only this App
    POST /v1/apps/{id}/chat          {message, variables, version, conversation_id}

Any key of the tenant may read and call its Apps; building them (creating, saving versions,
publishing, issuing keys) takes an admin key. A key made for an App may only call that App,
here and on ``/v1/responses`` (``prompt``). ``chat`` is a plain front to ``/v1/responses``
for simple clients: one message in, the answer, its citations and usage out; the
``conversation_id`` it returns continues the conversation.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tokenmill.apps.diff import diff
from tokenmill.apps.repository import AppRepository
from tokenmill.control.access import require_admin
from tokenmill.control.keys import APP_KEY_PREFIX, APP_SCOPE, KeyRepository, Principal
from tokenmill.errors import InvalidRequest, NotFound, PermissionDenied, TokenmillError
from tokenmill.gateway.app_prompts import apps_of
from tokenmill.gateway.http import AUTHORIZATION, HttpRequest, Response, json_response
from tokenmill.gateway.responses import caller, start_response
from tokenmill.gateway.services import Services
from tokenmill.protocol.requests import parse_json_body, refuse_unknown
from tokenmill.responses.objects import output_text
from tokenmill.responses.repository import ResponseRepository

PATH_PARAM = "app_path"
CHAT_FIELDS = frozenset({"message", "variables", "version", "conversation_id"})


async def app_scope(services: Services, request: HttpRequest) -> None:
    """Refuses an App's key anywhere but where it may call its App (403)."""
    header = request.header(AUTHORIZATION) or ""
    if APP_KEY_PREFIX not in header or _app_callable(request):
        return
    try:
        principal = await services.keys.authenticate(header)
    except TokenmillError:
        return  # the route's own authentication says what is wrong
    if principal.app_id is not None:
        raise PermissionDenied(f"This key may call only the App '{principal.app_id}'.")


def _app_callable(request: HttpRequest) -> bool:
    if request.method != "POST":
        return False
    parts = request.path.strip("/").split("/")
    return request.path == "/v1/responses" or (
        len(parts) == 4 and parts[:2] == ["v1", "apps"] and parts[3] == "chat"
    )


async def _tenant(services: Services, request: HttpRequest) -> tuple[Principal, AppRepository]:
    principal = await services.keys.authenticate(request.header(AUTHORIZATION))
    return principal, apps_of(services)


async def _body(request: HttpRequest, fields: frozenset[str] | None = None) -> dict[str, Any]:
    """The JSON body; with ``fields``, anything else in it is a 400 naming it."""
    raw = await request.body()
    body = parse_json_body(raw) if raw.strip() else {}
    if fields is not None:
        refuse_unknown(body, fields)
    return body


async def apps_root(services: Services, request: HttpRequest) -> Response:
    principal, apps = await _tenant(services, request)
    if request.method == "GET":
        found = await asyncio.to_thread(apps.list, principal.tenant_id)
        return json_response({"object": "list", "data": [a.as_json() for a in found]})
    require_admin(principal)
    body = await _body(request, frozenset({"name", "config"}))
    made = await asyncio.to_thread(
        apps.create, principal.tenant_id, body.get("name"), body.get("config"), principal.key_id
    )
    return json_response(made.as_json())


async def app_resource(services: Services, request: HttpRequest) -> Response:
    app_id, _, rest = request.path_params[PATH_PARAM].partition("/")
    if rest == "chat" and request.method == "POST":
        return await chat(services, request, app_id)
    principal, apps = await _tenant(services, request)
    tenant = principal.tenant_id
    parts = rest.split("/") if rest else []
    if request.method == "GET" and not parts:
        return json_response(await asyncio.to_thread(_with_config, apps, tenant, app_id))
    if request.method == "GET" and parts == ["versions"]:
        versions = await asyncio.to_thread(apps.versions, tenant, app_id)
        return json_response({"object": "list", "data": [v.as_json() for v in versions]})
    if request.method == "GET" and len(parts) == 2 and parts[0] == "versions":
        _, version = await asyncio.to_thread(apps.version, tenant, app_id, parts[1])
        return json_response(version.as_json())
    if request.method == "GET" and parts == ["diff"]:
        return json_response(await asyncio.to_thread(_diff, apps, tenant, app_id, request.query()))
    if request.method != "POST":
        raise NotFound(f"No route {request.method} {request.path}.", code="not_found")
    require_admin(principal)
    body = await _body(request)
    if not parts:
        updated = await asyncio.to_thread(apps.update, tenant, app_id, body)
        if updated.embed and updated.embed_key_id is None:  # the page's own key, made once
            key = await asyncio.to_thread(
                _new_key, services, principal, app_id, {"name": "embed page"}
            )
            updated = await asyncio.to_thread(apps.set_embed_key, tenant, app_id, key["id"])
        return json_response(updated.as_json())
    if parts == ["versions"]:
        refuse_unknown(body, {"config", "note"})
        saved = await asyncio.to_thread(
            apps.save_version, tenant, app_id, body.get("config"), body.get("note"),
            principal.key_id,
        )  # fmt: skip
        return json_response(saved.as_json())
    if parts == ["keys"]:
        return json_response(await asyncio.to_thread(_new_key, services, principal, app_id, body))
    raise NotFound(f"No route POST {request.path}.", code="not_found")


def _with_config(apps: AppRepository, tenant_id: str, app_id: str) -> dict[str, Any]:
    app, version = apps.version(tenant_id, app_id)
    return {**app.as_json(), "version": str(version.version), "config": version.config}


def _diff(apps: AppRepository, tenant_id: str, app_id: str, query: dict[str, str]) -> Any:
    _, old = apps.version(tenant_id, app_id, query.get("from"), param="from")
    _, new = apps.version(tenant_id, app_id, query.get("to"), param="to")
    changes = diff(old.config, new.config)
    return {"object": "app.diff", "from": str(old.version), "to": str(new.version),
            "changes": changes}  # fmt: skip


def _new_key(
    services: Services, principal: Principal, app_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    apps_of(services).get(principal.tenant_id, app_id)
    if services.admin is None:
        raise NotFound("Keys are not managed on this gateway.", code="not_found")
    keys: KeyRepository = services.admin.keys
    name = body.get("name") or f"app {app_id}"
    info, secret = keys.create(principal.tenant_id, str(name), scopes=[f"{APP_SCOPE}{app_id}"])
    return {**info.as_json(), "app_id": app_id, "secret": secret}


async def chat(services: Services, request: HttpRequest, app_id: str) -> Response:
    """One turn with an App: ``{"message", "variables", "version", "conversation_id"}``."""
    principal, repository = await caller(services, request)
    return await chat_turn(services, principal, repository, request, app_id)


async def chat_turn(
    services: Services,
    principal: Principal,
    repository: ResponseRepository,
    request: HttpRequest,
    app_id: str,
) -> Response:
    body = await _body(request, CHAT_FIELDS)
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        raise InvalidRequest("'message' is required: the user's message.", param="message")
    prompt: dict[str, Any] = {"id": app_id, "variables": body.get("variables") or {}}
    if body.get("version") is not None:
        prompt["version"] = body["version"]
    given: dict[str, Any] = {
        "prompt": prompt,
        "input": message,
        "include": ["file_search_call.results"],
    }
    if body.get("conversation_id") is not None:
        given["previous_response_id"] = body["conversation_id"]
    started = await start_response(services, principal, repository, request, given)
    await started.complete()
    response = started.response
    return json_response(
        {
            "object": "app.chat",
            "id": response["id"],
            "conversation_id": response["id"],
            "app_id": app_id,
            "version": response.get("prompt", {}).get("version"),
            "status": response["status"],
            "answer": output_text(response),
            "citations": _citations(response),
            "steps": [_step(item) for item in response["output"] if item["type"] != "message"],
            "usage": response["usage"],
            "error": response["error"],
        },
        headers={"x-request-id": response["id"]},
    )


def _citations(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        annotation
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        for annotation in part.get("annotations") or ()
    ]


def _step(item: dict[str, Any]) -> dict[str, Any]:
    """A tool step as the chat route shows it: searches with their scored passages."""
    if item["type"] == "file_search_call":
        passages = [
            {"file_id": r["file_id"], "filename": r["filename"], "score": r["score"],
             "text": r["text"]}
            for r in item.get("results") or ()
        ]  # fmt: skip
        return {"type": "file_search", "queries": item["queries"], "passages": passages}
    keep = ("type", "id", "name", "arguments", "output", "error", "server_label", "status")
    return {k: item[k] for k in keep if k in item}
