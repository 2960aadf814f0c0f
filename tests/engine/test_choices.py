from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tokenmill.engine.choices import ChoiceGroups, choice_requests, merge
from tokenmill.engine.request import EngineEvent, EngineRequest, Finished, TextDelta, Usage
from tokenmill.protocol.requests import SamplingParams

DONE = Finished("stop", Usage(3, 1))


def request(n: int, seed: int | None) -> EngineRequest:
    return EngineRequest("r", (1, 2), 4, SamplingParams(n=n, seed=seed))


def test_one_choice_is_the_request_itself() -> None:
    only = request(1, 7)
    assert choice_requests(only) == [only]


def test_choices_get_sub_ids_and_consecutive_seeds() -> None:
    choices = choice_requests(request(3, 7))
    assert [c.request_id for c in choices] == ["r/0", "r/1", "r/2"]
    assert [c.sampling.seed for c in choices] == [7, 8, 9]
    assert {c.prompt_tokens for c in choices} == {(1, 2)}
    assert [c.sampling.seed for c in choice_requests(request(2, None))] == [None, None]


def test_groups_name_their_members_and_forget_the_oldest() -> None:
    groups = ChoiceGroups(limit=2)
    assert groups.members("solo") == ("solo",)
    groups.record("a", ["a/0", "a/1"])
    groups.record("b", ["b/0", "b/1"])
    groups.record("c", ["c/0", "c/1"])
    assert groups.members("a") == ("a",)
    assert groups.members("c") == ("c/0", "c/1")
    groups.record("c", ["c"])  # the id reused by a one-choice request
    assert groups.members("c") == ("c",)


async def events(*items: EngineEvent) -> AsyncIterator[EngineEvent]:
    for item in items:
        yield item


async def test_merge_tags_events_with_their_choice_until_all_end() -> None:
    merged = [
        pair async for pair in merge([events(TextDelta("a"), DONE), events(TextDelta("b"), DONE)])
    ]
    assert sorted(merged, key=lambda pair: pair[0]) == [
        (0, TextDelta("a")), (0, DONE), (1, TextDelta("b")), (1, DONE)
    ]  # fmt: skip
    assert [e for i, e in merged if i == 0] == [TextDelta("a"), DONE]


async def test_closing_the_merge_closes_every_choice() -> None:
    closed: list[int] = []

    async def endless(index: int) -> AsyncIterator[EngineEvent]:
        try:
            while True:
                yield TextDelta(str(index))
                await asyncio.sleep(0)
        finally:
            closed.append(index)

    merged = merge([endless(0), endless(1)])
    await anext(merged)
    await merged.aclose()
    await asyncio.sleep(0)
    assert sorted(closed) == [0, 1]


@pytest.mark.parametrize("n", [1, 3])
async def test_merge_of_streams_that_end_without_finished_still_ends(n: int) -> None:
    assert [pair async for pair in merge([events() for _ in range(n)])] == []
