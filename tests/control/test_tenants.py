from __future__ import annotations

import pytest

from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantInfo, TenantRepository
from tokenmill.errors import Conflict, InvalidRequest
from tokenmill.store.db import Database


@pytest.fixture
def tenants(database: Database, clock: ManualClock) -> TenantRepository:
    return TenantRepository(database, clock)


def test_create_then_get(tenants: TenantRepository, clock: ManualClock) -> None:
    created = tenants.create("acme")

    assert created.name == "acme"
    assert created.id.startswith("ten_")
    assert created.created_at == clock.utcnow()
    assert tenants.get(created.id) == created
    assert tenants.get_by_name("acme") == created


def test_unknown_tenants_are_none(tenants: TenantRepository) -> None:
    assert tenants.get("ten_nope") is None
    assert tenants.get_by_name("nope") is None


def test_list_is_sorted_by_name(tenants: TenantRepository) -> None:
    for name in ("zeta", "acme", "mid"):
        tenants.create(name)

    assert [t.name for t in tenants.list()] == ["acme", "mid", "zeta"]


def test_duplicate_name_is_a_conflict(tenants: TenantRepository) -> None:
    tenants.create("acme")

    with pytest.raises(Conflict) as raised:
        tenants.create("acme")

    assert isinstance(raised.value, InvalidRequest)
    assert raised.value.status == 409
    assert raised.value.param == "name"
    assert len(tenants.list()) == 1


def test_names_are_stripped(tenants: TenantRepository) -> None:
    created = tenants.create("  acme  ")

    assert created.name == "acme"
    with pytest.raises(Conflict):
        tenants.create("acme")


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "bad\nname"])
def test_invalid_names_are_refused(tenants: TenantRepository, name: str) -> None:
    with pytest.raises(InvalidRequest):
        tenants.create(name)
    assert tenants.list() == []


def test_tenant_info_is_frozen(tenants: TenantRepository) -> None:
    info = tenants.create("acme")
    with pytest.raises(AttributeError):
        info.name = "other"  # type: ignore[misc]
    assert isinstance(info, TenantInfo)


def test_share_weight_is_set_kept_and_cleared(tenants: TenantRepository) -> None:
    created = tenants.create("acme")
    assert created.share_weight is None
    assert tenants.update_terms(created.id, {"share_weight": 4}).share_weight == 4
    assert tenants.update_terms(created.id, {"rpm_limit": 5}).share_weight == 4
    assert tenants.update_terms(created.id, {"share_weight": None}).share_weight is None


@pytest.mark.parametrize("weight", [0, -1, 1001, 1.5, "2", True])
def test_share_weight_out_of_range_is_refused(tenants: TenantRepository, weight: object) -> None:
    created = tenants.create("acme")
    with pytest.raises(InvalidRequest, match="share_weight"):
        tenants.update_terms(created.id, {"share_weight": weight})
    assert tenants.get(created.id).share_weight is None  # type: ignore[union-attr]


def test_service_tiers_are_set_kept_and_cleared(tenants: TenantRepository) -> None:
    created = tenants.create("acme")
    terms = {"service_tier": "flex", "service_tiers": ["flex", "default"]}
    updated = tenants.update_terms(created.id, terms)
    assert (updated.service_tier, updated.service_tiers) == ("flex", ["default", "flex"])
    assert tenants.update_terms(created.id, {"rpm_limit": 5}).service_tier == "flex"
    cleared = tenants.update_terms(created.id, {"service_tier": None, "service_tiers": None})
    assert (cleared.service_tier, cleared.service_tiers) == (None, None)
    with pytest.raises(InvalidRequest, match="service_tiers"):
        tenants.update_terms(created.id, {"service_tiers": ["gold"]})
