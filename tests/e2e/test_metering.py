"""A client that goes away mid-stream cancels the generation and is billed for what was made."""

from __future__ import annotations

import json

import httpx

from tests.e2e.conftest import Platform

MODEL = "smollm2-135m-instruct"


def test_disconnect_mid_stream_is_recorded_with_tokens_generated(platform: Platform) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}],
        "max_tokens": 400,
        "temperature": 0,
        "stream": True,
    }
    received = 0
    with (
        httpx.Client(base_url=platform.base_url, timeout=60) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {platform.admin_key}"},
        ) as response,
    ):
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: {"):
                choices = json.loads(line[6:])["choices"]
                received += bool(choices and choices[0]["delta"].get("content"))
            if received >= 5:
                break
    usage = platform.usage(request_id)
    assert usage.status == "cancelled"
    assert usage.stream
    assert usage.prompt_tokens > 0
    assert 5 <= usage.completion_tokens < 400
    # The replica is free again and answers the next request.
    reply = platform.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=2
    )
    assert reply.choices[0].finish_reason in ("stop", "length")
