"""A sentence-transformers embedding model on CPU: tokenize, check, embed.

The only module of the embedding replica that touches torch. Inputs are tokenized first (to
count and check them), then embedded from their token ids, so text and token-id inputs take
the same path. An input longer than the model's maximum sequence length is refused with
``context_length_exceeded``, as OpenAI refuses one, never silently truncated.

``prompt_tokens`` counts every token the model reads, special tokens included.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenmill.errors import ContextLengthExceeded, InvalidRequest

Vectors = npt.NDArray[np.float32]
FORWARD_BATCH_INPUTS = 32  # inputs per forward pass; longer batches only add padding here


class EmbeddingModel:
    def __init__(self, directory: Path, *, threads: int) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"  # a local directory; never reach for a hub
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self._torch = torch
        self._model: Any = SentenceTransformer(str(directory), device="cpu")
        self._model.eval()
        self._tokenizer: Any = self._model.tokenizer
        # The fast tokenizer is not safe to call from two threads at once.
        self._tokenizer_lock = threading.Lock()
        width = getattr(self._model, "get_embedding_dimension", None)  # renamed in 6.x
        dimensions = (width or self._model.get_sentence_embedding_dimension)()
        max_input_tokens = self._model.max_seq_length
        if dimensions is None or max_input_tokens is None:
            raise ValueError(f"{directory} declares no embedding width or maximum sequence length")
        self.dimensions: int = dimensions
        self.max_input_tokens: int = max_input_tokens
        self.vocab_size: int = len(self._tokenizer)
        self._prefix, self._suffix = self._special_tokens()
        self._pad_id: int = self._tokenizer.pad_token_id or 0
        self._token_types = "token_type_ids" in self._tokenizer.model_input_names

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The special tokens the tokenizer puts around any text ([CLS] … [SEP] for BERT)."""
        with_special = self._tokenizer("a", add_special_tokens=True)["input_ids"]
        bare = self._tokenizer("a", add_special_tokens=False)["input_ids"]
        for start in range(len(with_special) - len(bare) + 1):
            if with_special[start : start + len(bare)] == bare:
                return with_special[:start], with_special[start + len(bare) :]
        raise ValueError("cannot tell this tokenizer's special tokens from its text tokens")

    def tokenize(self, inputs: Sequence[str | Sequence[int]]) -> list[list[int]]:
        """The tokens the model reads for each input; raises when one cannot be embedded.

        Token-id inputs are the text's tokens only: the model's special tokens are added
        around them, as they are around text.
        """
        encoded = iter(self._encode([item for item in inputs if isinstance(item, str)]))
        tokens: list[list[int]] = []
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                tokens.append(next(encoded))
                continue
            if any(not 0 <= t < self.vocab_size for t in item):
                raise InvalidRequest(
                    f"Input {i} has a token id outside this model's vocabulary "
                    f"(0 to {self.vocab_size - 1}).",
                    param="input",
                )
            tokens.append([*self._prefix, *item, *self._suffix])
        for i, ids in enumerate(tokens):
            if len(ids) > self.max_input_tokens:
                raise ContextLengthExceeded(
                    f"This model's maximum context length is {self.max_input_tokens} tokens, "
                    f"however input {i} has {len(ids)} tokens. Please reduce the input.",
                    param="input",
                )
        return tokens

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        with self._tokenizer_lock:
            found = self._tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        return [list(ids) for ids in found["input_ids"]]

    def embed(self, tokens: Sequence[Sequence[int]]) -> Vectors:
        """Unit-length float32 vectors, one row per input, in order.

        Inputs are sorted by length so each forward pass pads as little as possible.
        """
        torch = self._torch
        order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
        out = np.empty((len(tokens), self.dimensions), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), FORWARD_BATCH_INPUTS):
                chunk = order[start : start + FORWARD_BATCH_INPUTS]
                width = max(len(tokens[i]) for i in chunk)
                ids = torch.full((len(chunk), width), self._pad_id, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):
                    ids[row, : len(tokens[i])] = torch.tensor(tokens[i], dtype=torch.long)
                    mask[row, : len(tokens[i])] = 1
                features = {"input_ids": ids, "attention_mask": mask}
                if self._token_types:
                    features["token_type_ids"] = torch.zeros_like(ids)
                vectors = self._model.forward(features)["sentence_embedding"]
                vectors = torch.nn.functional.normalize(vectors.float(), p=2, dim=1)
                out[chunk] = vectors.numpy()
        return out
