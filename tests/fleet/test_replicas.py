from __future__ import annotations

from tokenmill.billing.ledger import LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import Price
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.fleet.deployments import DeploymentRepository
from tokenmill.fleet.replicas import ReplicaRuns, ReplicaState, accelerator_charge_micros
from tokenmill.store.db import Database
from tokenmill.store.tables import ReplicaRun


def test_an_hour_on_two_accelerators_costs_two_accelerator_hours() -> None:
    assert accelerator_charge_micros(3600, 2, 1_500_000) == 3_000_000


def test_charges_round_to_the_nearest_micro() -> None:
    assert accelerator_charge_micros(1, 1, 1_000_000) == 278  # 277.8
    assert accelerator_charge_micros(0, 4, 1_000_000) == 0


def test_live_states_hold_an_accelerator() -> None:
    assert ReplicaState.live() == {
        ReplicaState.STARTING,
        ReplicaState.READY,
        ReplicaState.DRAINING,
    }


def test_a_new_leader_closes_the_runs_of_the_controller_before_it(
    database: Database, clock: ManualClock
) -> None:
    """Replicas die with their controller: the runs it left open are closed as failed, and a
    dedicated one is billed up to the takeover (at most a lease after it died), once."""
    ModelRepository(database, clock).register("chat", task="chat", artifact="x", context_tokens=512)
    PriceBookRepository(database, clock).add("chat", Price(accelerator_hour_micros=2_000_000))
    tenant = TenantRepository(database, clock).create("acme")
    deployments = DeploymentRepository(database, clock)
    shared = deployments.create("chat", "1")
    own = deployments.create("chat", "1", mode="dedicated", tenant_id=tenant.id)
    with database.session() as session:
        for run_id, deployment, state, ready in (
            ("rep_shared", shared, "ready", True),
            ("rep_own", own, "ready", True),
            ("rep_starting", own, "starting", False),
            ("rep_done", own, "stopped", True),
        ):
            session.add(
                ReplicaRun(
                    id=run_id,
                    deployment_id=deployment.id,
                    tenant_id=deployment.tenant_id,
                    served_name="chat@1",
                    node_id="n1",
                    accelerator_ids=["n1/cpu0"],
                    url="http://r",
                    state=state,
                    started_at=clock.utcnow(),
                    ready_at=clock.utcnow() if ready else None,
                    stopped_at=clock.utcnow() if state == "stopped" else None,
                )
            )
    clock.advance(3600)
    runs = ReplicaRuns(database, clock)
    assert runs.close_orphans() == 3
    assert runs.close_orphans() == 0
    with database.session() as session:
        closed = {r.id: (r.state, r.exit_reason) for r in session.query(ReplicaRun)}
    assert closed["rep_done"] == ("stopped", None)
    assert {closed[i] for i in ("rep_shared", "rep_own", "rep_starting")} == {
        ("failed", "its controller was lost")
    }
    entries = LedgerRepository(database, clock).entries(tenant.id)
    assert [(e.kind, e.amount_micros) for e in entries] == [("accelerator", -2_000_000)]
