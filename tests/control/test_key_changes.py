"""Keys revoked or changed by another process (the CLI, another gateway) leave this process's
key cache within one poll, not one cache TTL."""

from __future__ import annotations

from datetime import timedelta

from tokenmill.clock import ManualClock
from tokenmill.control.key_changes import KeyChangeWatcher
from tokenmill.control.keycache import KeyCache
from tokenmill.control.keys import KeyRepository
from tokenmill.control.tenants import TenantRepository
from tokenmill.store.db import Database


class Invalidated:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def invalidate(self, key_id: str) -> None:
        self.ids.append(key_id)


def test_a_key_revoked_by_another_process_is_invalidated(
    database: Database, clock: ManualClock
) -> None:
    keys = KeyRepository(database, clock)
    tenant = TenantRepository(database, clock).create("acme")
    info, _ = keys.create(tenant.id, "k")
    keys.create(tenant.id, "other")
    cache = Invalidated()
    watcher = KeyChangeWatcher(keys, cache, clock)
    assert watcher.poll_once() == []
    clock.advance(1)
    keys.revoke(info.id)
    assert watcher.poll_once() == [info.id]
    assert cache.ids == [info.id]


async def test_a_key_whose_limits_another_gateway_changed_is_read_again(
    database: Database, clock: ManualClock
) -> None:
    keys = KeyRepository(database, clock)
    tenant = TenantRepository(database, clock).create("acme")
    info, secret = keys.create(tenant.id, "k")
    _, untouched = keys.create(tenant.id, "other")
    here = KeyCache(keys, clock, ttl_seconds=30.0)
    watcher = KeyChangeWatcher(keys, here, clock)
    assert (await here.authenticate(f"Bearer {secret}")).rpm_limit is None
    await here.authenticate(f"Bearer {untouched}")
    clock.advance(1)
    keys.update_terms(info.id, {"rpm_limit": 7})  # through another gateway's admin API
    assert (await here.authenticate(f"Bearer {secret}")).rpm_limit is None  # cached: stale
    assert watcher.poll_once() == [info.id]
    assert (await here.authenticate(f"Bearer {secret}")).rpm_limit == 7
    assert here.known_valid(untouched)  # only the changed key was dropped


def test_old_changes_fall_out_of_the_window(database: Database, clock: ManualClock) -> None:
    keys = KeyRepository(database, clock)
    tenant = TenantRepository(database, clock).create("acme")
    info, _ = keys.create(tenant.id, "k")
    other, _ = keys.create(tenant.id, "other")
    keys.revoke(info.id)
    keys.update_terms(other.id, {"tpm_limit": 1000})
    clock.advance(60)
    watcher = KeyChangeWatcher(keys, Invalidated(), clock)
    assert watcher.poll_once() == []


def test_changed_since_lists_only_recent_revocations_and_changes(
    database: Database, clock: ManualClock
) -> None:
    keys = KeyRepository(database, clock)
    tenant = TenantRepository(database, clock).create("acme")
    early, _ = keys.create(tenant.id, "early")
    late, _ = keys.create(tenant.id, "late")
    changed, _ = keys.create(tenant.id, "changed")
    keys.create(tenant.id, "never")
    keys.revoke(early.id)
    clock.advance(10)
    keys.revoke(late.id)
    keys.update_terms(changed.id, {"concurrency_limit": 2})
    since = clock.utcnow() - timedelta(seconds=1)
    assert keys.changed_since(since) == sorted([late.id, changed.id])
