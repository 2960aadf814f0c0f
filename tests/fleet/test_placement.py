from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmill.errors import NoCapacity, ServiceUnavailable
from tokenmill.fleet.inventory import GIB, Inventory, Node
from tokenmill.fleet.placement import (
    PLACEMENT_POLICIES,
    Assignment,
    IsolationFilter,
    Occupancy,
    PlacementRequest,
    can_place,
    place,
    release,
)

INVENTORY = Inventory(
    (
        Node.uniform("h1", "us-east", "H100-80GB", 8),
        Node.uniform("h2", "eu-west", "H100-80GB", 8),
        Node.uniform("a1", "us-east", "A100-40GB", 4),
        Node.uniform("l1", "eu-west", "L4", 2),
    )
)


def request(
    replica: str, gib: float, *, deployment: str = "d", **options: object
) -> PlacementRequest:
    return PlacementRequest(deployment, replica, int(gib * GIB), **options)  # type: ignore[arg-type]


def place_all(
    requests: list[PlacementRequest], policy: str = "binpack", start: tuple[Assignment, ...] = ()
) -> list[Assignment]:
    placed = list(start)
    for r in requests:
        placed.append(place(INVENTORY, placed, r, policy))
    return placed[len(start) :]


def test_binpack_fills_one_accelerator_before_the_next() -> None:
    placed = place_all([request(f"r{i}", 10, accelerator_kind="H100-80GB") for i in range(9)])
    assert [a.accelerator_ids for a in placed] == [("h1/0",)] * 8 + [("h1/1",)]
    assert all(a.node_id == "h1" for a in placed)


def test_binpack_prefers_the_tightest_fit_across_kinds() -> None:
    placed = place_all([request(f"r{i}", 10) for i in range(3)])
    # L4s (24 GiB) leave the least free memory, so they fill first; the third does not fit
    # beside two others on l1/0 (4 GiB left) and opens l1/1.
    assert [a.accelerator_ids for a in placed] == [("l1/0",), ("l1/0",), ("l1/1",)]


def test_spread_uses_the_emptiest_accelerators() -> None:
    placed = place_all(
        [request(f"r{i}", 10, accelerator_kind="H100-80GB") for i in range(16)], "spread"
    )
    assert len({a.accelerator_ids for a in placed}) == 16
    assert {a.node_id for a in placed} == {"h1", "h2"}


def test_kind_and_region_constraints() -> None:
    assert place(INVENTORY, [], request("r", 10, accelerator_kind="A100-40GB")).node_id == "a1"
    eu = place(INVENTORY, [], request("r", 10, accelerator_kind="H100-80GB", region="eu-west"))
    assert eu.node_id == "h2"
    assert place(INVENTORY, [], request("r", 30, region="us-east")).node_id == "a1"
    with pytest.raises(NoCapacity, match="kind 'L4' in region 'us-east'"):
        place(INVENTORY, [], request("r", 10, accelerator_kind="L4", region="us-east"))
    with pytest.raises(NoCapacity, match="kind 'TPU'"):
        place(INVENTORY, [], request("r", 10, accelerator_kind="TPU"))
    with pytest.raises(NoCapacity, match="no accelerator in region 'mars'"):
        place(INVENTORY, [], request("r", 10, region="mars"))


def test_a_model_too_big_for_any_accelerator() -> None:
    with pytest.raises(NoCapacity) as caught:
        place(INVENTORY, [], request("big", 100))
    error = caught.value
    assert isinstance(error, ServiceUnavailable)
    assert (error.code, error.status) == ("no_capacity", 503)
    assert "100.0 GiB free" in error.message
    assert "'big' of 'd'" in error.message


def test_memory_is_summed_over_assignments() -> None:
    # Fill both L4s, then the next L4 replica has nowhere to go.
    placed = place_all([request(f"r{i}", 20, accelerator_kind="L4") for i in range(2)])
    assert {a.accelerator_ids for a in placed} == {("l1/0",), ("l1/1",)}
    with pytest.raises(NoCapacity, match=r"4\.5 GiB free"):
        place(INVENTORY, placed, request("r3", 4.5, accelerator_kind="L4"))
    assert place(INVENTORY, placed, request("r3", 4, accelerator_kind="L4")).accelerator_ids == (
        "l1/0",
    )
    freed = release(placed, placed[0])
    assert release(freed, placed[0]) == freed  # safe twice
    assert place(INVENTORY, freed, request("r3", 20, accelerator_kind="L4")).accelerator_ids == (
        "l1/0",
    )


def test_dedicated_replica_never_shares_with_another_tenant() -> None:
    h100 = {"accelerator_kind": "H100-80GB"}
    shared = place(INVENTORY, [], request("s1", 10, **h100))
    assert shared.accelerator_ids == ("h1/0",)
    # Binpack would pick h1/0 (fuller); isolation sends tenant a elsewhere.
    a1 = place(INVENTORY, [shared], request("a1", 70, tenant_id="a", dedicated=True, **h100))
    assert a1.accelerator_ids == ("h1/1",)
    a2 = place(INVENTORY, [shared, a1], request("a2", 5, tenant_id="a", dedicated=True, **h100))
    assert a2.accelerator_ids == ("h1/1",)  # the same tenant packs onto its own accelerator
    b1 = place(INVENTORY, [shared, a1, a2], request("b1", 5, tenant_id="b", dedicated=True, **h100))
    assert b1.accelerator_ids == ("h1/2",)


def test_shared_replica_never_lands_on_a_dedicated_accelerator() -> None:
    h100 = {"accelerator_kind": "H100-80GB"}
    dedicated = place(INVENTORY, [], request("a1", 70, tenant_id="a", dedicated=True, **h100))
    assert dedicated.accelerator_ids == ("h1/0",)
    # h1/0 has the tightest fit for 10 GiB, but it is tenant a's.
    shared = place(INVENTORY, [dedicated], request("s1", 10, tenant_id="a", **h100))
    assert shared.accelerator_ids == ("h1/1",)


def test_isolation_message_names_the_constraint() -> None:
    tiny = Inventory((Node.uniform("n", "r", "L4", 1),))
    shared = place(tiny, [], request("s", 1))
    with pytest.raises(NoCapacity, match="tenant 'a' needs dedicated"):
        place(tiny, [shared], request("a", 1, tenant_id="a", dedicated=True))
    dedicated = place(tiny, [], request("a", 1, tenant_id="a", dedicated=True))
    with pytest.raises(NoCapacity, match="dedicated to a tenant"):
        place(tiny, [dedicated], request("s", 1))


def test_dedicated_needs_a_tenant_and_requests_are_validated() -> None:
    with pytest.raises(ValueError, match="tenant_id"):
        request("x", 1, dedicated=True)
    with pytest.raises(ValueError):
        request("x", 0)
    with pytest.raises(ValueError):
        request("x", 1, accelerators=0)
    with pytest.raises(ValueError, match="unknown placement policy"):
        place(INVENTORY, [], request("x", 1), "random")


def test_multi_accelerator_replica_takes_n_on_one_node() -> None:
    four = place(INVENTORY, [], request("tp4", 240, accelerators=4))
    assert four.node_id == "h1"
    assert four.accelerator_ids == ("h1/0", "h1/1", "h1/2", "h1/3")
    assert four.memory_bytes_per_accelerator == 60 * GIB
    # Six of h1's accelerators are now too full for another 60 GiB share: h2 takes it.
    more = place_all(
        [request(f"f{i}", 30, accelerator_kind="H100-80GB") for i in range(2)], start=(four,)
    )
    assert all(a.node_id == "h1" for a in more)
    second = place(INVENTORY, [four, *more], request("tp4b", 240, accelerators=4))
    assert second.node_id == "h2"
    with pytest.raises(NoCapacity, match="needs 9 eligible accelerators on one node"):
        place(INVENTORY, [], request("tp9", 9, accelerators=9))


def test_occupancy_matches_the_assignment_list() -> None:
    placed = place_all([request(f"r{i}", 7 + i) for i in range(12)])
    occupancy = Occupancy.from_assignments(INVENTORY, placed)
    probe = request("p", 9)
    assert place(INVENTORY, occupancy, probe) == place(INVENTORY, placed, probe)
    with pytest.raises(ValueError, match="already placed"):
        occupancy.add(placed[0])
    occupancy.remove(placed[0])
    occupancy.remove(placed[0])  # safe twice
    rest = Occupancy.from_assignments(INVENTORY, placed[1:])
    assert occupancy.uses == rest.uses
    assert can_place(INVENTORY, occupancy, probe)
    assert not can_place(INVENTORY, occupancy, request("p", 81))


requests_strategy = st.lists(
    st.builds(
        lambda gib, n, tenant, dedicated, kind: (
            gib,
            n,
            tenant,
            dedicated and tenant is not None,
            kind,
        ),
        st.integers(1, 90),
        st.sampled_from([1, 1, 1, 2, 4]),
        st.sampled_from([None, "a", "b"]),
        st.booleans(),
        st.sampled_from([None, None, "H100-80GB", "A100-40GB", "L4"]),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(specs=requests_strategy, policy=st.sampled_from(sorted(PLACEMENT_POLICIES)))
def test_placement_never_overcommits_or_breaks_isolation(
    specs: list[tuple[int, int, str | None, bool, str | None]], policy: str
) -> None:
    occupancy = Occupancy(INVENTORY)
    isolation = IsolationFilter()
    for index, (gib, count, tenant, dedicated, kind) in enumerate(specs):
        r = PlacementRequest("d", f"r{index}", gib * GIB, count, kind, None, tenant, dedicated)
        try:
            assignment = place(INVENTORY, occupancy, r, policy)
        except NoCapacity:
            # Brute force: no node has `count` accelerators that each admit the request.
            for node in INVENTORY.nodes:
                fitting = [
                    a
                    for a in node.accelerators
                    if (kind is None or a.kind == kind)
                    and occupancy.free_bytes(a) >= r.memory_bytes_per_accelerator
                    and isolation.admits(a, occupancy.uses.get(a.id), r)
                ]
                assert len(fitting) < count
            continue
        assert len(set(assignment.accelerator_ids)) == count
        assert {INVENTORY.node_of(a).id for a in assignment.accelerator_ids} == {assignment.node_id}
        occupancy.add(assignment)
    for _, accelerator in INVENTORY.accelerators():
        on_it = [a for a in occupancy.assignments.values() if accelerator.id in a.accelerator_ids]
        assert sum(a.memory_bytes_per_accelerator for a in on_it) <= accelerator.memory_bytes
        dedicated_tenants = {a.tenant_id for a in on_it if a.dedicated}
        assert len(dedicated_tenants) <= 1
        assert not (dedicated_tenants and any(not a.dedicated for a in on_it))


def test_placement_over_a_thousand_accelerators_is_fast() -> None:
    kinds = ["H100-80GB", "A100-80GB", "L40S", "L4"]
    big = Inventory(tuple(Node.uniform(f"n{i}", f"r{i % 4}", kinds[i % 4], 8) for i in range(125)))
    occupancy = Occupancy(big)
    for i in range(1500):
        occupancy.add(place(big, occupancy, request(f"warm{i}", 5 + i % 11), "spread"))
    probes = [request(f"p{i}", 3 + i % 13) for i in range(200)]
    started = time.perf_counter()
    for probe in probes:
        place(big, occupancy, probe)
    per_call_seconds = (time.perf_counter() - started) / len(probes)
    assert per_call_seconds < 0.005, per_call_seconds  # generous: 2 shared cores
