"""The prompt's own logprobs (``echo`` with ``logprobs``): which rows a step reads, and the
live replica's answer against llama.cpp computing the same prompt directly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tokenmill.engine.echo import echo_offsets
from tokenmill.engine.request import EngineRequest, TokenLogprob
from tokenmill.engine.runner import DecodeEntry, LlamaRunner
from tokenmill.engine.sequence import Sequence
from tokenmill.protocol.requests import SamplingParams
from tokenmill.protocol.tenancy import ADAPTER_HEADER

from .conftest import NEVER_STOP, SERVED_NAME

PROMPT = "<|im_start|>user\nWhat colour is the sky?<|im_end|>\n<|im_start|>assistant\nBlue."
TOLERANCE = 0.05  # nats: the replica batches differently from one direct decode


def sequence(prompt_tokens: int, *, wanted: bool = True) -> Sequence:
    request = EngineRequest(
        "r", tuple(range(prompt_tokens)), 0, SamplingParams(), prompt_logprobs=wanted
    )
    return Sequence(request, arrival_seconds=0.0)


def test_rows_cover_every_prompt_position_but_the_last_once() -> None:
    seq = sequence(10)
    assert echo_offsets(seq, 0, 4) == (0, 1, 2, 3)
    assert echo_offsets(seq, 4, 6) == (0, 1, 2, 3, 4)  # position 9 predicts no prompt token
    seq.prompt_logprobs.extend([TokenLogprob(b"x", -1.0, ())] * 6)  # then preempted
    assert echo_offsets(seq, 0, 10) == (6, 7, 8)
    assert echo_offsets(sequence(10, wanted=False), 0, 10) == ()
    assert not sequence(10).reuses_prefix and sequence(10, wanted=False).reuses_prefix


def echo(client: httpx.Client, adapter: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {"model": SERVED_NAME, "prompt": PROMPT, "echo": True, "logprobs": 2,
            "max_tokens": 0, "temperature": 0, **extra}  # fmt: skip
    headers = {ADAPTER_HEADER: adapter} if adapter else {}
    response = client.post("/v1/completions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


@pytest.fixture
def clean(runner: LlamaRunner) -> Iterator[LlamaRunner]:
    runner.clear()
    yield runner
    runner.clear()


@pytest.mark.model
def test_echoed_logprobs_match_llama_cpp_and_bill_only_the_prompt(
    client: httpx.Client, clean: LlamaRunner
) -> None:
    reply = echo(client)
    [choice] = reply["choices"]
    assert choice["text"] == PROMPT and choice["finish_reason"] == "length"
    tokens = clean.tokenize(PROMPT)
    assert reply["usage"]["prompt_tokens"] == len(tokens)
    assert reply["usage"]["completion_tokens"] == 0
    logprobs = choice["logprobs"]
    assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
    assert len(logprobs["tokens"]) == len(tokens)
    assert "".join(logprobs["tokens"]) == PROMPT
    offsets = logprobs["text_offset"]
    assert [PROMPT[o : o + len(t)] for o, t in zip(offsets, logprobs["tokens"], strict=True)] == (
        logprobs["tokens"]
    )
    rows = clean.decode([DecodeEntry(0, tokens, 0, tuple(range(len(tokens) - 1)))])[0]
    expected = []
    for row, token in zip(rows, tokens[1:], strict=True):
        values = clean.logits(row).astype(np.float64)
        peak = values.max()
        expected.append(values[token] - peak - np.log(np.exp(values - peak).sum()))
    assert np.allclose(logprobs["token_logprobs"][1:], expected, atol=TOLERANCE)
    for top, own in zip(logprobs["top_logprobs"][1:], logprobs["token_logprobs"][1:], strict=True):
        assert 2 <= len(top) <= 3 and max(top.values()) >= own - 1e-6
    # The same prompt again: its prefix is cached now, yet every position is computed.
    assert echo(client)["choices"][0]["logprobs"] == logprobs


@pytest.mark.model
def test_generation_follows_the_echo_and_a_fine_tune_scores_differently(
    client: httpx.Client,
) -> None:
    plain = echo(client)["choices"][0]["logprobs"]
    prompt_tokens = len(plain["tokens"])
    generated = echo(client, max_tokens=3, logit_bias=NEVER_STOP)["choices"][0]
    assert generated["text"].startswith(PROMPT) and len(generated["text"]) > len(PROMPT)
    logprobs = generated["logprobs"]
    assert logprobs["token_logprobs"][:prompt_tokens] == plain["token_logprobs"]
    assert len(logprobs["tokens"]) == prompt_tokens + 3
    assert min(logprobs["text_offset"][prompt_tokens:]) >= len(PROMPT)
    tuned = echo(client, "a0")["choices"][0]["logprobs"]["token_logprobs"][1:]
    assert len(tuned) == prompt_tokens - 1
    differences = [abs(a - b) for a, b in zip(tuned, plain["token_logprobs"][1:], strict=True)]
    assert max(differences) > 0.1
    body = {"model": SERVED_NAME, "prompt": PROMPT, "echo": True, "logprobs": 0,
            "max_tokens": 2, "temperature": 0, "stream": True}  # fmt: skip
    with client.stream("POST", "/v1/completions", json=body) as response:
        first = next(line for line in response.iter_lines() if line.startswith("data: {"))
    choice = json.loads(first.removeprefix("data: "))["choices"][0]
    assert choice["text"] == PROMPT
    assert choice["logprobs"]["token_logprobs"] == [None, *plain["token_logprobs"][1:]]


@pytest.mark.model
def test_max_tokens_zero_needs_echo(client: httpx.Client) -> None:
    body = {"model": SERVED_NAME, "prompt": PROMPT, "max_tokens": 0}
    assert client.post("/v1/completions", json=body).status_code == 400
