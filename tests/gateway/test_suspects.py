"""A replica the gateway could not reach stays out of its pool, however often the fleet lists
it, until it accepts connections again."""

from __future__ import annotations

import asyncio

from tokenmill.fleet.local import free_port
from tokenmill.gateway.routing import Router
from tokenmill.gateway.suspects import SuspectProber, reachable


async def test_an_unreachable_replica_stays_out_until_it_answers_again() -> None:
    router = Router()
    prober = SuspectProber(router)
    alive_port, dead_port = free_port(), free_port()
    alive, dead = f"http://127.0.0.1:{alive_port}", f"http://127.0.0.1:{dead_port}"
    listed = [("r-alive", alive), ("r-dead", dead)]
    router.set_replicas("dep", listed)
    for _ in range(2):
        lease = router.try_acquire(router.pools["dep"])
        assert lease is not None
        router.suspect(lease)
        lease.release()
    assert router.pools["dep"].endpoints == []
    router.set_replicas("dep", listed)  # the fleet still lists both: neither comes back
    assert router.pools["dep"].endpoints == []

    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", alive_port)
    try:
        assert await reachable(alive) and not await reachable(dead)
        await prober.probe_once()
        router.set_replicas("dep", listed)
        assert [e.replica_id for e in router.pools["dep"].endpoints] == ["r-alive"]
        assert set(router.pools["dep"].suspects) == {"r-dead"}
    finally:
        server.close()
        await server.wait_closed()
    router.set_replicas("dep", [("r-alive", alive)])  # no longer listed: forgotten
    assert router.pools["dep"].suspects == {}


def test_without_a_prober_the_next_listing_gives_a_suspect_back() -> None:
    router = Router()
    router.set_replicas("dep", [("r1", "http://127.0.0.1:9")])
    lease = router.try_acquire(router.pools["dep"])
    assert lease is not None
    router.suspect(lease)
    router.set_replicas("dep", [("r1", "http://127.0.0.1:9")])
    assert [e.replica_id for e in router.pools["dep"].endpoints] == ["r1"]
