"""The same store on SQLite and on PostgreSQL answers every query with the same page: the same
chunks, in the same order, with the same scores to the last bit, in every mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import postgres_schema
from tests.knowledge.conftest import (
    Doc,
    MiniLM,
    build_store,
    hashed_embed,
    upload_into,
)
from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.files.objects import new_file_id
from tokenmill.files.storage import LocalFileStorage
from tokenmill.knowledge.retrieval import MODES, Retriever
from tokenmill.knowledge.search import parse_search
from tokenmill.store.db import Database

pytestmark = pytest.mark.postgres

TOPICS = {
    "tea": "Green tea is brewed at 80 degrees; black tea takes boiling water and 4 minutes.",
    "coffee": "Espresso forces hot water through finely ground coffee at 9 bar of pressure.",
    "garden": "Tomatoes want full sun, deep watering at dawn and a stake against the wind.",
    "battery": "Lithium-ion batteries age fastest when stored full and hot; keep them at 50%.",
    "kettle": "Descale the kettle monthly with citric acid if the water is hard.",
    "parts": "Spare part ZQ-4471 fits heaters made before 2019; ZQ-4417 fits later ones.",
    "bike": "Lubricate the bicycle chain every 300 km, more often after riding in rain.",
    "bread": "Sourdough needs a lively starter, a long cold proof and a very hot oven.",
}
QUERIES: list[dict[str, Any]] = [
    {"query": "how hot should the water be for tea"},
    {"query": "ZQ-4471"},
    {"query": ["keeping batteries healthy", "chain maintenance"], "max_num_results": 5},
    {"query": "water", "filters": {"type": "eq", "key": "kind", "value": "drink"}},
    {"query": "water", "filters": {"type": "nin", "key": "kind", "value": ["drink", "care"]}},
    {"query": "oven bread starter", "ranking_options": {"score_threshold": 0.3}},
    {"query": "morning watering of plants", "ranking_options": {"ranker": "none"}},
    {"query": "the a of"},
]


def docs() -> list[Doc]:
    kinds = {"tea": "drink", "coffee": "drink", "kettle": "care", "battery": "care"}
    return [
        Doc(
            f"{name}.txt",
            f"{text}\n\n{text.upper()} {text}",
            {"kind": kinds.get(name, "other"), "n": i},
            file_id=new_file_id(),
        )
        for i, (name, text) in enumerate(sorted(TOPICS.items()))
    ]


@pytest.fixture
def both(tmp_path: Path, postgres_server: str) -> Iterator[list[Database]]:
    with postgres_schema(postgres_server) as url:
        made = [Database(f"sqlite:///{tmp_path / 'conformance.db'}"), Database(url)]
        for db in made:
            db.migrate()
        try:
            yield made
        finally:
            for db in made:
                db.dispose()


def build(db: Database, root: Path, shared: list[Doc], embed: Any, minilm: MiniLM | None) -> str:
    clock = ManualClock()
    tenant = TenantRepository(db, clock).create("alpha").id
    storage = LocalFileStorage(root)
    store, _ = build_store(
        db,
        clock,
        upload_into(db, clock, storage),
        tenant,
        shared,
        embed,
        *((minilm.tokenizer, minilm.strategy) if minilm else ()),
    )
    return f"{tenant} {store}"


@pytest.mark.parametrize("embedding", ["hashed", "minilm"])
def test_sqlite_and_postgresql_give_the_same_pages(
    both: list[Database], tmp_path: Path, request: pytest.FixtureRequest, embedding: str
) -> None:
    minilm: MiniLM | None = request.getfixturevalue("minilm") if embedding == "minilm" else None
    embed = minilm.embed if minilm else hashed_embed
    shared = docs()
    places = [
        build(db, tmp_path / f"files{i}", shared, embed, minilm).split()
        for i, db in enumerate(both)
    ]
    pages: list[list[dict[str, Any]]] = []
    for db, (tenant, store) in zip(both, places, strict=True):
        retriever = Retriever(db, embed)
        answers = []
        for body in QUERIES:
            options = parse_search(body)
            for mode in (None, *MODES):
                page = retriever.search(tenant, store, options, mode=mode).as_openai()
                answers.append(page)
        pages.append(answers)
    sqlite, postgres = pages
    assert len(sqlite) == len(QUERIES) * 4
    assert any(page["data"] for page in sqlite)
    for one, other in zip(sqlite, postgres, strict=True):
        assert one == other  # scores compared exactly, not approximately
