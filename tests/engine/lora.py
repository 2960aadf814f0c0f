"""Random LoRA adapters of a GGUF model, in llama.cpp's adapter format, for tests and benches.

llama.cpp (``llama-adapter.cpp``) takes ``general.type = "adapter"``, ``adapter.type = "lora"``,
``adapter.lora.alpha``, the base's architecture, and for a base weight ``blk.N.attn_q.weight``
of ggml shape ``[in, out]`` the pair ``blk.N.attn_q.weight.lora_a`` (numpy ``[rank, in]``) and
``.lora_b`` (numpy ``[out, rank]``), adding ``alpha / rank * B @ A`` to the weight.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from tokenmill.tuning.export import read_base_layout

TARGETS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def write_random_lora(
    path: Path,
    base: Path,
    *,
    seed: int,
    rank: int = 8,
    alpha: float = 16.0,
    std: float = 0.07,
    architecture: str | None = None,
) -> Path:
    """An adapter of every attention and MLP weight of ``base``, with weights large enough to
    change a greedy answer. ``architecture``: claim another one (llama.cpp refuses the file).
    The base's layout is read once per process (``read_base_layout``: gguf's reader parses the
    whole vocabulary in Python, seconds for the bundled model)."""
    layout = read_base_layout(base)
    arch = architecture or layout.architecture
    writer = gguf.GGUFWriter(path, arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    rng = np.random.default_rng(seed)
    for name, shape in layout.shapes.items():
        parts = name.split(".")
        if len(parts) != 4 or parts[0] != "blk" or parts[2] not in TARGETS:
            continue
        n_in, n_out = shape
        writer.add_tensor(f"{name}.lora_a", rng.normal(0, std, (rank, n_in)).astype("f4"))
        writer.add_tensor(f"{name}.lora_b", rng.normal(0, std, (n_out, rank)).astype("f4"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
