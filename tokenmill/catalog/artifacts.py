"""What an artifact is, read off its files: a GGUF file, or a safetensors model directory.

The facts feed the model card (architecture, parameters, context, quantization, size, hash)
and the checks that keep a bad file away from a replica.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenmill.catalog.gguf import read_gguf, sha256_file
from tokenmill.errors import InvalidArtifact

_MAX_HEADER_BYTES = 100 * 1024 * 1024


def inspect(path: Path) -> dict[str, Any]:
    """The card facts of a GGUF file or a sentence-transformers/safetensors directory."""
    if path.is_dir():
        return _safetensors_dir(path)
    if not path.is_file():
        raise InvalidArtifact(f"No file at {path}.")
    info = read_gguf(path)
    return {
        "format": "gguf",
        "architecture": info.architecture,
        "parameters": info.parameters,
        "context_tokens": info.context_tokens,
        "quantization": info.quantization,
        "license": info.license,
        "languages": list(info.languages) or None,
        "capabilities": ["chat", "completion"] if info.chat_template else ["completion"],
        "file_size_bytes": info.file_size_bytes,
    }


def digest(path: Path, on_progress: Callable[[int, int], None] | None = None) -> str:
    """sha256 of a file, or of a directory's weights file."""
    return sha256_file(_weights(path) if path.is_dir() else path, on_progress)


def size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _weights(directory: Path) -> Path:
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise InvalidArtifact(f"{directory} has no model.safetensors.")
    return weights


def _safetensors_dir(directory: Path) -> dict[str, Any]:
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise InvalidArtifact(f"{directory} has no config.json; not a model directory.")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidArtifact(f"{config_path} is not valid JSON: {error}.") from None
    parameters, dtype = _safetensors_parameters(_weights(directory))
    context = config.get("max_position_embeddings")
    st_config = directory / "sentence_bert_config.json"
    if st_config.is_file():
        context = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length", context)
    return {
        "format": "safetensors",
        "architecture": config.get("model_type"),
        "parameters": parameters,
        "context_tokens": context,
        "quantization": dtype,
        "dimensions": config.get("hidden_size"),
        "file_size_bytes": size_bytes(directory),
    }


def _safetensors_parameters(weights: Path) -> tuple[int, str]:
    """Total elements and the dominant dtype, from the JSON header at the start of the file."""
    with weights.open("rb") as file:
        head = file.read(8)
        if len(head) < 8:
            raise InvalidArtifact(f"{weights} is truncated.")
        (length,) = struct.unpack("<Q", head)
        if length > _MAX_HEADER_BYTES:
            raise InvalidArtifact(f"{weights} has an implausible header of {length} bytes.")
        raw = file.read(length)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidArtifact(f"{weights} is not a safetensors file.") from None
    total, by_dtype = 0, dict[str, int]()
    data_end = 0
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in tensor["shape"]:
            count *= int(dim)
        total += count
        by_dtype[tensor["dtype"]] = by_dtype.get(tensor["dtype"], 0) + count
        data_end = max(data_end, int(tensor["data_offsets"][1]))
    if 8 + length + data_end > weights.stat().st_size:
        raise InvalidArtifact(f"{weights} is truncated: its tensors run past the end of the file.")
    dominant = max(by_dtype, key=lambda k: by_dtype[k]) if by_dtype else "unknown"
    return total, dominant
