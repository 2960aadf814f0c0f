"""A fine-tune made a standalone model of the library: its adapter merged into its base.

A fine-tune (``engine = "adapter"``) is served on its base model's replicas. Merged
(``tuning.merge``), it becomes a model of its own, ``<fine-tune>:merged``: private to the same
tenant, served by the built-in engine from its own F16 GGUF file with no adapter, so it can
have a dedicated deployment with its own engine settings like any model of the library. Its
card says which fine-tune and base it was merged from; it is priced like the fine-tune.

Merging again answers with the model already merged.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import FREE
from tokenmill.catalog.artifacts import digest, inspect
from tokenmill.catalog.card import ADAPTER_ENGINE, ModelCard
from tokenmill.catalog.repository import ModelInfo, ModelRepository
from tokenmill.errors import Conflict, InvalidArtifact, ModelNotFound

MERGED_SUFFIX = ":merged"
MERGED_ENGINE = "tokenmill"  # the built-in engine, over llama.cpp


def merged_name(fine_tune_id: str) -> str:
    return f"{fine_tune_id}{MERGED_SUFFIX}"


def merge_fine_tune(
    models: ModelRepository,
    prices: PriceBookRepository,
    fine_tune_id: str,
    *,
    tenant_id: str | None,
    models_dir: Path,
    now: datetime,
) -> ModelInfo:
    """Adds ``<fine_tune_id>:merged`` to the library, its file under ``models_dir/<tenant>``.

    ``tenant_id``: the caller's tenant, which must own the fine-tune (None: a platform admin,
    who may merge any). Another tenant's fine-tune is answered as if it did not exist."""
    fine_tune = models.get(fine_tune_id)
    if (
        fine_tune is None
        or fine_tune.engine != ADAPTER_ENGINE
        or fine_tune.owner_tenant_id is None
        or tenant_id not in (None, fine_tune.owner_tenant_id)
    ):
        raise ModelNotFound(f"No fine-tuned model named '{fine_tune_id}'.", param="model")
    name = merged_name(fine_tune.id)
    existing = models.get(name)
    if existing is not None:
        if existing.owner_tenant_id != fine_tune.owner_tenant_id:
            raise Conflict(f"The name '{name}' is taken.", param="model")
        return existing
    version = fine_tune.version()
    if version is None:
        raise InvalidArtifact(f"{fine_tune.id} has no version to merge.", param="model")
    base_served = str(version.settings.get("base") or "")
    base_id, _, base_version = base_served.partition("@")
    base = models.get(base_id)
    base_file = base.version(base_version or None) if base is not None else None
    if base_file is None or not Path(base_file.artifact).is_file():
        raise InvalidArtifact(f"The base model {base_served} of {fine_tune.id} has no file here.")
    adapter = Path(version.artifact)
    if not adapter.is_file():
        raise InvalidArtifact(f"The adapter of {fine_tune.id} is not on this server.")
    out = models_dir / fine_tune.owner_tenant_id / f"{adapter.stem}.merged.f16.gguf"
    from tokenmill.tuning.merge import merge_adapter  # gguf and numpy: not on a gateway's start

    merge_adapter(Path(base_file.artifact), adapter, out)
    facts = inspect(out)
    info = models.register(
        name,
        task=fine_tune.task,
        artifact=str(out),
        context_tokens=fine_tune.context_tokens,
        owner_tenant_id=fine_tune.owner_tenant_id,
        engine=MERGED_ENGINE,
        card=_card(fine_tune, name, base_served, version.sha256),
        sha256=digest(out),
        size_bytes=out.stat().st_size,
        facts=facts,
    )
    price = prices.load().price_at(fine_tune.id, now)
    if price != FREE and not prices.list(name):
        with contextlib.suppress(Conflict):  # a merge beside this one priced it first
            prices.add(name, price)
    return info


def _card(fine_tune: ModelInfo, name: str, base: str, adapter_sha256: str | None) -> ModelCard:
    made: dict[str, Any] = dict(fine_tune.card.fine_tuning or {})
    made["merged_from"] = {
        "fine_tune": fine_tune.id,
        "base_model": base,
        "adapter_sha256": adapter_sha256,
        "weights": "F16",
    }
    card = replace(
        fine_tune.card,
        name=name,
        quantization=None,  # the merged file's own facts fill these
        file_size_bytes=None,
        sha256=None,
        parameters=None,
        measured=None,
        prices=None,
        intended_use=(
            f"{fine_tune.id} (a fine-tune of {base}) merged into its base as a standalone "
            f"F16 model, for dedicated deployments of tenant {fine_tune.owner_tenant_id}."
        ),
        fine_tuning=made,
    )
    return ModelCard.from_json(card.as_json())
