"""Sending one line of a batch as the batch's key, the way the same request from a client is
served: parsed and checked like the route would (400), the model resolved as that key sees
it (404 for a model it cannot use, 400 for one of another task), then posted through the
router by the ``PlatformCaller`` (never streamed) and metered to the tenant at the batch price.

Before it is sent, a line is admitted like the same call from a client (``Admit``): a tenant
out of credit or past a budget cap gets a 429 ``insufficient_quota`` answer for the line, and
a line over a rate limit waits (``Retry-After``, at most ``MAX_RATE_WAIT_SECONDS`` at a time)
and tries again, so a batch is paced by the tenant's limits instead of failing on them.

A refusal of the line itself (4xx) is the line's answer, written to the batch's error file.
Trouble on the platform's side (5xx before an answer came) is raised: the batch's work item is
retried, resuming after the lines already recorded.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import Any

import orjson

from tokenmill.batches.lines import BatchRequest
from tokenmill.batches.objects import BatchInfo
from tokenmill.batches.output import LineResult
from tokenmill.control.keys import Principal
from tokenmill.errors import InvalidRequest, RateLimited, TokenmillError, Unauthorized
from tokenmill.gateway.directory import ModelEntry
from tokenmill.gateway.platform_calls import PlatformCaller, endpoint_of
from tokenmill.gateway.routes import TASKS_OF
from tokenmill.protocol.embeddings import parse_embeddings
from tokenmill.protocol.requests import parse_chat, parse_completion
from tokenmill.protocol.tenancy import Priority

PARSERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "chat.completions": parse_chat,
    "completions": parse_completion,
    "embeddings": parse_embeddings,
}

PrincipalOf = Callable[[str], Principal | None]
"""A key id → who it acts as (None: no such key)."""

Admit = Callable[[Principal, ModelEntry, Any, int, str], Awaitable[None]]
"""(caller, model, parsed request, body bytes, request id): raises the 429 the same call from a
client would get (``InsufficientQuota``, ``RateLimited``), or returns, reserving nothing."""

MAX_RATE_WAIT_SECONDS = 30.0


class PlatformLineSender:
    def __init__(
        self,
        caller: PlatformCaller,
        principal_of: PrincipalOf,
        price_factor: Fraction,
        admit: Admit | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._caller = caller
        self._principal_of = principal_of
        self.price_factor = price_factor
        self._admit = admit
        self._sleep = sleep

    def __call__(self, batch: BatchInfo, request: BatchRequest) -> LineResult:
        """From a worker thread: the line's answer, or its refusal as an answer."""
        try:
            principal = self._principal_of(batch.key_id)
            if principal is None or principal.revoked:
                raise Unauthorized("The batch's API key was deleted or revoked.")
            while True:
                try:
                    return self._caller.run_threadsafe(self._send(principal, batch, request))
                except RateLimited as limited:
                    self._sleep(_retry_after(limited))
        except TokenmillError as error:
            if error.status >= 500:
                raise
            return LineResult.answered(
                request.line, request.custom_id, error.status, "", error.body()
            )

    async def _send(
        self, principal: Principal, batch: BatchInfo, request: BatchRequest
    ) -> LineResult:
        endpoint = endpoint_of(batch.endpoint)
        body = dict(request.body)
        if endpoint != "embeddings":  # a batch line is answered whole
            body["stream"] = False
            body.pop("stream_options", None)
        parsed = PARSERS[endpoint](body)
        entry = self._caller.directory.resolve(parsed.model, principal)
        if entry.task not in TASKS_OF[endpoint]:
            raise InvalidRequest(
                f"The model '{parsed.model}' is a {entry.task} model; it does not serve "
                f"{batch.endpoint}.",
                param="model",
                code="model_not_supported",
            )
        if self._admit is not None:
            size = len(orjson.dumps(body))
            await self._admit(principal, entry, parsed, size, f"{batch.id}:{request.line}")
        reply = await self._caller.post(
            principal.tenant_id,
            principal.key_id,
            entry,
            batch.endpoint,
            body,
            price_factor=self.price_factor,
            priority=Priority.FLEX,  # batch work yields to interactive requests on a replica
        )
        try:
            answer = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            answer = {"error": {"message": reply.body[:500].decode(errors="replace")}}
        if not isinstance(answer, dict):
            answer = {"value": answer}
        return LineResult.answered(
            request.line, request.custom_id, reply.status, reply.request_id, answer
        )


def _retry_after(limited: RateLimited) -> float:
    try:
        seconds = float(limited.headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.05), MAX_RATE_WAIT_SECONDS)
