from __future__ import annotations

from tests.gateway.support import ListSink, principal
from tokenmill.clock import ManualClock
from tokenmill.errors import InvalidRequest
from tokenmill.gateway.metering import Meter, TokenCounts


def test_finish_records_exactly_once_with_durations() -> None:
    clock, sink = ManualClock(), ListSink()
    meter = Meter(clock, sink, principal(), "req_1", "chat.completions", model="m", stream=True)
    clock.advance(0.2)
    meter.first_token()
    clock.advance(0.8)
    meter.tokens = TokenCounts(prompt_tokens=10, completion_tokens=4)
    meter.finish("ok", 200)
    meter.finish("cancelled", 499)
    [event] = sink.events
    assert (event.status, event.http_status, event.stream) == ("ok", 200, True)
    assert event.ttft_seconds == 0.2
    assert event.duration_seconds == 1.0
    assert (event.prompt_tokens, event.completion_tokens) == (10, 4)
    assert (event.tenant_id, event.key_id, event.request_id) == ("ten_a", "key_ten_a", "req_1")


def test_a_refused_request_is_recorded_with_no_tokens() -> None:
    sink = ListSink()
    meter = Meter(ManualClock(), sink, principal(), "req_2", "completions")
    meter.finish_error(InvalidRequest("bad", param="max_tokens"))
    [event] = sink.events
    assert (event.status, event.http_status, event.error_code) == ("error", 400, None)
    assert (event.prompt_tokens, event.completion_tokens, event.ttft_seconds) == (0, 0, None)


def test_token_counts_from_openai_usage() -> None:
    counts = TokenCounts.from_openai(
        {"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}
    )
    assert counts == TokenCounts(5, 2, 4)
    assert TokenCounts.from_openai(None) is None


def test_a_count_that_is_not_one_is_zero() -> None:
    usage = {"prompt_tokens": -50, "completion_tokens": "7", "prompt_tokens_details": [3]}
    assert TokenCounts.from_openai(usage) == TokenCounts(0, 0, 0)
    assert TokenCounts.from_openai({"prompt_tokens": True, "completion_tokens": 2.5}) == (
        TokenCounts(0, 0, 0)
    )


def test_a_meter_bills_no_more_than_the_request_could_use() -> None:
    sink = ListSink()
    meter = Meter(ManualClock(), sink, principal(), "req_3", "chat.completions")
    meter.max_prompt_tokens, meter.max_completion_tokens = 100, 8
    meter.tokens = TokenCounts(5_000, 1_000_000, 4_000)
    meter.finish("ok", 200)
    [event] = sink.events
    assert (event.prompt_tokens, event.completion_tokens, event.cached_tokens) == (100, 8, 100)


def test_a_stream_cut_off_without_the_replica_bills_what_was_seen() -> None:
    meter = Meter(ManualClock(), ListSink(), principal(), "req_4", "chat.completions")
    meter.tokens.prompt_tokens, meter.content_events = 41, 3  # said at the start; seen after
    meter.cut_off(None)
    assert meter.tokens == TokenCounts(41, 3, 0)
    meter.cut_off(TokenCounts(41, 5, 0))  # the replica's own count wins when it has one
    assert meter.tokens == TokenCounts(41, 5, 0)
