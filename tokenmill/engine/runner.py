"""The only module that touches llama.cpp: one model, one context, many sequences per decode.

One worker thread owns decoding, cell operations, sampling and freeing LoRA adapters.
Tokenizing reads only the vocabulary, and loading an adapter only the model: both may run on
any thread.

With ``mix_adapters``, a decode whose sequences use different LoRA adapters (or some the base
model) is still one ``llama_decode``, on the base model, with each token's adapter delta added
by ``tokenmill.engine.lora``; without it, or when ggml's layout is not the one expected, a
decode computes one adapter set (the engine groups its sequences by adapter).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from tokenmill.engine.blocks import CellCopy, CellOp
from tokenmill.engine.cpu import read_cpu_flags, use_extra_buffers
from tokenmill.engine.ggml_tensor import LayoutMismatch
from tokenmill.engine.lora import LoadedAdapter, LoraMixer, MixError
from tokenmill.engine.lora_delta import read_lora
from tokenmill.engine.sampling import build_sampler, checked_grammar, json_grammar

logger = logging.getLogger(__name__)

MAX_SLOTS = 255  # llama.cpp allows 256 sequence ids in a context; one is the scratch slot
SCRATCH_CELLS = 16  # cells kept out of the block ledger for the scratch slot


@dataclass(frozen=True, slots=True)
class DecodeEntry:
    """Tokens of one sequence to compute in this step, from position ``start``.

    ``logits`` lists offsets into ``tokens`` whose next-token distribution is wanted;
    ``adapter`` is the LoRA adapter (a ``load_adapter`` handle) to compute them with, None for
    the base model.
    """

    slot: int
    tokens: Sequence[int]
    start: int
    logits: tuple[int, ...]
    adapter: Any = None


class DecodeError(RuntimeError):
    """llama_decode (or ``call``) failed; ``no_space`` when the KV cache had no room."""

    def __init__(self, code: int, call: str = "llama_decode") -> None:
        super().__init__(f"{call} returned {code}")
        self.no_space = call == "llama_decode" and code == 1


class LlamaRunner:
    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        context_tokens: int,
        kv_cache_tokens: int,
        max_step_tokens: int,
        slots: int,
        threads: int,
        extra_buffers: bool | None = None,
        mix_adapters: bool = False,
    ) -> None:
        """``extra_buffers`` None decides by the CPU (``tokenmill.engine.cpu``: off with AMX);
        ``mix_adapters``: decode sequences of different LoRA adapters together (it costs a
        Python call per graph node of every decode, adapters or not)."""
        if not 2 <= context_tokens <= kv_cache_tokens:
            raise ValueError("context_tokens must be at least 2 and at most kv_cache_tokens")
        if not 1 <= slots <= MAX_SLOTS:
            raise ValueError(f"slots must be between 1 and {MAX_SLOTS}")
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        if extra_buffers is None:
            extra_buffers = use_extra_buffers("auto", read_cpu_flags())
        model_params.use_extra_bufts = extra_buffers
        self.extra_buffers = extra_buffers
        self._model = llama_cpp.llama_model_load_from_file(
            os.fspath(model_path).encode(), model_params
        )
        if not self._model:
            raise ValueError(f"llama.cpp could not load a model from {model_path}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        trained = int(llama_cpp.llama_model_n_ctx_train(self._model))
        if context_tokens > trained:
            llama_cpp.llama_model_free(self._model)
            raise ValueError(
                f"context_tokens {context_tokens} exceeds the {trained} tokens the model "
                "was trained for"
            )
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = kv_cache_tokens
        params.n_batch = max_step_tokens
        params.n_ubatch = max_step_tokens
        params.n_seq_max = slots + 1
        params.n_threads = threads
        params.n_threads_batch = threads
        params.kv_unified = True  # seq_cp (prefix sharing) needs one KV stream
        params.no_perf = True
        self._mixer = LoraMixer.create() if mix_adapters else None
        self.mixed_decodes = 0  # decodes of several adapters with the mixer
        if self._mixer is not None:
            params.cb_eval = self._mixer.callback
        self._ctx = llama_cpp.llama_init_from_model(self._model, params)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise ValueError("llama.cpp could not create a context")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(max_step_tokens + 1, 0, 1)
        self._scratch_slot = slots
        self.max_step_tokens = max_step_tokens
        self.context_tokens = context_tokens
        self.kv_cache_tokens = kv_cache_tokens
        self.vocab_size = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._bos = int(llama_cpp.llama_vocab_bos(self._vocab))
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._pieces: dict[int, bytes] = {}
        self._adapter: Any = None  # the LoRA adapter set on the context; None: the base model
        self._adapters_lock = threading.Lock()  # loading and freeing: the model tracks adapters
        if self._mixer is not None:  # learn the graph from two scratch tokens; off if unlike
            self._fill([DecodeEntry(slots, [max(self._bos, 0)] * 2, 0, (0, 1))], [0])
            try:
                self._mixer.survey(lambda: self._compute(2), tokens=2)
            except (LayoutMismatch, DecodeError) as error:
                logger.warning("LoRA adapters will not be mixed in one decode: %s", error)
                self._mixer = None

    # the model's vocabulary and metadata

    @property
    def chat_template(self) -> str | None:
        template = self.metadata("tokenizer.chat_template")
        return template or None

    @property
    def bos_token(self) -> str:
        return self._token_text(self._bos)

    @property
    def eos_token(self) -> str:
        return self._token_text(int(llama_cpp.llama_vocab_eos(self._vocab)))

    def metadata(self, key: str) -> str:
        size = 1 << 16
        buffer = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buffer, size)
        return buffer.value.decode(errors="replace") if n >= 0 else ""

    def tokenize(self, text: str) -> list[int]:
        """Tokens for text, special tokens parsed; BOS added when the model wants one."""
        data = text.encode()
        capacity = len(data) + 8
        while True:
            out = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), out, capacity, True, True)
            if n >= 0:
                tokens = list(out[:n])
                break
            capacity = -n
        # A template that writes bos_token itself plus the tokenizer's own BOS gives two.
        if self._add_bos and len(tokens) >= 2 and tokens[0] == tokens[1] == self._bos:
            del tokens[0]
        return tokens

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(token) for token in tokens).decode(errors="replace")

    def piece(self, token: int) -> bytes:
        """The bytes a token renders as (control tokens render as nothing)."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        self._pieces[token] = piece = self._render(token, special=False)
        return piece

    def prompt_piece(self, token: int) -> bytes:
        """The bytes a prompt's token was written as: control tokens as their text too."""
        return self._render(token, special=True)

    def _render(self, token: int, *, special: bool) -> bytes:
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, size, 0, special)
            if n >= 0:
                return buffer.raw[:n]
            size = -n

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def json_grammar(self, schema: dict[str, Any] | None) -> str:
        """A checked GBNF grammar for JSON (any object without a schema); ValueError if none."""
        return json_grammar(self._vocab, schema)

    def check_grammar(self, grammar: str) -> str:
        """``grammar`` once llama.cpp has parsed it; ValueError if it cannot."""
        return checked_grammar(self._vocab, grammar)

    # the worker thread's operations

    def clear(self) -> None:
        """Forget every cell (a new engine starts from an empty cache)."""
        llama_cpp.llama_memory_clear(self._memory, True)

    def apply(self, ops: Sequence[CellOp]) -> None:
        for op in ops:
            if isinstance(op, CellCopy):
                llama_cpp.llama_memory_seq_cp(self._memory, op.src, op.dst, op.start, op.end)
            else:
                llama_cpp.llama_memory_seq_rm(self._memory, op.slot, op.start, op.end)

    def load_adapter(self, path: str | os.PathLike[str]) -> LoadedAdapter:
        """A LoRA adapter of this model from a GGUF file; ValueError when llama.cpp refuses it
        (not an adapter, another architecture, tensors the model does not have)."""
        with self._adapters_lock:
            adapter = llama_cpp.llama_adapter_lora_init(self._model, os.fspath(path).encode())
        if not adapter:
            raise ValueError("llama.cpp could not load it as a LoRA adapter of this model")
        weights = None
        if self._mixer is not None:
            try:
                weights = read_lora(Path(path), self._mixer.shapes)
            except ValueError as error:  # llama.cpp takes it: served, only never mixed
                logger.warning("adapter %s will not be mixed with others: %s", path, error)
        return LoadedAdapter(adapter, weights)

    def free_adapter(self, adapter: LoadedAdapter) -> None:
        """Free an adapter no sequence uses any more (taking it off the context first)."""
        if adapter.lora is self._adapter:
            self._use_adapter(None)
        if self._mixer is not None:
            self._mixer.forget()
        with self._adapters_lock:
            llama_cpp.llama_adapter_lora_free(adapter.lora)

    def can_mix(self, adapters: Iterable[LoadedAdapter]) -> bool:
        """Whether one decode can compute sequences of all these adapters and the base's."""
        return self._mixer is not None and all(a.weights is not None for a in adapters)

    def decode(self, entries: Sequence[DecodeEntry]) -> list[list[int]]:
        """One llama_decode over every entry, each computed with its adapter; returns, per
        entry, the batch rows of its logits.

        Entries all of the base model, or all of one adapter the mixer cannot take, are
        computed by llama.cpp with that adapter set; any others by the mixer, which needs
        ``can_mix`` of their adapters (ValueError otherwise). One adapter alone goes through
        the mixer too: it took 33 ms a step for 16 sequences against 35 with llama.cpp's
        adapter (rank 8, 2 threads), and a sequence's logits then do not depend on which
        adapters share its batch.

        llama.cpp computes a batch of one token with other kernels than a larger batch, and
        the logits differ enough to flip a greedy choice or a seeded sample. A lone token is
        therefore computed beside a scratch token, so that a sequence's output does not
        depend on whether it ran alone, with drafts, or from a cached prefix.
        """
        if sum(len(entry.tokens) for entry in entries) > self.max_step_tokens:
            raise ValueError("a step holds more tokens than the batch")
        adapters = {id(entry.adapter): entry.adapter for entry in entries}
        only = entries[0].adapter if len(adapters) == 1 else None
        if len(adapters) <= 1 and (only is None or not self.can_mix([only])):
            self._use_adapter(None if only is None else only.lora)
            rows, n_tokens = self._fill(entries, range(len(entries)))
            self._compute(n_tokens)
            return rows
        mixer = self._mixer
        if mixer is None or not self.can_mix(a for a in adapters.values() if a is not None):
            raise ValueError("these adapters cannot be computed in one decode")
        order = sorted(range(len(entries)), key=lambda k: id(entries[k].adapter or 0))
        rows, n_tokens = self._fill(entries, order)
        runs = [(entries[k].adapter, len(entries[k].tokens)) for k in order]
        self._use_adapter(None)
        self.mixed_decodes += 1
        try:
            mixer.decode(runs, n_tokens, sorted(r for rs in rows for r in rs), self._compute)
        except MixError as error:  # this decode's output is wrong: never mix again
            logger.error("%s; adapters are decoded one at a time from now on", error)
            self._mixer = None
            raise DecodeError(-1, f"llama_decode ({error})") from None
        return rows

    def _fill(
        self, entries: Sequence[DecodeEntry], order: Iterable[int]
    ) -> tuple[list[list[int]], int]:
        """Write the entries into the batch in ``order`` (a lone token gets a scratch token
        beside it); returns, per entry, the batch rows of its logits, and the batch's size."""
        batch = self._batch
        token, pos, n_seq, seq_id, logits = (
            batch.token, batch.pos, batch.n_seq_id, batch.seq_id, batch.logits,
        )  # fmt: skip
        rows: list[list[int]] = [[] for _ in entries]
        i = 0
        for k in order:
            entry = entries[k]
            wanted = set(entry.logits)
            for offset, tok in enumerate(entry.tokens):
                token[i] = tok
                pos[i] = entry.start + offset
                n_seq[i] = 1
                seq_id[i][0] = entry.slot
                if offset in wanted:
                    logits[i] = 1
                    rows[k].append(i)
                else:
                    logits[i] = 0
                i += 1
        if i == 1:
            token[1], pos[1], n_seq[1], seq_id[1][0], logits[1] = (
                token[0],
                0,
                1,
                self._scratch_slot,
                0,
            )
            i = 2
        batch.n_tokens = i
        return rows, i

    def _compute(self, n_tokens: int) -> None:
        code = llama_cpp.llama_decode(self._ctx, self._batch)
        if self._batch.seq_id[n_tokens - 1][0] == self._scratch_slot:
            llama_cpp.llama_memory_seq_rm(self._memory, self._scratch_slot, -1, -1)
        if code != 0:
            raise DecodeError(code)

    def sampler(
        self,
        sampling: Any,
        *,
        max_tokens: int,
        grammar: str | None = None,
        grammar_trigger: str | None = None,
    ) -> Any:
        return build_sampler(
            sampling,
            self._vocab,
            self.vocab_size,
            max_tokens=max_tokens,
            grammar=grammar,
            grammar_trigger=grammar_trigger,
        )

    def sample(self, sampler: Any, row: int) -> int:
        return int(llama_cpp.llama_sampler_sample(sampler, self._ctx, row))

    def accept(self, sampler: Any, token: int) -> None:
        llama_cpp.llama_sampler_accept(sampler, token)

    def free_sampler(self, sampler: Any) -> None:
        llama_cpp.llama_sampler_free(sampler)

    def logits(self, row: int) -> np.ndarray[Any, np.dtype[np.float32]]:
        pointer = llama_cpp.llama_get_logits_ith(self._ctx, row)
        return np.ctypeslib.as_array(pointer, shape=(self.vocab_size,))

    def close(self) -> None:
        if self._ctx:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None

    def _use_adapter(self, adapter: Any) -> None:
        """Set the context's adapters: llama.cpp applies them to every token of a decode."""
        if adapter is self._adapter:
            return
        if adapter is None:
            code = llama_cpp.llama_set_adapters_lora(self._ctx, None, 0, None)
        else:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
            scales = (ctypes.c_float * 1)(1.0)
            code = llama_cpp.llama_set_adapters_lora(self._ctx, adapters, 1, scales)
        if code != 0:
            raise DecodeError(code, "llama_set_adapters_lora")
        self._adapter = adapter

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        text: bytes = llama_cpp.llama_vocab_get_text(self._vocab, token)
        return text.decode(errors="replace")
