from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tokenmill.catalog.add import add_model, model_id_for
from tokenmill.catalog.bundled import bundled_model
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.errors import Conflict, InvalidArtifact
from tokenmill.store.db import Database


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    target = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    shutil.copyfile(bundled_model("smollm2-135m-instruct").path(), target)
    return target


def test_a_gguf_file_becomes_a_model_with_a_drafted_card(
    database: Database, clock: ManualClock, gguf: Path
) -> None:
    models = ModelRepository(database, clock)
    info = add_model(models, gguf)
    assert info.id == model_id_for(gguf) == "smollm2-135m-instruct.q4_1"
    assert (info.task, info.engine, info.context_tokens) == ("chat", "tokenmill", 8192)
    card = info.card_of(info.version())
    assert (card.architecture, card.quantization, card.parameters) == ("llama", "Q4_1", 134515008)
    assert card.sha256 is not None and card.file_size_bytes == gguf.stat().st_size
    assert card.intended_use is not None and card.intended_use.startswith("DRAFT")


def test_adding_the_same_name_again_adds_a_version(
    database: Database, clock: ManualClock, gguf: Path
) -> None:
    models = ModelRepository(database, clock)
    add_model(models, gguf, model_id="mine")
    info = add_model(models, gguf, model_id="mine")
    assert [v.version for v in info.versions] == ["1", "2"]


def test_a_tenants_model_is_its_own(database: Database, clock: ManualClock, gguf: Path) -> None:
    acme = TenantRepository(database, clock).create("acme")
    models = ModelRepository(database, clock)
    assert add_model(models, gguf, model_id="m", owner_tenant_id=acme.id).owner_tenant_id == acme.id
    with pytest.raises(Conflict):
        add_model(models, gguf, model_id="m")


def _truncated(source: Path, target: Path, keep_bytes: int) -> Path:
    with source.open("rb") as src, target.open("wb") as out:
        out.write(src.read(keep_bytes))
    return target


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda src, d: _truncated(src, d / "cut.gguf", 50_000_000), "truncated"),
        (lambda src, d: _truncated(src, d / "head.gguf", 1000), "truncated"),
        (lambda src, d: (d / "notes.gguf").write_text("hello") and d / "notes.gguf", "GGUF"),
        (lambda src, d: d / "missing.gguf", "No file"),
    ],
)
def test_a_bad_artifact_is_refused_and_nothing_is_written(
    database: Database, clock: ManualClock, gguf: Path, tmp_path: Path, make: object, message: str
) -> None:
    models = ModelRepository(database, clock)
    bad = make(gguf, tmp_path)  # type: ignore[operator]
    with pytest.raises(InvalidArtifact) as error:
        add_model(models, bad)
    assert message.lower() in error.value.message.lower()
    assert error.value.status == 400
    assert models.list() == []


def test_a_model_directory_is_read_as_embeddings(
    database: Database, clock: ManualClock, tmp_path: Path
) -> None:
    source = bundled_model("all-minilm-l6-v2").path()
    target = tmp_path / "minilm"
    shutil.copytree(source, target)
    info = add_model(ModelRepository(database, clock), target, model_id="my-embed")
    assert (info.task, info.engine, info.context_tokens) == ("embeddings", "tokenmill-embed", 256)
    weights = target / "model.safetensors"
    _truncated(weights, tmp_path / "w", 1_000_000).replace(weights)
    with pytest.raises(InvalidArtifact, match="truncated"):
        add_model(ModelRepository(database, clock), target, model_id="broken")
