from __future__ import annotations

import asyncio

import pytest

from tokenmill.errors import ServiceUnavailable
from tokenmill.fleet.balancer import prefix_blocks
from tokenmill.fleet.deployments import Binding
from tokenmill.gateway.routing import Router


async def test_the_least_loaded_replica_gets_the_request_and_release_returns_it() -> None:
    router = Router("least_outstanding")
    router.set_replicas("m", ["http://a", "http://b"])
    first = await router.acquire("m", tokens=100)
    second = await router.acquire("m", tokens=100)
    assert {first.url, second.url} == {"http://a", "http://b"}
    first.release()
    first.release()  # safe twice
    assert [e.in_flight for e in router.replicas["m"]].count(0) == 1
    second.release()
    assert all(e.in_flight == 0 and e.outstanding_tokens == 0 for e in router.replicas["m"])


async def test_changing_replicas_keeps_in_flight_counts() -> None:
    router = Router()
    router.set_replicas("m", ["http://a"])
    lease = await router.acquire("m")
    router.set_replicas("m", ["http://a", "http://b"])
    assert router.replicas["m"][0].in_flight == 1
    lease.release()
    assert router.replicas["m"][0].in_flight == 0


async def test_an_unmanaged_name_without_replicas_is_503_at_once() -> None:
    with pytest.raises(ServiceUnavailable) as error:
        await Router().acquire("m")
    assert error.value.headers["Retry-After"]


async def test_a_request_waits_for_a_managed_pool_to_get_a_replica() -> None:
    router = Router(queue_timeout_seconds=5)
    demanded: list[str] = []
    router.on_demand = demanded.append
    router.bind("m@1", [Binding("dep_1")])
    waiting = asyncio.create_task(router.acquire("m@1"))
    await asyncio.sleep(0.01)
    assert demanded == ["dep_1"]
    assert router.pool_load("dep_1")[0] == 1  # one waiting
    router.set_replicas("dep_1", [("rep_1", "http://a")])
    lease = await waiting
    assert lease.url == "http://a"
    assert router.pool_load("dep_1")[:2] == (0, 1)


async def test_a_wait_ends_in_503_with_retry_after_at_the_timeout() -> None:
    router = Router(queue_timeout_seconds=0.05)
    router.bind("m@1", [Binding("dep_1")])
    with pytest.raises(ServiceUnavailable) as error:
        await router.acquire("m@1")
    assert error.value.code == "no_replica_ready"
    assert "Retry-After" in error.value.headers
    assert router.pool_load("dep_1")[0] == 0


async def test_the_queue_is_bounded() -> None:
    router = Router(queue_timeout_seconds=5, max_queued=2)
    router.bind("m@1", [Binding("dep_1")])
    waiters = [asyncio.create_task(router.acquire("m@1")) for _ in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(ServiceUnavailable) as error:
        await router.acquire("m@1")
    assert error.value.code == "queue_full"
    router.set_replicas("dep_1", ["http://a"])
    assert [(await w).url for w in waiters] == ["http://a", "http://a"]


async def test_a_tenant_with_a_dedicated_deployment_uses_it_others_the_shared_one() -> None:
    router = Router()
    router.bind("m@1", [Binding("shared"), Binding("dedicated", tenant_id="ten_a")])
    router.set_replicas("shared", ["http://shared"])
    router.set_replicas("dedicated", ["http://dedicated"])
    assert (await router.acquire("m@1", tenant_id="ten_a")).url == "http://dedicated"
    assert (await router.acquire("m@1", tenant_id="ten_b")).url == "http://shared"


async def test_a_model_only_on_another_tenants_dedicated_deployment_is_refused() -> None:
    router = Router()
    router.bind("m@1", [Binding("dedicated", tenant_id="ten_a")])
    router.set_replicas("dedicated", ["http://dedicated"])
    with pytest.raises(ServiceUnavailable) as error:
        await router.acquire("m@1", tenant_id="ten_b")
    assert error.value.code == "model_not_deployed"


async def test_requests_sharing_a_prefix_follow_it_to_the_same_replica() -> None:
    router = Router("prefix_affinity")
    router.set_replicas("m", [("r1", "http://a"), ("r2", "http://b")])
    shared = b"You are a helpful assistant. " * 20
    first = await router.acquire("m", tokens=50, prefix=lambda: prefix_blocks(shared + b"one", 64))
    # load the other replica less, so least-loaded alone would pick it
    lease = await router.acquire("m", tokens=10, prefix=lambda: prefix_blocks(b"unrelated", 64))
    second = await router.acquire("m", tokens=50, prefix=lambda: prefix_blocks(shared + b"two", 64))
    assert second.url == first.url
    assert lease.url != first.url


async def test_a_replica_leaving_the_pool_still_counts_its_in_flight_work() -> None:
    router = Router()
    router.set_replicas("p", [("r1", "http://a")])
    lease = await router.acquire("p")
    router.set_replicas("p", [])
    assert router.in_flight_of("p", "r1") == 1
    assert router.pool_load("p")[1] == 1
    lease.release()
    assert router.in_flight_of("p", "r1") == 0
