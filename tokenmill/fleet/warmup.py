"""Whether a replica is ready: its health answer, then a warm-up request that also tells its speed.

A replica is ready only after it has served one real request: the model is loaded, the
first-call costs are paid, and the answer gives this host's figures for the model card
(time to first token and decode tokens/s, or embedding latency).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from tokenmill.fleet.engines.base import EngineAdapter

WARMUP_TOKENS = 16
TIMEOUT_SECONDS = 60


def warm_up(url: str, served_name: str, task: str) -> dict[str, float]:
    """Sends one request; returns measured figures (empty when there is nothing to time)."""
    if task == "embeddings":
        started = time.perf_counter()
        _post(url + "/v1/embeddings", {"model": served_name, "input": ["warm-up request"]})
        return {"embedding_latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    body: dict[str, Any]
    if task == "chat":
        path, body = (
            "/v1/chat/completions",
            {
                "messages": [
                    {"role": "user", "content": "Count from 1 to 100, separated by commas."}
                ]
            },
        )
    else:
        path, body = "/v1/completions", {"prompt": "1, 2, 3, 4, 5, 6, 7, 8,"}
    body |= {
        "model": served_name,
        "max_tokens": WARMUP_TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return _timed_stream(url + path, body)


def _post(url: str, body: dict[str, Any]) -> bytes:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        return bytes(response.read())


def _timed_stream(url: str, body: dict[str, Any]) -> dict[str, float]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    started = time.perf_counter()
    first: float | None = None
    completion_tokens = 0
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        for line in response:
            if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if first is None and any(_has_text(c) for c in chunk.get("choices", ())):
                first = time.perf_counter()
            usage = chunk.get("usage")
            if usage:
                completion_tokens = int(usage.get("completion_tokens", 0))
    ended = time.perf_counter()
    if first is None:
        return {}
    measured = {"ttft_ms": round((first - started) * 1000, 1)}
    if completion_tokens > 1 and ended > first:
        measured["tokens_per_second"] = round((completion_tokens - 1) / (ended - first), 1)
    return measured


def _has_text(choice: dict[str, Any]) -> bool:
    return bool(choice.get("text") or (choice.get("delta") or {}).get("content"))


def healthy(url: str, adapter: EngineAdapter) -> bool:
    """The engine's own health answer, as its adapter reads it (a 503 while loading is no)."""
    try:
        with urllib.request.urlopen(f"{url}{adapter.health_path}", timeout=0.5) as resp:
            return adapter.ready(resp.status, resp.read())
    except urllib.error.HTTPError as error:
        return adapter.ready(error.code, error.read())
    except (urllib.error.URLError, OSError):
        return False
