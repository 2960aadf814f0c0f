"""Puts the bundled models into the library: cards, versions, default prices and aliases.

Runs at every ``tokenmill serve`` start and is idempotent. Hashing a model's files takes a
moment, so a version keeps its hash until its file's size changes. Prices and aliases are
only created when missing: an operator's changes are never overwritten.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tokenmill.billing.pricebook import PRICE_FIELDS, PriceBookRepository
from tokenmill.billing.pricing import Price
from tokenmill.catalog.artifacts import digest, inspect, size_bytes
from tokenmill.catalog.bundled import BUNDLED, BundledModel
from tokenmill.catalog.repository import ModelInfo, ModelRepository

log = logging.getLogger(__name__)

VERSION = "1"

# One accelerator-hour of each kind (``accelerator:<kind>`` entries of the price book), what the
# cost advisor charges a dedicated fleet on GPUs: round figures near public on-demand cloud
# prices of 2025, a starting point for an operator to replace with their own.
ACCELERATOR_HOUR_MICROS = {
    "H100-80GB": 2_990_000,
    "A100-80GB": 1_790_000,
    "A100-40GB": 1_290_000,
    "L40S": 1_490_000,
    "L4": 800_000,
    "A10G": 1_010_000,
}


def accelerator_price_model(kind: str) -> str:
    return f"accelerator:{kind}"


def install_accelerator_prices(prices: PriceBookRepository) -> None:
    """Sets each known accelerator kind's hourly price unless one is already set."""
    priced = {version.model for version in prices.list()}
    for kind, micros in ACCELERATOR_HOUR_MICROS.items():
        if accelerator_price_model(kind) not in priced:
            prices.add(accelerator_price_model(kind), Price(accelerator_hour_micros=micros))


def install_bundled(
    models: ModelRepository, prices: PriceBookRepository, names: list[str] | None = None
) -> list[ModelInfo]:
    installed = []
    for bundled in BUNDLED.values():
        if names is not None and bundled.id not in names:
            continue
        installed.append(install_one(models, prices, bundled))
    install_accelerator_prices(prices)
    return installed


def install_one(
    models: ModelRepository, prices: PriceBookRepository, bundled: BundledModel
) -> ModelInfo:
    path = bundled.path()
    known = models.get(bundled.id)
    previous = known.version(VERSION) if known else None
    size = size_bytes(path)
    if previous is not None and previous.size_bytes == size and previous.artifact == str(path):
        sha256, facts = previous.sha256, previous.facts
    else:
        log.info("reading %s for the library (%s)", bundled.id, path)
        sha256, facts = digest(Path(path)), inspect(Path(path))
    info = models.register(
        bundled.id,
        task=bundled.task,
        engine=bundled.engine,
        artifact=str(path),
        context_tokens=int(facts.get("context_tokens") or bundled.context_tokens),
        card=bundled.card,
        version=VERSION,
        sha256=sha256,
        size_bytes=size,
        facts=facts,
        settings=previous.settings if previous else {},
    )
    if bundled.card.prices and not prices.list(bundled.id):
        values = {name: int(bundled.card.prices.get(name, 0)) for name in PRICE_FIELDS}
        prices.add(bundled.id, Price(**values))
    taken = {a.name for a in models.aliases()}
    for alias in bundled.aliases:
        if alias not in taken:
            models.set_alias(alias, bundled.id, VERSION)
    return info
