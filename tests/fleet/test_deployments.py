from __future__ import annotations

import pytest

from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.fleet.deployments import Binding, DeploymentRepository, bindings
from tokenmill.store.db import Database


@pytest.fixture
def repo(database: Database, clock: ManualClock) -> DeploymentRepository:
    ModelRepository(database, clock).register("m", task="chat", artifact="/m", context_tokens=512)
    return DeploymentRepository(database, clock)


def test_create_update_and_stop(repo: DeploymentRepository) -> None:
    info = repo.create("m", "1", settings={"context_tokens": 256}, max_replicas=3)
    assert (info.served_name, info.mode, info.status, info.dedicated) == (
        "m@1",
        "serverless",
        "active",
        False,
    )
    scaled = repo.update(info.id, min_replicas=2, scaling={"target_load_per_replica": 4})
    assert (scaled.min_replicas, scaled.max_replicas, scaled.scaling) == (
        2,
        3,
        {"target_load_per_replica": 4},
    )
    assert repo.update(info.id, status="stopped").status == "stopped"
    assert repo.list(active_only=True) == []
    assert repo.get(info.id) is not None


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"mode": "spot"}, "mode"),
        ({"mode": "dedicated"}, "tenant_id"),
        ({"min_replicas": 3, "max_replicas": 2}, "max_replicas"),
        ({"idle_seconds": 0}, "idle_seconds"),
        ({"settings": {"colour": 1}}, "colour"),
        ({"settings": {"threads": -1}}, "settings.threads"),
        ({"scaling": {"policy": "psychic"}}, "scaling.policy"),
        ({"scaling": {"scale_in_delay_seconds": 0}}, "scaling.scale_in_delay_seconds"),
    ],
)
def test_bad_terms_are_refused_naming_the_field(
    repo: DeploymentRepository, changes: dict[str, object], param: str
) -> None:
    with pytest.raises(InvalidRequest) as error:
        repo.create("m", "1", **changes)  # type: ignore[arg-type]
    assert error.value.param == param


def test_updates_are_checked_too(repo: DeploymentRepository) -> None:
    info = repo.create("m", "1")
    with pytest.raises(InvalidRequest):
        repo.update(info.id, max_replicas=100)
    with pytest.raises(InvalidRequest):
        repo.update(info.id, mode="dedicated")
    with pytest.raises(NotFound):
        repo.update("dep_absent", min_replicas=1)


def test_bindings_give_each_served_name_its_shared_and_dedicated_pools(
    repo: DeploymentRepository, database: Database, clock: ManualClock
) -> None:
    tenant = TenantRepository(database, clock).create("acme")
    shared = repo.create("m", "1")
    own = repo.create("m", "1", mode="dedicated", tenant_id=tenant.id)
    stopped = repo.create("m", "1")
    repo.update(stopped.id, status="stopped")
    found = bindings(repo.list())
    assert list(found) == ["m@1"]
    assert sorted(found["m@1"], key=lambda b: b.pool_key) == sorted(
        [Binding(shared.id), Binding(own.id, tenant.id)], key=lambda b: b.pool_key
    )
