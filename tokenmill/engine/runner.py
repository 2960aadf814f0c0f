"""The only module that touches llama.cpp: one model, one context, one sequence at a time.

Not thread-safe for decoding: one worker thread owns ``reuse_prefix``, ``decode`` and the
samplers. Tokenizing reads only the vocabulary and may run on any thread.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

import llama_cpp

from tokenmill.protocol.requests import SamplingParams

BATCH_TOKENS = 512
_RANDOM_SEED = llama_cpp.LLAMA_DEFAULT_SEED  # llama.cpp draws a random seed for this value


class LlamaRunner:
    def __init__(self, model_path: str | os.PathLike[str], *, context_tokens: int, threads: int):
        if context_tokens < 2:
            raise ValueError(f"context_tokens must be at least 2, got {context_tokens}")
        self._llama = llama_cpp.Llama(
            model_path=os.fspath(model_path),
            n_ctx=context_tokens,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=BATCH_TOKENS,
            verbose=False,
        )
        trained = int(llama_cpp.llama_model_n_ctx_train(self._llama.model))
        if context_tokens > trained:
            self.close()
            raise ValueError(
                f"context_tokens {context_tokens} exceeds the {trained} tokens the model "
                "was trained for"
            )
        self._vocab = llama_cpp.llama_model_get_vocab(self._llama.model)
        self._vocab_size = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._context_tokens = int(self._llama.n_ctx())
        self._bos = int(llama_cpp.llama_vocab_bos(self._vocab))

    @property
    def context_tokens(self) -> int:
        return self._context_tokens

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def kv_used_cells(self) -> int:
        return int(self._llama.n_tokens)

    @property
    def chat_template(self) -> str | None:
        template = self._llama.metadata.get("tokenizer.chat_template")
        return template if isinstance(template, str) and template else None

    @property
    def bos_token(self) -> str:
        return self._token_text(self._bos)

    @property
    def eos_token(self) -> str:
        return self._token_text(int(llama_cpp.llama_vocab_eos(self._vocab)))

    def tokenize(self, text: str) -> list[int]:
        """Tokens for text, special tokens parsed; BOS added when the model wants one."""
        tokens: list[int] = self._llama.tokenize(text.encode(), add_bos=True, special=True)
        # A template that writes bos_token itself plus the tokenizer's own BOS gives two.
        if len(tokens) >= 2 and tokens[0] == tokens[1] == self._bos:
            del tokens[0]
        return tokens

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.piece(token) for token in tokens).decode(errors="replace")

    def piece(self, token: int) -> bytes:
        """The bytes a token renders as (control tokens render as nothing)."""
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, size, 0, False)
            if n >= 0:
                return buffer.raw[:n]
            size = -n

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def reuse_prefix(self, tokens: Sequence[int]) -> int:
        """Keep the longest cached prefix of ``tokens``, drop the rest; return its length.

        At least the last two prompt tokens are left to decode: see ``prefill_batches``.
        """
        cached = self._llama.input_ids[: self._llama.n_tokens].tolist()
        keep = 0
        for old, new in zip(cached, tokens[: max(len(tokens) - 2, 0)], strict=False):
            if old != new:
                break
            keep += 1
        memory = llama_cpp.llama_get_memory(self._llama.ctx)
        if not llama_cpp.llama_memory_seq_rm(memory, -1, keep, -1):
            llama_cpp.llama_memory_clear(memory, True)
            keep = 0
        self._llama.n_tokens = keep
        return keep

    def prefill_batches(self, tokens: Sequence[int], start: int) -> Iterator[Sequence[int]]:
        """Split ``tokens[start:]`` into batches to decode, none of one token unless all is one.

        llama.cpp computes a one-token batch with other kernels than a larger one, and the
        logits differ enough to change a seeded sample. Ending every prompt on a batch of two
        or more keeps a prompt's first token the same whether its prefix was cached or not.
        """
        end = len(tokens)
        while start < end:
            stop = min(start + BATCH_TOKENS, end)
            if end - stop == 1:
                stop -= 1
            yield tokens[start:stop]
            start = stop

    def decode(self, tokens: Sequence[int]) -> None:
        """Append tokens to the context (in batches), computing logits for the last one."""
        if self._llama.n_tokens + len(tokens) > self._context_tokens:
            raise ValueError("decoding past the end of the context")
        self._llama.eval(tokens)

    def sampler(self, sampling: SamplingParams, *, max_tokens: int) -> LlamaSampler:
        return LlamaSampler(self._llama.ctx, self._vocab_size, sampling, max_tokens=max_tokens)

    def close(self) -> None:
        self._llama.close()

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        text: bytes = llama_cpp.llama_vocab_get_text(self._vocab, token)
        return text.decode(errors="replace")


class LlamaSampler:
    """A llama.cpp sampler chain for one request; use as a context manager to free it."""

    def __init__(
        self, ctx: Any, vocab_size: int, sampling: SamplingParams, *, max_tokens: int
    ) -> None:
        self._ctx = ctx
        self._chain = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params()
        )
        if sampling.logit_bias:
            biases = (llama_cpp.llama_logit_bias * len(sampling.logit_bias))()
            for i, (token, bias) in enumerate(sampling.logit_bias.items()):
                biases[i].token = token  # type: ignore[assignment]
                biases[i].bias = bias
            self._add(llama_cpp.llama_sampler_init_logit_bias(vocab_size, len(biases), biases))
        if sampling.presence_penalty or sampling.frequency_penalty:
            # Only generated tokens are accepted into the chain, so a window of max_tokens
            # penalises exactly the completion so far, as OpenAI's penalties do.
            self._add(
                llama_cpp.llama_sampler_init_penalties(
                    vocab_size,
                    max_tokens,
                    1.0,
                    sampling.frequency_penalty,
                    sampling.presence_penalty,
                )
            )
        if sampling.temperature == 0.0:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        if sampling.top_k > 0:
            self._add(llama_cpp.llama_sampler_init_top_k(sampling.top_k))
        if sampling.top_p < 1.0:
            self._add(llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
        if sampling.min_p > 0.0:
            self._add(llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1))
        self._add(llama_cpp.llama_sampler_init_temp(sampling.temperature))
        self._add(llama_cpp.llama_sampler_init_dist(_seed(sampling.seed)))

    def sample(self) -> int:
        """Sample from the last decoded position's logits (and accept the token)."""
        return int(llama_cpp.llama_sampler_sample(self._chain, self._ctx, -1))

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None

    def __enter__(self) -> LlamaSampler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _add(self, sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(self._chain, sampler)


def _seed(seed: int | None) -> int:
    if seed is None:
        return int(_RANDOM_SEED)
    folded = seed % 2**32
    return folded - 1 if folded == _RANDOM_SEED else folded
