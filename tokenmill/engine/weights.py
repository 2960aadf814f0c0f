"""The weights the engine computes with, which need not be the types the file stores.

llama.cpp's CPU kernels multiply batches of Q4_1 and Q5_1 weights (the 4- and 5-bit types
with an offset per block) slowly: they have neither tiled nor repacked kernels. On a 2-core
AVX-512 machine SmolLM2-135M prefilled about 280 tokens/s from its Q4_1 file and 530 from an
F16 copy, and 16 sequences decoded about 195 against 250 tokens/s; a lone sequence was
slower (8.0 against 11.7 ms a token), which is why only small models are upcast.

F16 holds every dequantized weight to 11 bits, so the copy computes the file's model more
closely than the file's own kernels do (those round activations to 8 bits): over four chat
prompts, logits differed from an exact F32 dequantization by 0.012 on average with F16 and
0.216 with the Q4_1 kernels. (BF16 is faster still on CPUs with AVX512_BF16 but keeps 8
bits, 0.060; Q8_0 re-rounds the weights, 0.336, and is not offered.)

``auto`` upcasts such a file to F16 once, when the copy is at most 1 GiB, and caches it;
every other file is used as stored. ``f16`` and ``bf16`` force a copy; ``file`` never copies.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
from pathlib import Path

import llama_cpp

from tokenmill.catalog.gguf import read_gguf
from tokenmill.errors import InvalidArtifact

logger = logging.getLogger(__name__)

WEIGHT_CHOICES = ("auto", "file", "f16", "bf16")
SLOW_WHEN_BATCHED = frozenset({"Q4_1", "Q5_1"})
AUTO_COPY_MAX_BYTES = 1 << 30
FILE_TYPES = {
    "f32": llama_cpp.LLAMA_FTYPE_ALL_F32,
    "f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
    "bf16": llama_cpp.LLAMA_FTYPE_MOSTLY_BF16,
}


def compute_weights(model: Path, choice: str, cache_dir: Path, *, threads: int = 0) -> Path:
    """The GGUF file to load for ``model``: the file itself or a cached copy of other types."""
    if choice not in WEIGHT_CHOICES:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_CHOICES)}, not {choice!r}")
    target = _auto(model) if choice == "auto" else choice
    if target == "file":
        return model
    copy = cache_dir / f"{model.stem}.{_key(model)}.{target}.gguf"
    if copy.is_file():
        return copy
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = copy.with_name(f"{copy.name}.partial-{os.getpid()}")
    logger.info("writing %s weights of %s to %s (once)", target, model.name, copy)
    try:
        write_copy(model, partial, target, threads=threads)
        os.replace(partial, copy)  # atomic: replicas starting together each write their own
    finally:
        partial.unlink(missing_ok=True)
    return copy


def write_copy(model: Path, destination: Path, file_type: str, *, threads: int = 0) -> None:
    """Write ``model`` with its weights in ``file_type`` (a key of ``FILE_TYPES``)."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FILE_TYPES[file_type]
    params.allow_requantize = True
    params.nthread = threads
    code = llama_cpp.llama_model_quantize(
        os.fspath(model).encode(), os.fspath(destination).encode(), ctypes.byref(params)
    )
    if code != 0:
        raise ValueError(f"llama.cpp could not write {file_type} weights of {model.name}")


def _auto(model: Path) -> str:
    try:
        info = read_gguf(model)
    except InvalidArtifact:
        return "file"  # llama.cpp says what is wrong when it loads the file
    small = 2 * info.parameters <= AUTO_COPY_MAX_BYTES
    return "f16" if info.quantization in SLOW_WHEN_BATCHED and small else "file"


def _key(model: Path) -> str:
    """Names a copy after the file it came from and the llama.cpp that wrote it."""
    stat = model.stat()
    source = f"{model.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{llama_cpp.__version__}"
    return hashlib.sha256(source.encode()).hexdigest()[:16]
