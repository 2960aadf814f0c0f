from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from tokenmill.clock import ManualClock
from tokenmill.control.keycache import KeyCache
from tokenmill.control.keys import KeyRepository, Principal
from tokenmill.control.tenants import TenantInfo, TenantRepository
from tokenmill.errors import Unauthorized
from tokenmill.store.db import Database

if TYPE_CHECKING:
    from tests.conftest import QueryLog

TTL = 30.0
NEGATIVE_TTL = 5.0


@pytest.fixture
def keys(database: Database, clock: ManualClock) -> KeyRepository:
    return KeyRepository(database, clock)


@pytest.fixture
def tenant(database: Database, clock: ManualClock) -> TenantInfo:
    return TenantRepository(database, clock).create("acme")


@pytest.fixture
def cache(keys: KeyRepository, clock: ManualClock) -> KeyCache:
    return KeyCache(keys, clock, TTL, negative_ttl_seconds=NEGATIVE_TTL)


def lookups(log: QueryLog) -> int:
    return log.count("where api_keys.secret_hash")


async def test_valid_key(cache: KeyCache, keys: KeyRepository, tenant: TenantInfo) -> None:
    info, secret = keys.create(tenant.id, "a")

    principal = await cache.authenticate(f"Bearer {secret}")

    assert principal.key_id == info.id
    assert principal.tenant_id == tenant.id
    assert principal.key_name == "a"


async def test_cache_hit_reads_nothing(
    cache: KeyCache, keys: KeyRepository, tenant: TenantInfo, query_log: QueryLog
) -> None:
    _, secret = keys.create(tenant.id, "a")
    query_log.clear()

    first = await cache.authenticate(f"Bearer {secret}")
    for _ in range(10):
        assert await cache.authenticate(f"bearer  {secret} ") == first

    assert lookups(query_log) == 1
    assert len(query_log.statements) == 1


async def test_entries_expire_after_the_ttl(
    cache: KeyCache,
    keys: KeyRepository,
    tenant: TenantInfo,
    clock: ManualClock,
    query_log: QueryLog,
) -> None:
    info, secret = keys.create(tenant.id, "a")
    query_log.clear()
    await cache.authenticate(f"Bearer {secret}")
    keys.revoke(info.id)  # in another process: this cache is not told

    clock.advance(TTL - 1)
    await cache.authenticate(f"Bearer {secret}")
    clock.advance(1)
    with pytest.raises(Unauthorized, match="revoked"):
        await cache.authenticate(f"Bearer {secret}")
    assert lookups(query_log) == 2


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwdw==", "tm-x"])
async def test_missing_key(cache: KeyCache, query_log: QueryLog, header: str | None) -> None:
    with pytest.raises(Unauthorized, match=r"^Missing bearer API key") as raised:
        await cache.authenticate(header)
    assert raised.value.status == 401
    assert raised.value.code == "invalid_api_key"
    assert query_log.statements == []


async def test_incorrect_key(cache: KeyCache) -> None:
    with pytest.raises(Unauthorized) as raised:
        await cache.authenticate("Bearer tm-abcdefghijklmnop")
    assert raised.value.message.startswith("Incorrect API key provided: tm-abc…")
    assert "defghijklmnop" not in raised.value.message


async def test_keys_of_another_shape_are_refused_without_a_read(
    cache: KeyCache, query_log: QueryLog
) -> None:
    for header in ("Bearer sk-proj-123456", "Bearer tm-" + "x" * 300):
        with pytest.raises(Unauthorized, match="Incorrect API key"):
            await cache.authenticate(header)
    assert query_log.statements == []


async def test_negative_results_are_cached_briefly(
    cache: KeyCache, clock: ManualClock, query_log: QueryLog
) -> None:
    for _ in range(50):
        with pytest.raises(Unauthorized, match="Incorrect API key"):
            await cache.authenticate("Bearer tm-wrong-key")
    assert lookups(query_log) == 1

    clock.advance(NEGATIVE_TTL)
    with pytest.raises(Unauthorized):
        await cache.authenticate("Bearer tm-wrong-key")
    assert lookups(query_log) == 2


async def test_negative_cache_is_bounded(
    keys: KeyRepository, clock: ManualClock, query_log: QueryLog
) -> None:
    cache = KeyCache(keys, clock, TTL, max_negative_entries=2)
    for name in ("tm-one", "tm-two", "tm-three", "tm-three", "tm-two", "tm-one"):
        with pytest.raises(Unauthorized):
            await cache.authenticate(f"Bearer {name}")

    # one, two, three are read; three and two are still cached; one was evicted.
    assert lookups(query_log) == 4


async def test_revoked_key(cache: KeyCache, keys: KeyRepository, tenant: TenantInfo) -> None:
    info, secret = keys.create(tenant.id, "a")
    keys.revoke(info.id)

    with pytest.raises(Unauthorized) as raised:
        await cache.authenticate(f"Bearer {secret}")
    assert raised.value.message == "This API key has been revoked."


async def test_expired_key(
    cache: KeyCache, keys: KeyRepository, tenant: TenantInfo, clock: ManualClock
) -> None:
    _, secret = keys.create(tenant.id, "a", expires_at=clock.utcnow() + timedelta(seconds=10))
    await cache.authenticate(f"Bearer {secret}")

    clock.advance(10)  # still cached, but the expiry is checked on every request

    with pytest.raises(Unauthorized) as raised:
        await cache.authenticate(f"Bearer {secret}")
    assert raised.value.message == "This API key has expired."


async def test_invalidate_takes_effect_at_once(
    cache: KeyCache, keys: KeyRepository, tenant: TenantInfo
) -> None:
    info, secret = keys.create(tenant.id, "a")
    await cache.authenticate(f"Bearer {secret}")
    keys.revoke(info.id)
    await cache.authenticate(f"Bearer {secret}")  # cached until told

    cache.invalidate(info.id)

    with pytest.raises(Unauthorized, match="revoked"):
        await cache.authenticate(f"Bearer {secret}")


async def test_invalidate_unknown_key_is_harmless(cache: KeyCache) -> None:
    cache.invalidate("key_nope")


class GatedLookup:
    """A lookup that blocks until released, counting calls."""

    def __init__(self, repo: KeyRepository) -> None:
        self.repo = repo
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail: Exception | None = None

    def principal_for_secret_hash(self, secret_hash: str) -> Principal | None:
        self.calls += 1
        self.started.set()
        self.release.wait(10)
        if self.fail is not None:
            raise self.fail
        return self.repo.principal_for_secret_hash(secret_hash)


async def _until_started(lookup: GatedLookup) -> None:
    assert await asyncio.to_thread(lookup.started.wait, 10)


async def test_concurrent_misses_share_one_query(
    keys: KeyRepository, tenant: TenantInfo, clock: ManualClock
) -> None:
    _, secret = keys.create(tenant.id, "a")
    lookup = GatedLookup(keys)
    cache = KeyCache(lookup, clock, TTL)

    tasks = [asyncio.create_task(cache.authenticate(f"Bearer {secret}")) for _ in range(20)]
    await _until_started(lookup)
    await asyncio.sleep(0)
    lookup.release.set()
    principals = await asyncio.gather(*tasks)

    assert lookup.calls == 1
    assert len(set(principals)) == 1


async def test_a_cancelled_caller_does_not_cancel_the_others(
    keys: KeyRepository, tenant: TenantInfo, clock: ManualClock
) -> None:
    _, secret = keys.create(tenant.id, "a")
    lookup = GatedLookup(keys)
    cache = KeyCache(lookup, clock, TTL)

    first = asyncio.create_task(cache.authenticate(f"Bearer {secret}"))
    second = asyncio.create_task(cache.authenticate(f"Bearer {secret}"))
    await _until_started(lookup)
    first.cancel()
    lookup.release.set()

    principal = await second
    assert first.cancelled()
    assert principal.key_name == "a"
    assert lookup.calls == 1


async def test_invalidation_during_a_lookup_is_not_undone(
    keys: KeyRepository, tenant: TenantInfo, clock: ManualClock
) -> None:
    info, secret = keys.create(tenant.id, "a")
    lookup = GatedLookup(keys)
    cache = KeyCache(lookup, clock, TTL)

    task = asyncio.create_task(cache.authenticate(f"Bearer {secret}"))
    await _until_started(lookup)
    cache.invalidate(info.id)  # its answer may predate the change: it must not be cached
    lookup.release.set()
    await task

    await cache.authenticate(f"Bearer {secret}")
    assert lookup.calls == 2


async def test_database_errors_propagate_and_are_not_cached(
    keys: KeyRepository, tenant: TenantInfo, clock: ManualClock
) -> None:
    _, secret = keys.create(tenant.id, "a")
    lookup = GatedLookup(keys)
    lookup.release.set()
    lookup.fail = ConnectionError("database down")
    cache = KeyCache(lookup, clock, TTL)

    with pytest.raises(ConnectionError):
        await cache.authenticate(f"Bearer {secret}")

    lookup.fail = None
    assert (await cache.authenticate(f"Bearer {secret}")).key_name == "a"
    assert lookup.calls == 2
