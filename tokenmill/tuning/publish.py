"""A succeeded job's adapter as a model of the library: private to its tenant, served by the
base model's replicas (``engine = "adapter"``), priced like its base until an operator says
otherwise, with a card that tells how it was made."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import FREE
from tokenmill.catalog.card import ADAPTER_ENGINE, ModelCard
from tokenmill.catalog.repository import ModelInfo, ModelRepository
from tokenmill.errors import Conflict, InvalidRequest
from tokenmill.tuning.billing import base_model_id
from tokenmill.tuning.objects import FineTuningJobInfo


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish_adapter(
    models: ModelRepository,
    prices: PriceBookRepository,
    job: FineTuningJobInfo,
    name: str,
    adapter: Path,
    metrics: dict[str, Any],
) -> ModelInfo:
    base_id, _, base_version = job.base_served_name.partition("@")
    base = models.require(base_id)
    made_with = {
        "base_model": job.base_served_name,
        "job": job.id,
        "training_file": job.training_file_id,
        "validation_file": job.validation_file_id,
        "datasets": {
            param: report.get("sha256") for param, report in (job.validation or {}).items()
        },
        # the training data's version in the dataset library: id, version, sha256
        "dataset": (job.validation or {}).get("training_file", {}).get("dataset"),
        "hyperparameters": {**(job.resolved or {}), "seed": job.seed},
        "trained_tokens": job.trained_tokens,
        "cost_micros": job.cost_micros,
        "metrics": metrics,
    }
    card = replace(
        base.card_of(base.version(base_version)),
        name=name,
        sha256=None,
        file_size_bytes=None,
        measured=None,
        prices=None,
        intended_use=f"A fine-tune of {job.base_served_name} for tenant {job.tenant_id}.",
        fine_tuning=made_with,
    )
    info = models.register(
        name,
        task=base.task,
        artifact=str(adapter),
        context_tokens=base.context_tokens,
        owner_tenant_id=job.tenant_id,
        engine=ADAPTER_ENGINE,
        card=ModelCard.from_json(card.as_json()),
        sha256=_sha256(adapter),
        size_bytes=adapter.stat().st_size,
        settings={"base": job.base_served_name, "adapter": job.id},
    )
    price = prices.load().price_at(base_model_id(job), job.created_at)
    if price != FREE and not prices.list(name):
        with contextlib.suppress(Conflict):  # another worker priced it first
            prices.add(name, price)
    return info


def withdraw_adapter(models: ModelRepository, model_id: str, adapters_dir: Path) -> None:
    """Removes a fine-tune from the library and its adapter from disk: its requests are
    refused at every gateway within a library reload, and no replica can load it again."""
    model = models.require(model_id)
    if model.engine != ADAPTER_ENGINE:
        raise InvalidRequest(f"{model_id} is not a fine-tune.", param="model")
    models.delete(model_id)
    for version in model.versions:
        adapter = Path(version.artifact)
        if adapter.parent == adapters_dir:
            adapter.unlink(missing_ok=True)
