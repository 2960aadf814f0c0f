"""The inference bodies' JSON Schemas against their parsers: every body a schema accepts, the
parser accepts (the schemas may be stricter, never looser)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tokenmill.protocol.embeddings import parse_embeddings
from tokenmill.protocol.requests import parse_chat, parse_completion
from tokenmill.protocol.schemas import CHAT_COMPLETION, COMPLETION, EMBEDDINGS
from tokenmill.protocol.tiers import parse_service_tier

EXAMPLES = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Bodies valid under ``schema``, drawn by schemathesis's generator (the fuzz's own)."""
    document = {
        "openapi": "3.1.0",
        "info": {"title": "bodies", "version": "1"},
        "paths": {
            "/body": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": schema}},
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    operation = schemathesis.openapi.from_dict(document)["/body"]["POST"]
    return operation.as_strategy().map(lambda case: case.body)


def _tools_consistent(body: dict[str, Any]) -> bool:
    """The two rules JSON Schema cannot say (in the schema's description)."""
    names = [tool["function"]["name"] for tool in body.get("tools") or ()]
    choice = body.get("tool_choice")
    if len(names) != len(set(names)):
        return False
    if choice == "required":
        return bool(names)
    if isinstance(choice, dict):
        return choice["function"]["name"] in names
    return True


@EXAMPLES
@given(from_schema(CHAT_COMPLETION))
def test_every_schema_valid_chat_body_parses(body: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(CHAT_COMPLETION).validate(body)
    assume(_tools_consistent(body))
    parse_chat(body)
    parse_service_tier(body)


@EXAMPLES
@given(from_schema(COMPLETION))
def test_every_schema_valid_completion_body_parses(body: dict[str, Any]) -> None:
    parse_completion(body)
    parse_service_tier(body)


@EXAMPLES
@given(from_schema(EMBEDDINGS))
def test_every_schema_valid_embeddings_body_parses(body: dict[str, Any]) -> None:
    parse_embeddings(body)


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        (CHAT_COMPLETION, {"model": "m", "messages": []}),
        (CHAT_COMPLETION, {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 0}),
        (
            CHAT_COMPLETION,
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2},
        ),
        (
            CHAT_COMPLETION,
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "stream_options": {"include_usage": True},
            },
        ),
        (COMPLETION, {"model": "m", "prompt": ["a", "b"]}),
        (EMBEDDINGS, {"model": "m", "input": ""}),
    ],
)
def test_bodies_the_parsers_refuse_the_schemas_refuse_too(
    schema: dict[str, Any], body: dict[str, Any]
) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(body)
