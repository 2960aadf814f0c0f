"""What changed between two versions of an App: one entry per changed field path."""

from __future__ import annotations

import re
from typing import Any

MISSING: Any = None


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Leaf values by path (``guardrails.blocked_topics[1]``); a list of tools by index."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for index, inner in enumerate(value):
            out.update(flatten(inner, f"{path}[{index}]"))
        return out
    return {path: value}


def _order(path: str) -> str:
    """Paths in reading order: list indices as numbers (``[2]`` before ``[10]``)."""
    return re.sub(r"\[(\d+)\]", lambda m: f"[{int(m.group(1)):06d}]", path)


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{"path", "before", "after"}]`` for every path whose value differs (a path that is
    new or gone has ``None`` on the side it is missing from), in path order."""
    old, new = flatten(before), flatten(after)
    return [
        {"path": path, "before": old.get(path, MISSING), "after": new.get(path, MISSING)}
        for path in sorted(set(old) | set(new), key=_order)
        if old.get(path, MISSING) != new.get(path, MISSING) or (path in old) != (path in new)
    ]
