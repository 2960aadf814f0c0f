"""The llama.cpp runner with the real bundled model: batches of sequences, cells, samplers."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tokenmill.engine.blocks import CellCopy, CellRemoval
from tokenmill.engine.runner import DecodeEntry, LlamaRunner
from tokenmill.protocol.requests import SamplingParams

from .conftest import EOG_TOKENS

pytestmark = pytest.mark.model

PROMPT = "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n"
OTHER = "<|im_start|>user\nWhat is two plus two?<|im_end|>\n<|im_start|>assistant\n"
GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture
def clean(runner: LlamaRunner) -> Iterator[LlamaRunner]:
    runner.clear()
    yield runner
    runner.clear()


def generate(
    runner: LlamaRunner, prompt: list[int], sampling: SamplingParams, n: int, slot: int = 0
) -> list[int]:
    sampler = runner.sampler(sampling, max_tokens=n)
    try:
        [[row]] = runner.decode([DecodeEntry(slot, prompt, 0, (len(prompt) - 1,))])
        tokens: list[int] = []
        while True:
            token = runner.sample(sampler, row)
            tokens.append(token)
            if runner.is_eog(token) or len(tokens) == n:
                return tokens
            [[row]] = runner.decode(
                [DecodeEntry(slot, [token], len(prompt) + len(tokens) - 1, (0,))]
            )
    finally:
        runner.free_sampler(sampler)
        runner.apply([CellRemoval(slot, 0, -1)])


def next_token(runner: LlamaRunner, row: int) -> int:
    return int(np.argmax(runner.logits(row)))


def test_model_facts(runner: LlamaRunner) -> None:
    assert runner.vocab_size == 49152
    assert runner.chat_template is not None
    assert runner.eos_token == "<|im_end|>"
    assert runner.kv_cache_tokens >= runner.context_tokens


def test_tokenize_parses_special_tokens_and_round_trips(runner: LlamaRunner) -> None:
    tokens = runner.tokenize("<|im_start|>user\nHéllo wörld<|im_end|>")
    assert tokens[0] == runner.tokenize("<|im_start|>")[0]
    assert runner.detokenize(tokens[1:-1]) == "user\nHéllo wörld"


def test_end_of_generation_tokens(runner: LlamaRunner) -> None:
    assert all(runner.is_eog(token) for token in EOG_TOKENS)
    assert not runner.is_eog(runner.tokenize("hello")[0])


def test_pieces_of_control_tokens_are_empty(runner: LlamaRunner) -> None:
    assert runner.piece(2) == b""
    assert runner.piece(runner.tokenize(" hello")[0]) == b" hello"


def test_greedy_is_deterministic(clean: LlamaRunner) -> None:
    prompt = clean.tokenize(PROMPT)
    assert generate(clean, prompt, GREEDY, 8) == generate(clean, prompt, GREEDY, 8)


def test_sequences_in_one_batch_get_their_own_logits(clean: LlamaRunner) -> None:
    a, b = clean.tokenize(PROMPT), clean.tokenize(OTHER)
    rows = clean.decode([DecodeEntry(0, a, 0, (len(a) - 1,)), DecodeEntry(1, b, 0, (len(b) - 1,))])
    together = [next_token(clean, rows[0][0]), next_token(clean, rows[1][0])]
    clean.clear()
    alone = []
    for prompt in (a, b):
        [[row]] = clean.decode([DecodeEntry(0, prompt, 0, (len(prompt) - 1,))])
        alone.append(next_token(clean, row))
        clean.clear()
    assert together == alone


def test_a_copied_prefix_gives_the_same_next_token_as_computing_it(clean: LlamaRunner) -> None:
    prefix = clean.tokenize(PROMPT)
    suffix = clean.tokenize(" Red,")
    whole = prefix + suffix
    [[row]] = clean.decode([DecodeEntry(2, whole, 0, (len(whole) - 1,))])
    computed = next_token(clean, row)
    clean.decode([DecodeEntry(0, prefix, 0, ())])
    clean.apply([CellCopy(0, 1, 0, len(prefix))])
    [[row]] = clean.decode([DecodeEntry(1, suffix, len(prefix), (len(suffix) - 1,))])
    assert next_token(clean, row) == computed


def test_same_seed_same_sample_at_temperature_one(clean: LlamaRunner) -> None:
    prompt = clean.tokenize(PROMPT)
    sampling = SamplingParams(temperature=1.0, seed=1234)
    assert generate(clean, prompt, sampling, 12) == generate(clean, prompt, sampling, 12)


def test_logit_bias_bans_the_greedy_choice(clean: LlamaRunner) -> None:
    prompt = clean.tokenize(PROMPT)
    [greedy] = generate(clean, prompt, GREEDY, 1)
    banned = SamplingParams(temperature=0.0, logit_bias={greedy: -100.0})
    assert generate(clean, prompt, banned, 1) != [greedy]


def test_penalties_change_a_repetitive_completion(clean: LlamaRunner) -> None:
    prompt = clean.tokenize(
        "<|im_start|>user\nSay the word hello ten times.<|im_end|>\n<|im_start|>assistant\n"
    )
    plain = generate(clean, prompt, GREEDY, 16)
    penalised = generate(clean, prompt, SamplingParams(temperature=0.0, frequency_penalty=2.0), 16)
    assert penalised != plain


def test_a_step_larger_than_the_batch_is_refused(clean: LlamaRunner) -> None:
    with pytest.raises(ValueError):
        clean.decode([DecodeEntry(0, [1] * (clean.max_step_tokens + 1), 0, ())])
