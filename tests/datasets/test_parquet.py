"""A version's rows written as Parquet and read back: pages of a split, and every example."""

from __future__ import annotations

from tests.datasets.conftest import examples, jsonl
from tests.datasets.test_content import length, report
from tokenmill.datasets.content import SplitPlan, build_content
from tokenmill.datasets.parquet import ROW_GROUP_ROWS, Rows, encode


def test_rows_come_back_as_they_went_in_in_pages() -> None:
    many = examples(ROW_GROUP_ROWS + 200)  # more than one row group
    many[5]["tools"] = [{"type": "function", "function": {"name": "add", "parameters": {}}}]
    content = build_content(report(jsonl(many)), None, SplitPlan(0.1, seed=2), length)
    data = encode(content.rows)
    assert data[:4] == b"PAR1"
    rows = Rows.decode(data)
    train = [r.example for r in content.rows if r.split == "train"]
    held = [r.example for r in content.rows if r.split == "validation"]
    assert rows.examples("train") == train and rows.examples("validation") == held
    assert rows.count("train") == len(train) == content.count("train")
    page = rows.page("train", ROW_GROUP_ROWS - 1, 3)  # across two row groups
    assert [p["index"] for p in page] == [ROW_GROUP_ROWS - 1, ROW_GROUP_ROWS, ROW_GROUP_ROWS + 1]
    assert [p["example"] for p in page] == train[ROW_GROUP_ROWS - 1 : ROW_GROUP_ROWS + 2]
    first = next(r for r in content.rows if r.split == "validation")
    assert rows.page("validation", 0, 1) == [
        {"index": 0, "line": first.line, "tokens": first.tokens, "example": first.example}
    ]
    assert rows.page("validation", len(held), 10) == []
    assert many[5] in train + held  # every field kept, tools included


def test_the_same_content_encodes_to_the_same_rows() -> None:
    content = build_content(report(jsonl(examples(12))), None, SplitPlan(0.25), length)
    assert Rows.decode(encode(content.rows)).table.equals(Rows.decode(encode(content.rows)).table)
