"""A Responses request that names an App (``"prompt": {"id", "version", "variables"}``, OpenAI's
reusable-prompt shape), turned into the request the App's version makes.

The version gives the model, instructions (its ``{{variables}}`` filled), tools and sampling;
the request's own fields win, except that its tools are added to the App's, its instructions
follow the App's, and the App's output limit holds. A key made for an App may call only that
App, and only as it was built (its input, not its model, tools or instructions). An input that
names one of the App's blocked topics is refused (400 ``blocked_topic``) before any model is
called. With ``steps.rewrite_model`` a small model rewrites the question into the search query
of a forced search.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tokenmill.apps.config import blocked_topic, render
from tokenmill.apps.repository import AppRepository, no_such_app
from tokenmill.control.keys import Principal
from tokenmill.errors import InvalidRequest, NotFound, PermissionDenied
from tokenmill.gateway.metering import Meter
from tokenmill.gateway.model_calls import TenantModels
from tokenmill.gateway.services import Services
from tokenmill.protocol.requests import refuse_unknown
from tokenmill.protocol.tiers import ServiceTier
from tokenmill.responses.items import item_text, parse_input

REWRITE_INSTRUCTIONS = (
    "Rewrite the user's question as a short search query for a document search. "
    "Reply with the query only."
)
REWRITE_MAX_TOKENS = 32
# What a request made with an App's key may set; everything else is the App's.
APP_KEY_FIELDS = frozenset(
    {
        "prompt",
        "input",
        "previous_response_id",
        "stream",
        "include",
        "store",
        "metadata",
        "user",
        "service_tier",
        "max_output_tokens",
        "truncation",
    }
)


@dataclass(frozen=True, slots=True)
class AppRun:
    app_id: str
    version: int
    config: dict[str, Any]
    prompt: dict[str, Any]  # echoed on the response, as OpenAI's prompt field


def apps_of(services: Services) -> AppRepository:
    if services.apps is None:
        raise NotFound("Apps are not enabled on this gateway.", code="not_found")
    return services.apps


async def apply_prompt(
    services: Services, principal: Principal, body: dict[str, Any], meter: Meter
) -> tuple[dict[str, Any], AppRun | None]:
    """The request as the App makes it, and the App it runs for (None: no App); ``meter``
    (the request's refusal record) names the App once it is found."""
    prompt = body.get("prompt")
    if prompt is None and principal.app_id is not None:
        prompt = {"id": principal.app_id}
    if prompt is None:
        return body, None
    if not isinstance(prompt, dict) or not isinstance(prompt.get("id"), str):
        raise InvalidRequest('\'prompt\' must be {"id": "app_...", ...}.', param="prompt")
    refuse_unknown(prompt, {"id", "version", "variables"}, "prompt")
    app_id = prompt["id"]
    if principal.app_id is not None and principal.app_id != app_id:
        raise PermissionDenied(f"This key may call only the App '{principal.app_id}'.")
    try:
        app, version = await asyncio.to_thread(
            apps_of(services).version,
            principal.tenant_id,
            app_id,
            prompt.get("version"),
            param="prompt.version",
        )
    except NotFound as error:
        if error.param == "app_id":
            raise no_such_app(app_id, "prompt.id") from None
        raise
    meter.app_id = app.id
    rendered = render(version.config, prompt.get("variables") or {})
    if principal.app_id is not None:
        _held_to_app(body, rendered)
    merged = {**rendered, **{k: v for k, v in body.items() if k != "prompt"}}
    merged["tools"] = [*rendered["tools"], *(body.get("tools") or [])]
    if body.get("instructions") and rendered.get("instructions"):
        merged["instructions"] = f"{rendered['instructions']}\n\n{body['instructions']}"
    ours, theirs = rendered.get("max_output_tokens"), body.get("max_output_tokens")
    if isinstance(ours, int) and isinstance(theirs, int):
        merged["max_output_tokens"] = min(ours, theirs)
    if "input" in body:
        topic = blocked_topic(version.config, _user_text(body["input"]))
        if topic is not None:
            raise InvalidRequest(
                f"This App does not take questions about '{topic}'.",
                param="input",
                code="blocked_topic",
            )
    echo = {"id": app.id, "version": str(version.version), "variables": prompt.get("variables")}
    return merged, AppRun(app.id, version.version, version.config, echo)


def _held_to_app(body: dict[str, Any], rendered: dict[str, Any]) -> None:
    """An App's key calls its App as it was built: it may not swap its model, add tools or
    change its instructions and sampling (400 naming the field)."""
    for field in sorted(set(body) - APP_KEY_FIELDS):
        if field == "model" and body["model"] == rendered["model"]:
            continue
        raise InvalidRequest(
            f"A key made for an App calls the App as it was built: '{field}' cannot be set.",
            param=field,
        )


def _user_text(raw: Any) -> str:
    try:
        items = parse_input(raw)
    except InvalidRequest:
        return ""  # the request's own parsing says what is wrong with it
    return "\n".join(
        item_text(item) for item in items if item["type"] == "message" and item["role"] == "user"
    )


def rewriter(
    services: Services, principal: Principal, run: AppRun | None, tier: ServiceTier
) -> Callable[[str], Awaitable[str]] | None:
    """The App's query rewriting step, as a call of its rewrite model (metered as the
    response's other calls); None when the App has none."""
    model = run.config["steps"]["rewrite_model"] if run is not None else None
    if model is None or run is None:
        return None
    entry = services.directory.resolve(model, principal)
    models = TenantModels(services, principal, entry, tier)
    models.app_id = run.app_id

    async def rewrite(question: str) -> str:
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": REWRITE_MAX_TOKENS,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if entry.task == "completion":  # a base model: the instruction as a text to go on
            body["prompt"] = f"{REWRITE_INSTRUCTIONS}\n\nQuestion: {question}\nQuery:"
            body["stop"] = ["\n"]
        else:
            body["messages"] = [
                {"role": "system", "content": REWRITE_INSTRUCTIONS},
                {"role": "user", "content": question},
            ]
        call = await models.open(body)
        text = []
        try:
            async for chunk in call.chunks():
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    text.append(delta.get("content") or choice.get("text") or "")
        finally:
            await call.close()
        await models.durable()
        query = " ".join("".join(text).split()).strip().strip('"')
        return query or question

    return rewrite
