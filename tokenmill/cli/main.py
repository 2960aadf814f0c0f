"""The ``tokenmill`` command."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from tokenmill.cli.admin import COMMANDS, limit_options, terms_from
from tokenmill.cli.advise import advise
from tokenmill.cli.apps import apps
from tokenmill.cli.audit import audit
from tokenmill.cli.batches import batches
from tokenmill.cli.datasets import datasets
from tokenmill.cli.evals import evals
from tokenmill.cli.files import files
from tokenmill.cli.fine_tuning import fine_tuning
from tokenmill.cli.library import deployments, models
from tokenmill.cli.mcp import mcp
from tokenmill.cli.responses import responses
from tokenmill.cli.sim import sim
from tokenmill.clock import SystemClock
from tokenmill.settings import Settings

if TYPE_CHECKING:
    from tokenmill.store.db import Database


@click.group()
def main() -> None:
    """tokenmill: a self-hosted, metered Model-as-a-Service platform."""


def _listen_options(command: Callable[..., None]) -> Callable[..., None]:
    """--host, --port and TLS: what ``serve`` and ``gateway`` listen with."""
    for option in reversed(
        [
            click.option("--host", help="Address to listen on (TOKENMILL_HOST)."),
            click.option("--port", type=int, help="Port to listen on (TOKENMILL_PORT)."),
            click.option(
                "--ssl-certfile",
                type=click.Path(exists=True, dir_okay=False),
                help="Serve HTTPS with this certificate chain (PEM; TOKENMILL_SSL_CERTFILE).",
            ),
            click.option(
                "--ssl-keyfile",
                type=click.Path(exists=True, dir_okay=False),
                help="The certificate's private key (PEM; TOKENMILL_SSL_KEYFILE).",
            ),
        ]
    ):
        command = option(command)
    return command


def _settings(**given: object) -> Settings:
    """Settings with what was given on the command line over the environment's."""
    overrides = {k: v for k, v in given.items() if v is not None and v != ""}
    models = overrides.pop("models", None)
    if models is not None:
        overrides["bundled_models"] = [m.strip() for m in str(models).split(",") if m.strip()]
    elif given.get("models") == "":
        overrides["bundled_models"] = []
    return Settings(**overrides)  # type: ignore[arg-type]


@main.command()
@_listen_options
@click.option(
    "--models",
    help="Comma-separated bundled models to install and deploy (TOKENMILL_BUNDLED_MODELS).",
)
@click.option(
    "--gateways",
    type=click.IntRange(1, 64),
    help="Gateway processes on the one port (TOKENMILL_GATEWAYS; above 1 needs Redis).",
)
def serve(**given: object) -> None:
    """Start the platform: the gateway, the fleet, and the bundled models' deployments."""
    from tokenmill.cli.serve import run_serve

    run_serve(_settings(**given))


@main.command()
@_listen_options
def gateway(**given: object) -> None:
    """Serve the API only; the fleet and background work run in `tokenmill controller`.
    Several gateways may share one port."""
    from tokenmill.cli.serve import run_gateway

    run_gateway(_settings(**given))


@main.command()
@click.option("--models", help="Comma-separated bundled models to install and deploy.")
@click.option("--metrics-port", type=int, help="Port of /health and /metrics (0: any free).")
def controller(models: str | None, metrics_port: int | None) -> None:
    """Run background work and, while this controller leads, the fleet. Several may run:
    one leads (a lease in the database), the others take over when it dies."""
    from tokenmill.cli.serve import run_controller

    run_controller(_settings(models=models, controller_port=metrics_port))


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def engine(ctx: click.Context) -> None:
    """Run one engine replica (see `tokenmill engine --help`)."""
    from tokenmill.engine.__main__ import main as engine_main

    sys.exit(engine_main(ctx.args))


@main.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--name", required=True, help="A name to recognise the key by.")
@limit_options
@click.option("--tenant", default="admin", show_default=True, help="Tenant name.")
@click.option(
    "--role",
    type=click.Choice(["platform_admin", "tenant_admin", "inference"]),
    default="inference",
    show_default=True,
)
@click.option("--models", help="Comma-separated models the key may use (default: all).")
@click.option("--expires-days", type=click.IntRange(min=1), help="Expire after this many days.")
def keys_create(
    name: str,
    tenant: str,
    role: str,
    models: str | None,
    expires_days: int | None,
    **limits: Any,
) -> None:
    """Create a key; its secret is printed once and never again."""
    from tokenmill.control.keys import KeyRepository
    from tokenmill.control.tenants import TenantRepository

    db, clock = _open_db()
    tenants = TenantRepository(db, clock)
    found = tenants.get_by_name(tenant) or tenants.create(tenant)
    expires_at = clock.utcnow() + timedelta(days=expires_days) if expires_days else None
    allowed = [m.strip() for m in models.split(",") if m.strip()] if models else None
    info, secret = KeyRepository(db, clock).create(
        found.id,
        name,
        role=role,
        allowed_models=allowed,
        expires_at=expires_at,
        terms=terms_from(**limits),
    )
    click.echo(f"Created key {info.id} ({info.name}) for tenant {tenant}, role {info.role}.")
    click.echo("Secret (shown once, store it now):")
    click.echo(secret)


@keys.command("list")
@click.option("--tenant", help="Only this tenant's keys.")
def keys_list(tenant: str | None) -> None:
    """List keys (never their secrets)."""
    from tokenmill.control.keys import KeyRepository
    from tokenmill.control.tenants import TenantRepository

    db, clock = _open_db()
    tenants = {t.id: t.name for t in TenantRepository(db, clock).list()}
    tenant_id = next((i for i, n in tenants.items() if n == tenant), "-") if tenant else None
    rows = [
        [
            k.id,
            k.name,
            tenants.get(k.tenant_id, k.tenant_id),
            k.role,
            k.prefix + "…",
            _when(k.created_at),
            _when(k.expires_at),
            "revoked" if k.revoked else "active",
        ]
        for k in KeyRepository(db, clock).list(tenant_id)
    ]
    headers = ["ID", "NAME", "TENANT", "ROLE", "PREFIX", "CREATED", "EXPIRES", "STATUS"]
    click.echo(format_table(headers, rows))


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key; running gateways refuse it within a second."""
    from tokenmill.control.keys import KeyRepository

    db, clock = _open_db()
    info = KeyRepository(db, clock).revoke(key_id)
    click.echo(f"Revoked key {info.id} ({info.name}).")


@keys.command("set")
@click.argument("key_id")
@limit_options
def keys_set(key_id: str, **limits: Any) -> None:
    """Change a key's own cap and limits (those not given are kept)."""
    from tokenmill.control.keys import KeyRepository

    db, clock = _open_db()
    info = KeyRepository(db, clock).update_terms(key_id, terms_from(**limits))
    click.echo(f"Updated key {info.id} ({info.name}); gateways apply it within the key cache TTL.")


def _open_db() -> tuple[Database, SystemClock]:
    from tokenmill.store.db import Database

    db = Database.from_settings(Settings())
    db.migrate()
    return db, SystemClock()


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


for _command in (*COMMANDS, models, deployments, files, batches, fine_tuning, responses, mcp, apps):
    main.add_command(_command)
main.add_command(evals)
main.add_command(sim)
main.add_command(advise)
main.add_command(audit)
main.add_command(datasets)

if __name__ == "__main__":
    main()
