"""GBNF for a model's tool-call output: one call, or several, each valid for its function.

The output is the generic format of ``tool_prompt`` (``<tool_call>{"name": ..., "arguments":
{...}}</tool_call>``, calls separated by a newline). The name is one of the allowed functions
and the arguments follow that function's JSON Schema, so a forced call always parses and
validates. Every function's schema becomes rules under its own prefix in one converter, which
shares the JSON primitives between them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from llama_cpp.llama_grammar import SchemaConverter

from tokenmill.protocol.tools import FunctionTool

_Converter: Any = SchemaConverter  # untyped; its rules are named after the prefix it is given

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
# The output opens with a call (leading whitespace allowed): a lazy grammar's trigger, matched
# against the whole output so far by llama.cpp's std::regex. The match must end at the tag, so
# the grammar is fed exactly the tag, which it always accepts.
CALL_TRIGGER = r"\s*(<tool_call>)"


def call_prefix(name: str) -> str:
    """What a call's text is up to its arguments, exactly as the grammar writes it."""
    return CALL_OPEN + '{"name": ' + json.dumps(name) + ', "arguments": '


def tool_call_grammar(tools: Sequence[FunctionTool], *, parallel: bool) -> str:
    """GBNF whose ``root`` is one call (or with ``parallel`` one or more) of ``tools``.

    Raises ValueError for a schema the converter cannot handle.
    """
    if not tools:
        raise ValueError("there are no functions to call")
    converter = _Converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    rules = []
    for i, tool in enumerate(tools):
        try:
            # The converter rewrites references in place: it gets a copy.
            schema = converter.resolve_refs(copy.deepcopy(tool.parameters), f"tool-{i}")
            arguments = converter.visit(schema, f"tool-{i}-arguments")
        except (AssertionError, ValueError, KeyError, TypeError, RecursionError) as error:
            # The converter reports what it cannot handle with asserts and ValueErrors.
            message = str(error) or type(error).__name__
            raise ValueError(f"function {tool.name!r}: {message}") from None
        close = _literal("}" + CALL_CLOSE)
        rules.append(f"tm-call-{i} ::= {_literal(call_prefix(tool.name))} {arguments} {close}")
    calls = " | ".join(f"tm-call-{i}" for i in range(len(tools)))
    rules.append(f"tm-call ::= {calls}")
    rules.append('root ::= tm-call ("\\n" tm-call)*' if parallel else "root ::= tm-call")
    grammar: str = converter.format_grammar()
    return "\n".join([grammar, *rules])


def _literal(text: str) -> str:
    return json.dumps(text)  # JSON's escapes (\" \\ \n) are GBNF's too
