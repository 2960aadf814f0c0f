"""``tokenmill serve``: the whole platform on one machine, composed from its parts."""

from __future__ import annotations

import logging

import click
import uvicorn

from tokenmill.catalog.bundled import bundled_model
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.control.bootstrap import ensure_admin
from tokenmill.fleet.local import ReplicaSpec, start_replica
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import Gateway, build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database

log = logging.getLogger("tokenmill")


def run_serve(settings: Settings) -> None:
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

    bundled = bundled_model(settings.default_model)
    models = ModelRepository(db, clock)
    models.register(
        bundled.id,
        task=bundled.task,
        artifact=str(bundled.path()),
        context_tokens=min(bundled.context_tokens, settings.engine_context_tokens),
    )
    replica = start_replica(
        ReplicaSpec(
            model_id=bundled.id,
            model_path=bundled.path(),
            threads=settings.engine_threads,
            context_tokens=settings.engine_context_tokens,
            kv_cache_tokens=settings.engine_kv_cache_tokens,
            max_running=settings.engine_max_running,
            speculative_tokens=settings.engine_speculative_tokens,
        ),
        log_dir=data_dir / "logs",
    )
    gateway: Gateway | None = None
    try:
        click.echo(f"Starting a replica of {bundled.id} (log: {replica.log_path}) …")
        replica.wait_ready(settings.engine_start_timeout_seconds)
        router = Router()
        router.set_replicas(bundled.id, [replica.url])
        gateway = build_gateway(settings, db, clock, router)
        click.echo(
            f"tokenmill is serving {bundled.id} at http://{settings.host}:{settings.port}/v1"
        )
        uvicorn.run(
            build_app(gateway.services),
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            proxy_headers=False,
            log_level=settings.log_level,
        )
    finally:
        replica.stop()
        if gateway is not None:
            gateway.close()
        db.dispose()
