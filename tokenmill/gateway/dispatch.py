"""Sending one model call for a tenant: admit, route, hold to the tier's target, send.

Shared by the OpenAI routes (a client's own call) and the Responses API's agent loop (each of
its model calls). The caller's ``Meter`` holds the admission ticket, so whatever happens next
(answered, failed, client gone) settles it; a replica that cannot be reached before anything
was sent is marked suspect and the call goes to another one, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tokenmill.billing.budget import completion_tokens_bound
from tokenmill.control.keys import Principal
from tokenmill.errors import UpstreamError
from tokenmill.fleet.balancer import prefix_blocks
from tokenmill.gateway.directory import ModelEntry
from tokenmill.gateway.metering import Meter
from tokenmill.gateway.routing import PREFIX_BLOCK_BYTES, Lease
from tokenmill.gateway.services import Services
from tokenmill.gateway.tiers import hold_to_target
from tokenmill.gateway.upstream import UpstreamResponse
from tokenmill.protocol.requests import SamplingParams
from tokenmill.protocol.tenancy import Tenancy
from tokenmill.protocol.tiers import ServiceTier

SEND_ATTEMPTS = 2
GENERATIVE = frozenset({"chat", "completion"})  # tasks whose usage is bounded by max_tokens


def prompt_blocks(body: dict[str, Any]) -> tuple[int, ...]:
    """Prefix hashes of the prompt as sent (messages or prompt), for prefix-affine routing."""
    prompt = body.get("messages") or body.get("prompt") or body.get("input")
    text = prompt.encode() if isinstance(prompt, str) else orjson.dumps(prompt)
    return prefix_blocks(text, PREFIX_BLOCK_BYTES)


@dataclass(frozen=True, slots=True)
class Call:
    """What a model call needs to be sent: the body as given, and how it is billed."""

    principal: Principal
    entry: ModelEntry
    path: str  # the OpenAI path on the replica, e.g. ``/v1/chat/completions``
    body: dict[str, Any]
    size: int  # bytes of the request as the client sent it
    sampling: SamplingParams
    stream: bool
    tier: ServiceTier | None  # None: not tiered (embeddings)


async def dispatch(services: Services, call: Call, meter: Meter) -> tuple[UpstreamResponse, Lease]:
    """Sends ``call``; returns the replica's response and the lease to release after it."""
    principal, entry = call.principal, call.entry
    tier = call.tier or ServiceTier.DEFAULT
    meter.service_tier = tier
    ticket = None
    if services.admission is not None:
        ticket = meter.ticket = await services.admission.admit(
            principal,
            entry,
            call.sampling.max_tokens,
            call.sampling.n,
            call.size,
            meter.request_id,
            tier=tier,
        )
    if entry.task in GENERATIVE and entry.context_tokens > 0:
        context, choices = entry.context_tokens, call.sampling.n
        meter.max_prompt_tokens = context
        meter.max_completion_tokens = completion_tokens_bound(
            call.sampling.max_tokens, choices, context
        )
    body = {**call.body, "model": entry.upstream_model}
    if call.stream:
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    tokens = call.size // 4 + (call.sampling.max_tokens or 0) * call.sampling.n
    payload = orjson.dumps(body)
    for attempt in range(1, SEND_ATTEMPTS + 1):
        lease = await services.router.acquire(
            entry.runs_on,
            tenant_id=principal.tenant_id,
            tokens=tokens,
            prefix=lambda: prompt_blocks(body),
        )
        try:
            if call.tier is not None:
                # A prompt past the context is refused by the replica at once (a 400), so it
                # can never wait longer than a prompt that fills the context.
                prompt_tokens = min(call.size // 4, entry.context_tokens or call.size // 4)
                tier = hold_tier(services, lease, tier, prompt_tokens, principal, entry.id)
                meter.service_tier = tier
                if ticket is not None:
                    ticket.tier = tier
            if attempt == 1 and services.journal is not None:
                services.journal.begin(meter)
            upstream = await services.upstream.post(
                lease.url + call.path,
                payload,
                meter.request_id,
                Tenancy(principal.tenant_id, principal.share_weight, tier.priority, entry.adapter),
            )
        except UpstreamError:
            # Nothing was sent to the client yet: another replica may answer instead.
            services.router.suspect(lease)
            lease.release()
            if attempt == SEND_ATTEMPTS:
                raise
            continue
        except BaseException:
            lease.release()
            raise
        if upstream.prompt_tokens is not None:  # until the usage says otherwise
            meter.tokens.prompt_tokens = upstream.prompt_tokens
        return upstream, lease
    raise AssertionError("unreachable")


def hold_tier(
    services: Services,
    lease: Lease,
    tier: ServiceTier,
    prompt_tokens: int,
    principal: Principal,
    model: str,
) -> ServiceTier:
    """The tier the request is sent in, by the chosen replica's predicted time to first
    token; marks it queued there (until its first token) in that tier's class."""
    predicted = {t: lease.predict(t.priority, prompt_tokens) for t in ServiceTier}
    tier = hold_to_target(tier, predicted, services.ttft_targets, principal.service_tiers, model)
    lease.sent(tier.priority, prompt_tokens, services.clock.monotonic())
    return tier
