"""JSON Schemas (2020-12) of the bodies ``protocol.requests`` and ``protocol.embeddings`` parse.

The parsers stay hand-written (their refusals name the exact ``param``, and the engine shares
them); these schemas describe the same bodies for the OpenAPI document, built from the
parsers' own limits (``MAX_N``, ``CHAT_ROLES``, ...). ``tests/protocol/test_schemas.py``
proves the two agree in the direction that matters to a client: every body a schema accepts,
the parser accepts. A schema may be stricter than its parser (it names only the fields the
parser reads, and no others), never looser. Two constraints JSON Schema cannot say are in the
descriptions: function names in ``tools`` are unique, and a named ``tool_choice`` names one
of them (``required`` or named needs at least one tool).
"""

from __future__ import annotations

from typing import Any

from tokenmill.protocol.embeddings import ENCODING_FORMATS, MAX_INPUTS
from tokenmill.protocol.requests import (
    CHAT_ROLES,
    MAX_N,
    MAX_STOP_SEQUENCES,
    MAX_TOP_LOGPROBS,
)
from tokenmill.protocol.tiers import AUTO, TIER_NAMES
from tokenmill.protocol.tools import FUNCTION_NAME

Schema = dict[str, Any]


def nullable(schema: Schema) -> Schema:
    """``schema`` or JSON null (an absent field and a null one mean the same to the parsers)."""
    return {"anyOf": [schema, {"type": "null"}]}


def number(low: float, high: float) -> Schema:
    return nullable({"type": "number", "minimum": low, "maximum": high})


def integer(low: int | None = None, high: int | None = None) -> Schema:
    schema: Schema = {"type": "integer"}
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    return nullable(schema)


MODEL: Schema = {"type": "string", "minLength": 1, "description": "A model or alias name."}
BOOLEAN: Schema = nullable({"type": "boolean"})
TOKEN_IDS: Schema = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}

STOP: Schema = nullable(
    {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {
                "type": "array",
                "maxItems": MAX_STOP_SEQUENCES,
                "items": {"type": "string", "minLength": 1},
            },
        ]
    }
)
LOGIT_BIAS: Schema = nullable(
    {
        "type": "object",
        "propertyNames": {"pattern": "^-?[0-9]{1,9}$"},
        "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100},
    }
)
RESPONSE_FORMAT: Schema = nullable(
    {
        "oneOf": [
            {
                "type": "object",
                "properties": {"type": {"enum": ["text", "json_object"]}},
                "required": ["type"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {
                    "type": {"const": "json_schema"},
                    "json_schema": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "schema": {"type": "object"}},
                        "required": ["schema"],
                    },
                },
                "required": ["type", "json_schema"],
                "additionalProperties": False,
            },
        ]
    }
)
STREAM_OPTIONS: Schema = nullable(
    {
        "type": "object",
        "properties": {"include_usage": {"type": "boolean"}},
        "additionalProperties": False,
    }
)


def _sampling(*, fewest_tokens: int) -> Schema:
    return {
        "max_tokens": integer(fewest_tokens),
        "temperature": number(0, 2),
        "top_p": number(0, 1),
        "top_k": integer(-1),
        "min_p": number(0, 1),
        "seed": integer(-(2**63), 2**64 - 1),
        "stop": STOP,
        "presence_penalty": number(-2, 2),
        "frequency_penalty": number(-2, 2),
        "logit_bias": LOGIT_BIAS,
        "n": integer(1, MAX_N),
        "response_format": RESPONSE_FORMAT,
        "stream": BOOLEAN,
        "stream_options": STREAM_OPTIONS,
        "user": nullable({"type": "string"}),
        "service_tier": nullable({"enum": [AUTO, *TIER_NAMES]}),
    }


# stream_options only with "stream": true (the parser's rule)
_STREAM_RULE: Schema = {
    "stream_options": {"properties": {"stream": {"const": True}}, "required": ["stream"]}
}

TEXT_PART: Schema = {
    "type": "object",
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
    "required": ["type", "text"],
    "additionalProperties": False,
}
CONTENT: Schema = {"anyOf": [{"type": "string"}, {"type": "array", "items": TEXT_PART}]}
TOOL_CALL: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}},
            "required": ["name"],
        },
    },
    "required": ["function"],
}
MESSAGE: Schema = {
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "role": {"enum": sorted(CHAT_ROLES - {"assistant", "tool"})},
                "content": CONTENT,
                "name": {"type": "string"},
            },
            "required": ["role", "content"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "role": {"enum": ["assistant", "tool"]},
                "content": nullable(CONTENT),
                "name": {"type": "string"},
                "tool_call_id": {"type": "string"},
                "tool_calls": {"type": "array", "items": TOOL_CALL},
            },
            "required": ["role"],
            "additionalProperties": False,
        },
    ]
}
FUNCTION_TOOL: Schema = {
    "type": "object",
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "properties": {
                "name": {
                    "type": "string",
                    "pattern": "^" + FUNCTION_NAME.pattern.replace("\\Z", "$"),
                },
                "description": nullable({"type": "string"}),
                "parameters": nullable({"type": "object"}),
                "strict": BOOLEAN,
            },
            "required": ["name"],
            "additionalProperties": False,
        },
    },
    "required": ["type", "function"],
    "additionalProperties": False,
}
TOOL_CHOICE: Schema = nullable(
    {
        "anyOf": [
            {"enum": ["none", "auto", "required"]},
            {
                "type": "object",
                "properties": {
                    "type": {"const": "function"},
                    "function": {
                        "type": "object",
                        "properties": {"name": {"type": "string", "minLength": 1}},
                        "required": ["name"],
                    },
                },
                "required": ["type", "function"],
            },
        ]
    }
)

CHAT_COMPLETION: Schema = {
    "type": "object",
    "description": (
        "A chat completion request (OpenAI's shape). Function names in 'tools' are unique; "
        "a 'tool_choice' of 'required' or naming a function needs 'tools' that hold it."
    ),
    "properties": {
        "model": MODEL,
        "messages": {"type": "array", "minItems": 1, "items": MESSAGE},
        **_sampling(fewest_tokens=1),
        "max_completion_tokens": integer(1),
        "logprobs": BOOLEAN,
        "top_logprobs": integer(0, MAX_TOP_LOGPROBS),
        "tools": nullable({"type": "array", "items": FUNCTION_TOOL}),
        "tool_choice": TOOL_CHOICE,
        "parallel_tool_calls": BOOLEAN,
    },
    "required": ["model", "messages"],
    "additionalProperties": False,
    "dependentSchemas": {
        **_STREAM_RULE,
        # top_logprobs asks for alternatives of the log-probabilities "logprobs" turns on
        "top_logprobs": {"properties": {"logprobs": {"const": True}}, "required": ["logprobs"]},
    },
}

COMPLETION: Schema = {
    "type": "object",
    "description": "A text completion request (OpenAI's legacy shape).",
    "properties": {
        "model": MODEL,
        "prompt": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "minItems": 1, "maxItems": 1, "items": {"type": "string"}},
                TOKEN_IDS,
            ]
        },
        **_sampling(fewest_tokens=1),
        "echo": BOOLEAN,
        "logprobs": integer(0, MAX_TOP_LOGPROBS),
    },
    "required": ["model", "prompt"],
    "additionalProperties": False,
    "dependentSchemas": _STREAM_RULE,
}

EMBEDDINGS: Schema = {
    "type": "object",
    "description": (
        "An embeddings request. Token ids are in the serving model's own vocabulary. "
        "Fields other than these are ignored."
    ),
    "properties": {
        "model": MODEL,
        "input": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_INPUTS,
                    "items": {"type": "string", "minLength": 1},
                },
                TOKEN_IDS,
                {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS, "items": TOKEN_IDS},
            ]
        },
        "encoding_format": nullable({"enum": list(ENCODING_FORMATS)}),
        "dimensions": integer(1),
        "user": nullable({"type": "string"}),
    },
    "required": ["model", "input"],
}
