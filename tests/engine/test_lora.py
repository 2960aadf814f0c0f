"""LoRA adapters served per request with the real model: grouping, prefix cache, eviction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from tokenmill.engine.engine import Engine
from tokenmill.engine.request import EngineEvent, EngineRequest, Finished, TextDelta
from tokenmill.engine.runner import LlamaRunner
from tokenmill.engine.seams import EngineSettings
from tokenmill.errors import InvalidArtifact, ModelNotFound
from tokenmill.protocol.requests import parse_chat

from .conftest import EOG_TOKENS

pytestmark = pytest.mark.model

QUESTIONS = ("Tell me about the sea.", "Name three fruits.", "What is a river?")


async def started(runner: LlamaRunner, adapters_dir: Path, capacity: int = 8) -> Engine:
    engine = Engine(runner, EngineSettings(adapters_dir=adapters_dir, max_loaded_adapters=capacity))
    engine.start()
    return engine


@pytest.fixture
async def engine(runner: LlamaRunner, adapters_dir: Path) -> AsyncIterator[Engine]:
    running = await started(runner, adapters_dir)
    yield running
    await running.stop()


def request(
    engine: Engine, rid: str, adapter: str | None, question: str = QUESTIONS[0], max_tokens: int = 8
) -> EngineRequest:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "logit_bias": {str(token): -100 for token in EOG_TOKENS},  # run to max_tokens
        "logprobs": True,
    }
    return replace(engine.prompts.chat(parse_chat(body), rid), adapter=adapter)


async def tokens(events: AsyncIterator[EngineEvent]) -> tuple[list[bytes], Finished]:
    """The generated tokens (by their logprobs' pieces), and how the request ended."""
    out: list[bytes] = []
    async for event in events:
        if isinstance(event, TextDelta):
            out.extend(logprob.piece for logprob in event.logprobs)
        else:
            return out, event
    raise AssertionError("no Finished event")


def sample(engine: Engine, name: str) -> float:
    return engine.metrics.registry.get_sample_value(name) or 0.0


async def test_an_adapter_changes_the_greedy_answer(engine: Engine) -> None:
    base, _ = await tokens(engine.submit(request(engine, "base", None)))
    tuned, finished = await tokens(engine.submit(request(engine, "tuned", "a0")))
    assert len(tuned) == 8 and finished.error is None
    assert tuned != base
    assert sample(engine, "tokenmill:lora_adapter_loads_total") == 1
    assert sample(engine, "tokenmill:lora_adapters_loaded") == 1


async def test_mixed_with_base_and_another_adapter_each_gets_what_it_gets_alone(
    engine: Engine,
) -> None:
    cases = [(adapter, question) for question in QUESTIONS[:2] for adapter in (None, "a0", "a1")]
    alone = []
    for i, (adapter, question) in enumerate(cases):
        alone.append(
            (await tokens(engine.submit(request(engine, f"alone{i}", adapter, question))))[0]
        )
    together = await asyncio.gather(
        *(
            tokens(engine.submit(request(engine, f"together{i}", adapter, question)))
            for i, (adapter, question) in enumerate(cases)
        )
    )
    assert [out for out, _ in together] == alone
    assert sample(engine, "tokenmill:lora_adapter_switches_total") > 3


async def test_cells_computed_under_one_adapter_serve_no_other(engine: Engine) -> None:
    hits = "tokenmill:prefix_cache_hits_total"
    tuned_fresh, _ = await tokens(engine.submit(request(engine, "tuned", "a1", QUESTIONS[2])))
    fresh_hits = sample(engine, hits)
    base, _ = await tokens(engine.submit(request(engine, "base", None, QUESTIONS[2])))
    assert sample(engine, hits) == fresh_hits  # a1's cells are no prefix for the base model
    other, finished = await tokens(engine.submit(request(engine, "other", "a0", QUESTIONS[2])))
    assert finished.usage.cached_tokens == 0 and sample(engine, hits) == fresh_hits
    again, finished = await tokens(engine.submit(request(engine, "again", "a1", QUESTIONS[2])))
    assert finished.usage.cached_tokens > 0 and sample(engine, hits) > fresh_hits
    assert again == tuned_fresh
    assert len({tuple(base), tuple(other), tuple(tuned_fresh)}) == 3


async def test_with_room_for_one_adapter_two_are_served_alternately(
    runner: LlamaRunner, adapters_dir: Path
) -> None:
    engine = await started(runner, adapters_dir, capacity=1)
    try:
        outputs = [
            (await tokens(engine.submit(request(engine, f"r{i}", adapter))))[0]
            for i, adapter in enumerate(("a0", "a1", "a0", "a1"))
        ]
        assert outputs[0] == outputs[2] and outputs[1] == outputs[3] != outputs[0]
        assert sample(engine, "tokenmill:lora_adapter_loads_total") == 4
        assert engine.adapters.loaded() == ["a1"]
    finally:
        await engine.stop()


async def test_an_adapter_in_use_is_not_evicted(runner: LlamaRunner, adapters_dir: Path) -> None:
    engine = await started(runner, adapters_dir, capacity=1)
    try:
        expected, _ = await tokens(engine.submit(request(engine, "alone", "a0", max_tokens=32)))
        long = asyncio.ensure_future(
            tokens(engine.submit(request(engine, "long", "a0", max_tokens=32)))
        )
        await asyncio.sleep(0)
        assert engine.adapters.loaded() == ["a0"]
        short, _ = await tokens(engine.submit(request(engine, "short", "a1", max_tokens=1)))
        assert len(short) == 1
        assert not long.done()
        # a1, loaded last, is the one evicted: a0 is still in use
        assert engine.adapters.loaded() == ["a0"]
        assert (await long)[0] == expected
        assert sample(engine, "tokenmill:lora_adapter_loads_total") == 2  # a0 loaded once
    finally:
        await engine.stop()


async def test_an_unknown_adapter_and_one_llama_cpp_refuses_are_refused_up_front(
    engine: Engine,
) -> None:
    with pytest.raises(ModelNotFound, match="'missing'"):
        engine.submit(request(engine, "missing", "missing"))
    with pytest.raises(InvalidArtifact):
        engine.submit(request(engine, "bad", "other-arch"))
    assert engine.adapters.loaded() == []
    _, finished = await tokens(engine.submit(request(engine, "fine", None)))
    assert finished.finish_reason == "length"
