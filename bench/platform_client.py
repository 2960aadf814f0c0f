"""A running platform as its users and operator see it, for the benchmarks that load one
(``bench/soak.py``, ``bench/chaos.py``).

The operator's side: tenants with a key and credit, made through ``/admin/v1``, and the usage
each tenant has on record there. The users' side: a chat request (streamed or whole) and any
other request, each answered as a ``Reply`` that keeps the gateway's ``x-request-id``.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

CHAT = "chat-small"
TOPICS = ["the sea", "a bicycle", "winter", "a library", "coffee", "mountains", "a robot", "rain"]
BILLING_SYNC_SECONDS = 2.0  # a top-up reaches the gateways' budget counters
INVARIANT_WAIT_SECONDS = 60  # for the journal to reach the database


@dataclass(slots=True)
class Reply:
    status: int  # 0: no HTTP answer
    ttft: float | None = None
    complete: bool = True  # a stream that reached [DONE] without an error event
    error: str | None = None
    file_id: str | None = None
    request_id: str | None = None  # the gateway's x-request-id, when it answered
    content_chunks: int = 0  # stream chunks that carried text: tokens the client saw


def without_password(url: str) -> str:
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def admin_key_in(text: str) -> str | None:
    """The platform-admin key a first start prints."""
    found = re.search(r"TOKENMILL_API_KEY=(\S+)", text)
    return found.group(1) if found else None


def wait_answering(
    process: subprocess.Popen[bytes], log: Path, url: str, seconds: float, marker: str = ""
) -> str:
    """Waits until ``marker`` is in the process's ``log`` and ``url`` answers 200; returns
    the log's text. Raises if the process exits or ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}; see {log}")
        text = log.read_text(errors="replace")
        if marker in text:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return text
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {seconds} s; see {log}")


def make_tenants(
    base: str, admin_key: str, credits_micros: Sequence[int], prefix: str
) -> list[dict[str, str]]:
    """One tenant per credit, each with a key and that credit, made as an operator would."""
    run = time.strftime("%Y%m%d-%H%M%S")
    tenants = []
    headers = {"authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        for index, credit_micros in enumerate(credits_micros):
            made = http.post("/admin/v1/tenants", json={"name": f"{prefix}-{run}-{index}"})
            tenant_id = made.raise_for_status().json()["id"]
            key = http.post(f"/admin/v1/tenants/{tenant_id}/keys", json={"name": prefix})
            credit = {"amount_micros": credit_micros, "idempotency_key": f"{prefix}-{tenant_id}"}
            http.post(f"/admin/v1/tenants/{tenant_id}/credits", json=credit).raise_for_status()
            tenants.append({"id": tenant_id, "key": key.raise_for_status().json()["secret"]})
    time.sleep(BILLING_SYNC_SECONDS)
    return tenants


async def chat(
    session: aiohttp.ClientSession,
    base: str,
    key: str,
    rng: random.Random,
    n: int,
    stream: bool,
    max_tokens: tuple[int, int] = (16, 32),
) -> Reply:
    began = time.monotonic()
    topic = rng.choice(TOPICS)
    body: dict[str, Any] = {
        "model": CHAT,
        "messages": [{"role": "user", "content": f"Tell me one thing about {topic}. ({n})"}],
        "max_tokens": rng.randint(*max_tokens),
        "temperature": 0.7,
        "seed": n,
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    headers = {"authorization": f"Bearer {key}"}
    async with session.post(f"{base}/v1/chat/completions", json=body, headers=headers) as resp:
        request_id = resp.headers.get("x-request-id")
        if resp.status != 200 or not stream:
            text = await resp.text()
            error = None if resp.status == 200 else text[:200]
            return Reply(resp.status, error=error, request_id=request_id)
        reply = Reply(200, complete=False, request_id=request_id)
        try:
            async for line in resp.content:
                if line.startswith(b"data: [DONE]"):
                    reply.complete = reply.error is None
                elif line.startswith(b'data: {"error"'):
                    reply.error = line.decode(errors="replace")[:200]
                elif line.startswith(b"data: {"):
                    choices = orjson.loads(line[6:]).get("choices") or []
                    if any((choice.get("delta") or {}).get("content") for choice in choices):
                        reply.content_chunks += 1
                        if reply.ttft is None:
                            reply.ttft = time.monotonic() - began  # the first text, not the role
        except (aiohttp.ClientError, TimeoutError) as error:  # cut off: what came is kept
            reply.complete = False
            reply.error = reply.error or f"{type(error).__name__}: {error}"[:200]
        return reply


async def send(
    session: aiohttp.ClientSession, method: str, url: str, key: str, **options: Any
) -> Reply:
    headers = {"authorization": f"Bearer {key}", **options.pop("headers", {})}
    async with session.request(method, url, headers=headers, **options) as resp:
        text = await resp.text()
        file_id = None
        if resp.status == 200 and url.endswith("/v1/files"):
            file_id = json.loads(text)["id"]
        return Reply(
            resp.status,
            error=None if resp.status < 300 else text[:200],
            file_id=file_id,
            request_id=resp.headers.get("x-request-id"),
        )


def check_recorded_usage(
    base: str,
    admin_key: str,
    tenants: list[dict[str, str]],
    outcomes: list[dict[str, Any]],
    answered_ops: frozenset[str],
    inference_ops: frozenset[str],
) -> dict[str, Any]:
    """Per tenant, through the admin API: usage records answered / all vs. requests answered
    (``answered_ops`` that went as expected) / sent (``inference_ops`` that got an HTTP
    answer; a request cut off by Ctrl-C, status 499, may have been answered all the same),
    and balance; waits (a while) for the usage journal to reach the database."""
    headers = {"authorization": f"Bearer {admin_key}"}
    deadline = time.monotonic() + INVARIANT_WAIT_SECONDS
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        while True:
            rows = []
            for index, tenant in enumerate(tenants):
                mine = [o for o in outcomes if o["tenant"] == index]
                path = f"/admin/v1/tenants/{tenant['id']}"
                levels = http.get(f"{path}/service_levels").raise_for_status().json()["data"]
                credits = http.get(f"{path}/credits", params={"limit": 1}).raise_for_status()
                rows.append(
                    {
                        "tenant": tenant["id"],
                        "answered_made": sum(o["ok"] and o["op"] in answered_ops for o in mine),
                        "answered_recorded": sum(row["answered"] for row in levels),
                        "sent": sum(o["status"] > 0 and o["op"] in inference_ops for o in mine),
                        "recorded": sum(row["requests"] for row in levels),
                        "balance_micros": credits.json()["balance_micros"],
                        # cut off by Ctrl-C here, but maybe answered by the gateway
                        "cut_off": sum(
                            o["status"] == 499 and o["op"] in answered_ops for o in mine
                        ),
                    }
                )
            matches = all(
                r["answered_made"] <= r["answered_recorded"] <= r["answered_made"] + r["cut_off"]
                and r["sent"] == r["recorded"]
                for r in rows
            )
            if matches or time.monotonic() > deadline:
                break
            time.sleep(2)
    return {
        "tenants": rows,
        "usage_matches": matches,
        "balances_non_negative": all(r["balance_micros"] >= 0 for r in rows),
    }
