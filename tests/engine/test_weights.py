"""Which weights the engine computes with: the bundled Q4_1 file is upcast once, to F16."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tokenmill.catalog.gguf import read_gguf
from tokenmill.engine.runner import DecodeEntry, LlamaRunner
from tokenmill.engine.weights import compute_weights, write_copy

PROMPTS = (
    "<|im_start|>user\nName three colours of the rainbow.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. The quick brown",
)


def test_auto_upcasts_the_bundled_q4_1_file_to_f16_and_keeps_its_metadata(
    model_path: Path, tmp_path: Path
) -> None:
    stored = read_gguf(model_path)
    assert stored.quantization == "Q4_1"
    copy = compute_weights(model_path, "auto", tmp_path)
    upcast = read_gguf(copy)
    assert copy.parent == tmp_path and copy != model_path
    assert upcast.quantization == "F16"
    assert upcast.chat_template == stored.chat_template
    assert upcast.parameters == stored.parameters
    assert [p.name for p in tmp_path.iterdir()] == [copy.name]  # no partial file left


def test_a_copy_is_written_once_and_reused(model_path: Path, tmp_path: Path) -> None:
    first = compute_weights(model_path, "auto", tmp_path)
    written = first.stat().st_mtime_ns
    second = compute_weights(model_path, "auto", tmp_path)
    assert second == first
    assert second.stat().st_mtime_ns == written


def test_a_changed_source_gets_a_new_copy(model_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "model.gguf"
    source.write_bytes(model_path.read_bytes())
    cache = tmp_path / "cache"
    first = compute_weights(source, "auto", cache)
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    assert compute_weights(source, "auto", cache) != first


def test_file_and_types_with_fast_kernels_are_used_as_stored(
    model_path: Path, tmp_path: Path
) -> None:
    assert compute_weights(model_path, "file", tmp_path / "a") == model_path
    f16 = compute_weights(model_path, "f16", tmp_path / "b")
    assert compute_weights(f16, "auto", tmp_path / "c") == f16
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_bf16_on_request(model_path: Path, tmp_path: Path) -> None:
    assert read_gguf(compute_weights(model_path, "bf16", tmp_path)).quantization == "BF16"


def test_an_unknown_choice_is_refused(model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weights must be one of"):
        compute_weights(model_path, "q8_0", tmp_path)


def test_a_file_llama_cpp_cannot_read_is_refused_without_a_partial_copy(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    cache = tmp_path / "cache"
    assert compute_weights(broken, "auto", cache) == broken  # llama.cpp will say why
    with pytest.raises(ValueError, match="could not write f16 weights"):
        compute_weights(broken, "f16", cache)
    assert list(cache.iterdir()) == []


def test_the_f16_copy_computes_the_files_model_closer_than_its_own_kernels(
    model_path: Path, tmp_path: Path
) -> None:
    """Against an exact F32 dequantization of the file, at every position of three prompts."""
    exact = tmp_path / "exact.gguf"
    write_copy(model_path, exact, "f32")
    reference = prompt_logits(exact)
    kernels = prompt_logits(model_path)
    upcast = prompt_logits(compute_weights(model_path, "auto", tmp_path / "cache"))
    upcast_error = np.abs(upcast - reference).mean()
    assert upcast_error < np.abs(kernels - reference).mean() / 4
    assert (upcast.argmax(axis=1) == reference.argmax(axis=1)).all()


def prompt_logits(weights: Path) -> npt.NDArray[np.float32]:
    runner = LlamaRunner(
        weights, context_tokens=128, kv_cache_tokens=256, max_step_tokens=64, slots=1, threads=2
    )
    rows = []
    try:
        for prompt in PROMPTS:
            runner.clear()
            tokens = runner.tokenize(prompt)
            (entry_rows,) = runner.decode([DecodeEntry(0, tokens, 0, tuple(range(len(tokens))))])
            rows.extend(runner.logits(row).copy() for row in entry_rows)
    finally:
        runner.close()
    return np.stack(rows)
