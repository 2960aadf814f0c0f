from __future__ import annotations

from datetime import timedelta

from tokenmill.clock import ManualClock
from tokenmill.control.keys import KeyRepository
from tokenmill.control.revocations import RevocationWatcher
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
    watcher = RevocationWatcher(keys, cache, clock)
    assert watcher.poll_once() == []
    clock.advance(1)
    keys.revoke(info.id)
    assert watcher.poll_once() == [info.id]
    assert cache.ids == [info.id]


def test_old_revocations_fall_out_of_the_window(database: Database, clock: ManualClock) -> None:
    keys = KeyRepository(database, clock)
    tenant = TenantRepository(database, clock).create("acme")
    info, _ = keys.create(tenant.id, "k")
    keys.revoke(info.id)
    clock.advance(60)
    watcher = RevocationWatcher(keys, Invalidated(), clock)
    assert watcher.poll_once() == []


def test_revoked_since_lists_only_recent_revocations(
    database: Database, clock: ManualClock
) -> None:
    keys = KeyRepository(database, clock)
    tenant = TenantRepository(database, clock).create("acme")
    early, _ = keys.create(tenant.id, "early")
    late, _ = keys.create(tenant.id, "late")
    keys.revoke(early.id)
    clock.advance(10)
    keys.revoke(late.id)
    since = clock.utcnow() - timedelta(seconds=1)
    assert [key_id for key_id, _ in keys.revoked_since(since)] == [late.id]
