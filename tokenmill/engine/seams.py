"""The engine's seams: what it needs of a model runner, its settings, and the bridge that
carries a request's events from the worker thread to the event loop that submitted it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from tokenmill.engine.blocks import CellOp
from tokenmill.engine.request import EngineEvent, RequestOutcome
from tokenmill.engine.runner import DecodeEntry
from tokenmill.engine.sequence import Sequence
from tokenmill.protocol.requests import SamplingParams


class Runner(Protocol):
    """What the engine needs from a model runner (``LlamaRunner`` in production)."""

    context_tokens: int
    kv_cache_tokens: int
    vocab_size: int
    max_step_tokens: int

    @property
    def chat_template(self) -> str | None: ...
    @property
    def bos_token(self) -> str: ...
    @property
    def eos_token(self) -> str: ...

    def tokenize(self, text: str) -> list[int]: ...
    def detokenize(self, tokens: SequenceOf[int]) -> str: ...
    def piece(self, token: int) -> bytes: ...
    def prompt_piece(self, token: int) -> bytes: ...
    def is_eog(self, token: int) -> bool: ...
    def json_grammar(self, schema: dict[str, Any] | None) -> str: ...
    def check_grammar(self, grammar: str) -> str: ...
    def clear(self) -> None: ...
    def apply(self, ops: list[CellOp]) -> None: ...
    def decode(self, entries: list[DecodeEntry]) -> list[list[int]]: ...
    def load_adapter(self, path: Path) -> Any: ...
    def free_adapter(self, adapter: Any) -> None: ...
    def can_mix(self, adapters: list[Any]) -> bool: ...
    def sampler(
        self,
        sampling: SamplingParams,
        *,
        max_tokens: int,
        grammar: str | None = None,
        grammar_trigger: str | None = None,
    ) -> Any: ...
    def sample(self, sampler: Any, row: int) -> int: ...
    def free_sampler(self, sampler: Any) -> None: ...
    def logits(self, row: int) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class EngineSettings:
    max_running: int = 32
    max_step_tokens: int = 512
    prefill_tokens_while_decoding: int | None = None
    slots: int = 128
    speculative_tokens: int = 0  # prompt-lookup drafts per step for greedy requests; 0 is off
    speculative_max_decoding: int = 4  # draft only while this few streams decode
    kv_cache_blocks: int | None = None  # the ledger's size; default: all the runner's cells
    prefix_cache_share: float = 0.25  # at most this share of the cache holds idle prefixes
    scheduling: Literal["fair", "fcfs"] = "fair"  # between tenants: fair share, or arrival order
    adapters_dir: Path | None = None  # LoRA adapters served per request, <dir>/<id>.gguf
    max_loaded_adapters: int = 8  # adapters kept loaded, beyond those in use
    mix_adapters: bool = True  # one decode for a step's adapters, when the runner can


@dataclass(slots=True)
class Handle:
    """A sequence plus the way back to the event loop that submitted it."""

    sequence: Sequence
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[EngineEvent]
    outcome: asyncio.Future[RequestOutcome]

    def emit(self, event: EngineEvent) -> None:
        self._call(self.events.put_nowait, event)

    def resolve(self, outcome: RequestOutcome) -> None:
        def settle() -> None:
            if not self.outcome.done():
                self.outcome.set_result(outcome)

        self._call(settle)

    def _call(self, fn: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening
            self.loop.call_soon_threadsafe(fn, *args)
