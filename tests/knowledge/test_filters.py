"""Attribute filters: parsing, the reference semantics, and SQL that agrees with them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenmill.errors import InvalidRequest
from tokenmill.knowledge.filters import (
    COMPARISONS,
    Comparison,
    Compound,
    Filter,
    evaluate,
    parse_attributes,
    parse_filters,
    to_postgres,
    to_sqlite,
)


def eq(key: str, value: Any) -> dict[str, Any]:
    return {"type": "eq", "key": key, "value": value}


# ---- parsing ----------------------------------------------------------------------------------


def test_parses_a_compound_tree() -> None:
    tree = parse_filters(
        {"type": "and", "filters": [eq("a", 1), {"type": "in", "key": "b", "value": ["x", 2]}]}
    )
    assert tree == Compound("and", (Comparison("eq", "a", 1), Comparison("in", "b", ("x", 2))))


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ("nope", "filters"),
        ({"type": "xor", "filters": []}, "filters"),
        ({"type": "and", "filters": []}, "filters.filters"),
        (
            {"type": "or", "filters": [eq("a", 1), {"type": "eq", "key": "b"}]},
            "filters.filters[1].value",
        ),
        ({"type": "in", "key": "a", "value": "x"}, "filters.value"),
        ({"type": "nin", "key": "a", "value": []}, "filters.value"),
        ({"type": "in", "key": "a", "value": [None]}, "filters.value[0]"),
        ({"type": "eq", "key": "a", "value": [1]}, "filters.value"),
        ({"type": "eq", "key": "a", "value": None}, "filters.value"),
        ({"type": "eq", "key": "a", "value": {"x": 1}}, "filters.value"),
        ({"type": "gt", "key": "a", "value": True}, "filters.value"),
        ({"type": "eq", "key": "", "value": 1}, "filters.key"),
        ({"type": "eq", "key": "k" * 65, "value": 1}, "filters.key"),
        ({"type": "eq", "key": 'a"b', "value": 1}, "filters.key"),
        ({"type": "eq", "key": "a", "value": "x" * 513}, "filters.value"),
        ({"type": "eq", "key": "a", "value": float("nan")}, "filters.value"),
        ({"type": "eq", "key": "a", "value": 2**60}, "filters.value"),
        ({"type": "eq", "key": "a", "value": 1, "extra": 2}, "filters"),
    ],
)
def test_bad_filters_name_the_param(raw: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_filters(raw)
    assert caught.value.param == param
    assert caught.value.status == 400


def test_depth_and_size_are_limited() -> None:
    deep: dict[str, Any] = eq("a", 1)
    for _ in range(9):
        deep = {"type": "and", "filters": [deep]}
    with pytest.raises(InvalidRequest, match="nest"):
        parse_filters(deep)
    wide = {"type": "or", "filters": [eq("a", i) for i in range(65)]}
    with pytest.raises(InvalidRequest, match="at most 64"):
        parse_filters(wide)


def test_attributes_are_validated() -> None:
    assert parse_attributes({"a": "x", "n": 1.5, "b": False}) == {"a": "x", "n": 1.5, "b": False}
    assert parse_attributes(None) == {}
    with pytest.raises(InvalidRequest) as caught:
        parse_attributes({f"k{i}": i for i in range(17)})
    assert caught.value.param == "attributes"
    with pytest.raises(InvalidRequest) as caught:
        parse_attributes({"a": [1]})
    assert caught.value.param == "attributes.a"


# ---- reference semantics ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "attributes", "expected"),
    [
        (eq("a", 1), {"a": 1.0}, True),
        (eq("a", 1), {"a": "1"}, False),
        (eq("a", 1), {"a": True}, False),
        (eq("a", True), {"a": 1}, False),
        (eq("a", True), {"a": True}, True),
        (eq("a", "x"), {}, False),
        ({"type": "ne", "key": "a", "value": "x"}, {}, True),
        ({"type": "ne", "key": "a", "value": "x"}, {"a": 3}, True),
        ({"type": "ne", "key": "a", "value": "x"}, {"a": "x"}, False),
        ({"type": "gt", "key": "a", "value": 2}, {"a": 10}, True),
        ({"type": "gt", "key": "a", "value": "2"}, {"a": "10"}, False),  # strings as strings
        ({"type": "gt", "key": "a", "value": 2}, {"a": "10"}, False),  # mixed never matches
        ({"type": "lte", "key": "a", "value": 2}, {}, False),
        ({"type": "in", "key": "a", "value": ["x", 2]}, {"a": 2.0}, True),
        ({"type": "nin", "key": "a", "value": ["x", 2]}, {}, True),
        ({"type": "nin", "key": "a", "value": ["x", 2]}, {"a": "x"}, False),
        ({"type": "or", "filters": [eq("a", 1), eq("b", 2)]}, {"b": 2}, True),
        ({"type": "and", "filters": [eq("a", 1), eq("b", 2)]}, {"b": 2}, False),
    ],
)
def test_evaluate(raw: object, attributes: dict[str, Any], expected: bool) -> None:
    assert evaluate(parse_filters(raw), attributes) is expected


def test_sql_binds_every_value() -> None:
    fragment = to_sqlite(parse_filters(eq("a'; DROP TABLE t; --", "x' OR 1=1")))
    assert "DROP" not in fragment.sql and "OR 1=1" not in fragment.sql
    fragment = to_postgres(parse_filters(eq("a'; DROP TABLE t; --", "x' OR 1=1")))
    assert "DROP" not in fragment.sql and "OR 1=1" not in fragment.sql
    with pytest.raises(ValueError):
        to_sqlite(parse_filters(eq("a", 1)), column="attributes; --")


# ---- property: SQL agrees with evaluate -------------------------------------------------------

KEYS = ["a", "b", "c.d", "e f"]
scalars = st.one_of(
    st.sampled_from(["", "a", "b", "B", "ab", "é", "10", "2"]),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([-1.5, 0.0, 0.5, 2.0, 1e20]),
    st.booleans(),
)
# Stored rows may also hold a JSON null (from before validation, or written by hand): it matches
# no comparison but ne / nin, everywhere.
stored_values = st.one_of(scalars, st.none())
attribute_rows = st.lists(
    st.dictionaries(st.sampled_from(KEYS), stored_values, max_size=4), max_size=12
)


def comparison() -> st.SearchStrategy[dict[str, Any]]:
    single = st.builds(
        lambda kind, key, value: {"type": kind, "key": key, "value": value},
        st.sampled_from([c for c in COMPARISONS if c not in ("in", "nin")]),
        st.sampled_from(KEYS),
        scalars,
    ).filter(lambda f: f["type"] in ("eq", "ne") or not isinstance(f["value"], bool))
    listed = st.builds(
        lambda kind, key, value: {"type": kind, "key": key, "value": value},
        st.sampled_from(["in", "nin"]),
        st.sampled_from(KEYS),
        st.lists(scalars, min_size=1, max_size=3),
    )
    return st.one_of(single, listed)


filter_trees = st.recursive(
    comparison(),
    lambda children: st.builds(
        lambda kind, items: {"type": kind, "filters": items},
        st.sampled_from(["and", "or"]),
        st.lists(children, min_size=1, max_size=3),
    ),
    max_leaves=8,
)


def sqlite_matches(rows: list[dict[str, Any]], tree: Filter) -> list[int]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, attributes TEXT NOT NULL)")
    db.executemany(
        "INSERT INTO files (id, attributes) VALUES (?, ?)",
        [(i, json.dumps(row)) for i, row in enumerate(rows)],
    )
    fragment = to_sqlite(tree)
    found = db.execute(f"SELECT id FROM files WHERE {fragment.sql} ORDER BY id", fragment.params)
    return [row[0] for row in found]


@settings(max_examples=300, deadline=None)
@given(rows=attribute_rows, raw=filter_trees)
def test_sqlite_agrees_with_evaluate(rows: list[dict[str, Any]], raw: dict[str, Any]) -> None:
    tree = parse_filters(raw)
    expected = [i for i, row in enumerate(rows) if evaluate(tree, row)]
    assert sqlite_matches(rows, tree) == expected


@pytest.fixture(scope="module")
def pg(postgres_server: str) -> Iterator[psycopg.Connection[Any]]:
    from tests.conftest import _libpq_url

    with psycopg.connect(_libpq_url(postgres_server), autocommit=True) as connection:
        connection.execute("CREATE TEMP TABLE files (id int PRIMARY KEY, attributes jsonb)")
        yield connection


@pytest.mark.postgres
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=attribute_rows, raw=filter_trees)
def test_postgres_agrees_with_evaluate(
    pg: psycopg.Connection[Any], rows: list[dict[str, Any]], raw: dict[str, Any]
) -> None:
    tree = parse_filters(raw)
    expected = [i for i, row in enumerate(rows) if evaluate(tree, row)]
    with pg.transaction(force_rollback=True):
        with pg.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO files (id, attributes) VALUES (%s, %s::jsonb)",
                [(i, json.dumps(row)) for i, row in enumerate(rows)],
            )
        fragment = to_postgres(tree)
        found = pg.execute(
            f"SELECT id FROM files WHERE {fragment.sql} ORDER BY id", fragment.params
        )
        assert [row[0] for row in found] == expected
