"""Attribute filters of vector store search: parse, evaluate, and translate to SQL.

A request's ``filters`` is parsed once into a small typed tree (``Comparison`` leaves under
``Compound`` nodes). The tree has one reference meaning, ``evaluate``; the SQL translations
for SQLite (JSON1) and PostgreSQL (jsonb) select exactly the rows ``evaluate`` accepts, with
every key and value a bound parameter.

Semantics (decided here, shared by every backend):

- ``eq`` matches when the key is present, the stored value has the filter value's type
  (string, number or boolean) and the two are equal. Numbers compare numerically (``1 == 1.0``);
  a boolean is never a number.
- ``gt``/``gte``/``lt``/``lte`` match when the key is present and both sides are numbers or both
  strings (strings by code point, as SQLite's BINARY and PostgreSQL's "C" collation compare them).
  Ordering a boolean is refused when the filter is parsed.
- ``in`` matches when ``eq`` matches one element of the list.
- ``ne`` and ``nin`` are the negations of ``eq`` and ``in``: a missing key or a value of another
  type *does* match them ("not equal to x" holds of a file without the attribute).
- ``and``/``or`` combine their filters; an empty list is refused.

Attribute keys are 1 to 64 characters without ``"``, ``\\`` or control characters (the SQLite
JSON path quotes the key); values are strings of at most 512 characters, finite numbers (integers
within ±2**53, where every backend compares exactly) or booleans; at most 16 keys per file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tokenmill.errors import InvalidRequest

Scalar = str | int | float | bool
ComparisonType = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
CompoundType = Literal["and", "or"]

COMPARISONS: tuple[ComparisonType, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUNDS: tuple[CompoundType, ...] = ("and", "or")
MAX_DEPTH = 8  # nesting of compound filters
MAX_COMPARISONS = 64  # leaves in one tree
MAX_LIST_VALUES = 100  # elements of an in/nin list
MAX_ATTRIBUTES = 16
MAX_KEY_CHARS = 64
MAX_STRING_CHARS = 512
MAX_EXACT_INT = 2**53

_ORDERING = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass(frozen=True, slots=True)
class Comparison:
    type: ComparisonType
    key: str
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Compound:
    type: CompoundType
    filters: tuple[Filter, ...]


Filter = Comparison | Compound


@dataclass(frozen=True, slots=True)
class SqlFragment:
    """A WHERE-clause condition and its bound parameters, in placeholder order."""

    sql: str
    params: tuple[Any, ...]


# ---- validation -------------------------------------------------------------------------------


def validate_key(key: object, param: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidRequest("An attribute key must be a non-empty string.", param=param)
    if len(key) > MAX_KEY_CHARS:
        raise InvalidRequest(
            f"Attribute key {key[:MAX_KEY_CHARS]!r}... is longer than {MAX_KEY_CHARS} characters.",
            param=param,
        )
    if any(c in '"\\' or ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise InvalidRequest(
            f"Attribute key {key!r} contains a quote, backslash or control character.",
            param=param,
        )
    return key


def validate_value(value: object, param: str) -> Scalar:
    """A string, number or boolean an attribute may hold (and a filter may compare with)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise InvalidRequest(
                f"A string value may have at most {MAX_STRING_CHARS} characters.", param=param
            )
        return value
    if isinstance(value, int):
        if abs(value) > MAX_EXACT_INT:
            raise InvalidRequest(
                f"An integer value must lie within ±2**53 (got {value}).", param=param
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequest("A number value must be finite.", param=param)
        return value
    raise InvalidRequest(
        f"A value must be a string, number or boolean, not {type(value).__name__}.", param=param
    )


def parse_attributes(raw: object, param: str = "attributes") -> dict[str, Scalar]:
    """A file's ``attributes``: at most 16 keys, each value a string, number or boolean."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidRequest("attributes must be an object.", param=param)
    if len(raw) > MAX_ATTRIBUTES:
        raise InvalidRequest(
            f"attributes may have at most {MAX_ATTRIBUTES} keys (got {len(raw)}).", param=param
        )
    return {
        validate_key(key, param): validate_value(value, f"{param}.{key}")
        for key, value in raw.items()
    }


# ---- parsing ----------------------------------------------------------------------------------


def parse_filters(raw: object, param: str = "filters") -> Filter:
    """The typed tree of a request's ``filters``; raises ``InvalidRequest`` naming the param."""
    counter = [0]
    return _parse(raw, param, depth=1, counter=counter)


def _parse(raw: object, param: str, *, depth: int, counter: list[int]) -> Filter:
    if not isinstance(raw, Mapping):
        raise InvalidRequest("A filter must be an object.", param=param)
    kind = raw.get("type")
    if kind in COMPOUNDS:
        if depth > MAX_DEPTH:
            raise InvalidRequest(
                f"Filters may nest at most {MAX_DEPTH} compound filters deep.", param=param
            )
        _only(raw, {"type", "filters"}, param)
        items = raw.get("filters")
        if not isinstance(items, list) or not items:
            raise InvalidRequest(
                f"A {kind!r} filter needs a non-empty list of filters.", param=f"{param}.filters"
            )
        children = tuple(
            _parse(item, f"{param}.filters[{i}]", depth=depth + 1, counter=counter)
            for i, item in enumerate(items)
        )
        return Compound(kind, children)
    if kind in COMPARISONS:
        counter[0] += 1
        if counter[0] > MAX_COMPARISONS:
            raise InvalidRequest(
                f"Filters may hold at most {MAX_COMPARISONS} comparisons.", param=param
            )
        _only(raw, {"type", "key", "value"}, param)
        key = validate_key(raw.get("key"), f"{param}.key")
        if "value" not in raw:
            raise InvalidRequest("A comparison filter needs a value.", param=f"{param}.value")
        return Comparison(kind, key, _comparison_value(kind, raw["value"], f"{param}.value"))
    expected = ", ".join(repr(t) for t in (*COMPARISONS, *COMPOUNDS))
    raise InvalidRequest(f"Unknown filter type {kind!r}; expected one of {expected}.", param=param)


def _only(raw: Mapping[Any, Any], allowed: set[str], param: str) -> None:
    extra = sorted(str(k) for k in raw if k not in allowed)
    if extra:
        raise InvalidRequest(f"Unknown filter field(s): {', '.join(extra)}.", param=param)


def _comparison_value(kind: ComparisonType, raw: object, param: str) -> Scalar | tuple[Scalar, ...]:
    if kind in ("in", "nin"):
        if not isinstance(raw, list) or not raw:
            raise InvalidRequest(f"An {kind!r} filter needs a non-empty list.", param=param)
        if len(raw) > MAX_LIST_VALUES:
            raise InvalidRequest(
                f"An {kind!r} list may have at most {MAX_LIST_VALUES} values.", param=param
            )
        return tuple(validate_value(v, f"{param}[{i}]") for i, v in enumerate(raw))
    if isinstance(raw, list):
        raise InvalidRequest(f"A {kind!r} filter compares with one value, not a list.", param=param)
    value = validate_value(raw, param)
    if kind in _ORDERING and isinstance(value, bool):
        raise InvalidRequest(f"A {kind!r} filter cannot order booleans.", param=param)
    return value


# ---- reference semantics ----------------------------------------------------------------------


def _kind(value: object) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _equal(stored: object, value: Scalar) -> bool:
    return _kind(stored) is not None and _kind(stored) == _kind(value) and stored == value


def evaluate(tree: Filter, attributes: Mapping[str, object]) -> bool:
    """Whether a file with these attributes passes the filter (the meaning SQL must match)."""
    if isinstance(tree, Compound):
        results = (evaluate(child, attributes) for child in tree.filters)
        return all(results) if tree.type == "and" else any(results)
    present = tree.key in attributes
    stored = attributes.get(tree.key)
    value = tree.value
    if isinstance(value, tuple):  # in / nin
        found = present and any(_equal(stored, v) for v in value)
        return found if tree.type == "in" else not found
    if tree.type in ("eq", "ne"):
        same = present and _equal(stored, value)
        return same if tree.type == "eq" else not same
    kind = _kind(value)
    if not present or kind not in ("number", "string") or _kind(stored) != kind:
        return False
    if tree.type == "gt":
        return stored > value  # type: ignore[operator]
    if tree.type == "gte":
        return stored >= value  # type: ignore[operator]
    if tree.type == "lt":
        return stored < value  # type: ignore[operator]
    return stored <= value  # type: ignore[operator]


# ---- SQL translation --------------------------------------------------------------------------


def _check_column(column: str) -> str:
    if not column.replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"{column!r} is not a plain column name")
    return column


def to_sqlite(tree: Filter, column: str = "attributes") -> SqlFragment:
    """A condition on a TEXT column holding the attributes as JSON, for SQLite's JSON1.

    Placeholders are ``?``. Each comparison yields 0 or 1, never NULL, so ``NOT`` is exact.
    """
    return _translate(tree, _SqliteDialect(_check_column(column)))


def to_postgres(tree: Filter, column: str = "attributes") -> SqlFragment:
    """A condition on a jsonb column holding the attributes, for PostgreSQL (psycopg ``%s``)."""
    return _translate(tree, _PostgresDialect(_check_column(column)))


class _SqliteDialect:
    def __init__(self, column: str) -> None:
        self.column = column

    def compare(self, key: str, op: str, value: Scalar) -> SqlFragment:
        path = f'$."{key}"'
        kind = _kind(value)
        typed = f"json_type({self.column}, ?)"
        if kind == "boolean":
            return SqlFragment(f"(COALESCE({typed} = ?, 0))", (path, "true" if value else "false"))
        types = "IN ('integer', 'real')" if kind == "number" else "= 'text'"
        return SqlFragment(
            f"(CASE WHEN {typed} {types} THEN json_extract({self.column}, ?) {op} ? ELSE 0 END)",
            (path, path, value),
        )


class _PostgresDialect:
    def __init__(self, column: str) -> None:
        self.column = column

    def compare(self, key: str, op: str, value: Scalar) -> SqlFragment:
        typed = f"jsonb_typeof({self.column} -> %s::text)"
        text = f"({self.column} ->> %s::text)"
        kind = _kind(value)
        if kind == "boolean":
            return SqlFragment(
                f"(CASE WHEN {typed} = 'boolean' THEN {text}::boolean = %s::boolean "
                "ELSE FALSE END)",
                (key, key, value),
            )
        if kind == "number":
            return SqlFragment(
                f"(CASE WHEN {typed} = 'number' THEN {text}::float8 {op} %s::float8 "
                "ELSE FALSE END)",
                (key, key, float(value)),
            )
        return SqlFragment(
            f"(CASE WHEN {typed} = 'string' THEN {text} COLLATE \"C\" {op} %s::text "
            "ELSE FALSE END)",
            (key, key, value),
        )


_Dialect = _SqliteDialect | _PostgresDialect


def _translate(tree: Filter, dialect: _Dialect) -> SqlFragment:
    if isinstance(tree, Compound):
        parts = [_translate(child, dialect) for child in tree.filters]
        joiner = " AND " if tree.type == "and" else " OR "
        return SqlFragment(
            "(" + joiner.join(p.sql for p in parts) + ")",
            tuple(param for p in parts for param in p.params),
        )
    if tree.type in ("in", "nin", "eq", "ne"):
        values = tree.value if isinstance(tree.value, tuple) else (tree.value,)
        parts = [dialect.compare(tree.key, "=", v) for v in values]
        sql = "(" + " OR ".join(p.sql for p in parts) + ")"
        params = tuple(param for p in parts for param in p.params)
        if tree.type in ("ne", "nin"):
            sql = f"(NOT {sql})"
        return SqlFragment(sql, params)
    if isinstance(tree.value, tuple):
        raise ValueError(f"a {tree.type!r} comparison holds one value")
    return dialect.compare(tree.key, _ORDERING[tree.type], tree.value)
