"""The trainer's process: ``python -m tokenmill.tuning.process <spec.json>``.

Reads the run's spec (``tuning.run.RunSpec``), trains (``tuning.trainer``), and tells the worker
how it goes, one JSON object per line on stdout. It stops when the control file says so, or
when the worker that started it is gone.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from tokenmill.tuning.hyperparameters import Hyperparameters
from tokenmill.tuning.run import control_path, read_spec
from tokenmill.tuning.trainer import Checkpoint, StepMetrics, StopReason, train


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _examples(path: str | None) -> list[dict[str, Any]]:
    if path is None:
        return []
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


class _Reporter:
    def __init__(self, out_dir: Path) -> None:
        self._control = control_path(out_dir)
        self._parent = os.getppid()

    def on_step(self, metrics: StepMetrics) -> None:
        _emit(
            {
                "type": "step",
                "step": metrics.step,
                "total_steps": metrics.total_steps,
                "epoch": metrics.epoch,
                "train_loss": _number(metrics.train_loss),
                "train_mean_token_accuracy": _number(metrics.train_mean_token_accuracy),
                "trained_tokens": metrics.trained_tokens,
            }
        )

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        valid_loss = _number(checkpoint.valid_loss)
        valid_accuracy = _number(checkpoint.valid_mean_token_accuracy)
        metrics = {
            "train_loss": _number(checkpoint.train_loss),
            "valid_loss": valid_loss,
            "valid_mean_token_accuracy": valid_accuracy,
            "full_valid_loss": valid_loss,  # the whole validation set is scored each epoch
            "full_valid_mean_token_accuracy": valid_accuracy,
        }
        _emit(
            {
                "type": "checkpoint",
                "step": checkpoint.step,
                "epoch": checkpoint.epoch,
                "path": str(checkpoint.path),
                "metrics": metrics,
            }
        )

    def should_stop(self) -> StopReason | None:
        if os.getppid() != self._parent:  # the worker is gone: its work goes to another
            return "cancel"
        try:
            asked = self._control.read_text().strip()
        except FileNotFoundError:
            return None
        return "pause" if asked == "pause" else "cancel" if asked == "cancel" else None


def main(argv: list[str]) -> int:
    spec = read_spec(Path(argv[1]))
    out_dir = Path(spec.out_dir)
    result = train(
        Path(spec.base_gguf),
        _examples(spec.train_path),
        _examples(spec.validation_path),
        Hyperparameters.from_resolved(spec.hyperparameters),
        out_dir,
        callbacks=_Reporter(out_dir),
        threads=spec.threads,
        context_tokens=spec.context_tokens,
        warn=lambda message: _emit({"type": "warning", "message": message}),
    )
    _emit(
        {
            "type": "done",
            "stopped": result.stopped,
            "trained_tokens": result.trained_tokens,
            "steps": result.steps,
            "adapter": str(result.adapter) if result.adapter else None,
            "metrics": {
                "train_loss": _number(result.train_loss),
                "valid_loss": _number(result.valid_loss),
                "valid_mean_token_accuracy": _number(result.valid_mean_token_accuracy),
            },
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
