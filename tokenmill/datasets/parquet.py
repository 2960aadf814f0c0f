"""A version's rows as Parquet: one file, one row per example, the splits side by side.

Columns: ``split`` (train or validation), ``index`` (within its split), ``line`` (in the file
it came from), ``tokens`` (counted with the base model's tokenizer) and ``example`` (the
example's canonical JSON: chat and prompt/completion examples keep every field they had,
tools included). Rows are written train first, in row groups small enough to page through.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenmill.datasets.content import Row, Split, canonical

SCHEMA = pa.schema(
    [
        ("split", pa.string()),
        ("index", pa.int32()),
        ("line", pa.int32()),
        ("tokens", pa.int32()),
        ("example", pa.string()),
    ]
)
ROW_GROUP_ROWS = 1024


def encode(rows: tuple[Row, ...]) -> bytes:
    table = pa.Table.from_pydict(
        {
            "split": [r.split for r in rows],
            "index": [r.index for r in rows],
            "line": [r.line for r in rows],
            "tokens": [r.tokens for r in rows],
            "example": [canonical(r.example).decode() for r in rows],
        },
        schema=SCHEMA,
    )
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class Rows:
    """A version's rows, decoded once: ``page`` and ``examples`` read from it."""

    table: pa.Table

    @classmethod
    def decode(cls, data: bytes) -> Rows:
        table = pq.read_table(io.BytesIO(data), schema=SCHEMA)
        return cls(table)

    def _split(self, which: Split) -> pa.Table:
        return self.table.filter(pc.equal(self.table["split"], which))

    def count(self, which: Split) -> int:
        return len(self._split(which))

    def page(self, which: Split, offset: int, limit: int) -> list[dict[str, Any]]:
        """Rows ``offset`` to ``offset + limit`` of a split, each with its line and tokens."""
        part = self._split(which).slice(offset, limit).to_pylist()
        return [
            {
                "index": r["index"],
                "line": r["line"],
                "tokens": r["tokens"],
                "example": orjson.loads(r["example"]),
            }
            for r in part
        ]

    def examples(self, which: Split) -> list[dict[str, Any]]:
        """Every example of a split, in order, as the JSONL lines they came from."""
        column = self._split(which)["example"].to_pylist()
        return [orjson.loads(text) for text in column]
