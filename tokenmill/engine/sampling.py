"""A llama.cpp sampler chain per sequence, built from the request's sampling parameters."""

from __future__ import annotations

import ctypes
import json
from typing import Any

import llama_cpp
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from tokenmill.protocol.requests import SamplingParams

_RANDOM_SEED = llama_cpp.LLAMA_DEFAULT_SEED  # llama.cpp draws a random seed for this value


def build_sampler(
    sampling: SamplingParams,
    vocab: Any,
    vocab_size: int,
    *,
    max_tokens: int,
    grammar: str | None = None,
    grammar_trigger: str | None = None,
) -> Any:
    """The chain: logit bias, penalties, a grammar, then greedy, or top-k/top-p/min-p/
    temperature/seed.

    With ``grammar_trigger`` the grammar is lazy: it constrains nothing until the whole output
    so far matches that regex, then constrains it from the regex's first group on.

    The grammar comes before any truncation, so that top-k or top-p never keep only tokens
    the grammar forbids.

    The chain keeps state (penalty history, a grammar's position), so a sequence keeps its
    chain for its whole life, preemptions included.
    """
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())

    def add(sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(chain, sampler)

    if sampling.logit_bias:
        biases = (llama_cpp.llama_logit_bias * len(sampling.logit_bias))()
        for i, (token, bias) in enumerate(sampling.logit_bias.items()):
            biases[i].token = token  # type: ignore[assignment]
            biases[i].bias = bias
        add(llama_cpp.llama_sampler_init_logit_bias(vocab_size, len(biases), biases))
    if sampling.presence_penalty or sampling.frequency_penalty:
        # Only generated tokens are accepted into the chain, so a window of max_tokens
        # penalises exactly the completion so far, as OpenAI's penalties do.
        add(
            llama_cpp.llama_sampler_init_penalties(
                vocab_size, max_tokens, 1.0, sampling.frequency_penalty, sampling.presence_penalty
            )
        )
    if grammar is not None:
        constraint = _grammar_sampler(vocab, grammar, grammar_trigger)
        if constraint is None:
            llama_cpp.llama_sampler_free(chain)
            raise ValueError("llama.cpp could not parse the grammar")
        add(constraint)
    if sampling.temperature == 0.0:
        add(llama_cpp.llama_sampler_init_greedy())
        return chain
    if sampling.top_k > 0:
        add(llama_cpp.llama_sampler_init_top_k(sampling.top_k))
    if sampling.top_p < 1.0:
        add(llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
    if sampling.min_p > 0.0:
        add(llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1))
    add(llama_cpp.llama_sampler_init_temp(sampling.temperature))
    add(llama_cpp.llama_sampler_init_dist(seed_of(sampling.seed)))
    return chain


def seed_of(seed: int | None) -> int:
    if seed is None:
        return int(_RANDOM_SEED)
    folded = seed % 2**32
    return folded - 1 if folded == _RANDOM_SEED else folded


def json_grammar(vocab: Any, schema: dict[str, Any] | None) -> str:
    """GBNF for JSON: any object when ``schema`` is None, else what the schema allows.

    Raises ValueError when the schema cannot be converted or llama.cpp cannot parse the result,
    so that a request never reaches decoding with a grammar that would give a NULL sampler.
    """
    if schema is None:
        grammar = JSON_GBNF
    else:
        try:
            grammar = json_schema_to_gbnf(json.dumps(schema))
        except (AssertionError, ValueError, KeyError, TypeError, RecursionError) as error:
            # The converter reports what it cannot handle with asserts and ValueErrors.
            raise ValueError(str(error) or type(error).__name__) from None
    return checked_grammar(vocab, grammar, "the grammar made from it does not parse")


def checked_grammar(vocab: Any, grammar: str, failure: str = "the grammar does not parse") -> str:
    """``grammar`` once llama.cpp has parsed it; ValueError(``failure``) if it cannot."""
    sampler = _grammar_sampler(vocab, grammar)
    if sampler is None:
        raise ValueError(failure)
    llama_cpp.llama_sampler_free(sampler)
    return grammar


def _grammar_sampler(vocab: Any, grammar: str, trigger: str | None = None) -> Any:
    if trigger is None:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    else:
        patterns = (ctypes.c_char_p * 1)(trigger.encode())
        sampler = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
            vocab, grammar.encode(), b"root", patterns, 1, None, 0
        )
    return sampler if sampler else None
