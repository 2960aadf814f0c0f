from __future__ import annotations

from typing import Any

import pytest

from tokenmill.tuning.hyperparameters import Hyperparameters, resolve_hyperparameters


@pytest.mark.parametrize(
    ("asked", "examples", "expected"),
    [
        ({}, 10, {"n_epochs": 10, "batch_size": 1, "learning_rate_multiplier": 1.0}),
        (
            {"n_epochs": "auto"},
            100,
            {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.0},
        ),
        ({}, 2_000, {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 1.0}),
        ({}, 50_000, {"n_epochs": 1, "batch_size": 8, "learning_rate_multiplier": 1.0}),
        (
            {"n_epochs": 2, "batch_size": 3, "learning_rate_multiplier": 0.5},
            10,
            {"n_epochs": 2, "batch_size": 3, "learning_rate_multiplier": 0.5},
        ),
    ],
)
def test_auto_hyperparameters(
    asked: dict[str, Any], examples: int, expected: dict[str, Any]
) -> None:
    assert resolve_hyperparameters(asked, examples) == expected


def test_hyperparameters_from_resolved_values() -> None:
    hp = Hyperparameters.from_resolved(
        {"n_epochs": 2, "batch_size": 3, "learning_rate_multiplier": 0.5, "seed": 9}
    )

    assert hp == Hyperparameters(n_epochs=2, batch_size=3, learning_rate=1e-4, seed=9)
