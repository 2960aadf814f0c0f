from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmill.fleet.autoscale import (
    AUTOSCALERS,
    Autoscaler,
    LoadSnapshot,
    PredictiveAutoscaler,
    ReactiveAutoscaler,
    ScalingConfig,
    ScalingReason,
    build_autoscaler,
)

CONFIG = ScalingConfig(
    min_replicas=0,
    max_replicas=10,
    target_load_per_replica=4,
    scale_out_delay_seconds=10,
    scale_in_delay_seconds=60,
    idle_seconds_before_zero=300,
)


def snap(now: float, ready: int, load: int = 0, **options: object) -> LoadSnapshot:
    return LoadSnapshot(now, ready, in_flight_requests=load, **options)  # type: ignore[arg-type]


def test_scale_out_only_after_the_need_persists() -> None:
    scaler = ReactiveAutoscaler(CONFIG)
    assert scaler.decide(snap(0, 1, 12)).reason is ScalingReason.WAITING_TO_SCALE_OUT
    assert scaler.decide(snap(5, 1, 16)).target_replicas == 1
    decision = scaler.decide(snap(10, 1, 16))
    # 12 then 16 then 16 outstanding: the need that persisted is ceil(12 / 4) = 3.
    assert (decision.target_replicas, decision.reason, decision.delta) == (
        3, ScalingReason.SCALE_OUT, 2
    )  # fmt: skip


def test_a_break_in_the_need_restarts_the_scale_out_delay() -> None:
    scaler = ReactiveAutoscaler(CONFIG)
    scaler.decide(snap(0, 1, 12))
    assert scaler.decide(snap(8, 1, 4)).reason is ScalingReason.HOLD
    assert scaler.decide(snap(10, 1, 12)).target_replicas == 1
    assert scaler.decide(snap(19, 1, 12)).target_replicas == 1
    assert scaler.decide(snap(20, 1, 12)).target_replicas == 3


def test_no_flapping_under_oscillating_load() -> None:
    scaler = ReactiveAutoscaler(CONFIG)
    replicas, changes = 2, 0
    for second in range(0, 1200):
        load = 12 if (second // 7) % 2 else 2  # 3 replicas' worth, then 1, every 7 s
        decision = scaler.decide(snap(second, replicas, load))
        if decision.target_replicas != replicas:
            changes += 1
            replicas = decision.target_replicas
    assert changes == 0
    assert replicas == 2


def test_scale_in_after_the_lower_need_persists() -> None:
    scaler = ReactiveAutoscaler(CONFIG)
    assert scaler.decide(snap(0, 4, 4)).reason is ScalingReason.WAITING_TO_SCALE_IN
    assert scaler.decide(snap(30, 4, 8)).target_replicas == 4
    assert scaler.decide(snap(59, 4, 4)).target_replicas == 4
    decision = scaler.decide(snap(60, 4, 4))
    # The largest need in the stretch was 8 outstanding: two replicas, not one.
    assert (decision.target_replicas, decision.reason) == (2, ScalingReason.SCALE_IN)


def test_scale_to_zero_only_after_idle_seconds() -> None:
    scaler = ReactiveAutoscaler(CONFIG)
    scaler.decide(snap(0, 1, 3, last_request_at_seconds=0.0))
    # Idle but not long enough: the last replica stays, and scale-in never takes it.
    for now in (100.0, 200.0, 299.0):
        assert scaler.decide(snap(now, 1, 0, last_request_at_seconds=0.0)).target_replicas == 1
    decision = scaler.decide(snap(300, 1, 0, last_request_at_seconds=0.0))
    assert (decision.target_replicas, decision.reason) == (0, ScalingReason.SCALE_TO_ZERO)
    assert scaler.decide(snap(301, 0, 0)).target_replicas == 0


def test_a_recent_request_postpones_zero() -> None:
    scaler = ReactiveAutoscaler(CONFIG)
    scaler.decide(snap(0, 1, 0))
    assert scaler.decide(snap(350, 1, 0, last_request_at_seconds=100.0)).target_replicas == 1
    assert scaler.decide(snap(400, 1, 0, last_request_at_seconds=100.0)).target_replicas == 0


def test_min_replicas_keeps_a_floor_and_never_goes_to_zero() -> None:
    config = ScalingConfig(min_replicas=2, max_replicas=4, scale_in_delay_seconds=0)
    scaler = ReactiveAutoscaler(config)
    assert scaler.decide(snap(0, 0)).reason is ScalingReason.BELOW_MIN
    assert scaler.decide(snap(0, 0)).target_replicas == 2
    assert scaler.decide(snap(10_000, 3, 0)).target_replicas == 2


def test_cold_start_is_immediate() -> None:
    scaler = ReactiveAutoscaler(CONFIG)
    assert scaler.decide(snap(0, 0)).target_replicas == 0
    decision = scaler.decide(LoadSnapshot(1, 0, queued_requests=30))
    assert (decision.target_replicas, decision.reason) == (1, ScalingReason.COLD_START)
    # The rest of the need goes through the delay like any scale-out.
    assert scaler.decide(LoadSnapshot(2, 0, starting_replicas=1, queued_requests=30)).delta == 0
    assert scaler.decide(LoadSnapshot(12, 1, in_flight_requests=30)).target_replicas == 8


def test_max_clamp() -> None:
    config = ScalingConfig(max_replicas=3, scale_out_delay_seconds=0)
    scaler = ReactiveAutoscaler(config)
    assert scaler.decide(snap(0, 1, 1000)).target_replicas == 3
    decision = scaler.decide(snap(1, 5, 1000))
    assert (decision.target_replicas, decision.reason) == (3, ScalingReason.ABOVE_MAX)


def test_config_is_validated_and_registry_builds_by_name() -> None:
    with pytest.raises(ValueError):
        ScalingConfig(min_replicas=3, max_replicas=2)
    with pytest.raises(ValueError):
        ScalingConfig(target_load_per_replica=0)
    assert set(AUTOSCALERS) == {"reactive", "predictive"}
    scaler = build_autoscaler("predictive", CONFIG, lead_seconds=30)
    assert isinstance(scaler, PredictiveAutoscaler)
    assert scaler.lead_seconds == 30
    with pytest.raises(ValueError, match="unknown autoscaler"):
        build_autoscaler("psychic", CONFIG)


def ramp(scaler: Autoscaler, request_seconds: float) -> list[int]:
    """Replica targets, second by second, under arrivals rising by 0.05 req/s each second.

    Replicas become ready at once; in-flight load follows Little's law.
    """
    replicas, arrived, targets = 1, 0.0, []
    for second in range(1, 301):
        rate = 0.05 * second
        arrived += rate
        load = math.floor(rate * request_seconds)
        decision = scaler.decide(
            LoadSnapshot(
                float(second),
                replicas,
                in_flight_requests=load,
                last_request_at_seconds=float(second),
                arrived_requests_total=int(arrived),
            )
        )
        replicas = decision.target_replicas
        targets.append(replicas)
    return targets


def first_second_at(targets: list[int], replicas: int) -> int:
    return next(i for i, target in enumerate(targets) if target >= replicas)


@pytest.mark.parametrize("request_seconds", [None, 4.0])
def test_predictive_warms_up_ahead_of_a_ramp(request_seconds: float | None) -> None:
    config = ScalingConfig(max_replicas=20, scale_out_delay_seconds=10)
    reactive = ramp(ReactiveAutoscaler(config), 4.0)
    predictive = ramp(
        PredictiveAutoscaler(config, lead_seconds=60, request_seconds=request_seconds), 4.0
    )
    # A replica takes up to a minute to start; predictive asks for it well before the need.
    for replicas in (5, 8, 12):
        assert first_second_at(predictive, replicas) + 15 <= first_second_at(reactive, replicas)
    assert all(p >= r for p, r in zip(predictive, reactive, strict=True))
    assert max(predictive) <= 20


def test_predictive_still_reaches_zero_after_demand_stops() -> None:
    scaler = PredictiveAutoscaler(CONFIG, request_seconds=4.0)
    arrived = 0
    for second in range(0, 120):
        arrived += 2
        scaler.decide(
            LoadSnapshot(
                second,
                2,
                in_flight_requests=8,
                last_request_at_seconds=second,
                arrived_requests_total=arrived,
            )
        )
    replicas = 2
    for second in range(120, 800):
        decision = scaler.decide(
            LoadSnapshot(
                second, replicas, last_request_at_seconds=119, arrived_requests_total=arrived
            )
        )
        replicas = decision.target_replicas
    assert replicas == 0


@settings(max_examples=80, deadline=None)
@given(
    loads=st.lists(st.integers(0, 200), min_size=1, max_size=60),
    step_seconds=st.floats(0.5, 30),
    name=st.sampled_from(sorted(AUTOSCALERS)),
)
def test_targets_stay_within_bounds(loads: list[int], step_seconds: float, name: str) -> None:
    config = ScalingConfig(min_replicas=1, max_replicas=7, scale_out_delay_seconds=5)
    scaler = build_autoscaler(name, config)
    replicas, arrived = 1, 0
    for index, load in enumerate(loads):
        arrived += load
        decision = scaler.decide(
            LoadSnapshot(
                index * step_seconds,
                replicas,
                in_flight_requests=load,
                arrived_requests_total=arrived,
            )
        )
        assert 1 <= decision.target_replicas <= 7
        assert decision.current_replicas == replicas
        replicas = decision.target_replicas
