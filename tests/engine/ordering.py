"""Short requests through a real engine, and the order in which they finish."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tokenmill.engine.engine import Engine
from tokenmill.engine.request import EngineRequest
from tokenmill.protocol.requests import parse_chat

BODY = {
    "model": "m",
    "messages": [{"role": "user", "content": "Count to ten."}],
    "temperature": 0,
    "max_tokens": 4,
    "logit_bias": {str(t): -100 for t in range(3)},  # run to max_tokens
}


def short_request(engine: Engine, rid: str, **fields: Any) -> EngineRequest:
    """Four tokens of chat, with ``fields`` (tenant, priority...) set on the request."""
    return replace(engine.prompts.chat(parse_chat(BODY), rid), **fields)


async def run(engine: Engine, request: EngineRequest, order: list[str]) -> None:
    """Runs ``request`` to its end, then appends its id to ``order``."""
    async for _ in engine.submit(request):
        pass
    order.append(request.request_id)
