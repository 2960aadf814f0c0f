"""Where a replica goes: a pipeline of filters (which accelerators can take it) and a scorer
(which of those is best), after GPUStack's scheduler.

Pure: the inventory and the current assignments come in, an ``Assignment`` comes out or
``NoCapacity`` says which constraint ruled every accelerator out. The live fleet and the
simulator both call ``place``; the simulator keeps an ``Occupancy`` up to date with
``add``/``remove`` instead of passing the whole assignment list each time.

Memory: ``PlacementRequest.memory_bytes`` is the replica's whole footprint (weights plus KV
cache). A replica over N accelerators (tensor parallel) puts an equal share,
``ceil(memory_bytes / N)``, on each of N accelerators of one node. An accelerator's free memory
is its memory minus the shares of every assignment on it.

Isolation: a dedicated replica belongs to one tenant and shares an accelerator only with that
tenant's other dedicated replicas; a serverless (shared) replica never lands on an accelerator
holding any dedicated replica. Both directions are one filter, so neither can be bypassed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from tokenmill.errors import NoCapacity
from tokenmill.fleet.inventory import GIB, Accelerator, Inventory, Node


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    deployment_id: str
    replica_id: str
    memory_bytes: int
    accelerators: int = 1
    accelerator_kind: str | None = None
    region: str | None = None
    tenant_id: str | None = None
    dedicated: bool = False

    def __post_init__(self) -> None:
        if self.memory_bytes <= 0:
            raise ValueError("a replica needs a positive memory footprint")
        if self.accelerators < 1:
            raise ValueError("a replica needs at least one accelerator")
        if self.dedicated and self.tenant_id is None:
            raise ValueError("a dedicated replica belongs to a tenant; give tenant_id")

    @property
    def memory_bytes_per_accelerator(self) -> int:
        return math.ceil(self.memory_bytes / self.accelerators)


@dataclass(frozen=True, slots=True)
class Assignment:
    """A placed replica: its accelerators on one node and what it holds there."""

    replica_id: str
    deployment_id: str
    node_id: str
    accelerator_ids: tuple[str, ...]
    memory_bytes: int
    tenant_id: str | None = None
    dedicated: bool = False

    @property
    def memory_bytes_per_accelerator(self) -> int:
        return math.ceil(self.memory_bytes / len(self.accelerator_ids))


@dataclass(slots=True)
class AcceleratorUse:
    used_bytes: int = 0
    shared_replicas: int = 0
    dedicated_replicas: dict[str, int] = field(default_factory=dict)  # tenant id -> count


@dataclass(slots=True)
class Occupancy:
    """Per-accelerator use, kept incrementally; build once, then ``add``/``remove``."""

    inventory: Inventory
    uses: dict[str, AcceleratorUse] = field(default_factory=dict)
    assignments: dict[str, Assignment] = field(default_factory=dict)  # by replica id

    @classmethod
    def from_assignments(cls, inventory: Inventory, assignments: Iterable[Assignment]) -> Occupancy:
        occupancy = cls(inventory)
        for assignment in assignments:
            occupancy.add(assignment)
        return occupancy

    def use(self, accelerator_id: str) -> AcceleratorUse:
        use = self.uses.get(accelerator_id)
        if use is None:
            use = self.uses[accelerator_id] = AcceleratorUse()
        return use

    def free_bytes(self, accelerator: Accelerator) -> int:
        use = self.uses.get(accelerator.id)
        return accelerator.memory_bytes - (use.used_bytes if use else 0)

    def add(self, assignment: Assignment) -> None:
        if assignment.replica_id in self.assignments:
            raise ValueError(f"replica {assignment.replica_id!r} is already placed")
        share = assignment.memory_bytes_per_accelerator
        for accelerator_id in assignment.accelerator_ids:
            self.inventory.accelerator(accelerator_id)  # KeyError for an unknown accelerator
            use = self.use(accelerator_id)
            use.used_bytes += share
            if assignment.dedicated and assignment.tenant_id is not None:
                tenants = use.dedicated_replicas
                tenants[assignment.tenant_id] = tenants.get(assignment.tenant_id, 0) + 1
            else:
                use.shared_replicas += 1
        self.assignments[assignment.replica_id] = assignment

    def remove(self, assignment: Assignment) -> None:
        """Undo ``add``; removing a replica that is not placed does nothing (safe twice)."""
        if self.assignments.pop(assignment.replica_id, None) is None:
            return
        share = assignment.memory_bytes_per_accelerator
        for accelerator_id in assignment.accelerator_ids:
            use = self.uses[accelerator_id]
            use.used_bytes -= share
            if assignment.dedicated and assignment.tenant_id is not None:
                tenants = use.dedicated_replicas
                tenants[assignment.tenant_id] -= 1
                if not tenants[assignment.tenant_id]:
                    del tenants[assignment.tenant_id]
            else:
                use.shared_replicas -= 1


class Filter:
    """Rules accelerators in or out; ``explain`` says why when it ruled out the last one."""

    name: ClassVar[str] = "filter"
    node_level: ClassVar[bool] = False  # decides per node through ``admits_node``

    def applies(self, request: PlacementRequest) -> bool:
        """Whether this filter can rule anything out for ``request`` (skipped if not)."""
        return True

    def admits_node(self, node: Node, request: PlacementRequest) -> bool:
        return True

    def admits(
        self, accelerator: Accelerator, use: AcceleratorUse | None, request: PlacementRequest
    ) -> bool:
        return True

    def explain(self, request: PlacementRequest) -> str:
        raise NotImplementedError


class KindFilter(Filter):
    name = "kind"

    def applies(self, request: PlacementRequest) -> bool:
        return request.accelerator_kind is not None

    def admits(
        self, accelerator: Accelerator, use: AcceleratorUse | None, request: PlacementRequest
    ) -> bool:
        return request.accelerator_kind is None or accelerator.kind == request.accelerator_kind

    def explain(self, request: PlacementRequest) -> str:
        where = f" in region {request.region!r}" if request.region is not None else ""
        return f"no accelerator of kind {request.accelerator_kind!r}{where}"


class RegionFilter(Filter):
    name = "region"
    node_level = True

    def applies(self, request: PlacementRequest) -> bool:
        return request.region is not None

    def admits_node(self, node: Node, request: PlacementRequest) -> bool:
        return request.region is None or node.region == request.region

    def explain(self, request: PlacementRequest) -> str:
        return f"no accelerator in region {request.region!r}"


class IsolationFilter(Filter):
    name = "isolation"

    def admits(
        self, accelerator: Accelerator, use: AcceleratorUse | None, request: PlacementRequest
    ) -> bool:
        if use is None:
            return True
        if request.dedicated:
            if use.shared_replicas:
                return False
            return all(tenant == request.tenant_id for tenant in use.dedicated_replicas)
        return not use.dedicated_replicas

    def explain(self, request: PlacementRequest) -> str:
        if request.dedicated:
            return (
                f"every eligible accelerator holds another tenant's or a shared replica; "
                f"tenant {request.tenant_id!r} needs dedicated accelerators"
            )
        return "every eligible accelerator is dedicated to a tenant"


class MemoryFilter(Filter):
    name = "memory"

    def admits(
        self, accelerator: Accelerator, use: AcceleratorUse | None, request: PlacementRequest
    ) -> bool:
        free = accelerator.memory_bytes - (use.used_bytes if use else 0)
        return free >= request.memory_bytes_per_accelerator

    def explain(self, request: PlacementRequest) -> str:
        return (
            f"no eligible accelerator has {request.memory_bytes_per_accelerator / GIB:.1f} GiB free"
        )


class Scorer:
    """Ranks an admitted accelerator; higher is better. A candidate's score is its sum."""

    def score(self, free_after_bytes: int) -> float:
        raise NotImplementedError


class BestFitScorer(Scorer):
    """Bin-packing: the least memory left over, so whole accelerators stay empty."""

    def score(self, free_after_bytes: int) -> float:
        return -free_after_bytes


class MostFreeScorer(Scorer):
    """Spreading: the most memory left over, so replicas land apart."""

    def score(self, free_after_bytes: int) -> float:
        return free_after_bytes


@dataclass(frozen=True, slots=True)
class PlacementPolicy:
    name: str
    filters: tuple[Filter, ...]
    scorer: Scorer


_FILTERS: tuple[Filter, ...] = (RegionFilter(), KindFilter(), IsolationFilter(), MemoryFilter())

PLACEMENT_POLICIES: Mapping[str, PlacementPolicy] = {
    "binpack": PlacementPolicy("binpack", _FILTERS, BestFitScorer()),
    "spread": PlacementPolicy("spread", _FILTERS, MostFreeScorer()),
}


def place(
    inventory: Inventory,
    assignments: Sequence[Assignment] | Occupancy,
    request: PlacementRequest,
    policy: str | PlacementPolicy = "binpack",
) -> Assignment:
    """The best placement for ``request`` under ``policy``; ``NoCapacity`` if there is none.

    Ties go to the earlier accelerator in inventory order, so placement is deterministic.
    """
    chosen = policy if isinstance(policy, PlacementPolicy) else _policy(policy)
    occupancy = (
        assignments
        if isinstance(assignments, Occupancy)
        else Occupancy.from_assignments(inventory, assignments)
    )
    share = request.memory_bytes_per_accelerator
    filters, score = chosen.filters, chosen.scorer.score
    active = [(i, f) for i, f in enumerate(filters) if f.applies(request)]
    node_checks = [(i, f.admits_node) for i, f in active if f.node_level]
    checks = [(i, f.admits) for i, f in active if not f.node_level]
    rejected = [0] * len(filters)
    uses = occupancy.uses
    wanted = request.accelerators
    best: tuple[float, Node, list[tuple[float, int, Accelerator]]] | None = None
    most_on_one_node = 0
    for node in inventory.nodes:
        node_rejected_by = next((i for i, ok in node_checks if not ok(node, request)), None)
        if node_rejected_by is not None:
            rejected[node_rejected_by] += len(node.accelerators)
            continue
        admitted: list[tuple[float, int, Accelerator]] = []
        for position, accelerator in enumerate(node.accelerators):
            use = uses.get(accelerator.id)
            for i, ok in checks:
                if not ok(accelerator, use, request):
                    rejected[i] += 1
                    break
            else:
                free_after = accelerator.memory_bytes - (use.used_bytes if use else 0) - share
                admitted.append((score(free_after), position, accelerator))
        if len(admitted) > most_on_one_node:
            most_on_one_node = len(admitted)
        if len(admitted) < wanted:
            continue
        if wanted == 1:
            picked = [max(admitted, key=lambda item: item[0])]  # first of equals wins
        else:
            picked = sorted(admitted, key=lambda item: (-item[0], item[1]))[:wanted]
        total = sum(item[0] for item in picked)
        if best is None or total > best[0]:
            best = (total, node, picked)
    if best is None:
        raise NoCapacity(_why(inventory, request, filters, rejected, most_on_one_node))
    _, node, picked = best
    return Assignment(
        replica_id=request.replica_id,
        deployment_id=request.deployment_id,
        node_id=node.id,
        accelerator_ids=tuple(item[2].id for item in sorted(picked, key=lambda item: item[1])),
        memory_bytes=request.memory_bytes,
        tenant_id=request.tenant_id,
        dedicated=request.dedicated,
    )


def can_place(
    inventory: Inventory,
    assignments: Sequence[Assignment] | Occupancy,
    request: PlacementRequest,
    policy: str | PlacementPolicy = "binpack",
) -> bool:
    try:
        place(inventory, assignments, request, policy)
    except NoCapacity:
        return False
    return True


def release(assignments: Sequence[Assignment], assignment: Assignment) -> tuple[Assignment, ...]:
    """The assignments without ``assignment`` (matched by replica id); safe to call twice."""
    return tuple(a for a in assignments if a.replica_id != assignment.replica_id)


def _policy(name: str) -> PlacementPolicy:
    try:
        return PLACEMENT_POLICIES[name]
    except KeyError:
        known = ", ".join(sorted(PLACEMENT_POLICIES))
        raise ValueError(f"unknown placement policy {name!r}; known: {known}") from None


def _why(
    inventory: Inventory,
    request: PlacementRequest,
    filters: Sequence[Filter],
    rejected: Sequence[int],
    most_on_one_node: int,
) -> str:
    head = f"No capacity for replica {request.replica_id!r} of {request.deployment_id!r}: "
    total = remaining = len(inventory)
    if total == 0:
        return head + "the inventory has no accelerators."
    trail: list[str] = []
    for f, count in zip(filters, rejected, strict=True):
        if not count:
            continue
        remaining -= count
        if remaining == 0:
            narrowed = "".join(f", {step}" for step in trail)
            return head + f"{f.explain(request)} ({total} accelerators{narrowed})."
        trail.append(f"{remaining} after the {f.name} constraint")
    return head + (
        f"it needs {request.accelerators} eligible accelerators on one node, "
        f"and the most any node has is {most_on_one_node}."
    )
