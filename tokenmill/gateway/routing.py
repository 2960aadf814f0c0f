"""Picks a replica for a request, and holds requests while a pool has none ready.

A *pool* is the set of ready replicas of one deployment (or, for replicas registered by hand,
of one served name). The choice among them is ``tokenmill.fleet.balancer``'s policy, fed with
the live in-flight counts kept here; a lease returns its load on every path (safe to release
twice). When a pool the fleet manages has no ready replica, the request waits in a bounded
queue while the fleet scales it from zero, and gets a 503 with ``Retry-After`` at the timeout.
A pool whose replicas keep failing to start is marked *failing* by the fleet: its requests
are refused at once with the reason, instead of waiting out the queue timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tokenmill.errors import ServiceUnavailable
from tokenmill.fleet.balancer import BalancingPolicy, PrefixIndex, ReplicaLoad, build_policy
from tokenmill.fleet.deployments import Binding
from tokenmill.gateway.latency import TtftPredictor, Waiting
from tokenmill.protocol.tenancy import Priority

PREFIX_BLOCK_BYTES = 64


@dataclass(slots=True)
class ReplicaEndpoint:
    url: str
    replica_id: str = ""
    in_flight: int = 0
    outstanding_tokens: int = 0
    latency: TtftPredictor = field(default_factory=TtftPredictor)

    def __post_init__(self) -> None:
        self.replica_id = self.replica_id or self.url


@dataclass(slots=True)
class Pool:
    key: str
    managed: bool = False
    endpoints: list[ReplicaEndpoint] = field(default_factory=list)
    waiting: int = 0
    arrived_total: int = 0
    last_request_at: float | None = None
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    prefixes: PrefixIndex = field(default_factory=PrefixIndex)
    retired: dict[str, ReplicaEndpoint] = field(default_factory=dict)
    failing: str | None = None  # why its replicas fail to start, while they do
    retry_at: float = 0.0  # monotonic time of the fleet's next attempt
    suspects: dict[str, str] = field(default_factory=dict)  # unreachable: replica id -> URL

    @property
    def in_flight(self) -> int:
        return sum(e.in_flight for e in self.endpoints)

    def wake(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()


@dataclass(slots=True)
class Lease:
    endpoint: ReplicaEndpoint
    tokens: int = 0
    released: bool = False
    waiting: Waiting | None = None  # in the replica's queue, until its first token

    @property
    def url(self) -> str:
        return self.endpoint.url

    def predict(self, priority: Priority, prompt_tokens: int) -> float | None:
        """Seconds to first token on this replica, in that queue class (None: not known)."""
        return self.endpoint.latency.predict(priority, prompt_tokens)

    def sent(self, priority: Priority, prompt_tokens: int, now: float) -> None:
        self.waiting = self.endpoint.latency.sent(priority, prompt_tokens, now)

    def first_token(self, now: float) -> None:
        if self.waiting is not None and not self.waiting.done:
            self.endpoint.latency.first_token(self.waiting, now)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.endpoint.in_flight -= 1
            self.endpoint.outstanding_tokens -= self.tokens
            if self.waiting is not None:
                self.endpoint.latency.ended(self.waiting)


class Router:
    def __init__(
        self,
        policy: str | BalancingPolicy = "prefix_affinity",
        *,
        queue_timeout_seconds: float = 60.0,
        max_queued: int = 256,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = build_policy(policy) if isinstance(policy, str) else policy
        self.queue_timeout_seconds = queue_timeout_seconds
        self.max_queued = max_queued
        self.pools: dict[str, Pool] = {}
        self.bindings: dict[str, list[Binding]] = {}
        self.on_demand: Callable[[str], None] = lambda key: None
        # Set by a ``SuspectProber``: replicas found unreachable stay out of their pool until
        # they accept connections again, however often the fleet lists them as ready.
        self.hold_suspects = False
        self._monotonic = monotonic

    @property
    def replicas(self) -> dict[str, list[ReplicaEndpoint]]:
        return {key: pool.endpoints for key, pool in self.pools.items()}

    def pool(self, key: str) -> Pool:
        found = self.pools.get(key)
        if found is None:
            found = self.pools[key] = Pool(key)
        return found

    def bind(self, served_name: str, bindings: Sequence[Binding]) -> None:
        """Which managed pools serve a name (set by the fleet as deployments change)."""
        for binding in bindings:
            self.pool(binding.pool_key).managed = True
        if bindings:
            self.bindings[served_name] = list(bindings)
        else:
            self.bindings.pop(served_name, None)

    def set_replicas(self, key: str, urls: Sequence[str | tuple[str, str]]) -> None:
        """The ready replicas of a pool, as URLs or (replica id, URL); keeps in-flight counts."""
        pool = self.pool(key)
        current = {e.replica_id: e for e in pool.endpoints}
        endpoints = []
        listed = set()
        for item in urls:
            replica_id, url = item if isinstance(item, tuple) else (item, item)
            listed.add(replica_id)
            if self.hold_suspects and replica_id in pool.suspects:
                continue
            endpoints.append(current.get(replica_id) or ReplicaEndpoint(url, replica_id))
        for gone in set(pool.suspects) - listed:
            del pool.suspects[gone]
        for gone in set(current) - {e.replica_id for e in endpoints}:
            pool.prefixes.forget(gone)
            pool.retired[gone] = current[gone]
        pool.endpoints = endpoints
        if endpoints:
            pool.wake()

    def set_failing(self, key: str, reason: str | None, retry_at: float = 0.0) -> None:
        """Marks a pool failing (``reason``) or well again (None); refuses its waiters now."""
        pool = self.pool(key)
        pool.failing, pool.retry_at = reason, retry_at
        if reason is not None:
            pool.wake()

    def suspect(self, lease: Lease) -> None:
        """Takes a replica that could not be reached out of its pool until the fleet, which
        watches it, publishes it again (or replaces it); with ``hold_suspects``, until it
        also accepts connections again."""
        for pool in self.pools.values():
            if lease.endpoint in pool.endpoints:
                pool.endpoints = [e for e in pool.endpoints if e is not lease.endpoint]
                pool.retired[lease.endpoint.replica_id] = lease.endpoint
                pool.suspects[lease.endpoint.replica_id] = lease.endpoint.url

    def pool_load(self, key: str) -> tuple[int, int, float | None, int]:
        """What the autoscaler sees of a pool: waiting, in flight, last arrival, arrivals."""
        pool = self.pool(key)
        in_flight = pool.in_flight + sum(e.in_flight for e in pool.retired.values())
        return pool.waiting, in_flight, pool.last_request_at, pool.arrived_total

    def in_flight_of(self, key: str, replica_id: str) -> int:
        """Requests still on one replica, also after it left the pool (draining)."""
        pool = self.pool(key)
        for endpoint in pool.endpoints:
            if endpoint.replica_id == replica_id:
                return endpoint.in_flight
        retired = pool.retired.get(replica_id)
        if retired is not None and retired.in_flight <= 0:
            del pool.retired[replica_id]
            return 0
        return retired.in_flight if retired is not None else 0

    def pool_for(self, served_name: str, tenant_id: str | None = None) -> Pool:
        bindings = self.bindings.get(served_name)
        if not bindings:
            return self.pool(served_name)
        own = next(
            (b for b in bindings if b.tenant_id is not None and b.tenant_id == tenant_id), None
        )
        shared = next((b for b in bindings if b.tenant_id is None), None)
        chosen = own or shared
        if chosen is None:
            raise ServiceUnavailable(
                f"'{served_name}' runs only on dedicated deployments of other tenants.",
                code="model_not_deployed",
            )
        return self.pool(chosen.pool_key)

    def try_acquire(
        self, pool: Pool, tokens: int = 0, prefix: Callable[[], Sequence[int]] | None = None
    ) -> Lease | None:
        endpoints = pool.endpoints
        if not endpoints:
            return None
        if len(endpoints) == 1:
            endpoint = endpoints[0]
        else:
            blocks = prefix() if prefix is not None else ()
            loads = [
                ReplicaLoad(
                    e.replica_id,
                    True,
                    e.outstanding_tokens,
                    e.in_flight,
                    pool.prefixes.cached(e.replica_id),
                )
                for e in endpoints
            ]
            chosen = self.policy.choose(loads, blocks, tokens)
            endpoint = next((e for e in endpoints if e.replica_id == chosen), endpoints[0])
            if blocks:
                pool.prefixes.record(endpoint.replica_id, blocks)
        endpoint.in_flight += 1
        endpoint.outstanding_tokens += tokens
        return Lease(endpoint, tokens)

    async def acquire(
        self,
        served_name: str,
        *,
        tenant_id: str | None = None,
        tokens: int = 0,
        prefix: Callable[[], Sequence[int]] | None = None,
    ) -> Lease:
        pool = self.pool_for(served_name, tenant_id)
        pool.arrived_total += 1
        pool.last_request_at = self._monotonic()
        lease = self.try_acquire(pool, tokens, prefix)
        if lease is not None:
            return lease
        if pool.failing is not None and pool.managed:
            raise self._failing(pool, served_name)
        if not pool.managed:
            raise ServiceUnavailable(
                f"No replica of '{served_name}' is running; try again shortly.",
                headers={"Retry-After": "5"},
            )
        if pool.waiting >= self.max_queued:
            raise ServiceUnavailable(
                f"Too many requests are waiting for '{served_name}' to start; try again shortly.",
                headers={"Retry-After": "2"},
                code="queue_full",
            )
        return await self._wait(pool, served_name, tokens, prefix)

    async def _wait(
        self,
        pool: Pool,
        served_name: str,
        tokens: int,
        prefix: Callable[[], Sequence[int]] | None,
    ) -> Lease:
        pool.waiting += 1
        deadline = self._monotonic() + self.queue_timeout_seconds
        try:
            self.on_demand(pool.key)
            while (remaining := deadline - self._monotonic()) > 0:
                waiter = asyncio.get_running_loop().create_future()
                pool.waiters.append(waiter)
                try:
                    await asyncio.wait_for(waiter, remaining)
                except TimeoutError:
                    break
                lease = self.try_acquire(pool, tokens, prefix)
                if lease is not None:
                    return lease
                if pool.failing is not None:
                    raise self._failing(pool, served_name)
        finally:
            pool.waiting -= 1
        raise ServiceUnavailable(
            f"No replica of '{served_name}' became ready within "
            f"{self.queue_timeout_seconds:g} s; try again shortly.",
            headers={"Retry-After": "10"},
            code="no_replica_ready",
        )

    def _failing(self, pool: Pool, served_name: str) -> ServiceUnavailable:
        retry_after = max(1, round(pool.retry_at - self._monotonic()))
        return ServiceUnavailable(
            f"The deployment of '{served_name}' is failing: {pool.failing}. "
            f"tokenmill tries again in about {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
            code="deployment_failing",
        )
