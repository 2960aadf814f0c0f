from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from tokenmill.clock import ManualClock
from tokenmill.control.keys import (
    KeyInfo,
    KeyRepository,
    Principal,
    Role,
    display_prefix,
    hash_secret,
)
from tokenmill.control.tenants import TenantInfo, TenantRepository
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.store.db import Database

if TYPE_CHECKING:
    from tests.conftest import QueryLog


@pytest.fixture
def keys(database: Database, clock: ManualClock) -> KeyRepository:
    return KeyRepository(database, clock)


@pytest.fixture
def tenant(database: Database, clock: ManualClock) -> TenantInfo:
    return TenantRepository(database, clock).create("acme")


def test_secret_shape_and_storage(keys: KeyRepository, tenant: TenantInfo) -> None:
    info, secret = keys.create(tenant.id, "ci")

    assert secret.startswith("tm-")
    assert len(secret) == 3 + 43
    assert info.prefix == secret[:11] == display_prefix(secret)
    assert hash_secret(secret) == hashlib.sha256(secret.encode()).hexdigest()
    assert info.role is Role.INFERENCE
    assert info.scopes == ("*",)
    assert info.allowed_models is None
    assert not info.revoked


def test_key_info_never_holds_the_secret(keys: KeyRepository, tenant: TenantInfo) -> None:
    info, secret = keys.create(tenant.id, "ci")

    values = [str(v) for v in dataclasses.asdict(info).values()]
    assert secret not in values
    assert hash_secret(secret) not in values
    assert {f.name for f in dataclasses.fields(KeyInfo)}.isdisjoint({"secret", "secret_hash"})


def test_every_key_is_different(keys: KeyRepository, tenant: TenantInfo) -> None:
    secrets = {keys.create(tenant.id, f"k{i}")[1] for i in range(20)}
    assert len(secrets) == 20


def test_principal_for_secret_hash(
    keys: KeyRepository, tenant: TenantInfo, clock: ManualClock
) -> None:
    expires = clock.utcnow() + timedelta(days=30)
    info, secret = keys.create(
        tenant.id,
        "svc",
        role="tenant_admin",
        scopes=("chat", "embeddings"),
        allowed_models=("m1", "m2"),
        expires_at=expires,
    )

    principal = keys.principal_for_secret_hash(hash_secret(secret))

    assert principal == Principal(
        tenant_id=tenant.id,
        key_id=info.id,
        key_name="svc",
        role=Role.TENANT_ADMIN,
        scopes=("chat", "embeddings"),
        allowed_models=("m1", "m2"),
        expires_at=expires,
        revoked=False,
    )
    assert principal.has_scope("chat") and not principal.has_scope("admin")
    assert principal.may_use_model("m1") and not principal.may_use_model("m3")
    assert not principal.is_expired(clock.utcnow())
    assert principal.is_expired(expires)


def test_a_principal_carries_its_tenants_share_weight(
    keys: KeyRepository, tenant: TenantInfo, database: Database, clock: ManualClock
) -> None:
    info, secret = keys.create(tenant.id, "a")
    assert keys.principal(info.id).share_weight == 1  # type: ignore[union-attr]
    TenantRepository(database, clock).update_terms(tenant.id, {"share_weight": 3})
    assert keys.principal_for_secret_hash(hash_secret(secret)).share_weight == 3  # type: ignore[union-attr]
    assert keys.principal(info.id).share_weight == 3  # type: ignore[union-attr]


def test_lookup_is_one_query(keys: KeyRepository, tenant: TenantInfo, query_log: QueryLog) -> None:
    _, secret = keys.create(tenant.id, "a")
    query_log.clear()

    assert keys.principal_for_secret_hash(hash_secret(secret)) is not None
    assert query_log.count("select") == 1


def test_unknown_hash_is_none(keys: KeyRepository) -> None:
    assert keys.principal_for_secret_hash(hash_secret("tm-nope")) is None


def test_list_all_and_by_tenant(
    keys: KeyRepository, tenant: TenantInfo, database: Database, clock: ManualClock
) -> None:
    other = TenantRepository(database, clock).create("other")
    first, _ = keys.create(tenant.id, "a")
    clock.advance(1)
    second, _ = keys.create(other.id, "b")
    clock.advance(1)
    third, _ = keys.create(tenant.id, "c")

    assert keys.list() == [first, second, third]
    assert keys.list(tenant.id) == [first, third]
    assert keys.list(other.id) == [second]
    assert keys.list("ten_nope") == []


def test_get(keys: KeyRepository, tenant: TenantInfo) -> None:
    info, _ = keys.create(tenant.id, "a")
    assert keys.get(info.id) == info
    assert keys.get("key_nope") is None


def test_revoke_is_idempotent(keys: KeyRepository, tenant: TenantInfo, clock: ManualClock) -> None:
    info, secret = keys.create(tenant.id, "a")
    clock.advance(10)
    first = keys.revoke(info.id)
    clock.advance(10)
    second = keys.revoke(info.id)

    assert first.revoked and first.revoked_at == info.created_at + timedelta(seconds=10)
    assert second == first
    assert keys.get(info.id) == first
    principal = keys.principal_for_secret_hash(hash_secret(secret))
    assert principal is not None and principal.revoked


def test_revoke_unknown_key(keys: KeyRepository) -> None:
    with pytest.raises(NotFound):
        keys.revoke("key_nope")


def test_unknown_tenant(keys: KeyRepository) -> None:
    with pytest.raises(NotFound):
        keys.create("ten_nope", "a")
    assert keys.list() == []


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"role": "root"}, "role"),
        ({"name": ""}, "name"),
        ({"scopes": ("",)}, "scopes"),
        ({"allowed_models": ("",)}, "allowed_models"),
    ],
)
def test_invalid_input_is_refused(
    keys: KeyRepository, tenant: TenantInfo, kwargs: dict[str, object], param: str
) -> None:
    arguments: dict[str, object] = {"name": "k", **kwargs}
    with pytest.raises(InvalidRequest) as raised:
        keys.create(tenant.id, **arguments)  # type: ignore[arg-type]
    assert raised.value.param == param
    assert keys.list() == []


def test_expiry_must_be_aware_and_in_the_future(
    keys: KeyRepository, tenant: TenantInfo, clock: ManualClock
) -> None:
    with pytest.raises(InvalidRequest, match="future"):
        keys.create(tenant.id, "k", expires_at=clock.utcnow())
    with pytest.raises(InvalidRequest, match="time zone"):
        keys.create(tenant.id, "k", expires_at=clock.utcnow().replace(tzinfo=None) + timedelta(1))


def test_empty_allowed_models_allows_none(keys: KeyRepository, tenant: TenantInfo) -> None:
    info, secret = keys.create(tenant.id, "k", allowed_models=())
    principal = keys.principal_for_secret_hash(hash_secret(secret))

    assert info.allowed_models == ()
    assert principal is not None and not principal.may_use_model("m1")


def test_a_principal_may_use_the_tiers_its_key_and_tenant_both_allow(
    keys: KeyRepository, tenant: TenantInfo, database: Database, clock: ManualClock
) -> None:
    info, _ = keys.create(tenant.id, "a", terms={"service_tiers": ["priority", "default"]})
    found = keys.principal(info.id)
    assert found is not None
    assert (found.service_tier, found.service_tiers) == (None, {"priority", "default"})
    TenantRepository(database, clock).update_terms(
        tenant.id, {"service_tier": "flex", "service_tiers": ["default", "flex"]}
    )
    found = keys.principal(info.id)
    assert found is not None
    assert (found.service_tier, found.service_tiers) == ("flex", {"default"})
    keys.update_terms(info.id, {"service_tier": "default"})
    assert keys.principal(info.id).service_tier == "default"  # type: ignore[union-attr]
    assert keys.get(info.id).as_json()["service_tiers"] == ["priority", "default"]  # type: ignore[union-attr]
