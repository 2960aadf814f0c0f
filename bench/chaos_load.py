"""The chaos benchmark's load: closed-loop streaming chat clients on a thread of their own.

Each client belongs to one tenant and sends one streamed chat request after another (the
next as soon as the last ends; a second's pause after a failure or a refusal, so a broken
platform is not spun on). Every request becomes an ``Outcome`` with the gateway's request id
and the text chunks the client received, which is what the invariants are checked against.
The faults are injected from the main thread meanwhile, with blocking calls.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from bench.platform_client import chat

REQUEST_TIMEOUT_SECONDS = 90
PAUSE_AFTER_FAILURE_SECONDS = 1.0
STOP_GRACE_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Outcome:
    began: float  # monotonic
    ended: float
    tenant: int
    status: int  # 0: no HTTP answer (connection refused or broken before the headers)
    ok: bool  # 200 and the stream reached [DONE]
    refused: bool  # 429 insufficient_quota: the tenant's credit is spent, as it should be
    request_id: str | None
    chunks: int  # text chunks received: the request produced tokens when > 0
    error: str | None

    @property
    def failed(self) -> bool:
        return not (self.ok or self.refused)

    @property
    def kind(self) -> str:
        """What a failure looks like from the client: its status, ``cut`` for a 200 whose
        stream broke off."""
        return "cut" if self.status == 200 else str(self.status)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def tally(outcomes: Iterable[Outcome]) -> dict[str, Any]:
    """Requests, answered, refused for credit, and failures by kind."""
    counted = list(outcomes)
    return {
        "requests": len(counted),
        "ok": sum(o.ok for o in counted),
        "refused_quota": sum(o.refused for o in counted),
        "failed": sum(o.failed for o in counted),
        "failed_by_status": dict(Counter(o.kind for o in counted if o.failed)),
        "first_errors": {o.kind: o.error for o in reversed(counted) if o.failed},
    }


class Load:
    def __init__(
        self, base: str, keys: list[str], clients: int, max_tokens: tuple[int, int]
    ) -> None:
        self.base = base
        self.keys = keys  # one per tenant
        self.clients = clients
        self.max_tokens = max_tokens
        self.outcomes: list[Outcome] = []  # appended by the load's thread only
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Clients finish the request they are in, then end."""
        self._stopping.set()
        self._thread.join(STOP_GRACE_SECONDS + 5)

    def ended_between(self, since: float, until: float) -> list[Outcome]:
        return [o for o in list(self.outcomes) if since <= o.ended < until]

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        # A connection per request: the kernel spreads them over the gateways on the port
        # (kept-alive ones would all stay on the gateway that did not die).
        connector = aiohttp.TCPConnector(limit=self.clients + 2, force_close=True)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            tasks = [asyncio.create_task(self._client(session, i)) for i in range(self.clients)]
            while not self._stopping.is_set():
                await asyncio.sleep(0.2)
            _, late = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _client(self, session: aiohttp.ClientSession, index: int) -> None:
        tenant = index % len(self.keys)
        rng = random.Random(index)
        n = 0
        while not self._stopping.is_set():
            n += 1
            outcome = await self._one(session, tenant, rng, index << 32 | n)
            self.outcomes.append(outcome)
            if not outcome.ok:
                await asyncio.sleep(PAUSE_AFTER_FAILURE_SECONDS)

    async def _one(
        self, session: aiohttp.ClientSession, tenant: int, rng: random.Random, n: int
    ) -> Outcome:
        began = time.monotonic()
        try:
            reply = await chat(session, self.base, self.keys[tenant], rng, n, True, self.max_tokens)
        except (aiohttp.ClientError, TimeoutError) as error:
            failure = f"{type(error).__name__}: {error}"[:200]
            return Outcome(began, time.monotonic(), tenant, 0, False, False, None, 0, failure)
        refused = reply.status == 429 and "insufficient_quota" in (reply.error or "")
        ok = reply.status == 200 and reply.complete
        return Outcome(
            began,
            time.monotonic(),
            tenant,
            reply.status,
            ok,
            refused,
            reply.request_id,
            reply.content_chunks,
            None if ok else reply.error,
        )
