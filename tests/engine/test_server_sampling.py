"""Structured output, logprobs and n > 1 through the live engine replica."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import orjson
import pytest

from .conftest import NEVER_STOP, SERVED_NAME
from .test_server import (
    assert_cancelled_and_freed,
    error_of,
    generating,
    raw_request,
    read_http_body,
    stream,
    wait_until_generating,
)

pytestmark = pytest.mark.model

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "pets": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
    },
    "required": ["name", "age"],
}
ASK_FOR_JSON = [{"role": "user", "content": "Describe a person as JSON with name and age."}]


def validate(value: Any, schema: dict[str, Any]) -> None:
    jsonschema.validate(value, schema)


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": SERVED_NAME, "messages": ASK_FOR_JSON, "max_tokens": 96, **extra}


def json_schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}


def test_json_object_output_parses(client: httpx.Client) -> None:
    body = chat_body(temperature=1.0, seed=1, n=4, response_format={"type": "json_object"})
    choices = client.post("/v1/chat/completions", json=body).json()["choices"]
    finished = [c["message"]["content"] for c in choices if c["finish_reason"] == "stop"]
    assert finished
    for content in finished:
        assert isinstance(json.loads(content), dict)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_schema_output_parses_and_validates(client: httpx.Client, seed: int) -> None:
    body = chat_body(temperature=1.0, seed=seed, response_format=json_schema_format(PERSON))
    [choice] = client.post("/v1/chat/completions", json=body).json()["choices"]
    assert choice["finish_reason"] == "stop"
    validate(json.loads(choice["message"]["content"]), PERSON)


def test_streamed_json_schema_output_validates_too(client: httpx.Client) -> None:
    body = chat_body(temperature=0, response_format=json_schema_format(PERSON))
    chunks = stream(client, "/v1/chat/completions", body)[:-2]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    validate(json.loads(text), PERSON)


def test_completions_take_response_format(client: httpx.Client) -> None:
    body = {"model": SERVED_NAME, "prompt": "A person as JSON:", "max_tokens": 64,
            "temperature": 0, "response_format": json_schema_format(PERSON)}  # fmt: skip
    [choice] = client.post("/v1/completions", json=body).json()["choices"]
    assert choice["finish_reason"] == "stop"
    validate(json.loads(choice["text"]), PERSON)


def test_a_schema_the_engine_cannot_enforce_is_a_400(client: httpx.Client) -> None:
    bad = json_schema_format({"type": "string", "pattern": "unanchored"})
    response = client.post("/v1/chat/completions", json=chat_body(response_format=bad))
    assert response.status_code == 400
    assert error_of(response)["param"] == "response_format"
    # The replica is still serving.
    assert client.post("/v1/chat/completions", json=chat_body(max_tokens=2)).status_code == 200


def completion_body(**extra: Any) -> dict[str, Any]:
    return {"model": SERVED_NAME, "prompt": "The three primary colours are", "max_tokens": 8,
            "temperature": 0, **extra}  # fmt: skip


def check_chat_logprobs(content: list[dict[str, Any]], k: int) -> None:
    for entry in content:
        assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"}
        assert entry["logprob"] <= 0.0
        assert bytes(entry["bytes"]).decode(errors="replace") == entry["token"]
        top = entry["top_logprobs"]
        assert len(top) == k
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        assert all(t["logprob"] <= 0.0 and set(t) == {"token", "logprob", "bytes"} for t in top)
        # Greedy: the sampled token is the likeliest, with the same logprob.
        assert (top[0]["bytes"], top[0]["logprob"]) == (entry["bytes"], entry["logprob"])


def test_chat_logprobs(client: httpx.Client) -> None:
    body = chat_body(temperature=0, max_tokens=8, logprobs=True, top_logprobs=3)
    [choice] = client.post("/v1/chat/completions", json=body).json()["choices"]
    content = choice["logprobs"]["content"]
    assert len(content) == 8
    check_chat_logprobs(content, 3)
    assert "".join(entry["token"] for entry in content) == choice["message"]["content"]

    chunks = stream(client, "/v1/chat/completions", body)[:-2]
    streamed = [
        entry
        for chunk in chunks
        for entry in (chunk["choices"][0]["logprobs"] or {"content": []})["content"]
    ]
    assert streamed == content
    assert chunks[0]["choices"][0]["logprobs"] is None  # the role chunk


def test_chat_logprobs_without_top_and_none_unless_asked(client: httpx.Client) -> None:
    body = chat_body(temperature=0, max_tokens=4, logprobs=True)
    [choice] = client.post("/v1/chat/completions", json=body).json()["choices"]
    assert [entry["top_logprobs"] for entry in choice["logprobs"]["content"]] == [[]] * 4
    plain = client.post("/v1/chat/completions", json=chat_body(temperature=0, max_tokens=4))
    assert plain.json()["choices"][0]["logprobs"] is None


def test_completion_logprobs(client: httpx.Client) -> None:
    [choice] = client.post("/v1/completions", json=completion_body(logprobs=2)).json()["choices"]
    logprobs = choice["logprobs"]
    assert set(logprobs) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    assert len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == 8
    assert "".join(logprobs["tokens"]) == choice["text"]
    assert all(lp <= 0.0 for lp in logprobs["token_logprobs"])
    offsets = logprobs["text_offset"]
    assert offsets[0] == 0 and offsets == sorted(offsets)
    for token, lp, top in zip(
        logprobs["tokens"], logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True
    ):
        assert 1 <= len(top) <= 3 and top[token] == lp == max(top.values())
        assert list(top.values()) == sorted(top.values(), reverse=True)

    chunks = stream(client, "/v1/completions", completion_body(logprobs=2))[:-2]
    streamed: dict[str, list[Any]] = {key: [] for key in logprobs}
    for chunk in chunks:
        for key, values in (chunk["choices"][0]["logprobs"] or {}).items():
            streamed[key].extend(values)
    assert streamed == logprobs


def test_n_choices_count_the_prompt_once(client: httpx.Client) -> None:
    one = client.post("/v1/chat/completions", json=chat_body(temperature=0, max_tokens=5)).json()
    body = chat_body(temperature=0, max_tokens=5, n=3)
    reply = client.post("/v1/chat/completions", json=body).json()
    assert [c["index"] for c in reply["choices"]] == [0, 1, 2]
    assert {c["message"]["content"] for c in reply["choices"]} == {
        one["choices"][0]["message"]["content"]
    }
    usage = reply["usage"]
    assert usage["prompt_tokens"] == one["usage"]["prompt_tokens"]
    assert usage["completion_tokens"] == 15
    assert usage["total_tokens"] == usage["prompt_tokens"] + 15


def test_seeded_choices_differ_and_reproduce(client: httpx.Client) -> None:
    body = chat_body(temperature=1.0, seed=11, max_tokens=16, n=3)

    def texts() -> list[str]:
        reply = client.post("/v1/chat/completions", json=body).json()
        return [c["message"]["content"] for c in reply["choices"]]

    first = texts()
    assert len(set(first)) > 1
    assert texts() == first
    single = chat_body(temperature=1.0, seed=12, max_tokens=16)
    reply = client.post("/v1/chat/completions", json=single).json()
    assert reply["choices"][0]["message"]["content"] == first[1]  # choice 1 ran with seed 12


def test_streamed_choices_match_the_non_streamed_ones(client: httpx.Client) -> None:
    body = completion_body(temperature=1.0, seed=5, n=2, logprobs=1)
    whole = client.post("/v1/completions", json=body).json()
    *chunks, usage_chunk, done = stream(client, "/v1/completions", body)
    assert done == "[DONE]"
    texts = ["", ""]
    finishes: list[tuple[int, str]] = []
    tokens: list[list[str]] = [[], []]
    for chunk in chunks:
        [choice] = chunk["choices"]
        texts[choice["index"]] += choice["text"]
        if choice["finish_reason"]:
            finishes.append((choice["index"], choice["finish_reason"]))
        if choice["logprobs"]:
            tokens[choice["index"]] += choice["logprobs"]["tokens"]
    assert texts == [c["text"] for c in whole["choices"]]
    assert sorted(finishes) == [(i, c["finish_reason"]) for i, c in enumerate(whole["choices"])]
    assert tokens == [c["logprobs"]["tokens"] for c in whole["choices"]]
    assert usage_chunk["usage"] == whole["usage"]
    assert whole["usage"]["completion_tokens"] == 16


def test_streamed_chat_choices_each_open_and_finish(client: httpx.Client) -> None:
    *chunks, usage_chunk, _ = stream(
        client, "/v1/chat/completions", chat_body(temperature=0, max_tokens=4, n=2)
    )
    choices = [c["choices"][0] for c in chunks]
    roles = [c["index"] for c in choices if "role" in c["delta"]]
    ends = [c["index"] for c in choices if c["finish_reason"]]
    assert roles == [0, 1]
    assert sorted(ends) == [0, 1]
    assert usage_chunk["usage"]["completion_tokens"] == 8


def test_delete_cancels_every_choice_and_sums_their_usage(client: httpx.Client) -> None:
    body = chat_body(max_tokens=1000, logit_bias=NEVER_STOP, n=3, stream=True)
    with generating(client, body, "many", choices=3) as lines:
        answer = client.delete("/v1/requests/many").json()
        assert answer["id"] == "many"
        assert answer["status"] == "cancelled"
        assert 3 <= answer["usage"]["completion_tokens"] < 3000
        rest = [orjson.loads(x[6:]) for x in lines if x and x != "data: [DONE]"]
    finishes = [c["choices"][0] for c in rest[:-1] if c["choices"][0]["finish_reason"]]
    assert sorted(f["index"] for f in finishes) == [0, 1, 2]
    assert {f["finish_reason"] for f in finishes} == {"cancelled"}
    assert rest[-1]["usage"] == answer["usage"]
    assert client.delete("/v1/requests/many").json() == answer


def test_a_client_that_leaves_cancels_every_choice(client: httpx.Client) -> None:
    body = chat_body(max_tokens=1500, logit_bias=NEVER_STOP, n=2, stream=True)
    with generating(client, body, "gone", choices=2):
        pass
    assert_cancelled_and_freed(client, "gone", 3000)


def test_a_non_streamed_request_with_choices_is_cancelled_by_delete(
    client: httpx.Client, server_url: str
) -> None:
    body = orjson.dumps(chat_body(max_tokens=1500, logit_bias=NEVER_STOP, n=2))
    with raw_request(server_url, "/v1/chat/completions", body, "quiet") as sock:
        wait_until_generating(client, running=2)
        answer = client.delete("/v1/requests/quiet").json()
        reply = orjson.loads(read_http_body(sock))
    assert answer["status"] == "cancelled"
    assert 2 <= answer["usage"]["completion_tokens"] < 3000
    assert [c["finish_reason"] for c in reply["choices"]] == ["cancelled", "cancelled"]
    assert reply["usage"] == answer["usage"]
