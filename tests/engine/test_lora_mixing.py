"""Adapters mixed in one decode (each token's LoRA delta added in llama.cpp's eval callback)
against llama.cpp's own adapter path, with the real model: logits, greedy tokens, eviction."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tokenmill.engine.engine import Engine
from tokenmill.engine.runner import DecodeEntry, LlamaRunner, LoadedAdapter
from tokenmill.engine.seams import EngineSettings

from .test_lora import QUESTIONS, request, sample, tokens

pytestmark = pytest.mark.model

TOLERANCE = 0.15  # largest logit difference from llama.cpp's path (seen: about 0.04)
STEPS = 6
# (adapter, question) per sequence: two per adapter alike, then one more (uneven), then base
CASES = [("a0", 0), ("a0", 1), ("a1", 0), ("a1", 1), ("a1", 2), (None, 0), (None, 2)]


def prompt(runner: LlamaRunner, question: int) -> list[int]:
    text = f"<|im_start|>user\n{QUESTIONS[question]}<|im_end|>\n<|im_start|>assistant\n"
    return runner.tokenize(text)


def greedy(
    runner: LlamaRunner, handles: list[LoadedAdapter | None], questions: list[int]
) -> tuple[list[list[int]], list[list[np.ndarray]]]:
    """Greedy tokens and logits of sequences decoded together for ``STEPS`` steps."""
    runner.clear()
    prompts = [prompt(runner, q) for q in questions]
    entries = [
        DecodeEntry(slot, p, 0, (len(p) - 1,), handle)
        for slot, (p, handle) in enumerate(zip(prompts, handles, strict=True))
    ]
    out: list[list[int]] = [[] for _ in entries]
    logits: list[list[np.ndarray]] = [[] for _ in entries]
    for _ in range(STEPS):
        rows = runner.decode(entries)
        for k, entry_rows in enumerate(rows):
            row = runner.logits(entry_rows[-1]).copy()
            logits[k].append(row)
            out[k].append(int(row.argmax()))
        entries = [
            DecodeEntry(e.slot, [out[k][-1]], e.start + len(e.tokens), (0,), e.adapter)
            for k, e in enumerate(entries)
        ]
    runner.clear()
    return out, logits


def loaded(runner: LlamaRunner, adapters_dir: Path) -> dict[str | None, LoadedAdapter | None]:
    return {
        None: None,
        **{a: runner.load_adapter(adapters_dir / f"{a}.gguf") for a in ("a0", "a1")},
    }


def test_mixed_sequences_get_what_llama_cpps_adapters_give_them(
    runner: LlamaRunner, mixing_runner: LlamaRunner, adapters_dir: Path
) -> None:
    grouped, mixing = loaded(runner, adapters_dir), loaded(mixing_runner, adapters_dir)
    try:
        assert mixing_runner.can_mix([h for h in mixing.values() if h is not None])
        assert not runner.can_mix([h for h in grouped.values() if h is not None])
        together = greedy(mixing_runner, [mixing[a] for a, _ in CASES], [q for _, q in CASES])
        for k, (adapter, question) in enumerate(CASES):
            alone = greedy(runner, [grouped[adapter]], [question])
            assert together[0][k] == alone[0][0], (adapter, question)
            for step, (mixed, reference) in enumerate(
                zip(together[1][k], alone[1][0], strict=True)
            ):
                difference = float(np.abs(mixed - reference).max())
                assert difference < TOLERANCE, (adapter, question, step, difference)
        base = {q: together[1][k][0] for k, (a, q) in enumerate(CASES) if a is None}
        for k, (adapter, question) in enumerate(CASES):
            if adapter is not None and question in base:  # the adapter's delta was added
                assert np.abs(together[1][k][0] - base[question]).max() > 2.0
    finally:
        for handles, owner in ((grouped, runner), (mixing, mixing_runner)):
            for handle in handles.values():
                if handle is not None:
                    owner.free_adapter(handle)


async def outputs(engine: Engine, cases: list[tuple[str | None, int]], tag: str) -> list:
    """Greedy outputs of requests sent together."""
    done = await asyncio.gather(
        *(
            tokens(engine.submit(request(engine, f"{tag}{i}", a, QUESTIONS[q], max_tokens=6)))
            for i, (a, q) in enumerate(cases)
        )
    )
    return [out for out, _ in done]


async def test_an_engine_mixing_adapters_answers_as_one_grouping_them(
    runner: LlamaRunner, mixing_runner: LlamaRunner, adapters_dir: Path
) -> None:
    """Also after eviction: with room for one adapter, every round loads them again."""
    grouped = Engine(runner, EngineSettings(adapters_dir=adapters_dir))
    mixed = Engine(mixing_runner, EngineSettings(adapters_dir=adapters_dir, max_loaded_adapters=1))
    grouped.start()
    mixed.start()
    try:
        expected = await outputs(grouped, CASES, "grouped")
        assert sample(grouped, "tokenmill:lora_adapter_switches_total") > 3
        assert runner.mixed_decodes == 0
        before = mixing_runner.mixed_decodes
        first = await outputs(mixed, CASES, "first")
        mixed_first = mixing_runner.mixed_decodes
        assert len(mixed.adapters.loaded()) == 1  # the other one was evicted once unused
        alone = (await tokens(mixed.submit(request(mixed, "alone", "a0", max_tokens=6))))[0]
        assert mixing_runner.mixed_decodes > mixed_first  # one adapter: mixed as well
        again = await outputs(mixed, CASES, "again")
        assert first == expected and again == expected
        assert alone == expected[0]
        assert sample(mixed, "tokenmill:lora_adapter_loads_total") >= 4
        rounds = (mixed_first - before, mixing_runner.mixed_decodes - mixed_first)
        assert min(rounds) >= 4  # of 6 steps: requests may arrive over the first two
    finally:
        await grouped.stop()
        await mixed.stop()
