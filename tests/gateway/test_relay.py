from __future__ import annotations

import orjson

from tests.gateway.support import ListSink, principal
from tokenmill.clock import ManualClock
from tokenmill.gateway.metering import Meter
from tokenmill.gateway.relay import StreamRelay


def event(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


ROLE = event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
HELLO = event({"choices": [{"index": 0, "delta": {"content": "Hello"}}]})
WORLD = event({"choices": [{"index": 0, "delta": {"content": " world"}}]})
USAGE = event(
    {
        "choices": [],
        "usage": {
            "prompt_tokens": 7,
            "completion_tokens": 2,
            "total_tokens": 9,
            "prompt_tokens_details": {"cached_tokens": 3},
        },
    }
)
DONE = b"data: [DONE]\n\n"
STREAM = ROLE + HELLO + WORLD + USAGE + DONE


def make(include_usage: bool) -> tuple[StreamRelay, Meter, ManualClock]:
    clock = ManualClock()
    meter = Meter(clock, ListSink(), principal(), "req_1", "chat.completions")
    return StreamRelay(meter, include_usage), meter, clock


def test_usage_chunk_is_metered_and_passed_on_when_asked() -> None:
    relay, meter, _ = make(include_usage=True)
    assert relay.feed(STREAM) == STREAM
    assert (meter.tokens.prompt_tokens, meter.tokens.completion_tokens) == (7, 2)
    assert meter.tokens.cached_tokens == 3
    assert relay.done


def test_usage_chunk_is_metered_but_withheld_when_not_asked() -> None:
    relay, meter, _ = make(include_usage=False)
    assert relay.feed(STREAM) == ROLE + HELLO + WORLD + DONE
    assert meter.tokens.completion_tokens == 2


def test_events_split_across_reads_are_reassembled() -> None:
    relay, _, _ = make(include_usage=True)
    out = b"".join(relay.feed(STREAM[i : i + 7]) for i in range(0, len(STREAM), 7))
    assert out == STREAM


def test_first_token_time_is_the_first_event_with_text_not_the_role_chunk() -> None:
    relay, meter, clock = make(include_usage=False)
    relay.feed(ROLE)
    assert meter.first_token_monotonic is None
    clock.advance(0.25)
    relay.feed(HELLO)
    assert meter.first_token_monotonic == 0.25
    clock.advance(1)
    relay.feed(WORLD)
    assert meter.first_token_monotonic == 0.25


def test_a_tool_call_fragment_counts_as_output() -> None:
    relay, meter, _ = make(include_usage=False)
    relay.feed(ROLE)
    call = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}  # fmt: skip
    relay.feed(event({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}))
    assert meter.first_token_monotonic is not None


def test_completion_text_counts_as_output() -> None:
    relay, meter, _ = make(include_usage=False)
    relay.feed(event({"choices": [{"index": 0, "text": "Paris"}]}))
    assert meter.first_token_monotonic is not None


def test_stream_without_done_is_not_done() -> None:
    relay, _, _ = make(include_usage=False)
    relay.feed(ROLE + HELLO)
    assert not relay.done
