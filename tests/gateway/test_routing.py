from __future__ import annotations

import pytest

from tokenmill.errors import ServiceUnavailable
from tokenmill.gateway.routing import ReplicaEndpoint, Router, least_loaded


def test_least_loaded_prefers_fewest_in_flight() -> None:
    a, b = ReplicaEndpoint("http://a", in_flight=3), ReplicaEndpoint("http://b", in_flight=1)
    assert least_loaded([a, b]) is b
    assert least_loaded([]) is None


def test_leases_spread_load_and_release_once() -> None:
    router = Router()
    router.set_replicas("m", ["http://a", "http://b"])
    first, second = router.acquire("m"), router.acquire("m")
    assert {first.url, second.url} == {"http://a", "http://b"}
    first.release()
    first.release()
    assert [e.in_flight for e in router.replicas["m"]].count(0) == 1
    second.release()
    assert all(e.in_flight == 0 for e in router.replicas["m"])


def test_set_replicas_keeps_in_flight_counts_of_known_replicas() -> None:
    router = Router()
    router.set_replicas("m", ["http://a"])
    lease = router.acquire("m")
    router.set_replicas("m", ["http://a", "http://b"])
    assert router.replicas["m"][0].in_flight == 1
    lease.release()
    assert router.replicas["m"][0].in_flight == 0


def test_no_replica_is_503_with_retry_after() -> None:
    with pytest.raises(ServiceUnavailable) as info:
        Router().acquire("m")
    assert info.value.status == 503
    assert info.value.headers["Retry-After"]
