"""Bring your own model: a GGUF file (or a model directory) into the library.

The file is read and checked before anything is written, so a truncated or corrupt file, a
file of another format, or an architecture llama.cpp does not know is refused here, with a
clear error, instead of crashing a replica later.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tokenmill.catalog.artifacts import digest, inspect, size_bytes
from tokenmill.catalog.card import ModelCard
from tokenmill.catalog.draft import draft_card
from tokenmill.catalog.gguf import read_gguf
from tokenmill.catalog.repository import ModelInfo, ModelRepository, check_name
from tokenmill.errors import Conflict, InvalidArtifact


def model_id_for(path: Path) -> str:
    """A library name from a file name: ``SmolLM2-135M-Instruct.Q4_1.gguf`` → lower, dashed."""
    stem = path.name.removesuffix(".gguf")
    return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")[:100] or "model"


def add_model(
    models: ModelRepository,
    path: Path,
    *,
    model_id: str | None = None,
    version: str | None = None,
    owner_tenant_id: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ModelInfo:
    """Adds a new model, or a new version of a model the same owner already has."""
    path = path.expanduser().resolve()
    if not path.exists():
        raise InvalidArtifact(f"No file at {path}.", param="path")
    facts = inspect(path)
    model_id = check_name(model_id or model_id_for(path), "id")
    if path.is_dir():
        card = ModelCard(name=model_id).merged(facts)
        task = "embeddings"
        engine = "tokenmill-embed"
    else:
        card = ModelCard.from_json(draft_card(read_gguf(path), model_id=model_id))
        task = "chat" if "chat" in card.capabilities else "completion"
        engine = "tokenmill"
    sha256 = digest(path, on_progress)
    existing = models.get(model_id)
    if existing is None:
        return models.register(
            model_id,
            task=task,
            engine=engine,
            artifact=str(path),
            context_tokens=int(facts.get("context_tokens") or 2048),
            owner_tenant_id=owner_tenant_id,
            card=card,
            version=version or "1",
            sha256=sha256,
            size_bytes=size_bytes(path),
            facts=facts,
        )
    if existing.owner_tenant_id != owner_tenant_id:
        raise Conflict(f"The name '{model_id}' is taken.", param="id")
    taken = {v.version for v in existing.versions}
    version = version or str(1 + max((int(v) for v in taken if v.isdigit()), default=0))
    models.add_version(
        model_id,
        version,
        artifact=str(path),
        sha256=sha256,
        size_bytes=size_bytes(path),
        facts=facts,
    )
    return models.require(model_id)
