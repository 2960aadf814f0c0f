"""``tokenmill serve``: the whole platform on one machine, composed from its parts; and the
separate roles' commands, ``tokenmill gateway`` and ``tokenmill controller``."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import click
import uvicorn

from tokenmill.cli.gateways import GatewaySupervisor, gateway_command
from tokenmill.cli.roles import (
    ControllerRole,
    build_gateway_role,
    build_router,
    configure_logging,
    prepare,
)
from tokenmill.clock import SystemClock
from tokenmill.fleet.compose import build_fleet
from tokenmill.fleet.controller import FleetController
from tokenmill.fleet.metrics import controller_metrics
from tokenmill.gateway.admin_console import replica_loads
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import Gateway, build_gateway
from tokenmill.settings import Settings
from tokenmill.store.db import Database


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


def server_options(settings: Settings) -> dict[str, Any]:
    """What every server of ours runs with (the controller's too, which has no TLS)."""
    return {
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_level": settings.log_level,
    }


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {**server_options(settings), **tls_options(settings)}


def shared_port_socket(host: str, port: int) -> socket.socket:
    """A listening address several gateway processes bind at once (SO_REUSEPORT): the
    kernel spreads new connections among them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def run_server(config: uvicorn.Config, sockets: list[socket.socket] | None) -> None:
    """Serves until SIGINT or SIGTERM. uvicorn raises the signal again once it has shut down
    (so that its default action follows): a stop asked for is not an error here."""
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=sockets)


def run_serve(settings: Settings) -> None:
    options = uvicorn_options(settings)
    if settings.gateways > 1 and not settings.redis_url:
        raise click.UsageError(
            "--gateways above 1 needs Redis (TOKENMILL_REDIS_URL): without it each gateway "
            "would hold its own rate limits and budgets."
        )
    configure_logging(settings)
    clock = SystemClock()
    db = Database.from_settings(settings)
    installed = prepare(settings, db, clock)
    names = ", ".join(m.id for m in installed) or "no bundled models"
    scheme = "https" if settings.ssl_certfile else "http"
    where = f"{scheme}://{settings.host}:{settings.port}/v1"
    try:
        if settings.gateways == 1:
            click.echo(f"tokenmill is serving {names} at {where}")
            serve_in_one_process(settings, db, clock, options)
        else:
            click.echo(f"tokenmill is serving {names} at {where} ({settings.gateways} gateways)")
            serve_with_gateways(settings, db, clock)
    finally:
        db.dispose()


def serve_in_one_process(
    settings: Settings, db: Database, clock: SystemClock, options: dict[str, Any]
) -> None:
    """Gateway and fleet in one process: the fleet publishes to the gateway's router."""
    router = build_router(settings)
    gateway: Gateway | None = None
    fleet: FleetController | None = None
    try:
        gateway = build_gateway(settings, db, clock, router)
        metrics = gateway.services.metrics
        fleet_metrics = None if metrics is None else controller_metrics(metrics.registry, db, clock)
        fleet = build_fleet(settings, db, clock, router, fleet_metrics)
        if fleet_metrics is not None:
            fleet_metrics.leader.set(1)  # one process: it leads
        router.on_demand = fleet.wake
        gateway.services.loops.append(fleet)
        if gateway.services.admin is not None:
            gateway.services.admin.fleet_status = fleet.status
            gateway.services.admin.replica_load = replica_loads(router)
        app = build_app(gateway.services)
        uvicorn.run(app, host=settings.host, port=settings.port, **options)
    finally:
        if fleet is not None:
            fleet.shutdown()
        if gateway is not None:
            gateway.close()


def serve_with_gateways(settings: Settings, db: Database, clock: SystemClock) -> None:
    """This process is the controller; ``settings.gateways`` gateway processes share the
    port, each restarted if it dies."""
    role = ControllerRole(settings, db, clock)
    role.gateway.services.loops.append(
        GatewaySupervisor(gateway_command(settings), settings.gateways)
    )
    try:
        run_controller_app(role, settings)
    finally:
        role.gateway.close()


def run_controller_app(role: ControllerRole, settings: Settings) -> None:
    port = settings.controller_port
    sock = shared_port_socket(settings.controller_host, port) if port == 0 else None
    if sock is not None:
        port = sock.getsockname()[1]
    click.echo(f"controller {role.lease.holder} at http://{settings.controller_host}:{port}")
    config = uvicorn.Config(
        role, host=settings.controller_host, port=port, **server_options(settings)
    )
    run_server(config, [sock] if sock is not None else None)


def run_controller(settings: Settings) -> None:
    """``tokenmill controller``: background work, and the fleet while it leads."""
    configure_logging(settings)
    clock = SystemClock()
    db = Database.from_settings(settings)
    try:
        prepare(settings, db, clock)
        role = ControllerRole(settings, db, clock)
        try:
            run_controller_app(role, settings)
        finally:
            role.gateway.close()
    finally:
        db.dispose()


def run_gateway(settings: Settings) -> None:
    """``tokenmill gateway``: the API alone, on a port other gateways may share."""
    options = uvicorn_options(settings)
    configure_logging(settings)
    clock = SystemClock()
    db = Database.from_settings(settings)
    try:
        db.migrate()
        gateway = build_gateway_role(settings, db, clock)
        try:
            config = uvicorn.Config(build_app(gateway.services), **options)
            run_server(config, [shared_port_socket(settings.host, settings.port)])
        finally:
            gateway.close()
    finally:
        db.dispose()
