"""An App version's configuration, validated, and rendered into a Responses request.

    {"model": "smollm2-135m-instruct",
     "instructions": "You answer questions about {{product}}. Cite your sources.",
     "variables": {"product": "the handbook"},          defaults; each {{name}} needs a value
     "vector_store_ids": ["vs_..."], "max_num_results": 5, "search": "auto" | "always",
     "functions": [{"name": ..., "description": ..., "parameters": {...}}],
     "mcp": [{"server_label": "wiki", "allowed_tools": [...], "require_approval": "never"}],
     "temperature": 0.2, "top_p": 1.0, "max_output_tokens": 400,
     "guardrails": {"max_output_tokens": 400, "blocked_topics": ["medical advice"]},
     "steps": {"rewrite_model": "gemma-3-270m"}}       a model that rewrites the search query

A version is immutable once saved; ``render`` turns it and a call's variables into the fields
of a ``POST /v1/responses`` body (checked again there, as any request is).
"""

from __future__ import annotations

import re
from typing import Any

from tokenmill.errors import InvalidRequest
from tokenmill.protocol.requests import refuse_unknown
from tokenmill.responses.mcp import SECRET_FIELDS
from tokenmill.responses.request import parse_response_request

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
VARIABLE = re.compile(r"\{\{\s*(" + NAME.pattern + r")\s*\}\}")
WORD = re.compile(r"[^\W_]+")  # letters and digits of any script
FIELDS = frozenset(
    {
        "model",
        "instructions",
        "variables",
        "vector_store_ids",
        "max_num_results",
        "search",
        "functions",
        "mcp",
        "temperature",
        "top_p",
        "max_output_tokens",
        "guardrails",
        "steps",
    }
)
MAX_INSTRUCTIONS = 32_000
MAX_TOPICS = 100
MAX_VARIABLE_CHARS = 10_000


def parse_config(raw: Any) -> dict[str, Any]:
    """The configuration as stored; raises ``InvalidRequest`` naming ``config.<field>``."""
    if not isinstance(raw, dict):
        raise InvalidRequest("'config' must be an object.", param="config")
    refuse_unknown(raw, FIELDS, "config")
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'config.model' is required.", param="config.model")
    instructions = _or(raw.get("instructions"), "")
    if not isinstance(instructions, str) or len(instructions) > MAX_INSTRUCTIONS:
        raise InvalidRequest(
            f"'config.instructions' must be a string of at most {MAX_INSTRUCTIONS} characters.",
            param="config.instructions",
        )
    config: dict[str, Any] = {"model": model, "instructions": instructions}
    variables = _or(raw.get("variables"), {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and NAME.fullmatch(k) and isinstance(v, str)
        for k, v in variables.items()
    ):
        raise InvalidRequest(
            "'config.variables' maps variable names to their default text.",
            param="config.variables",
        )
    config["variables"] = dict(variables)
    servers = raw.get("mcp")
    for server in servers if isinstance(servers, list) else ():
        secrets = sorted(set(server) & SECRET_FIELDS) if isinstance(server, dict) else []
        if secrets:  # an App's configuration is shown to its builders and diffed: no secrets
            raise InvalidRequest(
                f"'config.mcp' may not hold '{secrets[0]}': register the server (its headers "
                "are kept sealed) and name it by server_label.",
                param="config.mcp",
            )
    for key in ("vector_store_ids", "functions", "mcp"):
        value = _or(raw.get(key), [])
        if not isinstance(value, list) or (
            key != "vector_store_ids" and not all(isinstance(t, dict) for t in value)
        ):
            raise InvalidRequest(f"'config.{key}' must be a list.", param=f"config.{key}")
        config[key] = list(value)
    search = raw.get("search", "auto")
    if search not in ("auto", "always"):
        raise InvalidRequest("'config.search' is 'auto' or 'always'.", param="config.search")
    config["search"] = search
    for key in ("max_num_results", "temperature", "top_p", "max_output_tokens"):
        if raw.get(key) is not None:
            config[key] = raw[key]
    for key in ("max_num_results", "max_output_tokens"):  # render takes min() of the latter
        value = config.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidRequest(
                f"'config.{key}' must be a positive integer.", param=f"config.{key}"
            )
    config["guardrails"] = _guardrails(raw.get("guardrails"))
    config["steps"] = _steps(raw.get("steps"))
    render(config, {}, check_only=True)  # every tool and field as a request would take it
    return config


def _or(value: Any, default: Any) -> Any:
    """``null`` is the default; any other value is checked as given (``0`` is not ``""``)."""
    return default if value is None else value


def _guardrails(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {"max_output_tokens": None, "blocked_topics": []}
    if not isinstance(raw, dict) or set(raw) - {"max_output_tokens", "blocked_topics"}:
        raise InvalidRequest(
            "'config.guardrails' takes max_output_tokens and blocked_topics.",
            param="config.guardrails",
        )
    limit = raw.get("max_output_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidRequest(
            "'config.guardrails.max_output_tokens' must be a positive integer.",
            param="config.guardrails.max_output_tokens",
        )
    topics = _or(raw.get("blocked_topics"), [])
    if (
        not isinstance(topics, list)
        or len(topics) > MAX_TOPICS
        or not all(isinstance(t, str) and t.strip() for t in topics)
    ):
        raise InvalidRequest(
            f"'config.guardrails.blocked_topics' is a list of at most {MAX_TOPICS} phrases.",
            param="config.guardrails.blocked_topics",
        )
    return {"max_output_tokens": limit, "blocked_topics": [t.strip() for t in topics]}


def _steps(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {"rewrite_model": None}
    model = raw.get("rewrite_model") if isinstance(raw, dict) else None
    if (
        not isinstance(raw, dict)
        or set(raw) - {"rewrite_model"}
        or (model is not None and (not isinstance(model, str) or not model))
    ):
        raise InvalidRequest(
            "'config.steps' takes rewrite_model (a chat model's name).", param="config.steps"
        )
    return {"rewrite_model": model}


def variables_of(config: dict[str, Any]) -> list[str]:
    """The variables the instructions use, in order of first use."""
    return list(dict.fromkeys(VARIABLE.findall(config["instructions"])))


def render(config: dict[str, Any], given: Any, *, check_only: bool = False) -> dict[str, Any]:
    """The Responses request fields of this version with ``given`` variables (each
    ``{{name}}`` needs a value, given or a default; a name it does not use is a 400)."""
    if not isinstance(given, dict) or not all(
        isinstance(v, str) and len(v) <= MAX_VARIABLE_CHARS for v in given.values()
    ):
        raise InvalidRequest(
            "'prompt.variables' maps variable names to text.", param="prompt.variables"
        )
    used = variables_of(config)
    unknown = sorted(set(given) - set(used))
    if unknown:
        raise InvalidRequest(
            f"The App's instructions have no variable '{unknown[0]}'.",
            param=f"prompt.variables.{unknown[0]}",
        )
    values = {**config["variables"], **given}
    missing = [name for name in used if name not in values]
    if missing and not check_only:
        raise InvalidRequest(
            f"The App needs a value for the variable '{missing[0]}'.",
            param=f"prompt.variables.{missing[0]}",
        )
    instructions = VARIABLE.sub(
        lambda m: values.get(m.group(1), m.group(0)), config["instructions"]
    )
    tools: list[dict[str, Any]] = [{"type": "function", **f} for f in config["functions"]]
    if config["vector_store_ids"]:
        search: dict[str, Any] = {
            "type": "file_search",
            "vector_store_ids": config["vector_store_ids"],
        }
        if config.get("max_num_results") is not None:
            search["max_num_results"] = config["max_num_results"]
        tools.append(search)
    tools += [{"type": "mcp", **server} for server in config["mcp"]]
    body: dict[str, Any] = {"model": config["model"], "tools": tools}
    if instructions:
        body["instructions"] = instructions
    if config["vector_store_ids"] and config["search"] == "always":
        body["tool_choice"] = {"type": "file_search"}
    for key in ("temperature", "top_p"):
        if config.get(key) is not None:
            body[key] = config[key]
    limits = [config.get("max_output_tokens"), config["guardrails"]["max_output_tokens"]]
    if any(limit is not None for limit in limits):
        body["max_output_tokens"] = min(limit for limit in limits if limit is not None)
    if check_only:
        try:
            parse_response_request({**body, "input": "check"})
        except InvalidRequest as error:
            raise InvalidRequest(
                f"The App's configuration does not make a valid request: {error.message}",
                param=f"config ({error.param})" if error.param else "config",
            ) from None
    return body


def blocked_topic(config: dict[str, Any], text: str) -> str | None:
    """The first blocked topic ``text`` mentions (whole words, any case), if any."""
    lowered = f" {' '.join(WORD.findall(text.casefold()))} "
    for topic in config["guardrails"]["blocked_topics"]:
        words = " ".join(WORD.findall(topic.casefold()))
        if words and f" {words} " in lowered:
            return str(topic)
    return None
