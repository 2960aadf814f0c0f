"""Sending one line of a batch as the batch's key, the way the same request from a client is
served: parsed and checked like the route would (400), the model resolved as that key sees
it (404 for a model it cannot use, 400 for one of another task), then posted through the
router by the ``PlatformCaller`` (never streamed) and metered to the tenant at the batch price.

A refusal of the line itself (4xx) is the line's answer, written to the batch's error file.
Trouble on the platform's side (5xx before an answer came) is raised: the batch's work item is
retried, resuming after the lines already recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import orjson

from tokenmill.batches.lines import BatchRequest
from tokenmill.batches.objects import BatchInfo
from tokenmill.batches.output import LineResult
from tokenmill.control.keys import Principal
from tokenmill.errors import InvalidRequest, TokenmillError, Unauthorized
from tokenmill.gateway.platform_calls import PlatformCaller, endpoint_of
from tokenmill.gateway.routes import TASKS_OF
from tokenmill.protocol.embeddings import parse_embeddings
from tokenmill.protocol.requests import parse_chat, parse_completion

PARSERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "chat.completions": parse_chat,
    "completions": parse_completion,
    "embeddings": parse_embeddings,
}

PrincipalOf = Callable[[str], Principal | None]
"""A key id → who it acts as (None: no such key)."""


class PlatformLineSender:
    def __init__(
        self, caller: PlatformCaller, principal_of: PrincipalOf, price_factor: Fraction
    ) -> None:
        self._caller = caller
        self._principal_of = principal_of
        self.price_factor = price_factor

    def __call__(self, batch: BatchInfo, request: BatchRequest) -> LineResult:
        """From a worker thread: the line's answer, or its refusal as an answer."""
        try:
            principal = self._principal_of(batch.key_id)
            if principal is None or principal.revoked:
                raise Unauthorized("The batch's API key was deleted or revoked.")
            return self._caller.run_threadsafe(self._send(principal, batch, request))
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
        reply = await self._caller.post(
            principal.tenant_id,
            principal.key_id,
            entry,
            batch.endpoint,
            body,
            price_factor=self.price_factor,
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
