"""The phased replica against a plain step-by-step reference of the same scheduling rules."""

import random
from dataclasses import dataclass

import pytest

from tokenmill.protocol.tenancy import Priority
from tokenmill.protocol.tiers import ServiceTier
from tokenmill.sim.events import EventLoop
from tokenmill.sim.perf import EngineProfile, StepCost, model_spec
from tokenmill.sim.replica import Device, RequestRecord, SimReplica
from tokenmill.sim.run import simulate_replica
from tokenmill.sim.workload import SimRequest

PROFILE = EngineProfile(
    StepCost(0.012, 0.0004, 0.000002), max_running=6, max_step_tokens=64, kv_capacity_tokens=900
)


@dataclass
class _Ref:
    request: SimRequest
    prompt_left: int
    output_left: int
    context: int = 0
    first: float | None = None
    finish: float | None = None


def reference(profile: EngineProfile, requests: list[SimRequest]) -> list[_Ref]:
    """One loop iteration per engine step; arrivals join at the next step boundary."""
    pending = sorted((_Ref(r, r.prompt_tokens, r.output_tokens) for r in requests),
                     key=lambda s: s.request.arrival_seconds)  # fmt: skip
    everyone = list(pending)
    waiting: list[_Ref] = []
    running: list[_Ref] = []  # admission order
    reserved = 0
    now = 0.0
    while pending or waiting or running:
        while pending and pending[0].request.arrival_seconds <= now:
            waiting.append(pending.pop(0))
        while waiting and len(running) < profile.max_running:
            need = waiting[0].request.prompt_tokens + waiting[0].request.output_tokens
            if reserved + need > profile.kv_capacity_tokens:
                break
            reserved += need
            running.append(waiting.pop(0))
        if not running:
            now = pending[0].request.arrival_seconds
            continue
        decoding = [s for s in running if s.prompt_left == 0]
        budget = profile.prefill_budget_tokens(len(decoding))
        chunks = []
        for s in running:
            if s.prompt_left > 0 and budget > 0:
                count = min(s.prompt_left, budget)
                chunks.append((s, count))
                budget -= count
        batched = len(decoding) + sum(c for _, c in chunks)
        kv = sum(s.context for s in running)
        now += profile.cost.step_seconds(batched, kv)
        for s in decoding:
            s.output_left -= 1
            s.context += 1
        for s, count in chunks:
            s.prompt_left -= count
            s.context += count
            if s.prompt_left == 0:
                s.first = now
                s.output_left -= 1
        for s in [s for s in running if s.output_left == 0]:
            s.finish = now
            reserved -= s.request.prompt_tokens + s.request.output_tokens
            running.remove(s)
    return everyone


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_phases_reproduce_every_step_of_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    requests, t = [], 0.0
    for i in range(60):
        t += rng.expovariate(3.0)
        requests.append(SimRequest(i, t, "m", rng.randint(1, 200), rng.randint(1, 60)))
    expected = reference(PROFILE, requests)
    got = simulate_replica(PROFILE, requests)
    for want, record in zip(expected, got, strict=True):
        assert record.first_token_seconds == pytest.approx(want.first, abs=1e-9)
        assert record.finish_seconds == pytest.approx(want.finish, abs=1e-9)


def test_a_lone_request_takes_its_prefill_then_one_step_per_token() -> None:
    [record] = simulate_replica(PROFILE, [SimRequest(0, 1.0, "m", 100, 5)])
    prefill = PROFILE.cost.step_seconds(64, 0) + PROFILE.cost.step_seconds(36, 64)
    assert record.ttft_seconds == pytest.approx(prefill)
    decode = sum(PROFILE.cost.step_seconds(1, 100 + i) for i in range(4))
    assert record.finish_seconds == pytest.approx(1.0 + prefill + decode)


def test_replicas_sharing_an_accelerator_take_turns() -> None:
    loop = EventLoop()
    device = Device("gpu0")
    finished: list[RequestRecord] = []
    model = model_spec("m", "llama3.1-8b")
    replicas = [
        SimReplica(
            f"r{i}", model, PROFILE, device, loop, on_finished=lambda r, x: finished.append(x)
        )
        for i in range(2)
    ]
    for replica in replicas:
        replica.mark_ready()
    for i, replica in enumerate(replicas):
        replica.submit(RequestRecord(SimRequest(i, 0.0, "m", 10, 200), float("inf")))
    loop.run()
    alone = simulate_replica(PROFILE, [SimRequest(0, 0.0, "m", 10, 200)])[0].finish_seconds
    assert alone is not None
    assert [r.finish_seconds for r in finished] == pytest.approx([2 * alone, 2 * alone], rel=0.01)
    assert device.busy_seconds == pytest.approx(2 * alone, rel=0.01)


def test_prefix_cache_skips_blocks_seen_before() -> None:
    blocks = (11, 12, 13)
    first = SimRequest(0, 0.0, "m", 1600, 2, blocks)
    second = SimRequest(1, 10.0, "m", 1600, 2, (11, 12, 99))
    profile = EngineProfile(PROFILE.cost, 4, 512, kv_capacity_tokens=64000)
    records = simulate_replica(profile, [first, second])
    assert [r.cached_tokens for r in records] == [0, 1024]
    first_ttft, second_ttft = (r.ttft_seconds for r in records)
    assert first_ttft is not None and second_ttft is not None
    assert second_ttft < 0.5 * first_ttft


def _backlog(classes: bool) -> list[RequestRecord]:
    """Twenty default requests queued at once, then one priority request; in finish order."""
    loop = EventLoop()
    records = [RequestRecord(SimRequest(i, 0.0, "m", 150, 20), float("inf")) for i in range(20)]
    urgent = RequestRecord(SimRequest(20, 0.01, "m", 150, 20), float("inf"))
    urgent.asked = urgent.tier = ServiceTier.PRIORITY
    replica = SimReplica(
        "r", model_spec("m", "llama3.1-8b"), PROFILE, Device("gpu0"), loop,
        on_finished=lambda r, x: None, classes=classes,
    )  # fmt: skip
    replica.mark_ready()
    for record in [*records, urgent]:
        loop.at(record.request.arrival_seconds, lambda r=record: replica.submit(r))  # type: ignore[misc]
    loop.run()
    return [*records, urgent]


def test_with_classes_priority_work_waits_and_prefills_ahead_of_a_backlog() -> None:
    fcfs, tiered = _backlog(classes=False), _backlog(classes=True)
    first = {r.request.request_id: r.first_token_seconds for r in fcfs}
    served = sorted(fcfs, key=lambda r: r.first_token_seconds or 0)
    assert served[-1].request.request_id == 20  # first come, first served: last
    urgent = tiered[-1]
    assert urgent.first_token_seconds is not None
    later = [r for r in tiered[:-1] if (r.first_token_seconds or 0) > urgent.first_token_seconds]
    assert len(later) >= 14  # admitted at the first free place, ahead of those still waiting
    assert urgent.first_token_seconds < first[20] / 3
    assert all(r.finish_seconds is not None for r in tiered)


def test_the_replica_feeds_the_gateways_prediction() -> None:
    records = _backlog(classes=True)
    assert records[-1].ttft_seconds is not None
    # every request left the predictor's queue at its first token, each a sample
    loop = EventLoop()
    replica = SimReplica(
        "r", model_spec("m", "llama3.1-8b"), PROFILE, Device("gpu0"), loop,
        on_finished=lambda r, x: None,
    )  # fmt: skip
    replica.mark_ready()
    replica.submit(RequestRecord(SimRequest(0, 0.0, "m", 150, 5), float("inf")))
    assert replica.latency.predict(Priority.DEFAULT, 100) is None
    loop.run()
    assert replica.latency.samples == 1
    assert replica.latency.queued[Priority.DEFAULT] == 0
    assert replica.latency.predict(Priority.DEFAULT, 150) is not None
