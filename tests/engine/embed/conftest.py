"""The bundled embedding model, loaded once per session, and its own tokenizer as a yardstick."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tokenizers import Tokenizer

from tokenmill.engine.embed.__main__ import bundled_model_path
from tokenmill.engine.embed.model import EmbeddingModel
from tokenmill.engine.embed.server import build_app

SERVED_NAME = "minilm"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return bundled_model_path()


@pytest.fixture(scope="session")
def embedding_model(model_dir: Path) -> EmbeddingModel:
    return EmbeddingModel(model_dir, threads=2)


@pytest.fixture(scope="session")
def tokenizer(model_dir: Path) -> Tokenizer:
    """The model's tokenizer.json read by the ``tokenizers`` library itself, not through us."""
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads and truncates to 128 by default
    tokenizer.no_truncation()
    return tokenizer


@pytest.fixture
def api(embedding_model: EmbeddingModel) -> Iterator[TestClient]:
    with TestClient(build_app(embedding_model, SERVED_NAME)) as client:
        yield client
