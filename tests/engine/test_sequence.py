from __future__ import annotations

from tokenmill.engine.request import EngineRequest, TextDelta, TokenLogprob, Usage
from tokenmill.engine.sequence import Sequence, SequenceStatus
from tokenmill.protocol.requests import SamplingParams


def sequence(max_tokens: int = 8, stop: tuple[str, ...] = ()) -> Sequence:
    request = EngineRequest("r1", (1, 2, 3), max_tokens, SamplingParams(stop=stop))
    return Sequence(request, arrival_seconds=10.0)


def test_end_of_generation_finishes_with_stop_and_counts_the_token() -> None:
    seq = sequence()
    assert seq.append(9, b"Hi", is_eog=False, now_seconds=11.0) == "Hi"
    assert seq.append(9, b"", is_eog=True, now_seconds=12.0) == ""
    assert seq.finish_reason == "stop"
    assert seq.usage == Usage(prompt_tokens=3, completion_tokens=2)
    assert (seq.first_token_seconds, seq.last_token_seconds) == (11.0, 12.0)


def test_budget_finishes_with_length() -> None:
    seq = sequence(max_tokens=2)
    seq.append(9, b"a", is_eog=False, now_seconds=11.0)
    assert seq.finish_reason is None
    seq.append(9, b"b", is_eog=False, now_seconds=11.1)
    assert seq.finish_reason == "length"


def test_budget_end_releases_held_text() -> None:
    seq = sequence(max_tokens=2, stop=("END",))
    assert seq.append(9, b"a", is_eog=False, now_seconds=11.0) == "a"
    assert seq.append(9, b"EN", is_eog=False, now_seconds=11.1) == "EN"
    assert seq.finish_reason == "length"


def test_stop_string_finishes_with_stop() -> None:
    seq = sequence(stop=("END",))
    assert seq.append(9, b"okEND", is_eog=False, now_seconds=11.0) == "ok"
    assert seq.finish_reason == "stop"


def test_finish_sets_status_and_reason() -> None:
    seq = sequence()
    seq.cached_tokens = 2
    seq.finish("cancelled")
    assert seq.status is SequenceStatus.FINISHED
    assert seq.finish_reason == "cancelled"
    assert seq.usage == Usage(prompt_tokens=3, completion_tokens=0, cached_tokens=2)
    assert seq.usage.total_tokens == 3


def test_tokens_hold_the_prompt_then_the_output_and_what_is_left_to_compute() -> None:
    seq = sequence()
    assert seq.tokens == [1, 2, 3] and seq.to_compute == 3 and seq.in_prefill
    seq.num_computed = 3
    seq.append(42, b"x", is_eog=False, now_seconds=11.0)
    assert seq.tokens == [1, 2, 3, 42]
    assert seq.to_compute == 1 and not seq.in_prefill
    assert seq.completion_tokens == 1


def logprob(piece: bytes) -> TokenLogprob:
    return TokenLogprob(piece, -1.0, ())


def test_logprobs_wait_for_text_then_go_with_it() -> None:
    seq = sequence(stop=("END",))
    text = seq.append(9, b"\xc3", is_eog=False, now_seconds=11.0, logprob=logprob(b"\xc3"))
    assert seq.delta(text) is None
    text = seq.append(9, b"\xa9", is_eog=False, now_seconds=11.1, logprob=logprob(b"\xa9"))
    assert seq.delta(text) == TextDelta("\u00e9", (logprob(b"\xc3"), logprob(b"\xa9")))
    assert seq.delta("") is None


def test_at_the_end_logprobs_go_out_without_text_but_not_for_eog() -> None:
    seq = sequence(max_tokens=2, stop=("END",))
    seq.append(9, b"a", is_eog=False, now_seconds=11.0, logprob=logprob(b"a"))
    assert seq.delta("a") == TextDelta("a", (logprob(b"a"),))
    text = seq.append(0, b"", is_eog=True, now_seconds=11.1, logprob=logprob(b""))
    assert seq.delta(text) is None


def test_logprobs_of_a_stop_string_are_dropped() -> None:
    seq = sequence(stop=("END",))
    text = seq.append(9, b"EN", is_eog=False, now_seconds=11.0, logprob=logprob(b"EN"))
    assert text == "" and seq.delta(text) is None
    text = seq.append(9, b"D", is_eog=False, now_seconds=11.1, logprob=logprob(b"D"))
    assert seq.finish_reason == "stop"
    assert seq.delta(text) is None
    assert seq.pending_logprobs == []
