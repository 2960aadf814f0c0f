"""What a tenant may say about an MCP server's tools: which it may use, which wait for
approval, what headers go with each request. Pure: shared by the registry and the requests."""

from __future__ import annotations

import re
from typing import Any

from tokenmill.errors import InvalidRequest

LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")  # a server's label
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}\Z")
HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\U0010ffff]{0,8192}\Z")  # no control characters
MAX_HEADERS = 32


def needs_approval(policy: Any, tool: str) -> bool:
    """Whether a call of ``tool`` waits for the client's approval under ``policy``: a tool
    named under ``never`` does not, one named under ``always`` does, and any other does
    unless the policy only lists tools that always wait."""
    if policy == "never":
        return False
    if isinstance(policy, dict):
        if tool in (policy.get("never") or {}).get("tool_names", ()):
            return False
        if tool in (policy.get("always") or {}).get("tool_names", ()):
            return True
        return "never" in policy
    return True


def parse_approval(raw: Any, param: str) -> Any:
    if raw in ("always", "never"):
        return raw
    if isinstance(raw, dict) and raw and set(raw) <= {"always", "never"}:
        for key, value in raw.items():
            names = value.get("tool_names") if isinstance(value, dict) else None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise InvalidRequest(
                    f"'{param}.{key}' must be {{\"tool_names\": [...]}}.", param=f"{param}.{key}"
                )
        return {key: {"tool_names": list(value["tool_names"])} for key, value in raw.items()}
    raise InvalidRequest(
        f"'{param}' must be 'always', 'never' or {{\"always\": {{\"tool_names\": [...]}}, "
        f'"never": {{"tool_names": [...]}}}}.',
        param=param,
    )


def parse_allowed_tools(raw: Any, param: str) -> tuple[str, ...] | None:
    """A list of names, or OpenAI's ``{"tool_names": [...]}``; None allows every tool."""
    if raw is None:
        return None
    names = raw.get("tool_names") if isinstance(raw, dict) else raw
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise InvalidRequest(
            f"'{param}' must be a list of tool names or {{\"tool_names\": [...]}}.", param=param
        )
    return tuple(names)


def parse_headers(raw: Any, param: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_HEADERS:
        raise InvalidRequest(
            f"'{param}' must be an object of at most {MAX_HEADERS} headers.", param=param
        )
    for name, value in raw.items():
        if (
            not HEADER_NAME.match(name)
            or not isinstance(value, str)
            or not HEADER_VALUE.match(value)
        ):
            raise InvalidRequest(
                f"'{param}.{name}' must be a header name with a string value without control "
                "characters.",
                param=f"{param}.{name}",
            )
    return dict(raw)
