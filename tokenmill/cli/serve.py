"""``tokenmill serve``: the whole platform on one machine, composed from its parts."""

from __future__ import annotations

import logging

import click
import uvicorn

from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.catalog.install import install_bundled
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.control.bootstrap import ensure_admin
from tokenmill.fleet.balancer import build_policy
from tokenmill.fleet.compose import build_fleet, ensure_default_deployments
from tokenmill.fleet.controller import FleetController
from tokenmill.fleet.deployments import DeploymentRepository
from tokenmill.gateway.admin_console import replica_loads
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import Gateway, build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database

log = logging.getLogger("tokenmill")


def tls_options(settings: Settings) -> dict[str, object]:
    """uvicorn's TLS and proxy options; a certificate without its key (or the reverse) is an
    error before anything starts."""
    if (settings.ssl_certfile is None) != (settings.ssl_keyfile is None):
        raise click.UsageError("TLS needs both --ssl-certfile and --ssl-keyfile.")
    options: dict[str, object] = {"proxy_headers": bool(settings.trusted_proxies)}
    if settings.trusted_proxies:
        options["forwarded_allow_ips"] = ",".join(settings.trusted_proxies)
    if settings.ssl_certfile is not None:
        options["ssl_certfile"] = str(settings.ssl_certfile)
        options["ssl_keyfile"] = str(settings.ssl_keyfile)
    return options


def run_serve(settings: Settings) -> None:
    tls = tls_options(settings)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    clock = SystemClock()
    data_dir = settings.ensure_data_dir()
    db = Database.from_settings(settings)
    db.migrate()

    secret = ensure_admin(db, clock)
    if secret is not None:
        click.echo("Created the admin tenant and its platform-admin key (shown once, keep it):")
        click.echo(f"  TOKENMILL_API_KEY={secret}")
    click.echo(f"Data directory: {data_dir}")
    click.echo(f"Database: {db.url.render_as_string(hide_password=True)}")

    models = ModelRepository(db, clock)
    installed = install_bundled(models, PriceBookRepository(db, clock), settings.bundled_models)
    ensure_default_deployments(settings, DeploymentRepository(db, clock), installed)

    options = (
        {"max_imbalance_tokens": settings.routing_max_imbalance_tokens}
        if settings.routing_policy == "prefix_affinity"
        else {}
    )
    router = Router(
        build_policy(settings.routing_policy, **options),
        queue_timeout_seconds=settings.queue_timeout_seconds,
        max_queued=settings.max_queued_requests,
    )
    gateway: Gateway | None = None
    fleet: FleetController | None = None
    try:
        gateway = build_gateway(settings, db, clock, router)
        fleet = build_fleet(settings, db, clock, router)
        router.on_demand = fleet.wake
        gateway.services.loops.append(fleet)
        if gateway.services.admin is not None:
            gateway.services.admin.fleet_status = fleet.status
            gateway.services.admin.replica_load = replica_loads(router)
        names = ", ".join(m.id for m in installed) or "no bundled models"
        scheme = "https" if settings.ssl_certfile else "http"
        click.echo(f"tokenmill is serving {names} at {scheme}://{settings.host}:{settings.port}/v1")
        uvicorn.run(
            build_app(gateway.services),
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level=settings.log_level,
            **tls,  # type: ignore[arg-type]
        )
    finally:
        if fleet is not None:
            fleet.shutdown()
        if gateway is not None:
            gateway.close()
        db.dispose()
