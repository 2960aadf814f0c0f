from __future__ import annotations

import pytest

from tokenmill.engine.runner import LlamaRunner
from tokenmill.protocol.requests import SamplingParams

from .conftest import EOG_TOKENS, RUNNER_CONTEXT_TOKENS

pytestmark = pytest.mark.model

PROMPT = "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n"
GREEDY = SamplingParams(temperature=0.0)


def generate(runner: LlamaRunner, prompt: list[int], sampling: SamplingParams, n: int) -> list[int]:
    for batch in runner.prefill_batches(prompt, runner.reuse_prefix(prompt)):
        runner.decode(batch)
    tokens: list[int] = []
    with runner.sampler(sampling, max_tokens=n) as sampler:
        for _ in range(n):
            token = sampler.sample()
            tokens.append(token)
            if runner.is_eog(token) or len(tokens) == n:
                break
            runner.decode([token])
    return tokens


def test_model_facts(runner: LlamaRunner) -> None:
    assert runner.context_tokens == RUNNER_CONTEXT_TOKENS
    assert runner.vocab_size == 49152
    assert runner.chat_template is not None
    assert runner.eos_token == "<|im_end|>"


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


def test_greedy_is_deterministic_and_reuses_the_cached_prefix(runner: LlamaRunner) -> None:
    prompt = runner.tokenize(PROMPT)
    first = generate(runner, prompt, GREEDY, 8)
    assert runner.reuse_prefix(prompt) == len(prompt) - 2
    assert runner.kv_used_cells == len(prompt) - 2
    assert generate(runner, prompt, GREEDY, 8) == first


def test_a_different_prompt_keeps_only_the_shared_prefix(runner: LlamaRunner) -> None:
    prompt = runner.tokenize(PROMPT)
    generate(runner, prompt, GREEDY, 2)
    other = prompt[:5] + runner.tokenize(" something else entirely")
    assert runner.reuse_prefix(other) == 5


def test_prefill_never_ends_on_a_one_token_batch(runner: LlamaRunner) -> None:
    tokens = list(range(1, 1028))
    sizes = [len(batch) for batch in runner.prefill_batches(tokens, 2)]
    assert sizes == [512, 511, 2]
    assert [len(b) for b in runner.prefill_batches(tokens, 1026)] == [1]
    assert [len(b) for b in runner.prefill_batches(tokens, 1027)] == []


def test_same_seed_same_sample_at_temperature_one(runner: LlamaRunner) -> None:
    prompt = runner.tokenize(PROMPT)
    sampling = SamplingParams(temperature=1.0, seed=1234)
    assert generate(runner, prompt, sampling, 12) == generate(runner, prompt, sampling, 12)


def test_logit_bias_bans_the_greedy_choice(runner: LlamaRunner) -> None:
    prompt = runner.tokenize(PROMPT)
    [greedy] = generate(runner, prompt, GREEDY, 1)
    banned = SamplingParams(temperature=0.0, logit_bias={greedy: -100.0})
    assert generate(runner, prompt, banned, 1) != [greedy]


def test_penalties_change_a_repetitive_completion(runner: LlamaRunner) -> None:
    prompt = runner.tokenize(
        "<|im_start|>user\nSay the word hello ten times.<|im_end|>\n<|im_start|>assistant\n"
    )
    plain = generate(runner, prompt, GREEDY, 16)
    penalised = generate(runner, prompt, SamplingParams(temperature=0.0, frequency_penalty=2.0), 16)
    assert penalised != plain


def test_decoding_past_the_context_is_refused(runner: LlamaRunner) -> None:
    runner.reuse_prefix([1, 2])
    with pytest.raises(ValueError):
        runner.decode([1] * (RUNNER_CONTEXT_TOKENS + 1))
