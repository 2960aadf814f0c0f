"""A dataset library bench: tenants alpha and beta, the bundled chat model in the library (its
tokenizer counts), the Files API's storage in a temporary data dir, on the ``database``
fixture (SQLite and PostgreSQL) and a manual clock."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import two_tenants
from tokenmill.catalog.bundled import bundled_model
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import ManualClock
from tokenmill.control.keys import KeyRepository
from tokenmill.datasets.compose import build_datasets
from tokenmill.datasets.service import DatasetService, Provenance
from tokenmill.files.service import FileService
from tokenmill.settings import Settings
from tokenmill.store.db import Database

CHAT = "smollm2-135m-instruct"
MODEL = "smol"  # the bundled chat model, as this bench's library names it


def chat(question: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def examples(n: int, tag: str = "") -> list[dict[str, Any]]:
    return [chat(f"What is {i}{tag} plus one?", f"{i + 1}{tag}") for i in range(n)]


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


@dataclass
class Library:
    service: DatasetService
    files: FileService
    clock: ManualClock
    alpha: str  # tenant ids
    beta: str
    root: Path  # where the Files API's storage keeps bytes

    def upload(self, tenant: str, data: bytes, filename: str = "train.jsonl") -> str:
        return self.files.write(tenant, "key_x", filename, "fine-tune", data).id

    def create(self, tenant: str, data: bytes, **asked: Any) -> Any:
        file_id = self.upload(tenant, data, asked.pop("filename", "train.jsonl"))
        provenance = Provenance("key_x", asked.pop("licence", None), asked.pop("source", None))
        return self.service.create(tenant, provenance, file_id=file_id, model=MODEL, **asked)

    def blobs(self) -> list[str]:
        """The Parquet blobs in storage, by name."""
        return sorted(p.name for p in self.root.rglob("dsv-*"))


@pytest.fixture
def library(database: Database, clock: ManualClock, tmp_path: Path) -> Library:
    two_tenants(database, clock)
    keys = KeyRepository(database, clock).list()
    alpha = next(k.tenant_id for k in keys if k.name == "alpha-app")
    beta = next(k.tenant_id for k in keys if k.name == "beta-app")
    ModelRepository(database, clock).register(
        MODEL, task="chat", artifact=str(bundled_model(CHAT).path()), context_tokens=2048
    )
    files = FileService.build(Settings(data_dir=tmp_path), database, clock)
    service = build_datasets(database, clock, files)
    return Library(service, files, clock, alpha, beta, tmp_path / "files")
