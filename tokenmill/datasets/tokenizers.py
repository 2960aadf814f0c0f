"""The tokenizer a dataset is counted with: a library model's own, as fine-tuning counts.

``library_tokenizers(models)`` answers ``(model, tenant) -> Tokenizer`` for the chat and
completion models of the library that the tenant sees (not fine-tunes: they count in their
base's tokens); the tokenizer is read from the model's GGUF file once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tokenmill.catalog.card import ADAPTER_ENGINE
from tokenmill.catalog.repository import ModelRepository
from tokenmill.errors import InvalidRequest, ModelNotFound
from tokenmill.tuning.validation import TokenCounter

COUNTED_TASKS = frozenset({"chat", "completion"})


@dataclass(frozen=True, slots=True)
class Tokenizer:
    name: str  # the model version whose tokens these are, ``id@version``
    count: TokenCounter
    context_tokens: int | None = None


TokenizerLookup = Callable[[str, str | None], Tokenizer]  # model, reading tenant (None: all)


def gguf_counter(path: Path) -> TokenCounter:
    """Counts an example's tokens with the tokenizer and chat template stored in ``path``."""
    from tokenmill.tuning.encoding import count_tokens, load_tokenizer

    return functools.partial(count_tokens, load_tokenizer(path))


def library_tokenizers(
    models: ModelRepository, counter: Callable[[Path], TokenCounter] = gguf_counter
) -> TokenizerLookup:
    def lookup(name: str, tenant_id: str | None) -> Tokenizer:
        model_id, _, wanted = name.partition("@")
        model = models.get(model_id)
        if model is None or not (
            tenant_id is None or model.owner_tenant_id in (None, tenant_id) or model.published
        ):
            raise ModelNotFound(
                f"The model '{name}' does not exist or you do not have access to it.",
                param="model",
            )
        version = model.version(wanted or None)
        if (
            version is None
            or model.task not in COUNTED_TASKS
            or model.engine == ADAPTER_ENGINE
            or not version.artifact.endswith(".gguf")
            or not Path(version.artifact).is_file()
        ):
            raise InvalidRequest(
                f"The model '{name}' cannot count a dataset's tokens here: a dataset is "
                "counted with a chat or completion model of the library that has a GGUF file.",
                param="model",
                code="model_not_available",
            )
        return Tokenizer(
            version.served_name,
            counter(Path(version.artifact)),
            version.context_tokens(model.context_tokens),
        )

    return lookup
