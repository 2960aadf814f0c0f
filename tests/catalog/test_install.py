from __future__ import annotations

from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import Price
from tokenmill.catalog.install import (
    ACCELERATOR_HOUR_MICROS,
    install_accelerator_prices,
    install_bundled,
)
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import ManualClock
from tokenmill.fleet.inventory import KNOWN_ACCELERATOR_KINDS
from tokenmill.store.db import Database


def test_the_bundled_models_enter_the_library_with_cards_prices_and_aliases(
    database: Database, clock: ManualClock
) -> None:
    models, prices = ModelRepository(database, clock), PriceBookRepository(database, clock)
    installed = install_bundled(models, prices)
    assert {m.id for m in installed} == {
        "smollm2-135m-instruct",
        "gemma-3-270m",
        "all-minilm-l6-v2",
    }
    chat = models.require("smollm2-135m-instruct")
    card = chat.card_of(chat.version())
    assert (card.architecture, card.parameters, card.quantization) == ("llama", 134515008, "Q4_1")
    assert card.sha256 is not None and len(card.sha256) == 64
    assert card.license == "Apache-2.0" and card.context_tokens == 8192
    embed = models.require("all-minilm-l6-v2")
    embed_card = embed.card_of(embed.version())
    assert (embed_card.architecture, embed_card.dimensions) == ("bert", 384)
    assert embed_card.parameters is not None and 20_000_000 < embed_card.parameters < 25_000_000
    gemma = models.require("gemma-3-270m")
    assert gemma.card_of(gemma.version()).quantization == "Q4_K_M"
    assert {a.name: a.model_id for a in models.aliases()} == {
        "chat-small": "smollm2-135m-instruct",
        "complete-small": "gemma-3-270m",
        "embed-small": "all-minilm-l6-v2",
    }
    assert prices.list("smollm2-135m-instruct")[0].price.output_micros_per_mtok == 40000


def test_installing_again_keeps_what_an_operator_changed(
    database: Database, clock: ManualClock
) -> None:
    models, prices = ModelRepository(database, clock), PriceBookRepository(database, clock)
    install_bundled(models, prices, ["smollm2-135m-instruct", "gemma-3-270m"])
    models.set_alias("chat-small", "gemma-3-270m", "1")
    clock.advance(10)
    prices.add("smollm2-135m-instruct", Price(input_micros_per_mtok=1))
    models.record_measured("smollm2-135m-instruct", "1", {"tokens_per_second": 100.0})
    again = install_bundled(models, prices, ["smollm2-135m-instruct"])
    assert [m.id for m in again] == ["smollm2-135m-instruct"]
    assert {a.name: a.model_id for a in models.aliases()}["chat-small"] == "gemma-3-270m"
    assert len(prices.list("smollm2-135m-instruct")) == 2
    version = models.require("smollm2-135m-instruct").version()
    assert version is not None and version.measured == {"tokens_per_second": 100.0}


def test_each_known_accelerator_gets_an_hourly_price_once(
    database: Database, clock: ManualClock
) -> None:
    prices = PriceBookRepository(database, clock)
    install_accelerator_prices(prices)
    h100 = prices.list("accelerator:H100-80GB")
    assert [v.price.accelerator_hour_micros for v in h100] == [ACCELERATOR_HOUR_MICROS["H100-80GB"]]
    assert {v.model for v in prices.list()} == {f"accelerator:{k}" for k in KNOWN_ACCELERATOR_KINDS}
    clock.advance(10)
    prices.add("accelerator:H100-80GB", Price(accelerator_hour_micros=1_500_000))
    install_accelerator_prices(prices)
    book = prices.load()
    assert book.price_at("accelerator:H100-80GB", clock.utcnow()).accelerator_hour_micros == (
        1_500_000
    )
