"""A model card to start from, drafted from a GGUF file's header."""

from __future__ import annotations

from typing import Any

from tokenmill.catalog.gguf import GgufInfo


def draft_card(info: GgufInfo, *, model_id: str) -> dict[str, Any]:
    """A model card to start from, filled from the file; the prose is marked as a draft.

    ``sha256`` is left None for the caller (hashing a large file is its own step), and
    ``prices`` and ``measured`` stay None until an operator prices and benchmarks the model.
    """
    chat = info.chat_template is not None
    size = info.size_label or _short_count(info.parameters)
    task = "chat and text completion" if chat else "text completion (no chat template)"
    return {
        "name": info.name or model_id,
        "family": _family(info),
        "architecture": info.architecture,
        "parameters": info.parameters,
        "context_tokens": info.context_tokens,
        "quantization": info.quantization,
        "file_size_bytes": info.file_size_bytes,
        "sha256": None,
        "license": info.license,
        "languages": list(info.languages),
        "capabilities": ["chat", "completion"] if chat else ["completion"],
        "intended_use": (
            f"DRAFT, for the owner to edit: {model_id} is a {size}-parameter "
            f"{info.architecture} model quantized to {info.quantization}, served for {task}."
        ),
        "limitations": (
            "DRAFT, for the owner to edit: not yet evaluated on this platform. "
            f"Quantization to {info.quantization} lowers quality against the original weights; "
            f"prompts and replies together are limited to {info.context_tokens} tokens. "
            "Like any language model it can state false things fluently; check its licence "
            f"({info.license or 'not stated in the file'}) before offering it to tenants."
        ),
        "prices": None,
        "measured": None,
    }


def _family(info: GgufInfo) -> str:
    if info.basename:
        return "-".join(info.basename.lower().split())
    return info.architecture


def _short_count(count: int) -> str:
    for unit, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if count >= scale:
            return f"{count / scale:.3g}{unit}"
    return str(count)
