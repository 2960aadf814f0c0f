"""``tokenmill audit list|verify``: the admin actions the audit log recorded."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import orjson


@click.group("audit")
def audit() -> None:
    """Every admin action (who, what, before and after), in a hash-chained log."""


@audit.command("list")
@click.option("--tenant", help="Only the entries about this tenant (by name) or by its keys.")
@click.option("--since", type=click.DateTime(), help="From this time (UTC).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def list_entries(tenant: str | None, since: datetime | None, limit: int, as_json: bool) -> None:
    """The newest entries first."""
    from tokenmill.cli.admin import _open, _table, _tenant
    from tokenmill.control.audit import AuditLog

    db, clock = _open()
    tenant_id = _tenant(db, clock, tenant).id if tenant else None
    found = AuditLog(db, clock).list(
        tenant_id, since=since.replace(tzinfo=UTC) if since else None, limit=limit
    )
    if as_json:
        data = [r.as_json() for r in found]
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    _table(
        ["seq", "time", "actor", "role", "tenant", "action", "status", "from"],
        [
            [r.seq, r.created_at.strftime("%Y-%m-%d %H:%M:%S"), r.action.actor_key_id,
             r.action.actor_role, r.action.tenant_id, f"{r.action.method} {r.action.path}",
             r.action.status, r.action.address]
            for r in found
        ],
    )  # fmt: skip


@audit.command("verify")
def verify() -> None:
    """Recompute the chain's hashes; a non-zero exit if an entry was changed or removed."""
    from tokenmill.cli.admin import _open
    from tokenmill.control.audit import AuditLog

    db, clock = _open()
    result = AuditLog(db, clock).verify()
    if result.intact:
        click.echo(f"intact: {result.entries} entries")
        return
    raise click.ClickException(
        f"broken at entry {result.first_broken_seq} (after {result.entries} intact entries)"
    )
