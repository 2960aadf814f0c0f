"""A list route's query parameters as numbers: ``limit`` and a position cursor.

Each is a 400 naming its parameter when it is not a whole number; ranges are the lister's
to check (``knowledge.pages.check_limit``, the files repository).
"""

from __future__ import annotations

from tokenmill.errors import InvalidRequest


def parse_limit(query: dict[str, str], default: int) -> int:
    """``limit`` as an integer, ``default`` when it is absent or blank."""
    try:
        return int(query.get("limit") or default)
    except ValueError:
        raise InvalidRequest(
            f"Invalid 'limit': {query['limit']!r}; expected an integer.", param="limit"
        ) from None


def parse_position(query: dict[str, str], name: str) -> int | None:
    """A cursor that is a position (0, 1, ...), None when it is absent or blank."""
    raw = query.get(name) or None
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit():
        raise InvalidRequest(
            f"Invalid '{name}': {raw!r}; expected a position (0 or more).", param=name
        )
    return int(raw)
