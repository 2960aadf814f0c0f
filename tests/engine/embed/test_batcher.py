from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from tokenmill.engine.embed.batcher import Batcher
from tokenmill.engine.embed.model import EmbeddingModel, Vectors


async def test_requests_waiting_together_share_forward_passes(
    embedding_model: EmbeddingModel,
) -> None:
    passes: list[int] = []

    def counted(tokens: Sequence[Sequence[int]]) -> Vectors:
        passes.append(len(tokens))
        return embedding_model.embed(tokens)

    texts = [f"sentence {i} " + "word " * i for i in range(24)]
    tokens = embedding_model.tokenize(texts)
    expected = embedding_model.embed(tokens)
    batcher = Batcher(counted, max_batch_inputs=8)
    batcher.start()
    try:
        answers = await asyncio.gather(*(batcher.submit([ids]) for ids in tokens))
    finally:
        await batcher.stop()
    for i, answer in enumerate(answers):
        np.testing.assert_allclose(answer[0], expected[i], atol=1e-5)
    assert sum(passes) == len(texts)
    assert max(passes) <= 8 and len(passes) < len(texts)  # batched, within the cap


async def test_a_request_larger_than_the_cap_still_runs_whole(
    embedding_model: EmbeddingModel,
) -> None:
    tokens = embedding_model.tokenize(["a", "b", "c"])
    batcher = Batcher(embedding_model.embed, max_batch_inputs=1)
    batcher.start()
    try:
        answer = await batcher.submit(tokens)
    finally:
        await batcher.stop()
    assert answer.shape == (3, 384)


async def test_a_failed_pass_fails_its_requests_and_the_batcher_goes_on(
    embedding_model: EmbeddingModel,
) -> None:
    def strict(tokens: Sequence[Sequence[int]]) -> Vectors:
        if any(len(ids) > 3 for ids in tokens):
            raise ValueError("too long for this test")
        return embedding_model.embed(tokens)

    batcher = Batcher(strict, max_batch_inputs=1)
    batcher.start()
    try:
        failed = batcher.submit(embedding_model.tokenize(["a longer sentence here"]))
        ok = batcher.submit(embedding_model.tokenize(["ok"]))
        results = await asyncio.gather(failed, ok, return_exceptions=True)
    finally:
        await batcher.stop()
    assert isinstance(results[0], ValueError)
    assert isinstance(results[1], np.ndarray) and results[1].shape == (1, 384)
