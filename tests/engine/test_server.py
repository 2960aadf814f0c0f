"""The engine replica API, against a live ``python -m tokenmill.engine`` process."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tokenmill.protocol.tenancy import PROMPT_TOKENS_HEADER

from .conftest import NEVER_STOP, SERVED_NAME, SERVER_CONTEXT_TOKENS, SERVER_KV_CACHE_TOKENS

pytestmark = pytest.mark.model

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
METRIC_NAMES = (
    "tokenmill:num_requests_running",
    "tokenmill:num_requests_waiting",
    "tokenmill:kv_cache_used_cells",
    "tokenmill:kv_cache_total_cells",
    "tokenmill:prefix_cache_hits_total",
    "tokenmill:prompt_tokens_total",
    "tokenmill:generation_tokens_total",
    "tokenmill:time_to_first_token_seconds",
    "tokenmill:time_per_output_token_seconds",
    "tokenmill:request_success_total",
    "tokenmill:engine_busy_seconds_total",
)


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": SERVED_NAME, "messages": MESSAGES, "temperature": 0, "max_tokens": 12, **extra}


def completion_body(**extra: Any) -> dict[str, Any]:
    return {"model": SERVED_NAME, "prompt": "The three primary colours are", "temperature": 0,
            "max_tokens": 12, **extra}  # fmt: skip


def events_of(response: httpx.Response) -> list[Any]:
    """The data of each server-sent event: parsed JSON, or the string "[DONE]"."""
    events: list[Any] = []
    for line in response.iter_lines():
        if not line:
            continue
        assert line.startswith("data: "), line
        data = line.removeprefix("data: ")
        events.append(data if data == "[DONE]" else orjson.loads(data))
    return events


def stream(client: httpx.Client, path: str, body: dict[str, Any]) -> list[Any]:
    with client.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return events_of(response)


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def metric(client: httpx.Client, name: str) -> float:
    text = client.get("/metrics").text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_health_and_models(client: httpx.Client) -> None:
    health = client.get("/health").json()
    assert {key: health[key] for key in ("status", "model")} == {
        "status": "ok",
        "model": SERVED_NAME,
    }
    assert isinstance(health["adapters"], list)  # this replica serves adapters
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == [SERVED_NAME]
    assert models["data"][0]["object"] == "model"


def test_chat_completion(client: httpx.Client) -> None:
    response = client.post(
        "/v1/chat/completions",
        json=chat_body(logit_bias=NEVER_STOP),  # the answer may be shorter than max_tokens
        headers={"x-request-id": "c1"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "chatcmpl-c1"
    assert body["object"] == "chat.completion"
    assert body["model"] == SERVED_NAME
    assert isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"]
    assert choice["finish_reason"] == "length"
    usage = body["usage"]
    assert usage["completion_tokens"] == 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + 12
    assert "cached_tokens" in usage["prompt_tokens_details"]


def test_streamed_chat_matches_the_non_streamed_one(client: httpx.Client) -> None:
    whole = client.post("/v1/chat/completions", json=chat_body()).json()
    events = stream(client, "/v1/chat/completions", chat_body())

    assert events[-1] == "[DONE]"
    *chunks, usage_chunk, _ = events
    assert all(c["object"] == "chat.completion.chunk" for c in events[:-1])
    assert len({c["id"] for c in events[:-1]}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0] == {
        "index": 0, "delta": {}, "logprobs": None,
        "finish_reason": whole["choices"][0]["finish_reason"],
    }  # fmt: skip
    contents = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert all(contents) and not any("\ufffd" in c for c in contents)
    assert "".join(contents) == whole["choices"][0]["message"]["content"]

    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == whole["usage"]["completion_tokens"]
    assert usage_chunk["usage"]["prompt_tokens"] == whole["usage"]["prompt_tokens"]


def test_a_stream_says_its_prompt_tokens_before_generating(client: httpx.Client) -> None:
    body = {**chat_body(), "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        said = int(response.headers[PROMPT_TOKENS_HEADER])
        *_, usage_chunk, _ = events_of(response)
    assert said == usage_chunk["usage"]["prompt_tokens"] > 0


def test_completion_streamed_and_not(client: httpx.Client) -> None:
    whole = client.post("/v1/completions", json=completion_body()).json()
    assert whole["object"] == "text_completion"
    assert whole["id"].startswith("cmpl-")
    assert whole["choices"][0]["finish_reason"] == "length"
    events = stream(client, "/v1/completions", completion_body())
    *chunks, usage_chunk, done = events
    assert done == "[DONE]"
    assert all(c["object"] == "text_completion" for c in events[:-1])
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert usage_chunk["choices"] == []
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert usage_chunk["usage"][key] == whole["usage"][key]


def test_usage_is_the_last_chunk_even_when_asked_for(client: httpx.Client) -> None:
    body = chat_body(stream_options={"include_usage": True})
    events = stream(client, "/v1/chat/completions", body)
    assert events[-1] == "[DONE]"
    assert "usage" in events[-2]
    assert all("usage" not in e for e in events[:-2])


def test_echo_prepends_the_prompt(client: httpx.Client) -> None:
    body = completion_body(echo=True, max_tokens=4)
    text = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    assert text.startswith("The three primary colours are")


def test_same_seed_same_text_at_temperature_one(client: httpx.Client) -> None:
    body = chat_body(temperature=1.0, seed=42, max_tokens=16)
    texts = {
        client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
        for _ in range(3)
    }
    assert len(texts) == 1


def test_stop_strings_are_not_included(client: httpx.Client) -> None:
    text = client.post("/v1/chat/completions", json=chat_body()).json()["choices"][0]
    full = text["message"]["content"]
    stop = full[len(full) // 2 :][:2]
    expected = full[: full.index(stop)]

    cut = client.post("/v1/chat/completions", json=chat_body(stop=[stop])).json()["choices"][0]
    assert cut["message"]["content"] == expected
    assert cut["finish_reason"] == "stop"

    chunks = stream(client, "/v1/chat/completions", chat_body(stop=stop))[:-2]
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert streamed == expected
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_max_tokens_finishes_with_length(client: httpx.Client) -> None:
    body = client.post("/v1/completions", json=completion_body(max_tokens=3)).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


def test_a_prompt_too_long_is_refused_naming_the_limit(client: httpx.Client) -> None:
    body = chat_body(messages=[{"role": "user", "content": "hello " * SERVER_CONTEXT_TOKENS}])
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "messages"
    assert f"maximum context length is {SERVER_CONTEXT_TOKENS} tokens" in error["message"]


def test_max_tokens_beyond_the_context_is_refused(client: httpx.Client) -> None:
    response = client.post(
        "/v1/completions", json=completion_body(max_tokens=SERVER_CONTEXT_TOKENS)
    )
    assert response.status_code == 400
    assert error_of(response)["param"] == "max_tokens"


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"max_tokens": -1}, "max_tokens"), ({"n": 17}, "n"), ({"temperature": 3}, "temperature")],
)
def test_bad_parameters_are_refused(
    client: httpx.Client, extra: dict[str, Any], param: str
) -> None:
    response = client.post("/v1/chat/completions", json=chat_body(**extra))
    assert response.status_code == 400
    assert error_of(response)["param"] == param


def test_malformed_json_is_refused(client: httpx.Client) -> None:
    response = client.post("/v1/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"


def test_tenancy_headers_are_taken_and_bad_ones_refused(client: httpx.Client) -> None:
    tenant = {"x-tokenmill-tenant": "ten_1", "x-tokenmill-weight": "2"}
    fine = client.post("/v1/completions", json=completion_body(max_tokens=1), headers=tenant)
    assert fine.status_code == 200
    bad = {"x-tokenmill-tenant": "ten_1", "x-tokenmill-weight": "0"}
    refused = client.post("/v1/completions", json=completion_body(max_tokens=1), headers=bad)
    assert refused.status_code == 400
    assert error_of(refused)["param"] == "x-tokenmill-weight"


def test_unknown_model_is_404(client: httpx.Client) -> None:
    response = client.post("/v1/chat/completions", json=chat_body(model="gpt-17"))
    assert response.status_code == 404
    assert error_of(response)["code"] == "model_not_found"


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404
    assert error_of(missing)["type"] == "invalid_request_error"
    wrong = client.get("/v1/chat/completions")
    assert wrong.status_code == 405
    assert error_of(wrong)["code"] == "method_not_allowed"


def test_request_ids_are_echoed_or_made(client: httpx.Client) -> None:
    given = client.post("/v1/completions", json=completion_body(max_tokens=1),
                        headers={"x-request-id": "req-123"})  # fmt: skip
    assert given.headers["x-request-id"] == "req-123"
    assert given.json()["id"] == "cmpl-req-123"
    made = client.get("/health")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    error = client.post("/v1/completions", content=b"", headers={"x-request-id": "req-456"})
    assert error.headers["x-request-id"] == "req-456"
    refused = client.get("/health", headers={"x-request-id": "no spaces allowed"})
    assert refused.status_code == 400
    assert error_of(refused)["param"] == "x-request-id"


def test_delete_cancels_a_running_stream_and_reports_its_usage(client: httpx.Client) -> None:
    body = chat_body(max_tokens=1000, logit_bias=NEVER_STOP, stream=True)
    with generating(client, body, "doomed") as lines:
        cancelled = client.delete("/v1/requests/doomed")
        assert cancelled.status_code == 200
        answer = cancelled.json()
        assert answer["id"] == "doomed"
        assert answer["status"] == "cancelled"
        assert 1 <= answer["usage"]["completion_tokens"] < 1000

        rest: list[Any] = [
            orjson.loads(x[6:]) if x != "data: [DONE]" else "[DONE]" for x in lines if x
        ]
    assert rest[-1] == "[DONE]"
    assert rest[-2]["usage"] == answer["usage"]
    assert rest[-3]["choices"][0]["finish_reason"] == "cancelled"

    again = client.delete("/v1/requests/doomed")
    assert again.json() == answer
    assert error_of(client.delete("/v1/requests/nobody"))["code"] == "request_not_found"


def test_a_client_that_disconnects_frees_the_runner(client: httpx.Client) -> None:
    body = chat_body(max_tokens=1500, logit_bias=NEVER_STOP, stream=True)
    with generating(client, body, "leaver"):
        pass  # leaving the block closes the connection mid-stream
    assert_cancelled_and_freed(client, "leaver", 1500)


@contextlib.contextmanager
def generating(
    client: httpx.Client, body: dict[str, Any], request_id: str, choices: int = 1
) -> Iterator[Iterator[str]]:
    """A chat stream once each of its choices has produced text; yields the lines still due."""
    with client.stream(
        "POST", "/v1/chat/completions", json=body, headers={"x-request-id": request_id}
    ) as response:
        lines = response.iter_lines()
        started: set[int] = set()
        for line in lines:
            if '"content":"' in line and '"role"' not in line:
                started.add(orjson.loads(line[6:])["choices"][0]["index"])
                if len(started) == choices:
                    break
        yield lines


def assert_cancelled_and_freed(
    client: httpx.Client, request_id: str, max_completion_tokens: int
) -> None:
    """The replica serves a new request, and the one that was left reports as cancelled."""
    after = client.post("/v1/chat/completions", json=chat_body(max_tokens=2))
    assert after.json()["choices"][0]["finish_reason"] == "length"
    outcome = client.delete(f"/v1/requests/{request_id}").json()
    assert outcome["status"] == "cancelled"
    assert outcome["usage"]["completion_tokens"] < max_completion_tokens
    assert metric(client, "tokenmill:num_requests_running") == 0


def test_a_non_streamed_request_is_cancelled_by_delete_or_by_disconnect(
    client: httpx.Client, server_url: str
) -> None:
    body = orjson.dumps(chat_body(max_tokens=1500, logit_bias=NEVER_STOP))
    with raw_request(server_url, "/v1/chat/completions", body, "slow-1") as sock:
        wait_until_generating(client)
        answer = client.delete("/v1/requests/slow-1").json()
        assert answer["status"] == "cancelled"
        reply = orjson.loads(read_http_body(sock))
    assert reply["choices"][0]["finish_reason"] == "cancelled"
    assert reply["usage"] == answer["usage"]

    with raw_request(server_url, "/v1/chat/completions", body, "slow-2"):
        wait_until_generating(client)
    assert_cancelled_and_freed(client, "slow-2", 1500)


@contextlib.contextmanager
def raw_request(
    server_url: str, path: str, body: bytes, request_id: str
) -> Iterator[socket.socket]:
    """A POST on a bare socket, so the test decides when the connection closes."""
    url = httpx.URL(server_url)
    with socket.create_connection((url.host, url.port or 80)) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {url.host}\r\ncontent-type: application/json\r\n"
            f"x-request-id: {request_id}\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        yield sock


def read_http_body(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    return body


def wait_until_generating(client: httpx.Client, running: int = 1) -> None:
    start = metric(client, "tokenmill:generation_tokens_total")
    while not (
        metric(client, "tokenmill:num_requests_running") == running
        and metric(client, "tokenmill:generation_tokens_total") > start
    ):
        time.sleep(0.05)


def test_metrics_are_exported_and_counters_move(client: httpx.Client) -> None:
    text = client.get("/metrics").text
    for name in METRIC_NAMES:
        assert name in text
    before_prompt = metric(client, "tokenmill:prompt_tokens_total")
    before_generated = metric(client, "tokenmill:generation_tokens_total")
    before_length = metric(client, 'tokenmill:request_success_total{finish_reason="length"}')
    before_busy = metric(client, "tokenmill:engine_busy_seconds_total")
    client.post("/v1/completions", json=completion_body(max_tokens=5))
    assert metric(client, "tokenmill:engine_busy_seconds_total") > before_busy
    assert metric(client, "tokenmill:prompt_tokens_total") > before_prompt
    assert metric(client, "tokenmill:generation_tokens_total") == before_generated + 5
    assert (
        metric(client, 'tokenmill:request_success_total{finish_reason="length"}')
        == before_length + 1
    )
    assert metric(client, "tokenmill:kv_cache_total_cells") == SERVER_KV_CACHE_TOKENS


def test_the_openai_client_works(server_url: str) -> None:
    openai = pytest.importorskip("openai")
    api = openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0)
    reply = api.chat.completions.create(
        model=SERVED_NAME, messages=MESSAGES, temperature=0, max_tokens=4
    )
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    pieces = api.chat.completions.create(
        model=SERVED_NAME, messages=MESSAGES, temperature=0, max_tokens=4, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(pieces)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == reply.choices[0].message.content
