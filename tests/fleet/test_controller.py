"""The fleet controller with real replica processes of the bundled models (marked ``model``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.fleet.harness import CHAT, COMPLETION, SMALL, ready, running_fleet
from tokenmill.billing.ledger import LedgerRepository
from tokenmill.clock import SystemClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.fleet.replicas import ReplicaState

pytestmark = pytest.mark.model


async def test_a_request_to_a_deployment_scaled_to_zero_waits_and_succeeds(
    tmp_path: Path,
) -> None:
    async with running_fleet(tmp_path, [CHAT]) as fleet:
        info = fleet.deployments.create(
            CHAT, "1", min_replicas=0, max_replicas=1, idle_seconds=2, settings=SMALL
        )
        await fleet.controller.reload()
        assert fleet.replicas(info.id) == []
        lease = await fleet.router.acquire(info.served_name)  # waits while the fleet scales
        try:
            answer = await fleet.chat(lease.url, info.served_name)
        finally:
            lease.release()
        assert answer["model"] == info.served_name
        version = fleet.models.require(CHAT).version()
        assert version is not None and version.measured and "ttft_ms" in version.measured
        # idle for longer than idle_seconds: back to zero, the process gone
        replica = fleet.managed(info.id).replicas[0]
        await fleet.until(lambda: fleet.replicas(info.id) == [], what="scale to zero")
        assert not replica.process.alive()


async def test_two_models_and_three_replicas_at_once(tmp_path: Path) -> None:
    async with running_fleet(tmp_path, [CHAT, COMPLETION]) as fleet:
        chat = fleet.deployments.create(CHAT, "1", min_replicas=2, max_replicas=2, settings=SMALL)
        completion = fleet.deployments.create(
            COMPLETION, "1", min_replicas=1, max_replicas=1, settings=SMALL
        )
        await fleet.until(ready(fleet, chat.id, 2), what="two chat replicas")
        await fleet.until(ready(fleet, completion.id, 1), what="one completion replica")
        urls = set()
        for _ in range(2):
            lease = await fleet.router.acquire(chat.served_name)
            urls.add(lease.url)  # the second goes to the less loaded replica
        assert len(urls) == 2
        lease = await fleet.router.acquire(completion.served_name)
        response = await fleet.http.post(
            f"{lease.url}/v1/completions",
            json={"model": completion.served_name, "prompt": "1, 2, 3,", "max_tokens": 3},
        )
        assert response.status_code == 200
        accelerators = [a for r in fleet.controller.assignments() for a in r.accelerator_ids]
        assert len(accelerators) == 3


async def test_a_replica_killed_with_sigkill_is_replaced(tmp_path: Path) -> None:
    async with running_fleet(tmp_path, [CHAT]) as fleet:
        info = fleet.deployments.create(CHAT, "1", min_replicas=1, max_replicas=1, settings=SMALL)
        await fleet.until(ready(fleet, info.id, 1), what="a ready replica")
        first = fleet.managed(info.id).live(ReplicaState.READY)[0]
        pid = first.process.process.pid  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
        await fleet.until(
            lambda: any(r.id != first.id for r in fleet.replicas(info.id, ReplicaState.READY)),
            what="a new replica",
        )
        lease = await fleet.router.acquire(info.served_name)
        assert lease.url != first.url
        await fleet.chat(lease.url, info.served_name)


async def test_a_dedicated_deployment_gets_its_own_accelerator_and_is_billed_by_the_hour(
    tmp_path: Path,
) -> None:
    async with running_fleet(tmp_path, [CHAT]) as fleet:
        clock = SystemClock()
        tenant = TenantRepository(fleet.db, clock).create("acme")
        shared = fleet.deployments.create(CHAT, "1", min_replicas=1, max_replicas=1, settings=SMALL)
        dedicated = fleet.deployments.create(
            CHAT,
            "1",
            mode="dedicated",
            tenant_id=tenant.id,
            min_replicas=1,
            max_replicas=1,
            settings=SMALL,
        )
        await fleet.until(ready(fleet, shared.id, 1), what="the shared replica")
        await fleet.until(ready(fleet, dedicated.id, 1), what="the dedicated replica")
        own = fleet.managed(dedicated.id).replicas[0]
        other = fleet.managed(shared.id).replicas[0]
        assert set(own.assignment.accelerator_ids).isdisjoint(other.assignment.accelerator_ids)
        assert (await fleet.router.acquire(CHAT + "@1", tenant_id=tenant.id)).url == own.url
        assert (await fleet.router.acquire(CHAT + "@1", tenant_id="ten_other")).url == other.url
        fleet.deployments.update(dedicated.id, status="stopped")
        await fleet.until(lambda: not own.process.alive(), what="the dedicated replica to stop")
        await fleet.until(
            lambda: LedgerRepository(fleet.db, clock).balance(tenant.id) < 0,
            what="the accelerator-hour charge",
        )
        entries = LedgerRepository(fleet.db, clock).entries(tenant.id)
        assert [e.kind for e in entries] == ["accelerator"]
