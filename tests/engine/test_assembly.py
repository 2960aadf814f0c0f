from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from tokenmill.engine.assembly import DONE, collect, sse
from tokenmill.engine.request import EngineEvent, Finished, TextDelta, TokenLogprob, Usage
from tokenmill.engine.responses import CompletionFormat
from tokenmill.errors import TokenmillError

FMT = CompletionFormat("r", 1700000000, "m", logprobs=True)
A = TokenLogprob(b"a", -0.5, ())


async def events(*pairs: tuple[int, EngineEvent]) -> AsyncIterator[tuple[int, EngineEvent]]:
    for pair in pairs:
        yield pair


def interleaved() -> AsyncIterator[tuple[int, EngineEvent]]:
    return events(
        (1, TextDelta("b")),
        (0, TextDelta("a", (A,))),
        (0, TextDelta("a", (A,))),
        (1, Finished("length", Usage(5, 1, cached_tokens=0))),
        (0, Finished("stop", Usage(5, 2, cached_tokens=4))),
    )


async def test_sse_keeps_choices_apart_and_sums_usage_at_the_end() -> None:
    chunks = [chunk async for chunk in sse(interleaved(), FMT, 2)]
    assert chunks[-1] == DONE
    data = [orjson.loads(chunk.removeprefix(b"data: ")) for chunk in chunks[:-1]]
    choices = [d["choices"][0] for d in data[:-1]]
    assert [(c["index"], c["text"]) for c in choices] == [
        (1, "b"), (0, "a"), (0, "a"), (1, ""), (0, "")
    ]  # fmt: skip
    assert [c["logprobs"]["text_offset"] for c in choices[1:3]] == [[0], [1]]
    assert data[-1]["usage"]["completion_tokens"] == 3
    assert data[-1]["usage"]["prompt_tokens"] == 5
    assert data[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}  # choice 0's


async def test_collect_builds_one_body_in_choice_order() -> None:
    body = await collect(interleaved(), FMT, 2)
    assert [(c["index"], c["text"], c["finish_reason"]) for c in body["choices"]] == [
        (0, "aa", "stop"), (1, "b", "length")
    ]  # fmt: skip
    assert body["choices"][0]["logprobs"]["tokens"] == ["a", "a"]
    assert body["usage"]["total_tokens"] == 8


async def test_collect_raises_when_a_choice_failed() -> None:
    failed = events((0, Finished("error", Usage(5, 0), error="boom")))
    with pytest.raises(TokenmillError, match="boom"):
        await collect(failed, FMT, 1)


async def test_sse_reports_an_error_in_the_stream() -> None:
    failed = events((0, Finished("error", Usage(5, 0), error="boom")))
    chunks = [chunk async for chunk in sse(failed, FMT, 1)]
    assert b"boom" in chunks[0]
    assert chunks[-1] == DONE
