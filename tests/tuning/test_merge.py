"""An adapter merged into its base (``tuning.merge``): the file, the arithmetic, the refusals,
and parity: the merged model served by our engine answers as the adapter served on its base.

Parity uses the persona adapter (``tuned``: six steps, trained once a session and shared with
``test_export``), served the way a replica serves it: on the F16 copy of the Q4_1 base that
``engine.weights`` computes with. The two differ only in where rounding happens: the merged
file rounds ``W + s B A`` to F16 once, the served adapter rounds ``W`` to F16 and adds
``s B (A x)`` in F32 at every product. That is a difference of at most half an F16 step
(2^-11 relative) per weight, far below what the adapter changes, so the greedy tokens agree
and their log-probabilities within a few hundredths."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from tests.engine.lora import write_random_lora
from tests.tuning.persona import BASE, HELD_OUT, PERSONA, Tuned
from tokenmill.engine.engine import Engine
from tokenmill.engine.request import EngineRequest, Finished, TextDelta
from tokenmill.engine.runner import LlamaRunner
from tokenmill.engine.seams import EngineSettings
from tokenmill.protocol.requests import parse_chat
from tokenmill.tuning.merge import MergeReport, merge_adapter, read_adapter

Array = np.ndarray[Any, Any]
NEW_TOKENS = 16
PROMPTS = [*HELD_OUT, "Tell me about the sea."]
MAX_LOGPROB_GAP = 0.05  # measured: at most 0.013 over seven prompts (4 here)


def read(path: Path) -> gguf.GGUFReader:
    return gguf.GGUFReader(path)


def weights(reader: gguf.GGUFReader, name: str) -> Array:
    tensor = next(t for t in reader.tensors if t.name == name)
    values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    return np.asarray(values, dtype=np.float32).reshape(tuple(reversed(tensor.shape.tolist())))


def write_adapter(
    path: Path,
    pairs: dict[str, tuple[Array, Array]],
    alpha: float,
    *,
    architecture: str = "llama",
    kind: str = "adapter",
) -> Path:
    writer = gguf.GGUFWriter(path, architecture)
    writer.add_string(gguf.Keys.General.TYPE, kind)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for name, (a, b) in pairs.items():
        writer.add_tensor(f"{name}.lora_a", a.astype(np.float32))
        writer.add_tensor(f"{name}.lora_b", b.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@dataclass(frozen=True)
class Merged:
    adapter: Path
    path: Path
    report: MergeReport
    base: gguf.GGUFReader
    out: gguf.GGUFReader


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory, bundled_gguf: gguf.GGUFReader) -> Merged:
    """A random rank-4 adapter of every block's seven weights, merged; both files read once."""
    folder = tmp_path_factory.mktemp("merge")
    adapter = write_random_lora(folder / "a.gguf", BASE, seed=5, rank=4, alpha=8)
    path = folder / "merged.gguf"
    report = merge_adapter(BASE, adapter, path)
    return Merged(adapter, path, report, bundled_gguf, read(path))


def test_the_merged_file_is_the_base_with_f16_weights_and_every_key(merged: Merged) -> None:
    base, out, report = merged.base, merged.out, merged.report
    assert report == MergeReport(tensors=272, merged=210, size_bytes=merged.path.stat().st_size)
    assert 260e6 < report.size_bytes < 280e6  # 135M weights at two bytes

    skipped = {"general.file_type", "GGUF.kv_count"}
    for name, field in base.fields.items():
        if name not in skipped:
            assert out.fields[name].contents() == field.contents(), name
            assert out.fields[name].types == field.types, name
    assert out.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_F16
    assert [t.name for t in out.tensors] == [t.name for t in base.tensors]
    types = gguf.GGMLQuantizationType
    for before, after in zip(base.tensors, out.tensors, strict=True):
        assert after.shape.tolist() == before.shape.tolist()
        assert after.tensor_type == (types.F16 if len(before.shape) > 1 else types.F32)
    # Untouched: the base's values, rounded to F16 once.
    embeddings = weights(base, "token_embd.weight").astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(weights(out, "token_embd.weight"), embeddings)
    np.testing.assert_array_equal(
        weights(out, "blk.3.attn_norm.weight"), weights(base, "blk.3.attn_norm.weight")
    )


def test_a_covered_weight_gains_alpha_over_rank_times_b_a(merged: Merged) -> None:
    a, b = read_adapter(merged.adapter).pairs["blk.7.ffn_down.weight"]
    before = weights(merged.base, "blk.7.ffn_down.weight")
    after = weights(merged.out, "blk.7.ffn_down.weight")
    change = after - before
    expected = 8 / 4 * (b @ a)  # alpha 8, rank 4
    assert np.abs(expected).max() > 0.05  # a change worth checking
    # within the one rounding to F16 (half a step of the largest weight's binade)
    np.testing.assert_allclose(change, expected, rtol=0, atol=2**-11 * np.abs(after).max())
    assert np.abs(change - 2 * expected).max() > 0.04  # another scale would show


def test_alpha_zero_means_the_scale_alone(tmp_path: Path) -> None:
    """llama.cpp's convention: a file without alpha is applied at its serving scale."""
    rng = np.random.default_rng(1)
    pairs = {"blk.0.attn_v.weight": (rng.normal(0, 0.1, (2, 576)), rng.normal(0, 0.1, (192, 2)))}
    adapter = read_adapter(write_adapter(tmp_path / "a.gguf", pairs, alpha=0))
    assert adapter.scale_of("blk.0.attn_v.weight") == 1.0
    assert adapter.scale_of("blk.0.attn_v.weight", 0.5) == 0.5
    with_alpha = read_adapter(write_adapter(tmp_path / "b.gguf", pairs, alpha=6))
    assert with_alpha.scale_of("blk.0.attn_v.weight", 0.5) == 0.5 * 6 / 2


@pytest.mark.parametrize(
    ("name", "a_shape", "b_shape", "match"),
    [
        ("blk.0.attn_v.weight", (2, 576), (576, 2), "do not fit"),  # v is 192 rows
        ("blk.30.attn_q.weight", (2, 576), (576, 2), "does not have"),  # blocks 0 to 29
        ("token_embd.weight", (2, 576), (49152, 2), "embedding LoRA"),
    ],
)
def test_an_adapter_that_does_not_fit_the_base_is_refused_before_writing(
    tmp_path: Path, name: str, a_shape: tuple[int, int], b_shape: tuple[int, int], match: str
) -> None:
    pairs = {name: (np.zeros(a_shape), np.zeros(b_shape))}
    adapter = write_adapter(tmp_path / "a.gguf", pairs, alpha=4)
    with pytest.raises(ValueError, match=match):
        merge_adapter(BASE, adapter, tmp_path / "out" / "m.gguf")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_files_that_are_no_lora_adapter_of_the_base_are_refused(tmp_path: Path) -> None:
    pair = {"blk.0.attn_v.weight": (np.zeros((2, 576)), np.zeros((192, 2)))}
    model = write_adapter(tmp_path / "model.gguf", pair, alpha=1, kind="model")
    with pytest.raises(ValueError, match="not a GGUF adapter"):
        read_adapter(model)
    other = write_adapter(tmp_path / "g.gguf", pair, alpha=1, architecture="gemma3")
    with pytest.raises(ValueError, match="'gemma3'"):
        merge_adapter(BASE, other, tmp_path / "m.gguf")
    half = gguf.GGUFWriter(tmp_path / "half.gguf", "llama")
    half.add_type(gguf.GGUFType.ADAPTER)
    half.add_string(gguf.Keys.Adapter.TYPE, "lora")
    half.add_tensor("blk.0.attn_v.weight.lora_a", np.zeros((2, 576), dtype=np.float32))
    half.write_header_to_file()
    half.write_kv_data_to_file()
    half.write_tensors_to_file()
    half.close()
    with pytest.raises(ValueError, match="only one of its LoRA pair"):
        read_adapter(tmp_path / "half.gguf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.gguf", "half.gguf", "model.gguf"]


# Parity through the engine.


async def greedy(engine: Engine, question: str, adapter: str | None) -> list[tuple[bytes, float]]:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": question},
        ],
        "temperature": 0,
        "max_tokens": NEW_TOKENS,
        "logprobs": True,
    }
    request: EngineRequest = replace(
        engine.prompts.chat(parse_chat(body), f"{question}-{adapter}"), adapter=adapter
    )
    out: list[tuple[bytes, float]] = []
    async for event in engine.submit(request):
        if isinstance(event, TextDelta):
            out.extend((lp.piece, lp.logprob) for lp in event.logprobs)
        elif isinstance(event, Finished):
            assert event.error is None
    return out


def runner_of(model: Path) -> LlamaRunner:
    """As ``tests.engine``'s runner, on one thread: the engine runs up to 16 sequences."""
    return LlamaRunner(
        model, context_tokens=512, kv_cache_tokens=2048, max_step_tokens=256, slots=16, threads=1
    )


@pytest.fixture
async def served(tuned: Tuned, tmp_path: Path) -> AsyncIterator[tuple[Engine, Engine]]:
    """The adapter (id ``adapter``) on the F16 base as a replica serves it, and the merged
    model alone."""
    merged = tmp_path / "merged.gguf"
    merge_adapter(BASE, tuned.adapter, merged)
    runners = [runner_of(tuned.f16_base), runner_of(merged)]
    adapted = Engine(runners[0], EngineSettings(adapters_dir=tuned.adapter.parent))
    alone = Engine(runners[1], EngineSettings())
    adapted.start()
    alone.start()
    yield adapted, alone
    for engine in (adapted, alone):
        await engine.stop()
    for runner in runners:
        runner.close()


@pytest.mark.model
async def test_the_merged_model_answers_as_the_adapter_on_its_base(
    served: tuple[Engine, Engine],
) -> None:
    adapted, alone = served
    for question in PROMPTS:
        expected = await greedy(adapted, question, "adapter")
        got = await greedy(alone, question, None)
        base = await greedy(adapted, question, None)

        assert [piece for piece, _ in got] == [piece for piece, _ in expected], question
        gaps = [abs(mine - theirs) for (_, mine), (_, theirs) in zip(got, expected, strict=True)]
        assert max(gaps) < MAX_LOGPROB_GAP, (question, gaps)
        assert b"".join(piece for piece, _ in got).decode().startswith(PERSONA.split(",")[0])
        assert [piece for piece, _ in base] != [piece for piece, _ in got]  # the adapter matters
