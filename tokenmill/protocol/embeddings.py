"""Parsing and validation of an OpenAI-compatible ``/v1/embeddings`` body.

Shared by the gateway and the embedding replica, like ``protocol.requests``. An input is
either text or a sequence of token ids; token ids are in the serving model's own vocabulary
(as vLLM takes them), not OpenAI's tiktoken ids. Unknown fields are ignored.

``dimensions`` is checked here only against what this parser knows (``max_dimensions``, when
the caller knows the model's width); whether a model can shorten its embeddings is the
replica's decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from tokenmill.errors import InvalidRequest
from tokenmill.protocol.requests import SamplingParams, token_ids, whole

MAX_INPUTS = 2048
EncodingFormat = Literal["float", "base64"]
ENCODING_FORMATS: tuple[EncodingFormat, ...] = ("float", "base64")

EmbeddingInput = str | tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    model: str
    input: tuple[EmbeddingInput, ...]
    encoding_format: EncodingFormat = "float"
    dimensions: int | None = None
    user: str | None = None

    # What the gateway's inference path reads of every parsed request: embeddings are never
    # streamed and generate nothing, so admission reserves no completion tokens.
    stream: ClassVar[bool] = False
    include_usage: ClassVar[bool] = False
    sampling: ClassVar[SamplingParams] = SamplingParams(max_tokens=0, n=1)


def parse_embeddings(
    body: dict[str, Any], *, max_dimensions: int | None = None
) -> EmbeddingsRequest:
    return EmbeddingsRequest(
        model=_model(body),
        input=_inputs(body.get("input")),
        encoding_format=_encoding_format(body.get("encoding_format")),
        dimensions=_dimensions(body.get("dimensions"), max_dimensions),
        user=_user(body.get("user")),
    )


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string.", param="model")
    return model


_INPUT_SHAPE = (
    "'input' must be a non-empty string, an array of non-empty strings, an array of token ids, "
    "or an array of non-empty arrays of token ids."
)


def _inputs(value: Any) -> tuple[EmbeddingInput, ...]:
    if isinstance(value, str):
        if not value:
            raise InvalidRequest("'input' must not be an empty string.", param="input")
        return (value,)
    if not isinstance(value, list) or not value:
        raise InvalidRequest(_INPUT_SHAPE, param="input")
    tokens = token_ids(value)
    if tokens is not None:
        return (tuple(tokens),)
    if len(value) > MAX_INPUTS:
        raise InvalidRequest(
            f"'input' may hold at most {MAX_INPUTS} inputs, got {len(value)}.", param="input"
        )
    if all(isinstance(item, str) for item in value):
        for i, item in enumerate(value):
            if not item:
                raise InvalidRequest(f"'input[{i}]' must not be empty.", param=f"input[{i}]")
        return tuple(value)
    if all(isinstance(item, list) for item in value):
        inputs: list[tuple[int, ...]] = []
        for i, item in enumerate(value):
            tokens = token_ids(item)
            if not tokens:
                raise InvalidRequest(
                    f"'input[{i}]' must be a non-empty array of token ids (integers >= 0).",
                    param=f"input[{i}]",
                )
            inputs.append(tuple(tokens))
        return tuple(inputs)
    raise InvalidRequest(_INPUT_SHAPE, param="input")


def _encoding_format(value: Any) -> EncodingFormat:
    if value is None:
        return "float"
    for known in ENCODING_FORMATS:
        if value == known:
            return known
    raise InvalidRequest(
        f"'encoding_format' must be 'float' or 'base64', got {value!r}.", param="encoding_format"
    )


def _dimensions(value: Any, max_dimensions: int | None) -> int | None:
    if value is None:
        return None
    number = whole(value)
    if number is None or number < 1:
        raise InvalidRequest("'dimensions' must be a positive integer.", param="dimensions")
    if max_dimensions is not None and number > max_dimensions:
        raise InvalidRequest(
            f"'dimensions' must be at most {max_dimensions} for this model, got {number}.",
            param="dimensions",
        )
    return number


def _user(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequest("'user' must be a string.", param="user")
