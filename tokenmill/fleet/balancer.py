"""Which replica serves a request: the router's policy, apart from the router's state.

After the vLLM production-stack router: everything the choice needs comes in as arguments
(``ReplicaLoad`` per candidate, the request's prefix blocks and size), so the gateway, which
keeps live in-flight counts, and the simulator, which keeps simulated ones, share one policy.
Policies are small classes in a registry; a policy with state (round robin) must be built once
and passed as an object.

Prefix affinity needs to know what each replica has cached. Engines are not asked: the router
remembers which blocks it sent where (``PrefixIndex``, a bounded LRU per replica), which is what
an engine's prefix cache holds too as long as it is not evicting faster than the index.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, ClassVar

# Tokens per block; equal to ``tokenmill.engine.blocks.BLOCK_TOKENS`` so blocks line up.
DEFAULT_BLOCK_TOKENS = 16

# The "previous hash" of a prompt's first block. The engine's ``chain_hash`` starts from
# ``None``, but on Python 3.11 ``hash(None)`` is derived from None's address and changes from
# process to process; ints and tuples of ints hash the same everywhere (``PYTHONHASHSEED``
# salts only str and bytes), so a root of 0 makes these keys agree across gateway processes.
ROOT_HASH = 0


def chain_hash(previous: int, block: tuple[int, ...]) -> int:
    """A block's key, chained over every block before it: the engine's formula
    (``hash((previous, tuple(tokens)))``) from a process-independent root."""
    return hash((previous, block))


def prefix_blocks(
    tokens: Sequence[int] | bytes | str, block_size: int = DEFAULT_BLOCK_TOKENS
) -> tuple[int, ...]:
    """Chained hashes of the full blocks of a prompt; a partial last block is not cached.

    Token ids are cut into the engine's blocks with the engine's formula; the keys equal the
    engine's once its chain starts from ``ROOT_HASH`` too (today it starts from ``None``, so
    only the router compares these keys, which is all routing needs).

    Text (when the router has no tokenizer) is hashed as blocks of UTF-8 *bytes*, each block
    a tuple of byte values. Such keys mean nothing to an engine and must not be mixed with
    token keys; the router compares them only with other text keys in its ``PrefixIndex``,
    where a shared text prefix still means a shared token prefix, up to the last block
    boundary (which tokenization may shift by a token).
    """
    if block_size < 1:
        raise ValueError("block_size must be positive")
    values: Sequence[int] = tokens.encode() if isinstance(tokens, str) else tokens
    hashes: list[int] = []
    previous = ROOT_HASH
    for start in range(0, len(values) - block_size + 1, block_size):
        previous = chain_hash(previous, tuple(values[start : start + block_size]))
        hashes.append(previous)
    return tuple(hashes)


def matched_blocks(cached: AbstractSet[int], request_blocks: Sequence[int]) -> int:
    """How many leading blocks of the request are cached (a chain breaks at the first miss)."""
    count = 0
    for block in request_blocks:
        if block not in cached:
            break
        count += 1
    return count


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    """One candidate as the router sees it now.

    ``outstanding_tokens`` is prompt plus maximum output of the requests in flight on it.
    """

    replica_id: str
    ready: bool = True
    outstanding_tokens: int = 0
    in_flight: int = 0
    cached_blocks: AbstractSet[int] = field(default_factory=frozenset, hash=False)


def _least_outstanding(replicas: Sequence[ReplicaLoad]) -> ReplicaLoad | None:
    best: ReplicaLoad | None = None
    for replica in replicas:
        if replica.ready and (
            best is None
            or (replica.outstanding_tokens, replica.in_flight)
            < (best.outstanding_tokens, best.in_flight)
        ):
            best = replica
    return best


class BalancingPolicy:
    name: ClassVar[str] = "base"
    stateful: ClassVar[bool] = False

    def choose(
        self, replicas: Sequence[ReplicaLoad], request_blocks: Sequence[int], request_tokens: int
    ) -> str | None:
        """A ready replica's id, or ``None`` when no replica is ready."""
        raise NotImplementedError


class LeastOutstanding(BalancingPolicy):
    """Fewest outstanding tokens, ties by fewest requests in flight, then by list order."""

    name = "least_outstanding"

    def choose(
        self, replicas: Sequence[ReplicaLoad], request_blocks: Sequence[int], request_tokens: int
    ) -> str | None:
        best = _least_outstanding(replicas)
        return best.replica_id if best else None


class PrefixAffinity(BalancingPolicy):
    """The replica with the longest cached prefix, unless that would unbalance the fleet.

    Like llm-d's and AIBrix's prefix-aware routing. The longest match (ties: least loaded)
    wins when its load after taking the request exceeds the least-loaded replica's by at most
    ``max_imbalance_tokens``; otherwise least outstanding wins. Load after taking the request
    counts only the uncached part of the prompt (matched blocks skip prefill). Matches shorter
    than ``min_match_blocks`` are not worth the affinity.
    """

    name = "prefix_affinity"

    def __init__(
        self,
        max_imbalance_tokens: int = 8192,
        min_match_blocks: int = 1,
        block_tokens: int = DEFAULT_BLOCK_TOKENS,
    ) -> None:
        if max_imbalance_tokens < 0 or min_match_blocks < 1 or block_tokens < 1:
            raise ValueError("need max_imbalance_tokens >= 0, min_match_blocks >= 1")
        self.max_imbalance_tokens = max_imbalance_tokens
        self.min_match_blocks = min_match_blocks
        self.block_tokens = block_tokens

    def choose(
        self, replicas: Sequence[ReplicaLoad], request_blocks: Sequence[int], request_tokens: int
    ) -> str | None:
        least = _least_outstanding(replicas)
        if least is None:
            return None
        if not request_blocks:
            return least.replica_id
        best: ReplicaLoad | None = None
        best_key = (0, 0, 0)
        for replica in replicas:
            if not replica.ready or not replica.cached_blocks:
                continue
            matched = matched_blocks(replica.cached_blocks, request_blocks)
            if matched < self.min_match_blocks:
                continue
            key = (matched, -replica.outstanding_tokens, -replica.in_flight)
            if best is None or key > best_key:
                best, best_key = replica, key
        if best is None or best is least:
            return least.replica_id
        cached_tokens = min(best_key[0] * self.block_tokens, request_tokens)
        least_cached = min(
            matched_blocks(least.cached_blocks, request_blocks) * self.block_tokens, request_tokens
        )
        best_after = best.outstanding_tokens + request_tokens - cached_tokens
        least_after = least.outstanding_tokens + request_tokens - least_cached
        if best_after - least_after > self.max_imbalance_tokens:
            return least.replica_id
        return best.replica_id


class RoundRobin(BalancingPolicy):
    """Each ready replica in turn; a baseline for the simulator."""

    name = "round_robin"
    stateful = True

    def __init__(self) -> None:
        self._next = 0

    def choose(
        self, replicas: Sequence[ReplicaLoad], request_blocks: Sequence[int], request_tokens: int
    ) -> str | None:
        count = len(replicas)
        for step in range(count):
            replica = replicas[(self._next + step) % count]
            if replica.ready:
                self._next = (self._next + step + 1) % count
                return replica.replica_id
        return None


BALANCING_POLICIES: Mapping[str, type[BalancingPolicy]] = {
    LeastOutstanding.name: LeastOutstanding,
    PrefixAffinity.name: PrefixAffinity,
    RoundRobin.name: RoundRobin,
}


def build_policy(name: str, **options: Any) -> BalancingPolicy:
    try:
        cls = BALANCING_POLICIES[name]
    except KeyError:
        known = ", ".join(sorted(BALANCING_POLICIES))
        raise ValueError(f"unknown balancing policy {name!r}; known: {known}") from None
    return cls(**options)


def choose(
    replicas: Sequence[ReplicaLoad],
    request_blocks: Sequence[int],
    request_tokens: int,
    policy: str | BalancingPolicy = "least_outstanding",
) -> str | None:
    """The replica for a request under ``policy`` (a name builds a stateless policy with its
    defaults); ``None`` only when no replica is ready."""
    if isinstance(policy, str):
        if BALANCING_POLICIES.get(policy, LeastOutstanding).stateful:
            raise ValueError(f"policy {policy!r} keeps state; build it once with build_policy")
        policy = build_policy(policy)
    return policy.choose(replicas, request_blocks, request_tokens)


class PrefixIndex:
    """Which prefix blocks the router sent to which replica, at most ``capacity_blocks`` each,
    least recently sent evicted first. ``cached`` returns a live set view for ``ReplicaLoad``."""

    def __init__(self, capacity_blocks: int = 4096) -> None:
        if capacity_blocks < 1:
            raise ValueError("capacity_blocks must be positive")
        self.capacity_blocks = capacity_blocks
        self._blocks: dict[str, OrderedDict[int, None]] = {}

    def record(self, replica_id: str, blocks: Sequence[int]) -> None:
        cache = self._blocks.get(replica_id)
        if cache is None:
            cache = self._blocks[replica_id] = OrderedDict()
        # Newest last, and the head of the chain newest of all: evicting a prompt's tail
        # keeps its prefix matchable, evicting its head would orphan the whole chain.
        for block in reversed(blocks):
            cache[block] = None
            cache.move_to_end(block)
        while len(cache) > self.capacity_blocks:
            cache.popitem(last=False)

    def cached(self, replica_id: str) -> AbstractSet[int]:
        cache = self._blocks.get(replica_id)
        return cache.keys() if cache is not None else frozenset()

    def matched_blocks(self, replica_id: str, blocks: Sequence[int]) -> int:
        return matched_blocks(self.cached(replica_id), blocks)

    def forget(self, replica_id: str) -> None:
        """Drop a replica that stopped (its cache went with it)."""
        self._blocks.pop(replica_id, None)

    def replica_ids(self) -> frozenset[str]:
        return frozenset(self._blocks)
