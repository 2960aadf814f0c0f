"""A LoRA adapter merged into its base model: one standalone GGUF file with F16 weights.

A fine-tune served as an adapter shares its base model's replicas; merged, it is a model of
its own that a dedicated deployment serves with no adapter at all. The merged file is the
base file with:

- every metadata key and value copied (architecture, hyperparameters, tokenizer, chat
  template), except the file type, which says F16 now, and the data alignment, which the
  writer sets itself;
- every weight matrix dequantized (``gguf.quants.dequantize``) and written as F16; vectors
  (the norms) stay F32, as llama.cpp's own F16 files keep them;
- for each weight the adapter covers, ``W + s * B @ A`` in place of ``W``, in float32 before
  the one rounding to F16, with llama.cpp's scale: ``s = scale * alpha / rank`` (``rank`` the
  inner dimension of B, ``alpha`` the file's ``adapter.lora.alpha``), or ``s = scale`` when
  the file's alpha is 0. That is what llama.cpp adds at each matrix product when it serves the
  adapter with that scale (1 for our fine-tunes).

The adapter is read as ``tuning.export`` writes it (and llama.cpp reads it): for a base tensor
``blk.N.attn_q.weight`` of ggml shape ``[in, out]``, the pair ``.lora_a`` (numpy ``[rank, in]``)
and ``.lora_b`` (numpy ``[out, rank]``), already in the GGUF file's row order (the query and
key rows of ``llama`` models included), so no permutation happens here.

The file is written one tensor at a time (the base's size in float32 is never held at once)
beside its final name, then renamed: it is whole or absent.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt

from tokenmill.tuning.export import read_base_layout

Matrix = npt.NDArray[np.float32]

LORA_A, LORA_B = ".lora_a", ".lora_b"
EMBEDDINGS = "token_embd.weight"
_NOT_COPIED = frozenset({gguf.Keys.General.FILE_TYPE, gguf.Keys.General.ALIGNMENT})


@dataclass(frozen=True, slots=True)
class LoraAdapter:
    architecture: str
    alpha: float
    pairs: dict[str, tuple[Matrix, Matrix]]  # base tensor name -> (A [rank, in], B [out, rank])

    def scale_of(self, name: str, scale: float = 1.0) -> float:
        """What llama.cpp multiplies ``B @ A`` of ``name`` by when it serves the adapter."""
        rank = self.pairs[name][1].shape[1]
        return scale * self.alpha / rank if self.alpha else scale


@dataclass(frozen=True, slots=True)
class MergeReport:
    tensors: int  # written
    merged: int  # of those, weights the adapter changed
    size_bytes: int


def _field(reader: gguf.GGUFReader, key: str) -> Any:
    found = reader.fields.get(key)
    return None if found is None else found.contents()


def read_adapter(path: Path) -> LoraAdapter:
    """A GGUF LoRA adapter's pairs, checked to be whole: every ``.lora_a`` has its ``.lora_b``
    and their ranks agree."""
    reader = gguf.GGUFReader(path)
    if _field(reader, gguf.Keys.General.TYPE) != "adapter":
        raise ValueError(f"{path.name} is not a GGUF adapter (general.type)")
    if _field(reader, gguf.Keys.Adapter.TYPE) != "lora":
        raise ValueError(f"{path.name} is not a LoRA adapter (adapter.type)")
    halves: dict[str, dict[str, Matrix]] = {}
    for tensor in reader.tensors:
        for suffix in (LORA_A, LORA_B):
            if tensor.name.endswith(suffix):
                values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
                matrix = np.asarray(values, dtype=np.float32).reshape(_numpy_shape(tensor))
                halves.setdefault(tensor.name.removesuffix(suffix), {})[suffix] = matrix
                break
        else:
            raise ValueError(f"{path.name}: {tensor.name} is neither a LoRA A nor a LoRA B")
    pairs: dict[str, tuple[Matrix, Matrix]] = {}
    for name, found in sorted(halves.items()):
        a, b = found.get(LORA_A), found.get(LORA_B)
        if a is None or b is None:
            raise ValueError(f"{path.name}: {name} has only one of its LoRA pair")
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise ValueError(f"{path.name}: {name} has A {a.shape} and B {b.shape}")
        pairs[name] = (a, b)
    alpha = _field(reader, gguf.Keys.Adapter.LORA_ALPHA)
    return LoraAdapter(
        architecture=str(_field(reader, gguf.Keys.General.ARCHITECTURE)),
        alpha=float(alpha or 0.0),
        pairs=pairs,
    )


def _numpy_shape(tensor: Any) -> tuple[int, ...]:
    """ggml lists dimensions innermost first; numpy outermost first."""
    return tuple(int(n) for n in reversed(tensor.shape))


def merged_weight(weight: Matrix, a: Matrix, b: Matrix, scale: float) -> Matrix:
    """``weight + scale * b @ a`` in float32, for ``weight`` in numpy order ``[out, in]``."""
    if weight.shape != (b.shape[0], a.shape[1]):
        raise ValueError(f"A {a.shape} and B {b.shape} do not fit a weight of {weight.shape}")
    delta: Matrix = (b @ a) * np.float32(scale)
    merged: Matrix = weight.astype(np.float32) + delta
    return merged


def merge_adapter(
    base_gguf: Path, adapter_gguf: Path, out: Path, *, scale: float = 1.0
) -> MergeReport:
    """Writes ``base_gguf`` with ``adapter_gguf`` merged in to ``out`` (F16 weights)."""
    adapter = read_adapter(adapter_gguf)
    layout = read_base_layout(base_gguf)  # cached: a refusal costs no second read of the base
    if adapter.architecture != layout.architecture:
        raise ValueError(
            f"the adapter is for {adapter.architecture!r}, the base model is "
            f"{layout.architecture!r}"
        )
    for name, (a, b) in adapter.pairs.items():
        ne = layout.shapes.get(name)
        if ne is None:
            raise ValueError(f"the adapter changes {name}, which the base model does not have")
        if name == EMBEDDINGS:  # llama.cpp lays its pair out otherwise; we never write one
            raise ValueError(f"the adapter changes {name}: an embedding LoRA is not merged")
        if tuple(reversed(ne)) != (b.shape[0], a.shape[1]):
            raise ValueError(
                f"{name} is {tuple(reversed(ne))}; the adapter's A {a.shape} and B {b.shape} "
                "do not fit it"
            )
    reader = gguf.GGUFReader(base_gguf)
    out.parent.mkdir(parents=True, exist_ok=True)
    # one partial name per call: two merges of one fine-tune may run at once
    partial = out.with_name(f".{out.name}.partial-{uuid.uuid4().hex}")
    try:
        writer = gguf.GGUFWriter(partial, layout.architecture)
        _copy_metadata(reader, writer)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        for tensor in reader.tensors:
            shape = _numpy_shape(tensor)
            dtype = np.dtype(np.float16 if len(shape) > 1 else np.float32)
            nbytes = int(np.prod(shape)) * dtype.itemsize
            writer.add_tensor_info(tensor.name, shape, dtype, nbytes)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for values in _merged_tensors(reader, adapter, scale):
            writer.write_tensor_data(values)
        writer.close()
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return MergeReport(len(reader.tensors), len(adapter.pairs), out.stat().st_size)


def _merged_tensors(
    reader: gguf.GGUFReader, adapter: LoraAdapter, scale: float
) -> Iterator[npt.NDArray[Any]]:
    """The base's tensors in file order, each as it is written: dequantized, merged where the
    adapter says, rounded to F16 (matrices) or F32 (vectors)."""
    for tensor in reader.tensors:
        shape = _numpy_shape(tensor)
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        weight = np.asarray(values, dtype=np.float32).reshape(shape)
        pair = adapter.pairs.get(tensor.name)
        if pair is not None:
            weight = merged_weight(weight, *pair, adapter.scale_of(tensor.name, scale))
        written = weight.astype(np.float16 if len(shape) > 1 else np.float32)
        yield np.ascontiguousarray(written)


def _copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter) -> None:
    """Every key of the base as it is typed there; the writer has put the architecture."""
    for field in reader.fields.values():
        name = field.name
        if name.startswith("GGUF.") or name in _NOT_COPIED:  # the reader's header entries
            continue
        if name == gguf.Keys.General.ARCHITECTURE:
            continue
        kind = field.types[0]
        sub_type = None
        if kind == gguf.GGUFValueType.ARRAY:
            if len(field.types) > 2:
                raise ValueError(f"{name} is an array of arrays, which is not copied")
            sub_type = field.types[-1] if len(field.types) > 1 else gguf.GGUFValueType.UINT8
        writer.add_key_value(name, field.contents(), kind, sub_type)
