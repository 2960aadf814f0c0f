"""A stream cut off by its replica dying is still billed: the prompt the replica reported
when the stream began (``x-tokenmill-prompt-tokens``) and a token per content event seen,
since the usage chunk never comes and the replica cannot be asked any more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.gateway.conftest import two_tenants
from tests.gateway.live import MODEL, read_body, served_name, sse_event
from tests.gateway.test_responses import serving
from tokenmill.billing.ledger import LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import Price, TokenUsage, cost_micros
from tokenmill.billing.usage import UsageRepository
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.protocol.tenancy import PROMPT_TOKENS_HEADER
from tokenmill.settings import Settings
from tokenmill.store.db import Database

PRICE = Price(1_000_000, 0, 2_000_000)
PROMPT_TOKENS, WORDS = 41, ("one", " two", " three")


async def dying_replica(scope: Any, receive: Any, send: Any) -> None:
    """Streams three words after saying how long the prompt is, then is gone: the stream
    ends without usage or ``[DONE]``, and asking it about the request finds nothing."""
    if scope["type"] != "http":
        return
    await read_body(receive)
    if scope["method"] == "DELETE":
        error = {"message": "No such request.", "type": "invalid_request_error"}
        body = orjson.dumps({"error": {**error, "param": None, "code": "request_not_found"}})
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    headers = [(b"content-type", b"text/event-stream"),
               (PROMPT_TOKENS_HEADER.encode(), str(PROMPT_TOKENS).encode())]  # fmt: skip
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for word in WORDS:
        chunk = {"choices": [{"index": 0, "delta": {"content": word}}]}
        await send({"type": "http.response.body", "body": sse_event(chunk), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def test_a_stream_whose_replica_died_bills_the_prompt_and_what_was_seen(
    database: Database, tmp_path: Path
) -> None:
    clock = SystemClock()
    alpha, _, alpha_id = two_tenants(database, clock)
    ModelRepository(database, clock).register(MODEL, task="chat", artifact="-", context_tokens=4096)
    PriceBookRepository(database, clock).add(MODEL, PRICE)
    LedgerRepository(database, clock).top_up(alpha_id, 10_000_000)
    async with serving(dying_replica) as url:
        router = Router()
        router.set_replicas(served_name(MODEL), [url])
        gateway = build_gateway(Settings(data_dir=tmp_path), database, clock, router, journal=False)
        admission = gateway.services.admission
        assert admission is not None
        await admission.start()
        transport = httpx.ASGITransport(app=build_app(gateway.services))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
                body = {"model": MODEL, "messages": [{"role": "user", "content": "Count."}],
                        "stream": True}  # fmt: skip
                answer = await http.post(
                    "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {alpha}"}
                )
            assert answer.status_code == 200  # the stream had begun: its error is its last event
            assert "ended the stream early" in answer.text
            await gateway.services.recorder.aflush()
        finally:
            await admission.close()
            await gateway.services.upstream.close()
            gateway.close()
    [event] = UsageRepository(database).list(alpha_id)
    assert (event.status, event.error_code) == ("error", "upstream_error")
    assert (event.prompt_tokens, event.completion_tokens) == (PROMPT_TOKENS, len(WORDS))
    assert event.cost_micros == cost_micros(TokenUsage(PROMPT_TOKENS, 0, len(WORDS)), PRICE) > 0
