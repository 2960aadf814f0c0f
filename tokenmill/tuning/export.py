"""A trained LoRA adapter written in llama.cpp's GGUF adapter format.

What llama.cpp (``llama-adapter.cpp``) expects, and what this module writes:

- metadata ``general.type = "adapter"``, ``adapter.type = "lora"``, ``adapter.lora.alpha``
  and the base model's ``general.architecture`` (a mismatch is refused);
- for each adapted weight of the base file, say ``blk.0.attn_q.weight``, the pair
  ``blk.0.attn_q.weight.lora_a`` and ``.lora_b``, in PEFT's own orientation: A is
  ``[rank, in]`` and B ``[out, rank]`` as numpy shapes, that is ggml ``ne`` ``[in, rank]`` and
  ``[rank, out]``, which the loader checks against the base tensor's ``[in, out]``;
- llama.cpp adds ``scale * alpha / rank * B @ A`` with ``rank = ne[0]`` of B, which is PEFT's
  ``lora_alpha / r`` when the file's alpha is the LoRA config's ``lora_alpha`` (``scale`` is the
  serving side's, 1 by default).

Tensors are F32: llama.cpp multiplies them as stored, so F16 would round both the adapter and
(on CPU) the activations it multiplies once more, to save about 10 MB on a rank-16 adapter of
a 135M model. F32 is also the default of llama.cpp's own ``convert_lora_to_gguf.py``.

One layout difference matters: for the ``llama`` architecture llama.cpp stores the rows of the
query and key projections permuted for its RoPE kernel (each head's two rotary halves
interleaved) and transformers undoes that when it loads a GGUF, so a B matrix trained on the
transformers model is permuted the same way before it is written. A, whose rows are the rank,
is not.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

# Architectures whose GGUF q/k rows are in llama.cpp's RoPE order and in HF order in
# transformers (its LlamaTensorProcessor); other architectures are stored as trained.
ROPE_PERMUTED_ARCHITECTURES = frozenset({"llama"})
_ARCHITECTURES = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}


@dataclass(frozen=True, slots=True)
class BaseLayout:
    architecture: str
    blocks: int
    heads: int | None
    kv_heads: int | None
    shapes: dict[str, tuple[int, ...]]  # tensor name -> ggml ne, e.g. (in, out) for a weight


@functools.lru_cache(maxsize=4)
def read_base_layout(base_gguf: Path) -> BaseLayout:
    """Cached: gguf's reader parses the whole vocabulary in Python, seconds for a 49k one."""
    reader = gguf.GGUFReader(base_gguf)

    def field(key: str) -> Any:
        value = reader.fields.get(key)
        return None if value is None else value.contents()

    architecture = str(field("general.architecture"))
    heads = field(f"{architecture}.attention.head_count")
    heads = heads if isinstance(heads, int) else None  # some architectures list one per layer
    kv_heads = field(f"{architecture}.attention.head_count_kv")
    return BaseLayout(
        architecture=architecture,
        blocks=int(field(f"{architecture}.block_count") or 0),
        heads=heads,
        kv_heads=kv_heads if isinstance(kv_heads, int) else heads,
        shapes={t.name: tuple(int(n) for n in t.shape) for t in reader.tensors},
    )


def permute_rope_rows(matrix: Matrix, heads: int) -> Matrix:
    """Rows from transformers' order to llama.cpp's: within each head the first half of the
    rotary dimensions pairs with the second (``rotate_half``); llama.cpp pairs neighbours."""
    rows = matrix.shape[0]
    half = rows // heads // 2
    if half * 2 * heads != rows:
        raise ValueError(f"{rows} rows do not split into {heads} heads of rotary pairs")
    grouped = matrix.reshape(heads, 2, half, *matrix.shape[1:])
    return np.ascontiguousarray(grouped.swapaxes(1, 2).reshape(matrix.shape))


def write_lora_gguf(
    path: Path,
    *,
    base_gguf: Path,
    weights: Mapping[str, tuple[npt.NDArray[Any], npt.NDArray[Any]]],
    alpha: float,
) -> None:
    """Write ``weights`` (module name as PEFT names it without prefixes, e.g.
    ``model.layers.0.self_attn.q_proj`` -> (lora_A ``[r, in]``, lora_B ``[out, r]``)) as a GGUF
    adapter of ``base_gguf``. The file appears whole or not at all."""
    base = read_base_layout(base_gguf)
    if base.architecture not in _ARCHITECTURES:
        raise ValueError(f"gguf does not know the architecture {base.architecture!r}")
    names = gguf.get_tensor_name_map(_ARCHITECTURES[base.architecture], base.blocks)
    tensors: list[tuple[str, Matrix]] = []
    for module, (lora_a, lora_b) in sorted(weights.items()):
        target = f"{names.get_name(module)}.weight"
        shape = base.shapes.get(target)
        if shape is None:  # an unknown name maps to None, and "None.weight" is no tensor
            raise ValueError(f"{module} has no weight in {base_gguf.name}")
        a, b = np.asarray(lora_a, dtype=np.float32), np.asarray(lora_b, dtype=np.float32)
        rank = a.shape[0]
        if len(shape) != 2 or a.shape != (rank, shape[0]) or b.shape != (shape[1], rank):
            raise ValueError(
                f"{module}: A {a.shape} and B {b.shape} do not fit {target} {shape} (ggml ne)"
            )
        b = _to_gguf_rows(b, target, base)
        tensors += [(f"{target}.lora_a", a), (f"{target}.lora_b", b)]
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        writer = gguf.GGUFWriter(partial, base.architecture)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
        for name, tensor in tensors:
            writer.add_tensor(name, np.ascontiguousarray(tensor))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _to_gguf_rows(b: Matrix, target: str, base: BaseLayout) -> Matrix:
    if base.architecture not in ROPE_PERMUTED_ARCHITECTURES:
        return b
    if target.endswith(".attn_q.weight"):
        heads = base.heads
    elif target.endswith(".attn_k.weight"):
        heads = base.kv_heads
    else:
        return b
    if heads is None:
        raise ValueError(f"{base.architecture} base without head counts: cannot place {target}")
    return permute_rope_rows(b, heads)


def peft_weights(model: Any, adapter: str = "default") -> dict[str, tuple[Matrix, Matrix]]:
    """The LoRA pairs of a PEFT model, keyed as ``write_lora_gguf`` takes them.

    Written with the config's ``lora_alpha``, llama.cpp scales every pair by ``lora_alpha / r``.
    Where PEFT scales a module otherwise (rsLoRA, per-module ranks or alphas) the difference is
    folded into B, so the written adapter computes what the PEFT model computes.
    """
    from peft.tuners.lora import LoraLayer

    config = model.peft_config[adapter]
    pairs: dict[str, tuple[Matrix, Matrix]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        layer: Any = module  # PEFT's attributes are untyped
        if adapter in layer.lora_embedding_A:
            raise ValueError(f"{name}: embedding LoRA is not written (only linear layers)")
        if adapter not in layer.lora_A:
            continue
        if layer.use_dora.get(adapter):
            raise ValueError("DoRA adapters have no llama.cpp form")
        a = layer.lora_A[adapter].weight.detach().float().cpu().numpy()
        b = layer.lora_B[adapter].weight.detach().float().cpu().numpy()
        fold = layer.scaling[adapter] * a.shape[0] / config.lora_alpha
        if fold != 1.0:
            b = b * np.float32(fold)
        pairs[name.removeprefix("base_model.model.")] = (a, b)
    return pairs
