from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenmill.billing.pricing import (
    Price,
    TokenUsage,
    accelerator_cost_micros,
    cost_micros,
    format_micros,
    max_cost_micros,
    parse_micros,
)

RATE = st.integers(min_value=0, max_value=100_000_000)
TOKENS = st.integers(min_value=0, max_value=10_000_000)


@st.composite
def prices(draw: st.DrawFn) -> Price:
    input_rate = draw(RATE)
    return Price(
        input_micros_per_mtok=input_rate,
        cached_input_micros_per_mtok=draw(st.integers(0, input_rate)),
        output_micros_per_mtok=draw(RATE),
        request_micros=draw(st.integers(0, 10_000)),
        accelerator_hour_micros=draw(RATE),
    )


@st.composite
def usages(draw: st.DrawFn) -> TokenUsage:
    prompt = draw(TOKENS)
    return TokenUsage(prompt, draw(st.integers(0, prompt)), draw(TOKENS))


def exact(usage: TokenUsage, price: Price) -> Fraction:
    return price.request_micros + Fraction(
        (usage.prompt_tokens - usage.cached_tokens) * price.input_micros_per_mtok
        + usage.cached_tokens * price.cached_input_micros_per_mtok
        + usage.completion_tokens * price.output_micros_per_mtok,
        1_000_000,
    )


def test_a_known_price() -> None:
    # $2.50 / $1.25 cached / $10 output per million tokens, 1 cent per request.
    price = Price(2_500_000, 1_250_000, 10_000_000, request_micros=10_000)
    usage = TokenUsage(prompt_tokens=1000, cached_tokens=400, completion_tokens=200)
    # 600 * 2.5 + 400 * 1.25 + 200 * 10 = 1500 + 500 + 2000 = 4000 micros, + 10000
    assert cost_micros(usage, price) == 14_000
    assert cost_micros(TokenUsage(1, 0, 0), Price(input_micros_per_mtok=1)) == 1  # rounded up
    assert cost_micros(TokenUsage(), price) == 10_000


@given(usages(), prices())
def test_cost_is_the_ceiling_of_the_exact_total(usage: TokenUsage, price: Price) -> None:
    total = exact(usage, price)
    cost = cost_micros(usage, price)
    assert cost >= total > cost - 1
    assert cost >= 0


@given(usages(), prices(), st.sampled_from(["prompt", "cached", "completion"]), TOKENS)
def test_cost_is_monotone_in_every_count(
    usage: TokenUsage, price: Price, which: str, extra: int
) -> None:
    prompt, cached, completion = usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens
    if which == "prompt":
        more = TokenUsage(prompt + extra, cached, completion)
    elif which == "cached":  # more of the prompt cached, and a longer prompt: never cheaper
        more = TokenUsage(prompt + extra, cached + extra, completion)
    else:
        more = TokenUsage(prompt, cached, completion + extra)
    assert cost_micros(more, price) >= cost_micros(usage, price)


@given(usages(), prices(), st.integers(0, 10_000))
def test_caching_never_costs_more(usage: TokenUsage, price: Price, shift: int) -> None:
    moved = min(shift, usage.prompt_tokens - usage.cached_tokens)
    cheaper = TokenUsage(usage.prompt_tokens, usage.cached_tokens + moved, usage.completion_tokens)
    assert cost_micros(cheaper, price) <= cost_micros(usage, price)


@given(usages(), usages(), prices())
def test_cost_is_additive_up_to_one_micro_of_rounding(
    a: TokenUsage, b: TokenUsage, price: Price
) -> None:
    both = TokenUsage(
        a.prompt_tokens + b.prompt_tokens,
        a.cached_tokens + b.cached_tokens,
        a.completion_tokens + b.completion_tokens,
    )
    apart = cost_micros(a, price) + cost_micros(b, price)
    together = cost_micros(both, price) + price.request_micros  # two requests pay two fees
    assert together <= apart <= together + 1


@given(usages(), prices())
def test_the_bound_used_for_reservations_covers_the_real_cost(
    usage: TokenUsage, price: Price
) -> None:
    bound = max_cost_micros(usage.prompt_tokens, usage.completion_tokens, price)
    assert bound >= cost_micros(usage, price)


@given(st.integers(0, 10**9), prices())
def test_accelerator_time_is_rounded_up(seconds: int, price: Price) -> None:
    cost = accelerator_cost_micros(seconds, price)
    assert cost >= Fraction(seconds * price.accelerator_hour_micros, 3600) > cost - 1


def test_invalid_prices_and_usage_are_refused() -> None:
    with pytest.raises(ValueError, match="cached input"):
        Price(input_micros_per_mtok=1, cached_input_micros_per_mtok=2)
    with pytest.raises(ValueError, match="non-negative"):
        Price(output_micros_per_mtok=-1)
    with pytest.raises(ValueError, match="non-negative"):
        Price(request_micros=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cached_tokens"):
        TokenUsage(prompt_tokens=1, cached_tokens=2)
    assert TokenUsage.clamped(3, 5, -1) == TokenUsage(3, 3, 0)


@given(st.integers(-(10**15), 10**15))
def test_amounts_format_and_parse_exactly(amount: int) -> None:
    assert parse_micros(format_micros(amount)) == amount


def test_parse_amounts() -> None:
    assert parse_micros("10") == 10_000_000
    assert parse_micros("0.000001") == 1
    assert parse_micros(".5") == 500_000
    for bad in ("", "1.2345678", "abc", "1e3", "."):
        with pytest.raises(ValueError):
            parse_micros(bad)
