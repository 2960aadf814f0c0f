"""The simulated fleet: deployments, replicas on accelerators, and the real fleet policies.

Each model is a deployment with its own autoscaler (``tokenmill.fleet.autoscale``, built by
name) asked every tick with a ``LoadSnapshot``; its decisions are carried out here, placing
new replicas with ``tokenmill.fleet.placement.place`` against an ``Occupancy`` and choosing a
replica for each request with ``tokenmill.fleet.balancer`` (the router's ``PrefixIndex``
remembers which prefix blocks went where). A request that finds no ready replica waits in the
deployment's queue; a deployment with no replica at all is asked at once (as a gateway's
activator would), so a cold start does not wait for the next tick.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tokenmill.errors import NoCapacity, RateLimited
from tokenmill.fleet.autoscale import Autoscaler, LoadSnapshot, ScalingDecision, build_autoscaler
from tokenmill.fleet.balancer import BalancingPolicy, PrefixIndex, ReplicaLoad, build_policy
from tokenmill.fleet.inventory import AcceleratorKind, Inventory
from tokenmill.fleet.placement import Assignment, Occupancy, PlacementRequest, place
from tokenmill.gateway.tiers import hold_to_target
from tokenmill.protocol.tiers import TIER_NAMES, ServiceTier
from tokenmill.sim.events import EventLoop
from tokenmill.sim.perf import EngineProfile, ModelSpec
from tokenmill.sim.policies import ModelDemand, SimPolicy
from tokenmill.sim.replica import Device, ReplicaState, RequestRecord, SimReplica

ProfileFor = Callable[[ModelSpec, int], EngineProfile]


@dataclass(slots=True)
class Deployment:
    model: ModelSpec
    memory_bytes: int
    profile: EngineProfile
    load_seconds: float
    autoscaler: Autoscaler
    balancer: BalancingPolicy
    queue: deque[RequestRecord] = field(default_factory=deque)
    replicas: list[SimReplica] = field(default_factory=list)
    arrived_requests_total: int = 0
    last_request_seconds: float | None = None
    replicas_started: int = 0


@dataclass(slots=True)
class FleetCounters:
    placements: int = 0
    placement_failures: int = 0
    replicas_stopped: int = 0
    accelerator_seconds: float = 0.0  # accelerators holding at least one replica, integrated
    replica_seconds: float = 0.0


class SimFleet:
    def __init__(
        self,
        loop: EventLoop,
        inventory: Inventory,
        kind: AcceleratorKind,
        models: list[ModelSpec],
        demand: dict[str, ModelDemand],
        policy: SimPolicy,
        profile_for: ProfileFor,
        *,
        load_bandwidth_bytes_per_second: float,
        engine_start_seconds: float = 0.0,
        prefix_block_tokens: int = 512,
        on_finished: Callable[[RequestRecord], None],
        tiers: bool = False,
    ) -> None:
        """``tiers``: replicas serve queue classes and requests are held to their tier's
        time-to-first-token target before they are sent (``tokenmill.gateway.tiers``)."""
        self.tiers = tiers
        self.loop = loop
        self.inventory = inventory
        self.kind = kind
        self.policy = policy
        self.occupancy = Occupancy(inventory)
        self.prefix_index = PrefixIndex(capacity_blocks=4096)
        self.prefix_block_tokens = prefix_block_tokens
        self.devices: dict[str, Device] = {}
        self.assignments: dict[str, Assignment] = {}
        self.counters = FleetCounters()
        self._on_finished = on_finished
        self._replicas_on: dict[str, int] = {}
        self._replica_count = 0
        self._accounted_seconds = 0.0
        self.deployments: dict[str, Deployment] = {}
        for model in models:
            model_demand = demand.get(model.model_id, ModelDemand(0))
            memory = policy.replica_memory_bytes(model, kind, model_demand)
            load_seconds = (
                engine_start_seconds + model.weight_bytes / load_bandwidth_bytes_per_second
            )
            config = policy.scaling_config(model, model_demand, load_seconds)
            self.deployments[model.model_id] = Deployment(
                model=model,
                memory_bytes=memory,
                profile=profile_for(model, memory),
                load_seconds=load_seconds,
                autoscaler=build_autoscaler(
                    policy.autoscaler, config, **policy.autoscaler_options(load_seconds)
                ),
                balancer=build_policy(
                    policy.balancer, **policy.balancer_options(prefix_block_tokens)
                ),
            )

    def minimum_accelerators(self) -> int:
        configs = [d.autoscaler.config for d in self.deployments.values()]
        return self.policy.minimum_accelerators(configs)

    # requests -------------------------------------------------------------------------------

    def submit(self, record: RequestRecord) -> None:
        deployment = self.deployments[record.request.model_id]
        deployment.arrived_requests_total += 1
        deployment.last_request_seconds = self.loop.now_seconds
        if not self._route(deployment, record):
            record.cold_start = True
            deployment.queue.append(record)
            if not deployment.replicas:
                self.evaluate(deployment)

    def _route(self, deployment: Deployment, record: RequestRecord) -> bool:
        ready = [r for r in deployment.replicas if r.state is ReplicaState.READY]
        if not ready:
            return False
        request = record.request
        chosen: SimReplica | None = ready[0]
        if len(ready) > 1:
            loads = [
                ReplicaLoad(
                    replica_id=r.replica_id,
                    outstanding_tokens=r.outstanding_tokens,
                    in_flight=r.outstanding_requests,
                    cached_blocks=self.prefix_index.cached(r.replica_id),
                )
                for r in ready
            ]
            picked = deployment.balancer.choose(loads, request.block_hashes, request.prompt_tokens)
            chosen = next((r for r in ready if r.replica_id == picked), None)
        if chosen is None:
            return False
        if self.tiers and not self._hold_to_target(chosen, record):
            return True  # refused: answered at once with a 429
        if request.block_hashes:
            self.prefix_index.record(chosen.replica_id, request.block_hashes)
        chosen.submit(record)
        return True

    def _hold_to_target(self, replica: SimReplica, record: RequestRecord) -> bool:
        """The gateway's decision: the tier to serve in, or False when refused. Every tier is
        held to the request's own first-token SLO."""
        prompt = record.request.prompt_tokens
        predicted = {t: replica.latency.predict(t.priority, prompt) for t in ServiceTier}
        targets = dict.fromkeys(TIER_NAMES, record.slo_ttft_seconds)
        try:
            record.tier = hold_to_target(
                record.tier, predicted, targets, frozenset(TIER_NAMES), record.request.model_id
            )
        except RateLimited:
            record.refused = True
            return False
        return True

    def _finished(self, replica: SimReplica, record: RequestRecord) -> None:
        self._on_finished(record)
        if replica.state is ReplicaState.DRAINING and replica.outstanding_requests == 0:
            self._stop(self.deployments[replica.model.model_id], replica)

    # scaling ----------------------------------------------------------------------------------

    def tick(self) -> None:
        for deployment in self.deployments.values():
            idle = not deployment.replicas and not deployment.queue
            if idle and deployment.autoscaler.config.min_replicas == 0:
                continue
            self.evaluate(deployment)

    def snapshot(self, deployment: Deployment) -> LoadSnapshot:
        ready = starting = queued = in_flight = 0
        for replica in deployment.replicas:
            if replica.state is ReplicaState.READY:
                ready += 1
            elif replica.state is ReplicaState.LOADING:
                starting += 1
            queued += len(replica.waiting)
            in_flight += replica.running_requests
        return LoadSnapshot(
            now_seconds=self.loop.now_seconds,
            ready_replicas=ready,
            starting_replicas=starting,
            queued_requests=queued + len(deployment.queue),
            in_flight_requests=in_flight,
            last_request_at_seconds=deployment.last_request_seconds,
            arrived_requests_total=deployment.arrived_requests_total,
        )

    def evaluate(self, deployment: Deployment) -> ScalingDecision:
        decision = deployment.autoscaler.decide(self.snapshot(deployment))
        if decision.delta > 0:
            for _ in range(decision.delta):
                if not self._start(deployment):
                    break
        elif decision.delta < 0:
            self._shrink(deployment, -decision.delta)
        return decision

    def _start(self, deployment: Deployment) -> bool:
        model = deployment.model
        deployment.replicas_started += 1
        replica_id = f"{model.model_id}/r{deployment.replicas_started}"
        request = PlacementRequest(
            deployment_id=model.model_id,
            replica_id=replica_id,
            memory_bytes=deployment.memory_bytes,
            accelerator_kind=self.kind.name,
            tenant_id=model.model_id if self.policy.isolated else None,
            dedicated=self.policy.isolated,
        )
        try:
            assignment = place(self.inventory, self.occupancy, request, self.policy.placement)
        except NoCapacity:
            self.counters.placement_failures += 1
            return False
        self._account()
        self.occupancy.add(assignment)
        self.assignments[replica_id] = assignment
        self.counters.placements += 1
        accelerator_id = assignment.accelerator_ids[0]
        self._replicas_on[accelerator_id] = self._replicas_on.get(accelerator_id, 0) + 1
        self._replica_count += 1
        device = self.devices.get(accelerator_id)
        if device is None:
            device = self.devices[accelerator_id] = Device(accelerator_id)
        replica = SimReplica(
            replica_id,
            model,
            deployment.profile,
            device,
            self.loop,
            on_finished=self._finished,
            prefix_block_tokens=self.prefix_block_tokens,
            classes=self.tiers,
        )
        deployment.replicas.append(replica)
        self.loop.after(deployment.load_seconds, lambda: self._ready(deployment, replica))
        return True

    def _ready(self, deployment: Deployment, replica: SimReplica) -> None:
        if replica.state is not ReplicaState.LOADING:
            return
        replica.mark_ready()
        while deployment.queue and self._route(deployment, deployment.queue[0]):
            deployment.queue.popleft()

    def _shrink(self, deployment: Deployment, count: int) -> None:
        """Cancel loading replicas first, then drain the least loaded ready ones."""
        loading = [r for r in deployment.replicas if r.state is ReplicaState.LOADING]
        ready = sorted(
            (r for r in deployment.replicas if r.state is ReplicaState.READY),
            key=lambda r: r.outstanding_tokens,
        )
        for replica in (loading + ready)[:count]:
            if replica.state is ReplicaState.LOADING or replica.outstanding_requests == 0:
                self._stop(deployment, replica)
            else:
                replica.state = ReplicaState.DRAINING

    def _stop(self, deployment: Deployment, replica: SimReplica) -> None:
        self._account()
        replica.stop()
        deployment.replicas.remove(replica)
        assignment = self.assignments.pop(replica.replica_id)
        self.occupancy.remove(assignment)
        self.prefix_index.forget(replica.replica_id)
        accelerator_id = assignment.accelerator_ids[0]
        self._replicas_on[accelerator_id] -= 1
        if not self._replicas_on[accelerator_id]:
            del self._replicas_on[accelerator_id]
        self._replica_count -= 1
        self.counters.replicas_stopped += 1
        # requests that were waiting inside the replica go back to the deployment
        for seq in list(replica.waiting):
            deployment.queue.appendleft(seq.record)
        replica.waiting.clear()

    # accounting -------------------------------------------------------------------------------

    def _account(self) -> None:
        now = self.loop.now_seconds
        elapsed = now - self._accounted_seconds
        self.counters.accelerator_seconds += elapsed * len(self._replicas_on)
        self.counters.replica_seconds += elapsed * self._replica_count
        self._accounted_seconds = now

    def accelerators_in_use(self) -> int:
        return len(self._replicas_on)

    def replica_states(self) -> dict[ReplicaState, int]:
        counts = dict.fromkeys(ReplicaState, 0)
        for deployment in self.deployments.values():
            for replica in deployment.replicas:
                counts[replica.state] += 1
        return counts

    def busy_seconds(self) -> float:
        now = self.loop.now_seconds
        return sum(device.busy_until(now) for device in self.devices.values())

    def finish(self) -> None:
        self._account()
