"""Money and prices: integer micro-units only, and the one rounding rule.

1 unit of the platform currency (1 USD) is 1,000,000 micros. Token prices are quoted per
million tokens, so the exact cost of a request is a rational number of micros. The rule:

    cost = request_micros + ceil(exact token total)

The token parts (uncached input, cached input, output) are summed exactly as integers over
one common denominator and rounded up once, so the platform never undercharges by a
fraction, the same usage always costs the same, and splitting usage into parts can only
round up by less than one micro per part (``cost(a) + cost(b) - cost(a + b)`` is in
``[request_micros, request_micros + 1]``).

Pure: no I/O, no clock, no floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

MICROS_PER_UNIT = 1_000_000
TOKENS_PER_QUOTE = 1_000_000
SECONDS_PER_HOUR = 3600


def ceil_div(numerator: int, denominator: int) -> int:
    """Exact ceiling of ``numerator / denominator`` for a positive denominator."""
    return -(-numerator // denominator)


def _non_negative_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


PRICE_PARTS = (
    "input_micros_per_mtok",
    "cached_input_micros_per_mtok",
    "output_micros_per_mtok",
    "request_micros",
    "accelerator_hour_micros",
    "storage_gib_day_micros",
    "training_micros_per_mtok",
)


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price. Cached input never costs more than uncached input."""

    input_micros_per_mtok: int = 0
    cached_input_micros_per_mtok: int = 0
    output_micros_per_mtok: int = 0
    request_micros: int = 0
    accelerator_hour_micros: int = 0
    storage_gib_day_micros: int = 0  # files stored (only the price book's ``files`` entry)
    training_micros_per_mtok: int = 0  # fine-tuning: per million trained tokens

    def __post_init__(self) -> None:
        for name in PRICE_PARTS:
            _non_negative_int(name, getattr(self, name))
        if self.cached_input_micros_per_mtok > self.input_micros_per_mtok:
            raise ValueError("cached input must not cost more than uncached input")

    def scaled(self, factor: Fraction) -> Price:
        """Every part times ``factor``, each rounded up to a whole micro."""
        return Price(
            **{
                name: ceil_div(getattr(self, name) * factor.numerator, factor.denominator)
                for name in PRICE_PARTS
            }
        )

    @property
    def is_free(self) -> bool:
        return not (
            self.input_micros_per_mtok
            or self.output_micros_per_mtok
            or self.request_micros
            or self.accelerator_hour_micros
        )


FREE = Price()


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """What a request used; ``cached_tokens`` is the part of the prompt served from cache."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "cached_tokens", "completion_tokens"):
            _non_negative_int(name, getattr(self, name))
        if self.cached_tokens > self.prompt_tokens:
            raise ValueError("cached_tokens cannot exceed prompt_tokens")

    @classmethod
    def clamped(cls, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> TokenUsage:
        """From counts an engine reported, with the cached part capped at the prompt."""
        prompt = max(prompt_tokens, 0)
        return cls(prompt, min(max(cached_tokens, 0), prompt), max(completion_tokens, 0))


def token_cost_exact(usage: TokenUsage, price: Price) -> tuple[int, int]:
    """The token part of the cost as an exact fraction (numerator, denominator) of micros."""
    numerator = (
        (usage.prompt_tokens - usage.cached_tokens) * price.input_micros_per_mtok
        + usage.cached_tokens * price.cached_input_micros_per_mtok
        + usage.completion_tokens * price.output_micros_per_mtok
    )
    return numerator, TOKENS_PER_QUOTE


def cost_micros(usage: TokenUsage, price: Price) -> int:
    """What a request costs: its per-request fee plus its tokens, rounded up once."""
    numerator, denominator = token_cost_exact(usage, price)
    return price.request_micros + ceil_div(numerator, denominator)


def max_cost_micros(prompt_tokens: int, completion_tokens: int, price: Price) -> int:
    """The most a request with at most these token counts can cost (nothing from cache)."""
    return cost_micros(TokenUsage(prompt_tokens, 0, completion_tokens), price)


def accelerator_cost_micros(accelerator_seconds: int, price: Price) -> int:
    """Dedicated capacity: accelerator-seconds at the hourly price, rounded up once."""
    _non_negative_int("accelerator_seconds", accelerator_seconds)
    return ceil_div(accelerator_seconds * price.accelerator_hour_micros, SECONDS_PER_HOUR)


def format_micros(amount_micros: int) -> str:
    """``1234567`` → ``"1.234567"``: exact, for statements and the CLI."""
    sign = "-" if amount_micros < 0 else ""
    units, micros = divmod(abs(amount_micros), MICROS_PER_UNIT)
    return f"{sign}{units}.{micros:06d}"


def parse_micros(text: str) -> int:
    """``"1.5"`` → ``1500000``; at most six decimals, no floats involved."""
    raw = text.strip()
    sign = -1 if raw.startswith("-") else 1
    raw = raw.lstrip("+-")
    units, _, fraction = raw.partition(".")
    if (
        not (units or fraction)
        or not (units or "0").isdigit()
        or (fraction and not fraction.isdigit())
    ):
        raise ValueError(f"not an amount: {text!r}")
    if len(fraction) > 6:
        raise ValueError(f"an amount has at most six decimals: {text!r}")
    return sign * (int(units or "0") * MICROS_PER_UNIT + int(fraction.ljust(6, "0") or "0"))
