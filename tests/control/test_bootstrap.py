from __future__ import annotations

import threading

from tokenmill.clock import ManualClock
from tokenmill.control.bootstrap import ensure_admin
from tokenmill.control.keys import KeyRepository, Role, hash_secret
from tokenmill.control.tenants import TenantRepository
from tokenmill.store.db import Database


def test_first_start_creates_the_admin(database: Database, clock: ManualClock) -> None:
    secret = ensure_admin(database, clock)

    assert secret is not None and secret.startswith("tm-")
    admin = TenantRepository(database, clock).get_by_name("admin")
    assert admin is not None
    principal = KeyRepository(database, clock).principal_for_secret_hash(hash_secret(secret))
    assert principal is not None
    assert principal.tenant_id == admin.id
    assert principal.key_name == "bootstrap-admin"
    assert principal.role is Role.PLATFORM_ADMIN
    assert principal.has_scope("anything")
    assert principal.allowed_models is None
    assert principal.expires_at is None and not principal.revoked


def test_later_starts_create_nothing(database: Database, clock: ManualClock) -> None:
    assert ensure_admin(database, clock) is not None
    assert ensure_admin(database, clock) is None
    assert len(KeyRepository(database, clock).list()) == 1
    assert len(TenantRepository(database, clock).list()) == 1


def test_any_existing_key_means_not_first_start(database: Database, clock: ManualClock) -> None:
    tenant = TenantRepository(database, clock).create("acme")
    keys = KeyRepository(database, clock)
    info, _ = keys.create(tenant.id, "k")
    keys.revoke(info.id)

    assert ensure_admin(database, clock) is None
    assert TenantRepository(database, clock).get_by_name("admin") is None


def test_existing_admin_tenant_without_keys_is_reused(
    database: Database, clock: ManualClock
) -> None:
    admin = TenantRepository(database, clock).create("admin")

    assert ensure_admin(database, clock) is not None
    assert [k.tenant_id for k in KeyRepository(database, clock).list()] == [admin.id]


def test_concurrent_first_starts_create_one_key(database: Database, clock: ManualClock) -> None:
    barrier = threading.Barrier(4)
    results: list[str | None] = []

    def start() -> None:
        barrier.wait()
        results.append(ensure_admin(database, clock))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len([r for r in results if r is not None]) == 1
    assert len(KeyRepository(database, clock).list()) == 1
