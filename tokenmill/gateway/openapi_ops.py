"""What the OpenAPI document says of one operation (``Op``), and the schemas several share.

``openapi_public`` and ``openapi_admin`` hold one ``Op`` per operation; ``openapi`` lays them
out on the paths the route tables serve.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tokenmill.protocol.schemas import Schema, integer, nullable

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
OBJECT: Schema = {"type": "object"}
STRING: Schema = {"type": "string"}
TEXT: Schema = {"type": "string", "minLength": 1}


@dataclass(frozen=True, slots=True)
class Op:
    """One operation: its family (``tag``), what it does, its query parameters, its body
    (a JSON object, or a multipart form with ``form``), and what a success carries."""

    tag: str
    summary: str
    body: Schema | None = None
    query: Mapping[str, Schema] = field(default_factory=dict)
    form: bool = False
    auth: bool = True
    media: tuple[str, ...] = (JSON,)


def closed(fields: Iterable[str], required: Iterable[str] = (), **properties: Schema) -> Schema:
    """An object with exactly ``properties``, which must be the handler's own field set
    ``fields`` (the set it refuses anything outside of): a field added to or dropped from
    the handler and not here fails at import, so the two cannot drift apart."""
    if set(properties) != set(fields):
        raise ValueError(f"schema fields {sorted(properties)} are not {sorted(fields)}")
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def body(required: Iterable[str] = (), **properties: Schema) -> Schema:
    """An object whose ``properties`` the handler reads; others it ignores."""
    return {"type": "object", "properties": properties, "required": list(required)}


PAGE = {
    "limit": integer(1, 100),
    "after": STRING,
}
ORDERED_PAGE = {**PAGE, "order": {"enum": ["asc", "desc"]}, "before": STRING}
METADATA: Schema = nullable(
    {
        "type": "object",
        "maxProperties": 16,
        "propertyNames": {"minLength": 1, "maxLength": 64},
        "additionalProperties": {"type": "string", "maxLength": 512},
    }
)


def query_of(schema: Schema) -> Schema:
    """A query parameter's schema: a query string carries no null."""
    options = schema.get("anyOf")
    if options is not None and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        return rest[0] if len(rest) == 1 else {"anyOf": rest}
    return schema


def as_json(value: Any) -> Any:
    """``value`` with tuples as lists, as a JSON document holds it."""
    if isinstance(value, Mapping):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    return value
