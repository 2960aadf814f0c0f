"""The platform's roles as processes, all sharing one database (and Redis for counters).

``tokenmill gateway`` serves the API and nothing else: it finds ready replicas on the fleet's
board and reports its load there; run as many as the traffic needs. ``tokenmill controller``
runs the background work (indexing, batches, fine-tuning, evaluations, storage billing) and,
while it holds the leader lease, the fleet; a standby takes over when the leader dies.
``tokenmill serve`` is both in one process, or with ``--gateways N`` a controller with N
gateway processes on one port.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from typing import Any

import click
from prometheus_client import CollectorRegistry, generate_latest

from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.catalog.install import install_bundled
from tokenmill.catalog.repository import ModelInfo, ModelRepository
from tokenmill.clock import Clock
from tokenmill.control.bootstrap import ensure_admin
from tokenmill.control.leader import LeaderElection, LeaderLease
from tokenmill.fleet.balancer import build_policy
from tokenmill.fleet.board import BoardSink, FleetBoard
from tokenmill.fleet.compose import build_fleet, ensure_default_deployments
from tokenmill.fleet.controller import FleetController
from tokenmill.fleet.deployments import DeploymentRepository
from tokenmill.fleet.metrics import controller_metrics
from tokenmill.fleet.replicas import ReplicaRuns
from tokenmill.gateway.admin_console import replica_loads
from tokenmill.gateway.compose import Gateway, build_gateway
from tokenmill.gateway.fleet_link import LoadReporter, RouteWatcher
from tokenmill.gateway.http import Receive, Scope, Send
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database

log = logging.getLogger("tokenmill")

STATUS_SECONDS = 1.0


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


def prepare(settings: Settings, db: Database, clock: Clock) -> list[ModelInfo]:
    """The schema, the admin tenant (its key printed once), the bundled models and their
    default deployments: what a fresh platform needs before anything serves."""
    db.migrate()
    secret = ensure_admin(db, clock)
    if secret is not None:
        click.echo("Created the admin tenant and its platform-admin key (shown once, keep it):")
        click.echo(f"  TOKENMILL_API_KEY={secret}")
    click.echo(f"Data directory: {settings.ensure_data_dir()}")
    click.echo(f"Database: {db.url.render_as_string(hide_password=True)}")
    models = ModelRepository(db, clock)
    installed = install_bundled(models, PriceBookRepository(db, clock), settings.bundled_models)
    ensure_default_deployments(settings, DeploymentRepository(db, clock), installed)
    return installed


def build_router(settings: Settings) -> Router:
    options = (
        {"max_imbalance_tokens": settings.routing_max_imbalance_tokens}
        if settings.routing_policy == "prefix_affinity"
        else {}
    )
    return Router(
        build_policy(settings.routing_policy, **options),
        queue_timeout_seconds=settings.queue_timeout_seconds,
        max_queued=settings.max_queued_requests,
    )


def process_id() -> str:
    """This process, among every gateway and controller of the platform."""
    return f"{socket.gethostname()}:{os.getpid()}"


def link_to_board(gateway: Gateway, board: FleetBoard, router: Router) -> RouteWatcher:
    """A gateway (or a controller's own work) routing by what the leading controller
    publishes, and reporting its load for the autoscalers."""
    watcher = RouteWatcher(board, router)
    reporter = LoadReporter(board, router, process_id())
    router.on_demand = reporter.wake
    gateway.services.loops.extend([watcher, reporter])
    admin = gateway.services.admin
    if admin is not None:
        admin.fleet_status = watcher.status
        admin.replica_load = replica_loads(router)
    return watcher


def build_gateway_role(settings: Settings, db: Database, clock: Clock) -> Gateway:
    """A gateway that runs no background work: the API, admission, metering."""
    router = build_router(settings)
    gateway = build_gateway(settings, db, clock, router, worker=False)
    link_to_board(gateway, FleetBoard(db, clock), router)
    return gateway


class ControllerRole:
    """Background work always; the fleet while this process holds the leader lease."""

    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.router = build_router(settings)
        self.gateway = build_gateway(settings, db, clock, self.router)
        self.board = FleetBoard(db, clock)
        link_to_board(self.gateway, self.board, self.router)
        metrics = self.gateway.services.metrics
        self.registry = metrics.registry if metrics is not None else CollectorRegistry()
        self.fleet_metrics = controller_metrics(self.registry, db, clock)
        ttl = settings.leader_lease_seconds
        self.lease = LeaderLease(db, clock, process_id(), ttl_seconds=ttl)
        self.election = LeaderElection(
            self.lease, self.lead, renew_seconds=ttl / 3, on_change=self._leading
        )
        self.gateway.services.loops.append(self.election)
        self.fleet: FleetController | None = None

    async def lead(self, epoch: int) -> None:
        """The fleet, from scratch: what an earlier leader published is cleared, its
        replicas' runs are closed (they died with it), then this fleet starts its own."""
        await asyncio.to_thread(self.board.take_over, epoch)
        closed = await asyncio.to_thread(ReplicaRuns(self.db, self.clock).close_orphans)
        if closed:
            log.warning("closed %d replica runs of a controller that is gone", closed)
        sink = BoardSink(self.board, self.router, epoch, local_load=False)
        fleet = build_fleet(self.settings, self.db, self.clock, sink, self.fleet_metrics)
        self.fleet = fleet
        try:
            await asyncio.gather(fleet.run(), self._publish_status(fleet, sink))
        finally:
            self.fleet = None
            await asyncio.to_thread(fleet.shutdown)
            self.fleet_metrics.forget_fleet()

    def _leading(self, leading: bool) -> None:
        self.fleet_metrics.leader.set(1 if leading else 0)
        self.fleet_metrics.leader_changes.inc()

    async def _publish_status(self, fleet: FleetController, sink: BoardSink) -> None:
        while True:
            await asyncio.to_thread(sink.publish_status, fleet.status())
            await asyncio.sleep(STATUS_SECONDS)

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "role": "controller",
            "id": self.lease.holder,
            "leading": self.election.leading,
            "epoch": self.election.epoch,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The controller's own small HTTP face: ``/health`` and ``/metrics``."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == "/metrics":
            body, media = generate_latest(self.registry), "text/plain; version=0.0.4"
            status = 200
        elif scope["path"] == "/health":
            body, media, status = json.dumps(self.health()).encode(), "application/json", 200
        else:
            body, media, status = b'{"error": "not found"}', "application/json", 404
        headers = [(b"content-type", media.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        services = self.gateway.services
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await services.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await services.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
