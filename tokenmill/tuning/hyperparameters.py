"""Fine-tuning hyperparameters: OpenAI's ``"auto"`` values resolved, and what the trainer takes.

Kept apart from the trainer so the job service resolves them without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tokenmill.tuning.validation import auto_epochs

BASE_LEARNING_RATE = 2e-4  # LoRA's usual rate; OpenAI's learning_rate_multiplier scales it
# ``batch_size: auto`` is OpenAI's 0.2% of the examples, capped low for CPUs: 1 to this.
MAX_AUTO_BATCH_SIZE = 8


@dataclass(frozen=True)
class Hyperparameters:
    n_epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    lora_rank: int = 16
    lora_alpha: int = 32

    @classmethod
    def from_resolved(cls, values: Mapping[str, Any]) -> Hyperparameters:
        """From OpenAI's resolved hyperparameters and the job's ``seed``."""
        return cls(
            n_epochs=int(values["n_epochs"]),
            batch_size=int(values["batch_size"]),
            learning_rate=BASE_LEARNING_RATE * float(values["learning_rate_multiplier"]),
            seed=int(values["seed"]),
        )


def resolve_hyperparameters(asked: Mapping[str, Any], n_examples: int) -> dict[str, Any]:
    """OpenAI's ``"auto"`` (or missing) hyperparameters made concrete for a training file:
    epochs as the validator estimates them (``auto_epochs``), batch size 0.2% of the examples
    (1 to ``MAX_AUTO_BATCH_SIZE``), learning rate multiplier 1 (``BASE_LEARNING_RATE``)."""
    auto = {
        "n_epochs": auto_epochs(n_examples),
        "batch_size": min(MAX_AUTO_BATCH_SIZE, max(1, round(0.002 * n_examples))),
        "learning_rate_multiplier": 1.0,
    }
    return {k: v if asked.get(k, "auto") == "auto" else asked[k] for k, v in auto.items()}
