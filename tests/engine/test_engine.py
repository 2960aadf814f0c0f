from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tokenmill.engine.engine import Engine
from tokenmill.engine.request import EngineEvent, EngineRequest, Finished, TextDelta
from tokenmill.engine.runner import LlamaRunner
from tokenmill.engine.seams import EngineSettings
from tokenmill.errors import InvalidRequest, ServiceUnavailable
from tokenmill.protocol.requests import SamplingParams, parse_chat

from .conftest import EOG_TOKENS

pytestmark = pytest.mark.model

GREEDY = SamplingParams(temperature=0.0, max_tokens=12)
ENDLESS = SamplingParams(
    temperature=0.0, max_tokens=500, logit_bias={token: -100.0 for token in EOG_TOKENS}
)


@pytest.fixture
async def engine(runner: LlamaRunner) -> AsyncIterator[Engine]:
    started = Engine(runner)
    started.start()
    yield started
    await started.stop()


def request(engine: Engine, request_id: str, sampling: SamplingParams = GREEDY) -> EngineRequest:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "Tell me about the sea."}],
        "temperature": sampling.temperature,
        "max_tokens": sampling.max_tokens,
        "stop": list(sampling.stop) or None,
        "logit_bias": {str(k): v for k, v in sampling.logit_bias.items()} or None,
    }
    return engine.prompts.chat(parse_chat(body), request_id)


async def drain(events: AsyncIterator[EngineEvent]) -> tuple[str, Finished]:
    text = []
    async for event in events:
        if isinstance(event, TextDelta):
            text.append(event.text)
        else:
            return "".join(text), event
    raise AssertionError("no Finished event")


def sample(engine: Engine, name: str, labels: dict[str, str] | None = None) -> float:
    value = engine.metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


async def test_a_request_yields_text_then_finished_with_usage(engine: Engine) -> None:
    req = request(engine, "a")
    text, finished = await drain(engine.submit(req))
    assert text
    assert finished.finish_reason == "length"
    assert finished.usage.prompt_tokens == len(req.prompt_tokens)
    assert finished.usage.completion_tokens == 12
    assert finished.error is None


async def test_same_request_same_text_and_the_prefix_is_reused(engine: Engine) -> None:
    first, _ = await drain(engine.submit(request(engine, "a")))
    second, finished = await drain(engine.submit(request(engine, "b")))
    assert second == first
    assert finished.usage.cached_tokens > 0


async def test_a_stop_string_ends_the_request(engine: Engine) -> None:
    text, _ = await drain(engine.submit(request(engine, "a")))
    stop = text[len(text) // 2 :][:3]
    sampling = SamplingParams(temperature=0.0, max_tokens=12, stop=(stop,))
    cut, finished = await drain(engine.submit(request(engine, "b", sampling)))
    assert finished.finish_reason == "stop"
    assert cut == text[: text.index(stop)]


async def test_requests_run_together_in_one_batch(engine: Engine) -> None:
    first = engine.submit(request(engine, "first", ENDLESS))
    second = engine.submit(request(engine, "second", ENDLESS))
    assert isinstance(await anext(first), TextDelta)
    assert isinstance(await anext(second), TextDelta)
    assert sample(engine, "tokenmill:num_requests_running") == 2
    assert sample(engine, "tokenmill:kv_cache_used_cells") > 0
    for rid, events in (("first", first), ("second", second)):
        await engine.cancel(rid)
        assert (await drain(events))[1].finish_reason == "cancelled"


async def test_beyond_max_running_requests_wait_and_a_waiting_one_can_be_cancelled(
    runner: LlamaRunner,
) -> None:
    engine = Engine(runner, EngineSettings(max_running=1))
    engine.start()
    try:
        running = engine.submit(request(engine, "long", ENDLESS))
        waiting = engine.submit(request(engine, "next"))
        assert isinstance(await anext(running), TextDelta)
        assert sample(engine, "tokenmill:num_requests_running") == 1
        assert sample(engine, "tokenmill:num_requests_waiting") == 1

        outcome = await engine.cancel("next")
        assert outcome is not None
        assert (outcome.status, outcome.usage.completion_tokens) == ("cancelled", 0)
        _, finished = await drain(waiting)
        assert finished.finish_reason == "cancelled"
        assert sample(engine, "tokenmill:num_requests_waiting") == 0

        outcome = await engine.cancel("long")
        assert outcome is not None
        assert outcome.status == "cancelled"
        _, finished = await drain(running)
        assert finished.finish_reason == "cancelled"
        assert finished.usage == outcome.usage
        assert 1 <= outcome.usage.completion_tokens < 500
    finally:
        await engine.stop()


async def test_closing_the_event_iterator_cancels_the_request(engine: Engine) -> None:
    events = engine.submit(request(engine, "gone", ENDLESS))
    assert isinstance(await anext(events), TextDelta)
    await events.aclose()
    _, finished = await drain(engine.submit(request(engine, "after")))
    assert finished.finish_reason == "length"
    outcome = await engine.cancel("gone")
    assert outcome is not None
    assert outcome.status == "cancelled"
    assert outcome.usage.completion_tokens < 500


async def test_cancel_reports_finished_requests_and_not_unknown_ones(engine: Engine) -> None:
    _, finished = await drain(engine.submit(request(engine, "done")))
    outcome = await engine.cancel("done")
    assert outcome is not None
    assert (outcome.status, outcome.usage) == ("finished", finished.usage)
    assert await engine.cancel("never-seen") is None
    engine.abort("never-seen")  # a no-op


async def test_a_request_id_in_progress_cannot_be_reused(engine: Engine) -> None:
    events = engine.submit(request(engine, "dup", ENDLESS))
    with pytest.raises(InvalidRequest):
        engine.submit(request(engine, "dup"))
    await engine.cancel("dup")
    await drain(events)


async def test_counters_move(engine: Engine, runner: LlamaRunner) -> None:
    await drain(engine.submit(request(engine, "a")))
    assert sample(engine, "tokenmill:generation_tokens_total") == 12
    assert sample(engine, "tokenmill:prompt_tokens_total") > 0
    assert sample(engine, "tokenmill:request_success_total", {"finish_reason": "length"}) == 1
    assert sample(engine, "tokenmill:time_to_first_token_seconds_count") == 1
    assert sample(engine, "tokenmill:time_per_output_token_seconds_count") == 11
    assert sample(engine, "tokenmill:kv_cache_total_cells") == runner.kv_cache_tokens


async def test_stop_cancels_what_is_in_flight(runner: LlamaRunner) -> None:
    engine = Engine(runner)
    engine.start()
    running = engine.submit(request(engine, "a", ENDLESS))
    waiting = engine.submit(request(engine, "b"))
    await anext(running)
    await engine.stop()
    assert (await drain(running))[1].finish_reason == "cancelled"
    assert (await drain(waiting))[1].finish_reason == "cancelled"
    with pytest.raises(ServiceUnavailable):
        engine.submit(request(engine, "c"))


COPY_PROMPT = (
    "Repeat this text exactly, word for word: The quick brown fox jumps over the lazy dog "
    "while the farmer watches from the old wooden fence near the river bank at sunset."
)


async def test_prompt_lookup_speculation_keeps_greedy_output_identical(
    runner: LlamaRunner,
) -> None:
    outputs = []
    for drafts in (0, 5):
        engine = Engine(runner, EngineSettings(speculative_tokens=drafts))
        engine.start()
        try:
            body = {
                "model": "m",
                "messages": [{"role": "user", "content": COPY_PROMPT}],
                "temperature": 0,
                "max_tokens": 40,
            }
            req = engine.prompts.chat(parse_chat(body), f"copy-{drafts}")
            text, finished = await drain(engine.submit(req))
            outputs.append((text, finished.usage.completion_tokens))
            accepted = sample(engine, "tokenmill:spec_decode_num_accepted_tokens_total")
            assert (accepted > 0) == (drafts > 0)
        finally:
            await engine.stop()
    assert outputs[0] == outputs[1]
