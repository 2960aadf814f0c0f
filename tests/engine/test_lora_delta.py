"""Per-row LoRA deltas with numpy alone: every way of multiplying gives each row its adapter's."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from tokenmill.engine.lora_delta import LoraWeights, RowPlan, StackCache, read_lora

N_IN, N_OUT = 12, 10
SHAPES = {"blk.0.attn_q.weight": (N_IN, N_OUT), "blk.0.ffn_up.weight": (N_IN, N_OUT)}


def adapter(seed: int, rank: int = 3, names: tuple[str, ...] = tuple(SHAPES)) -> LoraWeights:
    rng = np.random.default_rng(seed)
    return LoraWeights(
        {
            name: (
                rng.normal(size=(N_IN, rank)).astype(np.float32),
                rng.normal(size=(rank, N_OUT)).astype(np.float32),
            )
            for name in names
        }
    )


def reference(name: str, x: np.ndarray, rows: list[LoraWeights | None]) -> np.ndarray:
    out = np.zeros((len(rows), N_OUT), np.float32)
    for t, weights in enumerate(rows):
        if weights is not None and name in weights.pairs:
            a, b = weights.pairs[name]
            out[t] = x[t] @ a @ b
    return out


A, B, C = adapter(1), adapter(2, rank=5), adapter(3, names=("blk.0.ffn_up.weight",))
LAYOUTS = {
    "alike and adjacent": [A, A, B, B, C, C],
    "base rows between": [None, A, A, None, B, B, None],
    "uneven": [A, A, B, C, C, C, None],
    "a prompt beside streams": [A] * 9 + [B, C],
    "one adapter": [None, B, B, B],
    "base only": [None, None],
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", SHAPES)
def test_each_row_gets_its_adapters_delta(layout: str, name: str) -> None:
    rows = LAYOUTS[layout]
    x = np.random.default_rng(7).normal(size=(len(rows), N_IN)).astype(np.float32)
    base = np.random.default_rng(8).normal(size=(len(rows), N_OUT)).astype(np.float32)
    out = base.copy()
    plan = RowPlan(rows, StackCache())
    plan.add(name, x, out)
    np.testing.assert_allclose(out - base, reference(name, x, rows), rtol=1e-4, atol=1e-4)
    assert plan.any == any(rows)


def test_rows_read_through_a_strided_view() -> None:
    rows = [A, A, B, B]
    wide = np.random.default_rng(9).normal(size=(len(rows), N_IN + 4)).astype(np.float32)
    x = wide[:, :N_IN]  # a row stride longer than the row, as ggml views have
    out = np.zeros((len(rows), N_OUT), np.float32)
    RowPlan(rows, StackCache()).add("blk.0.attn_q.weight", x, out)
    np.testing.assert_allclose(out, reference("blk.0.attn_q.weight", x, rows), rtol=1e-4)


def write_adapter(path: Path, pairs: dict[str, tuple[np.ndarray, np.ndarray]], alpha: float):
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for name, (a, b) in pairs.items():
        writer.add_tensor(f"{name}.lora_a", a)
        writer.add_tensor(f"{name}.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_an_adapter_file_is_read_as_llama_cpp_scales_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, N_IN)).astype(np.float32)  # [rank, in]
    b = rng.normal(size=(N_OUT, 4)).astype(np.float32)  # [out, rank]
    write_adapter(tmp_path / "x.gguf", {"blk.0.attn_q.weight": (a, b)}, alpha=8.0)
    weights = read_lora(tmp_path / "x.gguf", SHAPES)
    a_t, b_t = weights.pairs["blk.0.attn_q.weight"]
    x = rng.normal(size=(1, N_IN)).astype(np.float32)
    np.testing.assert_allclose(x @ a_t @ b_t, 8.0 / 4 * x @ (b @ a).T, rtol=1e-5)
    assert list(weights.pairs) == ["blk.0.attn_q.weight"] and weights.rank == 4


def test_an_adapter_that_does_not_fit_the_base_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, N_IN + 1)).astype(np.float32)
    b = rng.normal(size=(N_OUT, 4)).astype(np.float32)
    write_adapter(tmp_path / "wide.gguf", {"blk.0.attn_q.weight": (a, b)}, alpha=8.0)
    with pytest.raises(ValueError, match="do not fit"):
        read_lora(tmp_path / "wide.gguf", SHAPES)
    write_adapter(tmp_path / "other.gguf", {"blk.0.attn_k.weight": (a, b)}, alpha=8.0)
    with pytest.raises(ValueError, match="no base weight"):
        read_lora(tmp_path / "other.gguf", SHAPES)
