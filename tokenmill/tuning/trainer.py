"""The LoRA trainer: a base GGUF model, examples in, a llama.cpp adapter out.

The recipe, top to bottom: encode the examples (``tuning.encoding``); load the base model
dequantized from its GGUF file (once per process) and wrap a copy in a PEFT LoRA on every
linear layer; AdamW with a learning rate decaying linearly to zero; each step a batch of the
epoch's shuffled examples, padded on the right, loss averaged over supervised tokens; at each
epoch's end the validation loss and a checkpoint; at the end the adapter as GGUF
(``tuning.export``).

A run is deterministic for its seed: an epoch's order comes from ``seed`` and the epoch alone,
there is no dropout, and a checkpoint holds the adapter, the optimizer, the scheduler and the
RNG state, so a paused and resumed run ends with the same adapter as one that was not
(on the same machine and thread count). The callbacks are polled before every step: a cancel
returns at once, a pause writes a checkpoint first.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, PreTrainedModel

from tokenmill.errors import TokenmillError
from tokenmill.tuning.encoding import (
    IGNORE,
    EncodedExample,
    encode_example,
    fit_context,
    load_tokenizer,
)
from tokenmill.tuning.export import peft_weights, write_lora_gguf

# Re-exported: the job's process and service take them from here.
from tokenmill.tuning.hyperparameters import Hyperparameters as Hyperparameters
from tokenmill.tuning.hyperparameters import resolve_hyperparameters as resolve_hyperparameters

MAX_GRAD_NORM = 1.0
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter.gguf"
STATE = "trainer_state.pt"  # optimizer, scheduler, RNG and progress; latest checkpoint only

StopReason = Literal["cancel", "pause"]


@dataclass(frozen=True, slots=True)
class StepMetrics:
    step: int  # 1-based, over the whole run
    total_steps: int
    epoch: int  # 1-based
    train_loss: float
    train_mean_token_accuracy: float
    trained_tokens: int  # so far


@dataclass(frozen=True, slots=True)
class Checkpoint:
    step: int
    epoch: int
    train_loss: float
    valid_loss: float | None  # None without validation examples, and at a pause
    valid_mean_token_accuracy: float | None
    path: Path  # a directory: PEFT adapter, adapter.gguf (and STATE while it is the latest)


@dataclass(frozen=True, slots=True)
class TrainingResult:
    trained_tokens: int  # every token of every example (prompt included) times epochs trained
    steps: int
    train_loss: float | None
    valid_loss: float | None
    valid_mean_token_accuracy: float | None
    adapter: Path | None  # None when stopped
    stopped: StopReason | None = None


class Callbacks(Protocol):
    def on_step(self, metrics: StepMetrics) -> None: ...
    def on_checkpoint(self, checkpoint: Checkpoint) -> None: ...
    def should_stop(self) -> StopReason | None: ...


@dataclass(slots=True)
class _Progress:
    step: int = 0
    trained_tokens: int = 0
    train_loss: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None

    def result(self, adapter: Path | None, stopped: StopReason | None) -> TrainingResult:
        return TrainingResult(
            self.trained_tokens,
            self.step,
            self.train_loss,
            self.valid_loss,
            self.valid_mean_token_accuracy,
            adapter,
            stopped,
        )


def train(
    base_gguf: Path,
    train_examples: Sequence[Mapping[str, Any]],
    validation_examples: Sequence[Mapping[str, Any]],
    hp: Hyperparameters,
    out_dir: Path,
    *,
    callbacks: Callbacks,
    threads: int,
    resume: bool = True,
    context_tokens: int | None = None,
    warn: Callable[[str], None] = lambda message: None,
) -> TrainingResult:
    """``context_tokens``: the longest example trained on (longer ones are cut to it or left
    out, ``encoding.fit_context``); ``warn`` hears of each example cut or left out."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = load_tokenizer(base_gguf)
    train_set = _encode_all(tokenizer, train_examples, context_tokens, warn, "training")
    valid_set = _encode_all(tokenizer, validation_examples, context_tokens, warn, "validation")
    if not train_set:
        raise ValueError("no training examples")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    steps_per_epoch = math.ceil(len(train_set) / hp.batch_size)
    total_steps = steps_per_epoch * hp.n_epochs
    run = _Run.start(base_gguf, hp, total_steps, device)
    checkpoints = out_dir / CHECKPOINTS
    latest = _latest_checkpoint(checkpoints) if resume else None
    if latest is not None:
        run.restore(latest, hp)
    elif checkpoints.exists():
        shutil.rmtree(checkpoints)
    progress = run.progress

    def checkpoint(valid: tuple[float, float] | None) -> None:
        if valid is not None:
            progress.valid_loss, progress.valid_mean_token_accuracy = valid
        path = run.save(checkpoints, hp, base_gguf)
        train_loss = math.nan if progress.train_loss is None else progress.train_loss
        epoch = max(1, math.ceil(progress.step / steps_per_epoch))
        valid_loss, valid_accuracy = valid or (None, None)
        callbacks.on_checkpoint(
            Checkpoint(progress.step, epoch, train_loss, valid_loss, valid_accuracy, path)
        )

    while progress.step < total_steps:
        asked = callbacks.should_stop()
        if asked == "pause" and not _checkpoint_path(checkpoints, progress.step).exists():
            checkpoint(None)
        if asked is not None:
            return progress.result(None, asked)
        epoch, index = divmod(progress.step, steps_per_epoch)
        order = _epoch_order(len(train_set), hp.seed, epoch)
        batch = [train_set[i] for i in order[index * hp.batch_size : (index + 1) * hp.batch_size]]
        loss, accuracy = run.step(batch, pad, device)
        progress.step += 1
        progress.trained_tokens += sum(len(e.input_ids) for e in batch)
        progress.train_loss = loss
        callbacks.on_step(
            StepMetrics(
                progress.step, total_steps, epoch + 1, loss, accuracy, progress.trained_tokens
            )
        )
        if progress.step % steps_per_epoch == 0:
            valid = _evaluate(run.model, valid_set, hp.batch_size, pad, device, callbacks)
            if valid == "cancel":
                return progress.result(None, "cancel")
            checkpoint(valid)

    adapter = out_dir / ADAPTER
    _export(run.model, hp, base_gguf, adapter)
    return progress.result(adapter, None)


def _encode_all(
    tokenizer: Any,
    examples: Sequence[Mapping[str, Any]],
    context_tokens: int | None,
    warn: Callable[[str], None],
    which: str,
) -> list[EncodedExample]:
    """The examples as tokens, each fitted to the context; one that cannot be encoded or fitted
    is left out with a warning, never the end of the run."""
    out: list[EncodedExample] = []
    for number, example in enumerate(examples, start=1):
        try:
            encoded = encode_example(tokenizer, example)
        except (ValueError, TokenmillError) as error:
            warn(f"The {which} example {number} was left out: {error}")
            continue
        if context_tokens is None:
            out.append(encoded)
            continue
        fitted = fit_context(encoded, context_tokens)
        tokens = len(encoded.input_ids)
        if fitted is None:
            warn(
                f"The {which} example {number} was left out: its {tokens} tokens exceed the "
                f"context of {context_tokens}, and no whole reply fits in it."
            )
        elif fitted is not encoded:
            kept = fitted.supervised_tokens
            warn(
                f"The {which} example {number} was cut from {tokens} to {context_tokens} "
                f"tokens (the context); its earliest turns went, {kept} of its "
                f"{encoded.supervised_tokens} supervised tokens stay."
            )
        if fitted is not None:
            out.append(fitted)
    return out


@functools.lru_cache(maxsize=1)
def load_base_model(base_gguf: Path) -> PreTrainedModel:
    """The base model dequantized to float32; never trained itself, only copied."""
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(
        str(base_gguf.parent), gguf_file=base_gguf.name, dtype=torch.float32
    )
    model.requires_grad_(False)
    model.train(False)
    return model


def _lora_model(base_gguf: Path, hp: Hyperparameters) -> PeftModel:
    base = copy.deepcopy(load_base_model(base_gguf))
    torch.manual_seed(hp.seed)  # LoRA's A matrices start random
    config = LoraConfig(
        r=hp.lora_rank, lora_alpha=hp.lora_alpha, lora_dropout=0.0, target_modules="all-linear"
    )
    model = get_peft_model(base, config)
    assert isinstance(model, PeftModel)
    return model


@dataclass(slots=True)
class _Run:
    """The training state a checkpoint holds."""

    model: PeftModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    progress: _Progress

    @classmethod
    def start(cls, base_gguf: Path, hp: Hyperparameters, total_steps: int, device: Any) -> _Run:
        model = _lora_model(base_gguf, hp).to(device)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=hp.learning_rate, weight_decay=0.0)
        decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / total_steps)
        return cls(model, optimizer, decay, _Progress())

    def step(self, batch: Sequence[EncodedExample], pad: int, device: Any) -> tuple[float, float]:
        """One optimizer step; the batch's mean loss and token accuracy."""
        self.model.train()
        loss_sum, correct, count = _forward(self.model, batch, pad, device)
        loss = loss_sum / max(count, 1)
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach()), correct / max(count, 1)

    def save(self, directory: Path, hp: Hyperparameters, base_gguf: Path) -> Path:
        """Written beside its final name, then renamed: a checkpoint is whole or absent."""
        final = _checkpoint_path(directory, self.progress.step)
        partial = directory / f".{final.name}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        self.model.save_pretrained(str(partial), save_embedding_layers=False)
        state = {
            "progress": asdict(self.progress),
            "hyperparameters": asdict(hp),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": torch.get_rng_state(),
        }
        torch.save(state, partial / STATE)
        _export(self.model, hp, base_gguf, partial / ADAPTER)
        os.replace(partial, final)
        for older in directory.glob("step-*/" + STATE):  # only the latest is resumed from
            if older.parent != final:
                older.unlink()
        return final

    def restore(self, path: Path, hp: Hyperparameters) -> None:
        state = torch.load(path / STATE, weights_only=True)
        if state["hyperparameters"] != asdict(hp):
            raise ValueError(f"{path} was trained with other hyperparameters")
        set_peft_model_state_dict(self.model, load_file(path / "adapter_model.safetensors"))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        self.progress = _Progress(**state["progress"])


def _checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step-{step:06d}"


def _latest_checkpoint(directory: Path) -> Path | None:
    found = sorted(directory.glob("step-*")) if directory.is_dir() else []
    return found[-1] if found else None


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order: list[int] = torch.randperm(n, generator=generator).tolist()
    return order


def _forward(
    model: PeftModel, batch: Sequence[EncodedExample], pad: int, device: Any
) -> tuple[torch.Tensor, int, int]:
    """Summed loss, correct predictions and supervised tokens of a batch.

    Padding is told apart by length, not by token (the pad token may be end-of-turn), and the
    output layer runs only on the positions that have a label.
    """
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
    hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    targets = labels[:, 1:]
    chosen = targets != IGNORE
    logits = model.get_output_embeddings()(hidden[:, :-1][chosen]).float()
    wanted = targets[chosen]
    loss_sum = torch.nn.functional.cross_entropy(logits, wanted, reduction="sum")
    correct = int((logits.argmax(-1) == wanted).sum())
    return loss_sum, correct, int(chosen.sum())


def _evaluate(
    model: PeftModel,
    examples: Sequence[EncodedExample],
    batch_size: int,
    pad: int,
    device: Any,
    callbacks: Callbacks,
) -> tuple[float, float] | Literal["cancel"] | None:
    """Mean loss and token accuracy over the supervised tokens of ``examples``."""
    if not examples:
        return None
    model.eval()
    loss_total, correct_total, count_total = 0.0, 0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            if callbacks.should_stop() == "cancel":
                return "cancel"
            batch = examples[start : start + batch_size]
            loss_sum, correct, count = _forward(model, batch, pad, device)
            loss_total += float(loss_sum)
            correct_total += correct
            count_total += count
    return loss_total / max(count_total, 1), correct_total / max(count_total, 1)


def _export(model: PeftModel, hp: Hyperparameters, base_gguf: Path, path: Path) -> None:
    write_lora_gguf(path, base_gguf=base_gguf, weights=peft_weights(model), alpha=hp.lora_alpha)
