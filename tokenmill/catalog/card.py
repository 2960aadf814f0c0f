"""Model cards: what a model is, what it may be used for, what it costs, how it performs here.

A card has three sources, merged in this order: the family file shipped in the package
(``families/*.toml``, written by people), the facts read from the artifact (architecture,
parameters, context, quantization, size and hash), and the figures the platform measured on
this host (tokens/s, time to first token). Later sources fill what earlier ones left out;
measured figures are never typed in by hand.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from typing import Any

from tokenmill.errors import InvalidRequest

CAPABILITIES = frozenset({"chat", "completion", "embeddings"})
TASKS = frozenset({"chat", "completion", "embeddings"})
ADAPTER_ENGINE = "adapter"  # a fine-tune: an adapter its base model's replicas apply


@dataclass(frozen=True, slots=True)
class ModelCard:
    name: str
    family: str | None = None
    publisher: str | None = None
    architecture: str | None = None
    parameters: int | None = None
    context_tokens: int | None = None
    quantization: str | None = None
    file_size_bytes: int | None = None
    sha256: str | None = None
    license: str | None = None
    languages: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    dimensions: int | None = None
    intended_use: str | None = None
    limitations: str | None = None
    homepage: str | None = None
    prices: dict[str, int] | None = None
    measured: dict[str, float] | None = None
    fine_tuning: dict[str, Any] | None = None  # a fine-tune's base, data, settings, losses, cost

    def merged(self, facts: dict[str, Any]) -> ModelCard:
        """This card with the empty fields filled from ``facts`` (unknown keys ignored)."""
        known = {f.name for f in fields(self)}
        updates = {
            name: _coerce(name, value)
            for name, value in facts.items()
            if name in known and value is not None and getattr(self, name) in (None, ())
        }
        return replace(self, **updates)

    def with_measured(self, measured: dict[str, float]) -> ModelCard:
        return replace(self, measured={**(self.measured or {}), **measured})

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["languages"] = list(self.languages)
        out["capabilities"] = list(self.capabilities)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        known = {f.name for f in fields(cls)}
        values = {k: _coerce(k, v) for k, v in data.items() if k in known}
        if not isinstance(values.get("name"), str):
            raise InvalidRequest("A model card needs a name.", param="card.name")
        bad = set(values.get("capabilities", ())) - CAPABILITIES
        if bad:
            raise InvalidRequest(
                f"Unknown capabilities {sorted(bad)}; known: {sorted(CAPABILITIES)}.",
                param="card.capabilities",
            )
        return cls(**values)


def _coerce(name: str, value: Any) -> Any:
    if name in ("languages", "capabilities"):
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise InvalidRequest(f"card.{name} is a list of strings.", param=f"card.{name}")
        return tuple(value)
    return value


@dataclass(frozen=True, slots=True)
class FamilyModel:
    """One model as its family file describes it: the card and how to find its files."""

    id: str
    task: str
    engine: str
    card: ModelCard
    source: dict[str, str]
    aliases: tuple[str, ...] = field(default=())


_FAMILY_KEYS = ("family", "publisher", "license", "languages", "homepage")


def parse_family(text: str, origin: str) -> list[FamilyModel]:
    """The models of one family file; family-wide fields apply to each unless it overrides."""
    data = tomllib.loads(text)
    shared = {k: data[k] for k in _FAMILY_KEYS if k in data}
    models = []
    for model_id, spec in data.get("models", {}).items():
        spec = dict(spec)
        task = spec.pop("task", None)
        if task not in TASKS:
            raise ValueError(f"{origin}: model {model_id} has task {task!r}; known: {TASKS}")
        engine = spec.pop("engine", "tokenmill")
        source = spec.pop("source", {})
        aliases = tuple(spec.pop("aliases", ()))
        spec["name"] = spec.pop("display_name", model_id)
        card = ModelCard.from_json({**shared, **spec})
        models.append(FamilyModel(model_id, task, engine, card, source, aliases))
    return models


def family_models() -> dict[str, FamilyModel]:
    """Every model described by the family files shipped in this package."""
    found: dict[str, FamilyModel] = {}
    for entry in sorted(
        resources.files("tokenmill.catalog").joinpath("families").iterdir(), key=str
    ):
        if entry.name.endswith(".toml"):
            for model in parse_family(entry.read_text(encoding="utf-8"), entry.name):
                found[model.id] = model
    return found
