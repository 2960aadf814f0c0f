from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenmill.errors import InvalidRequest
from tokenmill.protocol.requests import (
    message_text,
    parse_chat,
    parse_completion,
    parse_json_body,
)

MESSAGES = [{"role": "user", "content": "hi"}]


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": MESSAGES, **fields}


def refused(body: dict[str, Any], parse=parse_chat) -> InvalidRequest:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRequest) as info:
        parse(body)
    return info.value


@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_bodies_that_are_not_json_objects_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_json_body(raw)
    assert info.value.status == 400


def test_defaults() -> None:
    request = parse_chat(chat())
    assert request.sampling.max_tokens is None
    assert request.sampling.temperature == 1.0
    assert request.sampling.n == 1
    assert not request.stream and not request.include_usage
    assert parse_completion({"model": "m", "prompt": "x"}).sampling.max_tokens == 16


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", -1),
        ("max_tokens", 0),
        ("max_tokens", 1.5),
        ("max_tokens", True),
        ("temperature", 2.01),
        ("temperature", -0.1),
        ("temperature", "hot"),
        ("top_p", 1.5),
        ("n", 0),
        ("n", 1000),
        ("presence_penalty", 3),
        ("frequency_penalty", -3),
        ("min_p", 2),
        ("top_k", -2),
        ("stream", "yes"),
        ("top_logprobs", 21),
    ],
)
def test_out_of_range_values_name_their_param(field: str, value: Any) -> None:
    assert refused(chat(**{field: value})).param == field


def test_max_completion_tokens_is_an_alias() -> None:
    assert parse_chat(chat(max_completion_tokens=5)).sampling.max_tokens == 5
    assert refused(chat(max_completion_tokens=0)).param == "max_completion_tokens"


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (None, "messages"),
        ([], "messages"),
        (["hi"], "messages[0]"),
        ([{"role": "wizard", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 5}], "messages[0].content"),
        ([{"role": "user", "content": [{"type": "image_url"}]}], "messages[0].content"),
    ],
)
def test_bad_messages_are_pointed_at(messages: Any, param: str) -> None:
    assert refused({"model": "m", "messages": messages}).param == param


def test_text_parts_and_assistant_without_content_are_accepted() -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None},
    ]
    request = parse_chat({"model": "m", "messages": messages})
    assert message_text(request.messages[0]["content"]) == "ab"
    assert message_text(None) == ""


def test_model_is_required() -> None:
    assert refused({"messages": MESSAGES}).param == "model"


def test_stop_accepts_a_string_or_up_to_four() -> None:
    assert parse_chat(chat(stop="\n")).sampling.stop == ("\n",)
    assert parse_chat(chat(stop=["a", "b"])).sampling.stop == ("a", "b")
    assert refused(chat(stop=["a"] * 5)).param == "stop"
    assert refused(chat(stop=[""])).param == "stop"


def test_stream_options_need_stream() -> None:
    assert refused(chat(stream_options={"include_usage": True})).param == "stream_options"
    request = parse_chat(chat(stream=True, stream_options={"include_usage": True}))
    assert request.include_usage


def test_logit_bias_keys_are_token_ids() -> None:
    assert parse_chat(chat(logit_bias={"42": -100})).sampling.logit_bias == {42: -100.0}
    assert refused(chat(logit_bias={"x": 1})).param == "logit_bias"
    assert refused(chat(logit_bias={"1": 101})).param == "logit_bias"


def test_logprobs_differ_between_chat_and_completions() -> None:
    assert refused(chat(top_logprobs=2)).param == "top_logprobs"
    sampling = parse_chat(chat(logprobs=True, top_logprobs=2)).sampling
    assert (sampling.logprobs, sampling.top_logprobs) == (True, 2)
    sampling = parse_completion({"model": "m", "prompt": "x", "logprobs": 3}).sampling
    assert (sampling.logprobs, sampling.top_logprobs) == (True, 3)


def test_response_format() -> None:
    assert parse_chat(chat(response_format={"type": "text"})).sampling.response_format is None
    fmt = parse_chat(chat(response_format={"type": "json_object"})).sampling.response_format
    assert fmt == {"type": "json_object"}
    assert refused(chat(response_format={"type": "xml"})).param == "response_format"
    bad_schema = {"type": "json_schema", "json_schema": {"name": "x"}}
    assert refused(chat(response_format=bad_schema)).param == "response_format.json_schema"


@pytest.mark.parametrize("prompt", [None, 5, [], [1, -1], [True], ["a", "b"]])
def test_bad_prompts_are_refused(prompt: Any) -> None:
    assert refused({"model": "m", "prompt": prompt}, parse_completion).param == "prompt"


def test_prompts_may_be_text_or_token_ids() -> None:
    assert parse_completion({"model": "m", "prompt": ["hi"]}).prompt == "hi"
    assert parse_completion({"model": "m", "prompt": [1, 2, 3]}).prompt == [1, 2, 3]


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["max_tokens", "temperature", "top_p", "n", "stop", "seed", "logit_bias", "stream"]
        ),
        st.one_of(
            st.none(),
            st.integers(),
            st.floats(allow_nan=True),
            st.text(),
            st.booleans(),
            st.lists(st.integers()),
        ),
    )
)
def test_any_body_is_either_parsed_or_refused_with_a_param(fields: dict[str, Any]) -> None:
    try:
        request = parse_chat(chat(**fields))
    except InvalidRequest as error:
        assert error.param is not None
        return
    assert request.sampling.n >= 1
    assert request.sampling.max_tokens is None or request.sampling.max_tokens >= 1
    assert 0.0 <= request.sampling.temperature <= 2.0


def test_max_tokens_may_be_zero_only_to_echo_a_completions_prompt() -> None:
    echoed = parse_completion({"model": "m", "prompt": "hi", "echo": True, "max_tokens": 0})
    assert echoed.echo and echoed.sampling.max_tokens == 0
    for body in (
        {"model": "m", "prompt": "hi", "max_tokens": 0},
        {"model": "m", "prompt": "hi", "echo": False, "max_tokens": 0},
    ):
        with pytest.raises(InvalidRequest) as refused:
            parse_completion(body)
        assert refused.value.param == "max_tokens"
    with pytest.raises(InvalidRequest):
        parse_chat({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0})


def test_a_whole_number_written_with_a_fraction_is_an_integer() -> None:
    """JSON Schema counts 2.0 as an integer, so the OpenAPI document does: the parsers take
    it (as an int), and refuse 2.5 and numbers past 64 bits."""
    parsed = parse_chat(chat(n=2.0, max_tokens=5.0, seed=7.0, top_logprobs=3.0, logprobs=True))
    assert (parsed.sampling.n, parsed.sampling.max_tokens, parsed.sampling.seed) == (2, 5, 7)
    assert isinstance(parsed.sampling.n, int) and parsed.sampling.top_logprobs == 3
    completion = parse_completion({"model": "m", "prompt": [1.0, 2], "logprobs": 2.0})
    assert completion.prompt == [1, 2] and all(type(t) is int for t in completion.prompt)
    for bad in (2.5, 1e300, float("inf")):
        with pytest.raises(InvalidRequest) as refused:
            parse_chat(chat(n=bad))
        assert refused.value.param == "n"
    with pytest.raises(InvalidRequest):
        parse_completion({"model": "m", "prompt": [1.5]})
