"""Fleet policies under comparison: small classes in a registry that *configure* the real
policies of ``tokenmill.fleet`` (which autoscaler with which settings, which balancer, how much
memory a replica claims and so how many share an accelerator). None of them routes, scales or
places anything itself.

- ``dedicated``: every model keeps replicas sized for its peak, each alone on its accelerators
  (placement's tenant isolation with the model as tenant, and the whole memory claimed).
- ``reactive``: scale on observed load, to zero when idle; one model per accelerator.
- ``tokenmill``: predictive warm-up from recent demand, several models sharing an accelerator
  (a replica claims its weights plus a bounded KV cache), prefix-affine routing.
- ``always_on``: the fleet's accelerators shared equally among the models, a replica alone on
  each, never scaled: dedicated capacity whose size a search chooses (the cost advisor's).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tokenmill.fleet.autoscale import ScalingConfig
from tokenmill.fleet.inventory import AcceleratorKind
from tokenmill.sim.perf import GPU_MEMORY_UTILIZATION, EngineProfile, ModelSpec
from tokenmill.sim.workload import SimRequest


@dataclass(frozen=True, slots=True)
class ModelDemand:
    """What a policy may know of a model's traffic before the run: its peak concurrency when
    every request is served at its unloaded speed (for sizing the dedicated baseline), and
    its longest request (a deployment's context length must hold it)."""

    peak_concurrent_requests: int
    longest_request_tokens: int = 0
    peak_busy_replicas: float = 0.0  # compute seconds per second in the busiest minute
    mean_prompt_tokens: float = 0.0


PEAK_WINDOW_SECONDS = 60.0
SIZING_BATCH = 32  # the weights' read is shared by about this many decoding streams


def model_demands(
    requests: Sequence[SimRequest], profiles: Mapping[str, EngineProfile]
) -> dict[str, ModelDemand]:
    """Per model, from the whole trace: peak concurrency at unloaded speed, the longest
    request, and the peak compute (prefill plus decode at ``SIZING_BATCH``) per second."""

    def unloaded_seconds(request: SimRequest) -> float:
        profile = profiles[request.model_id]
        decode = profile.cost.step_seconds(1, request.prompt_tokens + request.output_tokens // 2)
        ttft = profile.unloaded_ttft_seconds(request.prompt_tokens)
        return ttft + decode * (request.output_tokens - 1)

    def compute_seconds(request: SimRequest) -> float:
        cost = profiles[request.model_id].cost
        context = request.prompt_tokens + request.output_tokens // 2
        per_token = (
            cost.fixed_seconds / SIZING_BATCH
            + cost.per_batched_token_seconds
            + cost.per_kv_token_seconds * context
        )
        return cost.per_batched_token_seconds * request.prompt_tokens + per_token * (
            request.output_tokens
        )

    peaks = peak_concurrency(requests, unloaded_seconds)
    longest: dict[str, int] = defaultdict(int)
    prompts: dict[str, list[int]] = defaultdict(list)
    work: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for r in requests:
        longest[r.model_id] = max(longest[r.model_id], r.prompt_tokens + r.output_tokens)
        prompts[r.model_id].append(r.prompt_tokens)
        work[r.model_id][int(r.arrival_seconds // PEAK_WINDOW_SECONDS)] += compute_seconds(r)
    return {
        m: ModelDemand(
            peak_concurrent_requests=peak,
            longest_request_tokens=longest[m],
            peak_busy_replicas=max(work[m].values()) / PEAK_WINDOW_SECONDS,
            mean_prompt_tokens=sum(prompts[m]) / len(prompts[m]),
        )
        for m, peak in peaks.items()
    }


def peak_concurrency(
    requests: Sequence[SimRequest], unloaded_seconds: Callable[[SimRequest], float]
) -> dict[str, int]:
    """Per model, the most requests overlapping in time if each took its unloaded duration."""
    edges: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for request in requests:
        edges[request.model_id].append((request.arrival_seconds, 1))
        edges[request.model_id].append((request.arrival_seconds + unloaded_seconds(request), -1))
    peaks: dict[str, int] = {}
    for model_id, points in edges.items():
        points.sort()
        level = peak = 0
        for _, change in points:
            level += change
            peak = max(peak, level)
        peaks[model_id] = peak
    return peaks


class SimPolicy:
    name: ClassVar[str] = "base"
    autoscaler: ClassVar[str] = "reactive"
    balancer: ClassVar[str] = "least_outstanding"
    placement: ClassVar[str] = "binpack"
    isolated: ClassVar[bool] = False  # placement: alone on its accelerators (model as tenant)
    fixed: ClassVar[bool] = False  # the fleet placed at the start never changes: no ticks

    def minimum_accelerators(self, configs: Sequence[ScalingConfig]) -> int:
        """The smallest fleet this policy is defined on (dedicated: a replica per model)."""
        return 1

    def size_for(self, accelerators: int, models: int) -> None:
        """Told the fleet's size before the run (only a fixed fleet needs it)."""

    def scaling_config(
        self, model: ModelSpec, demand: ModelDemand, load_seconds: float
    ) -> ScalingConfig:
        raise NotImplementedError

    def autoscaler_options(self, load_seconds: float) -> dict[str, Any]:
        return {}

    def balancer_options(self, block_tokens: int) -> dict[str, Any]:
        return {}

    def replica_memory_bytes(
        self, model: ModelSpec, kind: AcceleratorKind, demand: ModelDemand
    ) -> int:
        """The whole accelerator: the engine takes all of its memory for the KV cache."""
        return kind.memory_bytes


class Dedicated(SimPolicy):
    name = "dedicated"
    isolated = True
    target_load_per_replica = 64.0
    busy_target = 0.7  # size so that the peak minute keeps a replica at most this busy

    def minimum_accelerators(self, configs: Sequence[ScalingConfig]) -> int:
        return sum(config.min_replicas for config in configs)

    def scaling_config(
        self, model: ModelSpec, demand: ModelDemand, load_seconds: float
    ) -> ScalingConfig:
        replicas = max(
            1,
            math.ceil(demand.peak_concurrent_requests / self.target_load_per_replica),
            math.ceil(demand.peak_busy_replicas / self.busy_target),
        )
        return ScalingConfig(
            min_replicas=replicas,
            max_replicas=replicas,
            target_load_per_replica=self.target_load_per_replica,
        )


class Reactive(SimPolicy):
    name = "reactive"
    target_load_per_replica = 32.0

    def scaling_config(
        self, model: ModelSpec, demand: ModelDemand, load_seconds: float
    ) -> ScalingConfig:
        return ScalingConfig(
            min_replicas=0,
            max_replicas=64,
            target_load_per_replica=self.target_load_per_replica,
            scale_out_delay_seconds=10.0,
            scale_in_delay_seconds=60.0,
            idle_seconds_before_zero=60.0,
        )


class Tokenmill(SimPolicy):
    name = "tokenmill"
    autoscaler = "predictive"
    balancer = "prefix_affinity"
    target_load_per_replica = 12.0  # below what a packed replica's KV cache admits at once
    # Outstanding requests are the autoscaler's only load signal; with long prompts a few
    # requests already fill a replica, so the target shrinks to about this many queued
    # prompt tokens per replica.
    target_prompt_tokens_per_replica = 16384.0
    kv_cache_tokens = 32768  # per packed replica, or the longest request; more load: more replicas

    def scaling_config(
        self, model: ModelSpec, demand: ModelDemand, load_seconds: float
    ) -> ScalingConfig:
        # Ski rental: an idle replica is worth keeping while its idle time is small next to
        # what reloading it costs; loads from host memory take well under a second.
        by_tokens = self.target_prompt_tokens_per_replica / max(1.0, demand.mean_prompt_tokens)
        return ScalingConfig(
            min_replicas=0,
            max_replicas=64,
            target_load_per_replica=max(2.0, min(self.target_load_per_replica, by_tokens)),
            scale_out_delay_seconds=5.0,
            scale_in_delay_seconds=60.0,
            idle_seconds_before_zero=max(5.0, 10 * load_seconds),
        )

    def autoscaler_options(self, load_seconds: float) -> dict[str, Any]:
        return {"lead_seconds": max(10.0, 2 * load_seconds), "rate_half_life_seconds": 20.0}

    def balancer_options(self, block_tokens: int) -> dict[str, Any]:
        return {"block_tokens": block_tokens}

    def replica_memory_bytes(
        self, model: ModelSpec, kind: AcceleratorKind, demand: ModelDemand
    ) -> int:
        kv_tokens = max(self.kv_cache_tokens, demand.longest_request_tokens)
        wanted = model.weight_bytes + kv_tokens * model.kv_bytes_per_token
        return min(wanted, int(kind.memory_bytes * GPU_MEMORY_UTILIZATION))


class AlwaysOn(SimPolicy):
    name = "always_on"
    isolated = True
    fixed = True
    target_load_per_replica = 64.0
    replicas_per_model = 1

    def minimum_accelerators(self, configs: Sequence[ScalingConfig]) -> int:
        return len(configs)  # a replica for each model; the search chooses how many more

    def size_for(self, accelerators: int, models: int) -> None:
        self.replicas_per_model = max(1, accelerators // max(1, models))

    def scaling_config(
        self, model: ModelSpec, demand: ModelDemand, load_seconds: float
    ) -> ScalingConfig:
        return ScalingConfig(
            min_replicas=self.replicas_per_model,
            max_replicas=self.replicas_per_model,
            target_load_per_replica=self.target_load_per_replica,
        )


SIM_POLICIES: Mapping[str, type[SimPolicy]] = {
    cls.name: cls for cls in (Dedicated, Reactive, Tokenmill, AlwaysOn)
}


def build_sim_policy(name: str) -> SimPolicy:
    try:
        return SIM_POLICIES[name]()
    except KeyError:
        known = ", ".join(sorted(SIM_POLICIES))
        raise ValueError(f"unknown simulation policy {name!r}; known: {known}") from None
