"""The simulated fleet carrying out the real autoscaler's, placement's and balancer's calls."""

from tokenmill.fleet.inventory import KNOWN_ACCELERATOR_KINDS
from tokenmill.sim.events import EventLoop
from tokenmill.sim.fleet import SimFleet
from tokenmill.sim.perf import EngineProfile, ModelSpec, gpu_profile, model_spec
from tokenmill.sim.policies import ModelDemand, build_sim_policy
from tokenmill.sim.replica import ReplicaState, RequestRecord
from tokenmill.sim.run import build_inventory
from tokenmill.sim.workload import SimRequest

H100 = KNOWN_ACCELERATOR_KINDS["H100-80GB"]


def make_fleet(
    policy: str, models: list[ModelSpec], accelerators: int
) -> tuple[EventLoop, SimFleet, list[RequestRecord]]:
    loop = EventLoop()
    done: list[RequestRecord] = []

    def profile_for(model: ModelSpec, memory_bytes: int) -> EngineProfile:
        return gpu_profile(model, H100, memory_bytes)

    fleet = SimFleet(
        loop,
        build_inventory(H100, accelerators, 8),
        H100,
        models,
        {m.model_id: ModelDemand(1, 4000) for m in models},
        build_sim_policy(policy),
        profile_for,
        load_bandwidth_bytes_per_second=64e9,
        on_finished=done.append,
    )
    return loop, fleet, done


def send(loop: EventLoop, fleet: SimFleet, at: float, model_id: str, request_id: int) -> None:
    request = SimRequest(request_id, at, model_id, 500, 50)
    loop.at(at, lambda: fleet.submit(RequestRecord(request, 1.0)))


def test_tokenmill_packs_models_onto_one_accelerator_and_scales_them_to_zero() -> None:
    models = [model_spec(f"m{i}", "llama3.1-8b") for i in range(3)]
    loop, fleet, done = make_fleet("tokenmill", models, 8)
    for i, model in enumerate(models):
        send(loop, fleet, 1.0 + i, model.model_id, i)
    loop.at(0.0, fleet.tick)
    loop.run(until_seconds=5.0)
    accelerators = {a.accelerator_ids for a in fleet.assignments.values()}
    assert len(fleet.assignments) == 3 and len(accelerators) == 1
    assert fleet.accelerators_in_use() == 1
    assert len(done) == 3 and all(r.cold_start for r in done)
    # a cold start is asked for at arrival, not at the next tick: load 16 GB at 64 GB/s
    assert all(r.ttft_seconds is not None and r.ttft_seconds < 0.5 for r in done)

    def ticks() -> None:
        fleet.tick()
        loop.after(2.0, ticks)

    loop.at(6.0, ticks)
    loop.run(until_seconds=60.0)
    assert fleet.assignments == {}  # idle past idle_seconds_before_zero: scaled to zero
    assert fleet.counters.replicas_stopped == 3


def test_dedicated_places_each_model_alone_and_keeps_it() -> None:
    models = [model_spec(f"m{i}", "qwen2.5-1.5b") for i in range(3)]
    loop, fleet, _ = make_fleet("dedicated", models, 8)

    def ticks() -> None:
        fleet.tick()
        loop.after(2.0, ticks)

    loop.at(0.0, ticks)
    loop.run(until_seconds=400.0)
    accelerators = [a.accelerator_ids for a in fleet.assignments.values()]
    assert len(accelerators) == len(set(accelerators)) == 3
    states = fleet.replica_states()
    assert states[ReplicaState.READY] == 3


def test_a_full_fleet_leaves_requests_queued_until_capacity_frees() -> None:
    models = [model_spec(f"m{i}", "llama3.1-8b") for i in range(2)]
    loop, fleet, done = make_fleet("reactive", models, 1)  # whole-accelerator replicas
    send(loop, fleet, 0.0, "m0", 0)
    send(loop, fleet, 0.1, "m1", 1)

    def ticks() -> None:
        fleet.tick()
        loop.after(2.0, ticks)

    loop.at(0.0, ticks)
    loop.run(until_seconds=30.0)
    assert [r.request.model_id for r in done] == ["m0"]
    assert fleet.counters.placement_failures > 0
    loop.run(until_seconds=200.0)  # m0 idles to zero, then m1 gets the accelerator
    assert [r.request.model_id for r in done] == ["m0", "m1"]
    assert done[1].ttft_seconds is not None and done[1].ttft_seconds > 60.0
