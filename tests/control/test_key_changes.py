"""Keys revoked or changed by another process (the CLI, another gateway) leave this process's
key cache within one poll, not one cache TTL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tokenmill.clock import ManualClock
from tokenmill.control.key_changes import KeyChangeWatcher
from tokenmill.control.keycache import KeyCache
from tokenmill.control.keys import KeyRepository
from tokenmill.control.tenants import TenantRepository
from tokenmill.store.db import Database


@pytest.fixture
def keys(database: Database, clock: ManualClock) -> KeyRepository:
    return KeyRepository(database, clock)


@pytest.fixture
def acme(database: Database, clock: ManualClock) -> str:
    return TenantRepository(database, clock).create("acme").id


class Invalidated:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def invalidate(self, key_id: str) -> None:
        self.ids.append(key_id)


def test_a_key_revoked_by_another_process_is_invalidated(
    keys: KeyRepository, acme: str, clock: ManualClock
) -> None:
    info, _ = keys.create(acme, "k")
    keys.create(acme, "other")
    cache = Invalidated()
    watcher = KeyChangeWatcher(keys, cache, clock)
    assert watcher.poll_once() == []
    clock.advance(1)
    keys.revoke(info.id)
    assert watcher.poll_once() == [info.id]
    assert cache.ids == [info.id]


async def test_a_key_whose_limits_another_gateway_changed_is_read_again(
    keys: KeyRepository, acme: str, clock: ManualClock
) -> None:
    info, secret = keys.create(acme, "k")
    _, untouched = keys.create(acme, "other")
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


def test_old_changes_fall_out_of_the_window(
    keys: KeyRepository, acme: str, clock: ManualClock
) -> None:
    info, _ = keys.create(acme, "k")
    other, _ = keys.create(acme, "other")
    keys.revoke(info.id)
    keys.update_terms(other.id, {"tpm_limit": 1000})
    clock.advance(60)
    watcher = KeyChangeWatcher(keys, Invalidated(), clock)
    assert watcher.poll_once() == []


def test_changed_since_lists_only_recent_revocations_and_changes(
    keys: KeyRepository, acme: str, clock: ManualClock
) -> None:
    early, _ = keys.create(acme, "early")
    late, _ = keys.create(acme, "late")
    changed, _ = keys.create(acme, "changed")
    keys.create(acme, "never")
    keys.revoke(early.id)
    clock.advance(10)
    keys.revoke(late.id)
    keys.update_terms(changed.id, {"concurrency_limit": 2})
    since = clock.utcnow() - timedelta(seconds=1)
    assert keys.changed_since(since) == sorted([late.id, changed.id])
