"""The advice in words: which bill is lowest at the tenant's volume, why, and what would
change it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenmill.billing.pricing import format_micros

if TYPE_CHECKING:
    from tokenmill.advice.advisor import Advice


def _money(micros: float) -> str:
    return format_micros(round(micros))


def recommend(advice: Advice) -> tuple[str, list[str]]:
    """``serverless``, ``dedicated`` or ``scheduled``, with the reasons."""
    trace = advice.trace
    serverless, always_on, scheduled = advice.at_volume()
    hour = advice.accelerator_hour_micros
    kind = advice.cost_model.accelerator_name
    reasons: list[str] = []
    if advice.always_on is None:
        reasons.append(
            f"No dedicated fleet of {kind} tried keeps 99% of your requests within the SLO."
        )
        return "serverless", reasons + _change(advice)
    known = [s for s in advice.scheduled if s is not None]
    dedicated = min(always_on, scheduled)
    peak = trace.peak_hour_ratio()
    if dedicated < serverless:
        saving = 1 - dedicated / serverless
        mode = "scheduled" if scheduled < always_on else "dedicated"
        reasons.append(
            f"Dedicated saves {saving:.0%} at your volume: {_money(dedicated)} a month "
            f"against {_money(serverless)} per token."
        )
        if mode == "scheduled":
            more = 1 - scheduled / always_on
            reasons.append(
                f"Your peak hour is {peak:.1f}x your mean, so a fleet that follows the hours of "
                f"the day ({_span(known)} {kind}) saves {more:.0%} more than "
                f"{advice.always_on} always on."
            )
        else:
            reasons.append(f"{advice.always_on} {kind} always on hold your traffic within the SLO.")
        return mode, reasons + _change(advice)
    reasons.append(
        f"Serverless is cheaper: {_money(serverless)} a month per token, against "
        f"{_money(dedicated)} for the smallest dedicated fleet that holds your traffic "
        f"({advice.always_on} {kind} always on at {_money(hour)} an hour"
        + (f", or {_span(known)} by the hour of the day)." if known else ").")
    )
    return "serverless", reasons + _change(advice)


def _span(sizes: list[int]) -> str:
    low, high = min(sizes), max(sizes)
    return str(low) if low == high else f"{low} to {high}"


def _change(advice: Advice) -> list[str]:
    curve = advice.curve
    per_day = advice.trace.requests_per_day
    if curve.factor is not None:
        return [
            f"Dedicated pays from about {curve.factor * per_day:,.0f} requests a day "
            f"({curve.factor:.2g}x your volume)."
        ]
    if curve.beyond == "below":
        return ["Dedicated stays cheaper down to a tenth of your volume."]
    return [
        "Within a tenth to ten times your volume, serverless stays cheaper: dedicated "
        f"would pay above {10 * per_day:,.0f} requests a day, if at all."
    ]
