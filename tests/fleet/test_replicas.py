from __future__ import annotations

from tokenmill.fleet.replicas import ReplicaState, accelerator_charge_micros


def test_an_hour_on_two_accelerators_costs_two_accelerator_hours() -> None:
    assert accelerator_charge_micros(3600, 2, 1_500_000) == 3_000_000


def test_charges_round_to_the_nearest_micro() -> None:
    assert accelerator_charge_micros(1, 1, 1_000_000) == 278  # 277.8
    assert accelerator_charge_micros(0, 4, 1_000_000) == 0


def test_live_states_hold_an_accelerator() -> None:
    assert ReplicaState.live() == {
        ReplicaState.STARTING,
        ReplicaState.READY,
        ReplicaState.DRAINING,
    }
