from __future__ import annotations

from typing import Any

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.protocol.embeddings import MAX_INPUTS, parse_embeddings


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "mini", "input": "hello", **fields}


def refused(payload: dict[str, Any], *, max_dimensions: int | None = None) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse_embeddings(payload, max_dimensions=max_dimensions)
    assert caught.value.status == 400
    return caught.value


def test_defaults_and_every_input_shape() -> None:
    parsed = parse_embeddings(body())
    assert (parsed.model, parsed.input) == ("mini", ("hello",))
    assert (parsed.encoding_format, parsed.dimensions, parsed.user) == ("float", None, None)
    assert parse_embeddings(body(input=["a", "b"])).input == ("a", "b")
    assert parse_embeddings(body(input=[1, 2, 3])).input == ((1, 2, 3),)
    assert parse_embeddings(body(input=[[1], [2, 3]])).input == ((1,), (2, 3))
    assert len(parse_embeddings(body(input=["x"] * MAX_INPUTS)).input) == MAX_INPUTS
    # One input of many token ids is still one input; its length is the replica's to judge.
    assert parse_embeddings(body(input=[7] * (MAX_INPUTS + 1))).input == ((7,) * (MAX_INPUTS + 1),)


def test_options_are_kept_and_unknown_fields_ignored() -> None:
    parsed = parse_embeddings(
        body(encoding_format="base64", dimensions=384, user="u-1", something_new={"x": 1}),
        max_dimensions=384,
    )
    assert (parsed.encoding_format, parsed.dimensions, parsed.user) == ("base64", 384, "u-1")
    assert parse_embeddings(body(encoding_format=None, dimensions=None)).encoding_format == "float"


def test_the_gateway_sees_no_stream_and_reserves_no_completion_tokens() -> None:
    parsed = parse_embeddings(body())
    assert parsed.stream is False and parsed.include_usage is False
    assert (parsed.sampling.max_tokens, parsed.sampling.n) == (0, 1)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"input": "x"}, "model"),
        (body(model=""), "model"),
        (body(model=3), "model"),
        ({"model": "mini"}, "input"),
        (body(input=""), "input"),
        (body(input=[]), "input"),
        (body(input=None), "input"),
        (body(input=7), "input"),
        (body(input=["a", ""]), "input[1]"),
        (body(input=["a", 1]), "input"),
        (body(input=[1, -2]), "input"),
        (body(input=[True, 1]), "input"),
        (body(input=[1.5]), "input"),
        (body(input=[[1], []]), "input[1]"),
        (body(input=[[1], [-1]]), "input[1]"),
        (body(input=[[1], ["a"]]), "input[1]"),
        (body(input=[[1], "a"]), "input"),
        (body(input=["x"] * (MAX_INPUTS + 1)), "input"),
        (body(input=[[1]] * (MAX_INPUTS + 1)), "input"),
        (body(encoding_format="int8"), "encoding_format"),
        (body(encoding_format=1), "encoding_format"),
        (body(dimensions=0), "dimensions"),
        (body(dimensions=-3), "dimensions"),
        (body(dimensions="8"), "dimensions"),
        (body(dimensions=True), "dimensions"),
        (body(dimensions=8.5), "dimensions"),
        (body(user=5), "user"),
    ],
)
def test_refusals_name_the_param(payload: dict[str, Any], param: str) -> None:
    assert refused(payload).param == param


def test_dimensions_above_the_model_width_are_refused() -> None:
    error = refused(body(dimensions=385), max_dimensions=384)
    assert error.param == "dimensions" and "at most 384" in error.message
    assert parse_embeddings(body(dimensions=385)).dimensions == 385  # width unknown: replica checks


def test_too_many_inputs_says_the_limit() -> None:
    assert str(MAX_INPUTS) in refused(body(input=["x"] * (MAX_INPUTS + 1))).message


def test_token_ids_and_dimensions_may_be_written_with_a_zero_fraction() -> None:
    parsed = parse_embeddings(body(input=[[1.0, 2], [3]], dimensions=8.0))
    assert parsed.input == ((1, 2), (3,)) and parsed.dimensions == 8
    assert all(type(t) is int for item in parsed.input for t in item)
    assert parse_embeddings(body(input=[4.0])).input == ((4,),)
