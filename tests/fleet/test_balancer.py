from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmill.engine.blocks import BLOCK_TOKENS
from tokenmill.engine.blocks import chain_hash as engine_chain_hash
from tokenmill.fleet.balancer import (
    BALANCING_POLICIES,
    DEFAULT_BLOCK_TOKENS,
    ROOT_HASH,
    BalancingPolicy,
    PrefixAffinity,
    PrefixIndex,
    ReplicaLoad,
    RoundRobin,
    build_policy,
    choose,
    matched_blocks,
    prefix_blocks,
)

SYSTEM_PROMPT = list(range(1000, 1064))  # four full blocks


def test_prefix_blocks_use_the_engine_blocks_and_formula() -> None:
    assert DEFAULT_BLOCK_TOKENS == BLOCK_TOKENS
    tokens = list(range(40))
    expected, previous = [], ROOT_HASH
    for start in (0, 16):
        previous = engine_chain_hash(previous, tokens[start : start + 16])
        expected.append(previous)
    assert prefix_blocks(tokens) == tuple(expected)  # the partial third block is left out


def test_prefix_blocks_are_the_same_in_every_process() -> None:
    code = (
        "from tokenmill.fleet.balancer import prefix_blocks;"
        "print(prefix_blocks(list(range(64))), prefix_blocks('x' * 40))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert outputs == {f"{prefix_blocks(list(range(64)))} {prefix_blocks('x' * 40)}\n"}


def test_prefix_blocks_chain_and_text() -> None:
    a = prefix_blocks([*SYSTEM_PROMPT, 1, 2, 3] * 2)
    b = prefix_blocks([*SYSTEM_PROMPT, 9, 9, 9] * 2)
    assert a[:4] == b[:4] and a[4:] != b[4:]
    # Same block content after a different prefix hashes differently (the chain).
    assert prefix_blocks([0] * 16 + [5] * 16)[1] != prefix_blocks([1] * 16 + [5] * 16)[1]
    text = prefix_blocks("You are a helpful assistant. " * 4, 16)
    assert len(text) == len(("You are a helpful assistant. " * 4).encode()) // 16
    assert text == prefix_blocks(("You are a helpful assistant. " * 4).encode(), 16)
    assert prefix_blocks("short", 16) == ()
    with pytest.raises(ValueError):
        prefix_blocks([1], 0)


def test_matched_blocks_stops_at_the_first_miss() -> None:
    assert matched_blocks({1, 2, 4}, [1, 2, 3, 4]) == 2
    assert matched_blocks(set(), [1]) == 0
    assert matched_blocks({1}, []) == 0


def test_least_outstanding_picks_fewest_tokens_then_fewest_requests() -> None:
    replicas = [
        ReplicaLoad("a", outstanding_tokens=900, in_flight=1),
        ReplicaLoad("b", outstanding_tokens=300, in_flight=4),
        ReplicaLoad("c", outstanding_tokens=300, in_flight=2),
        ReplicaLoad("d", ready=False),
    ]
    assert choose(replicas, (), 100) == "c"
    assert choose(replicas, (), 100, "least_outstanding") == "c"
    assert choose([ReplicaLoad("d", ready=False)], (), 100) is None


def test_prefix_affinity_sends_a_shared_prefix_to_the_replica_holding_it() -> None:
    index = PrefixIndex()
    first = prefix_blocks([*SYSTEM_PROMPT, 1, 2, 3])
    index.record("b", first)
    second = prefix_blocks([*SYSTEM_PROMPT, 7, 7, 7, 7])
    replicas = [
        ReplicaLoad("a", outstanding_tokens=0, cached_blocks=index.cached("a")),
        ReplicaLoad("b", outstanding_tokens=2000, in_flight=3, cached_blocks=index.cached("b")),
        ReplicaLoad("c", outstanding_tokens=100, cached_blocks=index.cached("c")),
    ]
    assert choose(replicas, second, 200, "prefix_affinity") == "b"
    # Without a shared prefix, least outstanding decides.
    assert choose(replicas, prefix_blocks(list(range(64))), 200, "prefix_affinity") == "a"
    assert choose(replicas, (), 200, "prefix_affinity") == "a"


def test_longest_match_wins_among_holders() -> None:
    long_prompt = prefix_blocks(SYSTEM_PROMPT)
    replicas = [
        ReplicaLoad("short", outstanding_tokens=10, cached_blocks=set(long_prompt[:1])),
        ReplicaLoad("long", outstanding_tokens=500, cached_blocks=set(long_prompt)),
        ReplicaLoad("idle"),
    ]
    assert choose(replicas, long_prompt, 64, "prefix_affinity") == "long"


def test_imbalance_bound_overrides_affinity() -> None:
    blocks = prefix_blocks(SYSTEM_PROMPT)  # 64 cached tokens on "hot"
    policy = PrefixAffinity(max_imbalance_tokens=1000)
    cold = ReplicaLoad("cold", outstanding_tokens=0)
    within = ReplicaLoad("hot", outstanding_tokens=1064, cached_blocks=set(blocks))
    beyond = ReplicaLoad("hot", outstanding_tokens=1065, cached_blocks=set(blocks))
    # After the request: hot carries 1064 + 64 - 64, cold 0 + 64: 1000 apart is allowed.
    assert policy.choose([cold, within], blocks, 64) == "hot"
    assert policy.choose([cold, beyond], blocks, 64) == "cold"


def test_affinity_ignores_replicas_that_are_not_ready() -> None:
    blocks = prefix_blocks(SYSTEM_PROMPT)
    replicas = [
        ReplicaLoad("holder", ready=False, cached_blocks=set(blocks)),
        ReplicaLoad("other", outstanding_tokens=50),
    ]
    assert choose(replicas, blocks, 64, "prefix_affinity") == "other"


def test_round_robin_skips_replicas_that_are_not_ready() -> None:
    policy = RoundRobin()
    replicas = [ReplicaLoad("a"), ReplicaLoad("b", ready=False), ReplicaLoad("c")]
    assert [choose(replicas, (), 1, policy) for _ in range(4)] == ["a", "c", "a", "c"]
    with pytest.raises(ValueError, match="keeps state"):
        choose(replicas, (), 1, "round_robin")


def test_registry() -> None:
    assert set(BALANCING_POLICIES) == {"least_outstanding", "prefix_affinity", "round_robin"}
    policy = build_policy("prefix_affinity", max_imbalance_tokens=5)
    assert isinstance(policy, PrefixAffinity) and policy.max_imbalance_tokens == 5
    with pytest.raises(ValueError, match="unknown balancing policy"):
        build_policy("random")


def test_prefix_index_is_a_bounded_lru_that_keeps_chain_heads() -> None:
    index = PrefixIndex(capacity_blocks=6)
    first = prefix_blocks(list(range(64)))  # 4 blocks
    second = prefix_blocks(list(range(100, 164)))  # 4 blocks
    index.record("r", first)
    index.record("r", second)
    assert len(index.cached("r")) == 6
    assert index.matched_blocks("r", second) == 4
    # The oldest prompt lost its tail, not its head: two leading blocks still match.
    assert index.matched_blocks("r", first) == 2
    cached = index.cached("r")
    index.record("r", first)
    assert index.matched_blocks("r", first) == 4
    assert set(cached) == set(index.cached("r"))  # a live view
    index.forget("r")
    index.forget("r")
    assert index.cached("r") == frozenset() and index.replica_ids() == frozenset()


replica_strategy = st.builds(
    ReplicaLoad,
    replica_id=st.text("abcdef", min_size=1, max_size=3),
    ready=st.booleans(),
    outstanding_tokens=st.integers(0, 10_000),
    in_flight=st.integers(0, 50),
    cached_blocks=st.frozensets(st.integers(0, 8), max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(
    replicas=st.lists(replica_strategy, max_size=8, unique_by=lambda r: r.replica_id),
    request_blocks=st.lists(st.integers(0, 8), max_size=6),
    request_tokens=st.integers(1, 4096),
    name=st.sampled_from(sorted(BALANCING_POLICIES)),
    imbalance=st.integers(0, 5000),
)
def test_choose_never_returns_a_replica_that_is_not_ready(
    replicas: list[ReplicaLoad],
    request_blocks: list[int],
    request_tokens: int,
    name: str,
    imbalance: int,
) -> None:
    policy: BalancingPolicy = (
        PrefixAffinity(max_imbalance_tokens=imbalance)
        if name == "prefix_affinity"
        else build_policy(name)
    )
    ready = {r.replica_id for r in replicas if r.ready}
    for _ in range(3):  # round robin's state moves on
        chosen = choose(replicas, request_blocks, request_tokens, policy)
        if ready:
            assert chosen in ready
        else:
            assert chosen is None
    if name == "least_outstanding" and ready:
        chosen_load = next(r for r in replicas if r.replica_id == chosen)
        assert chosen_load.outstanding_tokens == min(
            r.outstanding_tokens for r in replicas if r.ready
        )


@settings(max_examples=300, deadline=None)
@given(
    replicas=st.lists(replica_strategy, min_size=1, max_size=8, unique_by=lambda r: r.replica_id),
    request_blocks=st.lists(st.integers(0, 8), max_size=6),
    imbalance=st.integers(0, 5000),
)
def test_prefix_affinity_respects_its_imbalance_bound(
    replicas: list[ReplicaLoad], request_blocks: list[int], imbalance: int
) -> None:
    policy = PrefixAffinity(max_imbalance_tokens=imbalance, block_tokens=16)
    request_tokens = 16 * len(request_blocks) + 5
    chosen = policy.choose(replicas, request_blocks, request_tokens)
    ready = [r for r in replicas if r.ready]
    if not ready:
        assert chosen is None
        return

    def after(replica: ReplicaLoad) -> int:
        cached = 16 * matched_blocks(replica.cached_blocks, request_blocks)
        return replica.outstanding_tokens + request_tokens - cached

    least = min(ready, key=lambda r: (r.outstanding_tokens, r.in_flight))
    picked = next(r for r in ready if r.replica_id == chosen)
    assert after(picked) - after(least) <= imbalance or picked is least
    # Never a shorter match than the least-loaded replica's, unless it is the least loaded.
    if picked is not least:
        assert matched_blocks(picked.cached_blocks, request_blocks) >= matched_blocks(
            least.cached_blocks, request_blocks
        )
