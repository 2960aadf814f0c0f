from __future__ import annotations

import numpy as np
import pytest
from tokenizers import Tokenizer

from tokenmill.engine.embed.model import FORWARD_BATCH_INPUTS, EmbeddingModel
from tokenmill.errors import ContextLengthExceeded, InvalidRequest

PARAPHRASES = [
    ("A man is playing a guitar.", "Someone is strumming a guitar."),
    ("The weather is cold and rainy today.", "It is a chilly, wet day."),
    ("How do I reset my password?", "What are the steps to change my login password?"),
]


def embed_texts(model: EmbeddingModel, texts: list[str]) -> np.ndarray:
    return model.embed(model.tokenize(texts))


def test_the_bundled_model_is_384_wide_and_reads_256_tokens(
    embedding_model: EmbeddingModel,
) -> None:
    assert embedding_model.dimensions == 384
    assert embedding_model.max_input_tokens == 256


def test_vectors_are_unit_length_float32(embedding_model: EmbeddingModel) -> None:
    vectors = embed_texts(embedding_model, ["hello", "a much longer sentence about cats"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_pairs(embedding_model: EmbeddingModel) -> None:
    texts = [text for pair in PARAPHRASES for text in pair]
    vectors = embed_texts(embedding_model, texts)
    similarity = vectors @ vectors.T
    for i in range(len(PARAPHRASES)):
        a, b = 2 * i, 2 * i + 1
        unrelated = [similarity[a, j] for j in range(len(texts)) if j not in (a, b)]
        assert similarity[a, b] > max(unrelated) + 0.2


def test_a_batch_keeps_order_and_matches_one_at_a_time(embedding_model: EmbeddingModel) -> None:
    # More inputs than one forward pass takes, of mixed lengths, so sorting and chunking matter.
    texts = [f"sentence number {i} " + "word " * (i % 7) for i in range(FORWARD_BATCH_INPUTS + 5)]
    together = embed_texts(embedding_model, texts)
    for i in (0, 3, FORWARD_BATCH_INPUTS, FORWARD_BATCH_INPUTS + 4):
        alone = embed_texts(embedding_model, [texts[i]])[0]
        np.testing.assert_allclose(together[i], alone, atol=1e-5)


def test_token_counts_are_the_tokenizers_own(
    embedding_model: EmbeddingModel, tokenizer: Tokenizer
) -> None:
    texts = ["hello world", "Tokenization, with punctuation!", "naïve café"]
    counts = [len(ids) for ids in embedding_model.tokenize(texts)]
    assert counts == [len(tokenizer.encode(text).ids) for text in texts]
    assert counts[0] == 4  # [CLS] hello world [SEP]


def test_token_ids_embed_like_their_text(
    embedding_model: EmbeddingModel, tokenizer: Tokenizer
) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    from_ids, from_text = embedding_model.tokenize([ids, text])
    assert from_ids == from_text
    vectors = embedding_model.embed([from_ids, from_text])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_an_input_over_the_limit_is_refused_not_truncated(
    embedding_model: EmbeddingModel,
) -> None:
    fits = [1000] * (embedding_model.max_input_tokens - 2)  # with [CLS] and [SEP]: exactly 256
    assert len(embedding_model.tokenize([fits])[0]) == embedding_model.max_input_tokens
    with pytest.raises(ContextLengthExceeded) as caught:
        embedding_model.tokenize(["short", [1000] * (embedding_model.max_input_tokens - 1)])
    assert (caught.value.status, caught.value.param) == (400, "input")
    assert caught.value.code == "context_length_exceeded"
    assert "input 1 has 257 tokens" in caught.value.message
    with pytest.raises(ContextLengthExceeded):
        embedding_model.tokenize(["word " * 300])


def test_token_ids_outside_the_vocabulary_are_refused(embedding_model: EmbeddingModel) -> None:
    with pytest.raises(InvalidRequest) as caught:
        embedding_model.tokenize([[5, embedding_model.vocab_size]])
    assert caught.value.param == "input"
    assert embedding_model.tokenize([[embedding_model.vocab_size - 1]])
