"""A model's chat template (Jinja, from its GGUF metadata) rendered in a sandbox.

Templates come with model files, so they are untrusted code: the immutable sandbox keeps them
from reaching Python internals or mutating what they are given.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, NoReturn

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tokenmill.engine.tool_prompt import generic_messages, native_messages, native_tools
from tokenmill.errors import InvalidRequest
from tokenmill.protocol.tools import ToolUse


class ChatTemplate:
    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        # trim_blocks/lstrip_blocks as Hugging Face renders them, which template authors assume.
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"the model's chat template does not parse: {exc}") from exc
        self._bos_token = bos_token
        self._eos_token = eos_token
        # A template that mentions tools renders them itself (Hugging Face's convention);
        # any other gets them in the generic format of tool_prompt.
        self.has_tool_section = "tools" in source

    def render(self, messages: list[dict[str, Any]], tools: ToolUse | None = None) -> str:
        """The prompt text for a conversation, ending where the assistant's reply begins."""
        extra: dict[str, Any] = {}
        if self.has_tool_section:
            plain = native_messages(messages)
            definitions = native_tools(tools)
            if definitions is not None:
                extra["tools"] = definitions
        else:
            plain = generic_messages(messages, tools)
        try:
            return self._template.render(
                messages=plain,
                add_generation_prompt=True,
                bos_token=self._bos_token,
                eos_token=self._eos_token,
                **extra,
            )
        except jinja2.TemplateError as exc:
            raise InvalidRequest(
                f"The model's chat template cannot render these messages: {exc}",
                param="messages",
            ) from None


def _raise_exception(message: str) -> NoReturn:
    raise jinja2.TemplateError(message)


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _strftime_now(fmt: str) -> str:
    return datetime.now(UTC).strftime(fmt)
