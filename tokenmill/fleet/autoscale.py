"""How many replicas a deployment should have: autoscalers decide, the fleet acts.

After SkyPilot serve and Ray Serve: an autoscaler is a small object, one per deployment, that
turns a ``LoadSnapshot`` into a ``ScalingDecision``. It keeps only its own timers and estimates
and reads time only from the snapshot, so the simulator drives it on simulated time.

Load is outstanding requests (in flight plus queued); a replica should carry
``target_load_per_replica`` of them, so the need is ``ceil(load / target)`` replicas, clamped
to ``[min_replicas, max_replicas]``.

Hysteresis, so oscillating load does not make replicas flap:

- **Scale out** only once the need has stayed above the current count for
  ``scale_out_delay_seconds`` without a break; the new target is the *smallest* need seen in
  that stretch (the need that persisted, not a momentary peak).
- **Scale in** only once the need has stayed below the current count for
  ``scale_in_delay_seconds`` without a break, to the *largest* need seen in that stretch. Any
  observation at or above the current count restarts the stretch. Make the scale-in delay
  longer than the scale-out delay: starting a replica late costs latency, stopping one late
  costs only its idle time.
- **Zero** is not reached by scaling in: a deployment with ``min_replicas = 0`` keeps one
  replica until it has seen no request and no load for ``idle_seconds_before_zero``.
- **Cold start** skips the delay: with no replica and a request waiting, the target is one
  replica (or ``min_replicas``) at once; more follow through the usual delay.
- Below ``min_replicas`` or above ``max_replicas`` the count is corrected at once.

Current replicas are ready plus starting ones, so a replica on its way is not asked for twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class ScalingConfig:
    min_replicas: int = 0
    max_replicas: int = 1
    target_load_per_replica: float = 4.0
    scale_out_delay_seconds: float = 10.0
    scale_in_delay_seconds: float = 60.0
    idle_seconds_before_zero: float = 300.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 0 <= min_replicas <= max_replicas")
        if self.max_replicas < 1:
            raise ValueError("max_replicas must be at least 1")
        if self.target_load_per_replica <= 0:
            raise ValueError("target_load_per_replica must be positive")
        delays = (
            self.scale_out_delay_seconds,
            self.scale_in_delay_seconds,
            self.idle_seconds_before_zero,
        )
        if min(delays) < 0:
            raise ValueError("delays cannot be negative")


@dataclass(frozen=True, slots=True)
class LoadSnapshot:
    """What the fleet observed for one deployment at ``now_seconds`` (a monotonic time).

    ``arrived_requests_total`` is a counter of requests ever received (like a Prometheus
    counter); the predictive autoscaler differences it to estimate the arrival rate.
    """

    now_seconds: float
    ready_replicas: int
    starting_replicas: int = 0
    queued_requests: int = 0
    in_flight_requests: int = 0
    last_request_at_seconds: float | None = None
    arrived_requests_total: int = 0

    @property
    def current_replicas(self) -> int:
        return self.ready_replicas + self.starting_replicas

    @property
    def load_requests(self) -> int:
        return self.queued_requests + self.in_flight_requests


class ScalingReason(StrEnum):
    HOLD = "hold"
    COLD_START = "cold_start"
    SCALE_OUT = "scale_out"
    SCALE_IN = "scale_in"
    SCALE_TO_ZERO = "scale_to_zero"
    WAITING_TO_SCALE_OUT = "waiting_to_scale_out"
    WAITING_TO_SCALE_IN = "waiting_to_scale_in"
    BELOW_MIN = "below_min"
    ABOVE_MAX = "above_max"


@dataclass(frozen=True, slots=True)
class ScalingDecision:
    target_replicas: int
    current_replicas: int
    reason: ScalingReason

    @property
    def delta(self) -> int:
        """Replicas to start (positive) or stop (negative)."""
        return self.target_replicas - self.current_replicas


class Autoscaler:
    """One deployment's scaling policy; ``decide`` is called with each new snapshot."""

    name: ClassVar[str] = "base"

    def __init__(self, config: ScalingConfig) -> None:
        self.config = config

    def decide(self, snapshot: LoadSnapshot) -> ScalingDecision:
        raise NotImplementedError


class ReactiveAutoscaler(Autoscaler):
    """Scales to the observed outstanding load, with the hysteresis in the module docstring."""

    name = "reactive"

    def __init__(self, config: ScalingConfig) -> None:
        super().__init__(config)
        self._first_seen_seconds: float | None = None
        self._last_active_seconds: float | None = None
        self._out_since_seconds: float | None = None
        self._out_floor = 0
        self._in_since_seconds: float | None = None
        self._in_ceiling = 0

    def decide(self, snapshot: LoadSnapshot) -> ScalingDecision:
        return self._decide(snapshot, self._needed(snapshot.load_requests))

    def _needed(self, load_requests: float) -> int:
        return math.ceil(load_requests / self.config.target_load_per_replica - 1e-9)

    def _decide(self, snapshot: LoadSnapshot, needed: int) -> ScalingDecision:
        config, now, current = self.config, snapshot.now_seconds, snapshot.current_replicas
        idle = self._idle(snapshot)

        def decision(target: int, reason: ScalingReason) -> ScalingDecision:
            return ScalingDecision(target, current, reason)

        if current < config.min_replicas:
            self._reset()
            return decision(config.min_replicas, ScalingReason.BELOW_MIN)
        if current > config.max_replicas:
            self._reset()
            return decision(config.max_replicas, ScalingReason.ABOVE_MAX)
        if current == 0:
            self._reset()
            if snapshot.load_requests > 0:
                return decision(max(1, config.min_replicas), ScalingReason.COLD_START)
            return decision(0, ScalingReason.HOLD)
        if config.min_replicas == 0 and idle:
            self._reset()
            return decision(0, ScalingReason.SCALE_TO_ZERO)
        desired = min(max(needed, config.min_replicas, 1), config.max_replicas)
        return self._hysteresis(now, current, desired)

    def _idle(self, snapshot: LoadSnapshot) -> bool:
        now = snapshot.now_seconds
        if self._first_seen_seconds is None:
            self._first_seen_seconds = now
        if snapshot.load_requests > 0:
            self._last_active_seconds = now
        active = max(
            self._first_seen_seconds,
            self._last_active_seconds or -math.inf,
            snapshot.last_request_at_seconds or -math.inf,
        )
        return snapshot.load_requests == 0 and now - active >= self.config.idle_seconds_before_zero

    def _hysteresis(self, now: float, current: int, desired: int) -> ScalingDecision:
        if desired > current:
            self._in_since_seconds = None
            if self._out_since_seconds is None:
                self._out_since_seconds, self._out_floor = now, desired
            self._out_floor = min(self._out_floor, desired)
            if now - self._out_since_seconds >= self.config.scale_out_delay_seconds:
                target = self._out_floor
                self._out_since_seconds = None
                return ScalingDecision(target, current, ScalingReason.SCALE_OUT)
            return ScalingDecision(current, current, ScalingReason.WAITING_TO_SCALE_OUT)
        if desired < current:
            self._out_since_seconds = None
            if self._in_since_seconds is None:
                self._in_since_seconds, self._in_ceiling = now, desired
            self._in_ceiling = max(self._in_ceiling, desired)
            if now - self._in_since_seconds >= self.config.scale_in_delay_seconds:
                target = self._in_ceiling
                self._in_since_seconds = None
                return ScalingDecision(target, current, ScalingReason.SCALE_IN)
            return ScalingDecision(current, current, ScalingReason.WAITING_TO_SCALE_IN)
        self._out_since_seconds = self._in_since_seconds = None
        return ScalingDecision(current, current, ScalingReason.HOLD)

    def _reset(self) -> None:
        self._out_since_seconds = self._in_since_seconds = None


class PredictiveAutoscaler(ReactiveAutoscaler):
    """Reactive, plus enough replicas for the arrival rate expected ``lead_seconds`` ahead.

    The arrival rate is smoothed with Holt's linear method (a level and a trend, each an
    exponentially weighted average with a half-life, correct for irregular snapshot spacing)
    and extrapolated ``lead_seconds`` ahead; set that to about a replica's cold-start time, so
    a replica asked for now is ready when the predicted demand arrives. Little's law turns the
    rate into outstanding requests: ``load = rate * request_seconds``, where
    ``request_seconds`` is given or estimated as smoothed in-flight load over smoothed rate.
    The need is the larger of the observed and the predicted need, and then passes through the
    same hysteresis. A predicted load under ``min_predicted_fraction`` of one replica's target
    holds no replica, so a decayed estimate cannot keep a deployment from reaching zero; and
    from zero replicas a prediction alone starts nothing (a waiting request does).
    """

    name = "predictive"

    def __init__(
        self,
        config: ScalingConfig,
        *,
        rate_half_life_seconds: float = 15.0,
        trend_half_life_seconds: float = 30.0,
        lead_seconds: float = 60.0,
        request_seconds: float | None = None,
        min_predicted_fraction: float = 0.05,
    ) -> None:
        super().__init__(config)
        if min(rate_half_life_seconds, trend_half_life_seconds) <= 0 or lead_seconds < 0:
            raise ValueError("half-lives must be positive and the lead non-negative")
        self.rate_half_life_seconds = rate_half_life_seconds
        self.trend_half_life_seconds = trend_half_life_seconds
        self.lead_seconds = lead_seconds
        self.request_seconds = request_seconds
        self.min_predicted_fraction = min_predicted_fraction
        self._last_seconds: float | None = None
        self._last_arrived = 0
        self.rate_per_second = 0.0
        self.trend_per_second2 = 0.0
        self._in_flight_average = 0.0

    def decide(self, snapshot: LoadSnapshot) -> ScalingDecision:
        self._observe(snapshot)
        needed = self._needed(snapshot.load_requests)
        predicted = self.predicted_load_requests()
        if predicted >= self.min_predicted_fraction * self.config.target_load_per_replica:
            needed = max(needed, self._needed(predicted))
        return self._decide(snapshot, needed)

    def predicted_load_requests(self) -> float:
        """Outstanding requests expected ``lead_seconds`` from the last snapshot."""
        rate = max(0.0, self.rate_per_second + self.trend_per_second2 * self.lead_seconds)
        return rate * self._request_seconds()

    def _request_seconds(self) -> float:
        if self.request_seconds is not None:
            return self.request_seconds
        if self.rate_per_second <= 1e-9:
            return 0.0
        return self._in_flight_average / self.rate_per_second

    def _observe(self, snapshot: LoadSnapshot) -> None:
        now, arrived = snapshot.now_seconds, snapshot.arrived_requests_total
        if self._last_seconds is None:
            self._last_seconds, self._last_arrived = now, arrived
            self._in_flight_average = float(snapshot.in_flight_requests)
            return
        elapsed = now - self._last_seconds
        if elapsed <= 0:
            return
        sample = max(0, arrived - self._last_arrived) / elapsed
        alpha = 1.0 - 0.5 ** (elapsed / self.rate_half_life_seconds)
        beta = 1.0 - 0.5 ** (elapsed / self.trend_half_life_seconds)
        previous = self.rate_per_second
        forecast = previous + self.trend_per_second2 * elapsed
        self.rate_per_second = alpha * sample + (1.0 - alpha) * forecast
        slope = (self.rate_per_second - previous) / elapsed
        self.trend_per_second2 = beta * slope + (1.0 - beta) * self.trend_per_second2
        self._in_flight_average += alpha * (snapshot.in_flight_requests - self._in_flight_average)
        self._last_seconds, self._last_arrived = now, arrived


AUTOSCALERS: Mapping[str, type[Autoscaler]] = {
    ReactiveAutoscaler.name: ReactiveAutoscaler,
    PredictiveAutoscaler.name: PredictiveAutoscaler,
}


def build_autoscaler(name: str, config: ScalingConfig, **options: Any) -> Autoscaler:
    """A fresh autoscaler (one per deployment: it holds timers) built by registry name."""
    try:
        cls = AUTOSCALERS[name]
    except KeyError:
        known = ", ".join(sorted(AUTOSCALERS))
        raise ValueError(f"unknown autoscaler {name!r}; known: {known}") from None
    return cls(config, **options)
