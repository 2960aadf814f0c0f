"""``tokenmill batches``: a tenant's batches (the Batch API's), against the database and data
dir. A batch created here is run by a running ``tokenmill serve`` (its batch workers), as the
tenant's first active key unless ``--key`` names another; ``--wait`` follows it to the end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tokenmill.batches.lines import ENDPOINTS
from tokenmill.cli.library import clear_errors

if TYPE_CHECKING:
    from tokenmill.batches.objects import BatchInfo
    from tokenmill.batches.service import BatchService

POLL_SECONDS = 0.5


def _service_and_tenant(tenant: str) -> tuple[BatchService, str]:
    from tokenmill.batches.repository import BatchRepository
    from tokenmill.batches.service import BatchService
    from tokenmill.cli.admin import _tenant
    from tokenmill.cli.main import _open_db
    from tokenmill.files.service import FileService
    from tokenmill.settings import Settings
    from tokenmill.work.queue import WorkQueue

    db, clock = _open_db()
    files = FileService.build(Settings(), db, clock)
    service = BatchService(BatchRepository(db, clock), files, WorkQueue(db, clock), clock)
    return service, _tenant(db, clock, tenant).id


def _key_id(tenant_id: str, key: str | None) -> str:
    """The key a batch runs as: ``key`` (an id or a name) or the tenant's first active one."""
    from tokenmill.cli.main import _open_db
    from tokenmill.control.keys import KeyRepository

    db, clock = _open_db()
    active = [k for k in KeyRepository(db, clock).list(tenant_id) if not k.revoked]
    chosen = [k for k in active if key in (None, k.id, k.name)]
    if not chosen:
        raise click.ClickException(
            f"The tenant has no active key named {key!r}." if key else "The tenant has no key."
        )
    return chosen[0].id


def _show(batch: BatchInfo) -> None:
    import orjson

    click.echo(orjson.dumps(batch.as_openai(), option=orjson.OPT_INDENT_2).decode())


def _wait(service: BatchService, tenant_id: str, batch: BatchInfo, timeout: float) -> BatchInfo:
    """Polls the batch until it ends, a bar showing its finished lines."""
    from tokenmill.batches.status import BatchStatus

    deadline = time.monotonic() + timeout
    with click.progressbar(length=1, label=batch.id, width=30) as bar:
        while batch.status not in BatchStatus.finished():
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"{batch.id} is still {batch.status.value} after {timeout:g} s."
                )
            time.sleep(POLL_SECONDS)
            batch = service.get(tenant_id, batch.id)
            counts = batch.counts
            bar.length = max(counts.total, 1)
            bar.update(counts.completed + counts.failed - bar.pos)
    return batch


tenant_option = click.option(
    "--tenant", default="admin", show_default=True, help="The tenant's name."
)


@click.group()
def batches() -> None:
    """Create, list, show and cancel a tenant's batches."""


@batches.command("create")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--endpoint", required=True, type=click.Choice(ENDPOINTS))
@click.option("--key", help="The key (id or name) the lines are sent as.")
@click.option("--wait", is_flag=True, help="Follow the batch until it ends.")
@click.option("--timeout", default=24 * 3600.0, show_default=True, help="Seconds to --wait.")
@tenant_option
@clear_errors
def create(
    path: Path, endpoint: str, key: str | None, wait: bool, timeout: float, tenant: str
) -> None:
    """Upload PATH (JSONL, one request per line) and start a batch over it."""
    from datetime import timedelta

    from tokenmill.cli.files import upload_file

    service, tenant_id = _service_and_tenant(tenant)
    key_id = _key_id(tenant_id, key)
    upload = upload_file(service.files, tenant_id, key_id, path, "batch")
    batch = service.create(
        tenant_id,
        key_id,
        input_file_id=upload.id,
        endpoint=endpoint,
        completion_window="24h",
        window=timedelta(hours=24),
        metadata={},
    )
    click.echo(f"Created {batch.id} over {upload.id} ({upload.filename}).")
    if wait:
        batch = _wait(service, tenant_id, batch, timeout)
        counts = batch.counts
        click.echo(
            f"{batch.id} {batch.status.value}: {counts.completed} of {counts.total} lines "
            f"answered, {counts.failed} failed; output {batch.output_file_id or '-'}, "
            f"errors {batch.error_file_id or '-'}."
        )
        if batch.status.value != "completed":
            raise SystemExit(1)


@batches.command("list")
@click.option("--limit", default=20, show_default=True)
@tenant_option
@clear_errors
def list_batches(limit: int, tenant: str) -> None:
    """List the tenant's batches, newest first."""
    from tokenmill.cli.main import _when, format_table

    service, tenant_id = _service_and_tenant(tenant)
    rows = [
        [
            b.id,
            b.status.value,
            b.endpoint,
            f"{b.counts.completed + b.counts.failed}/{b.counts.total}",
            str(b.counts.failed),
            _when(b.created_at),
        ]
        for b in service.list(tenant_id, limit=limit, after=None).data
    ]
    headers = ["ID", "STATUS", "ENDPOINT", "DONE", "FAILED", "CREATED"]
    click.echo(format_table(headers, rows))


@batches.command("get")
@click.argument("batch_id")
@tenant_option
@clear_errors
def get(batch_id: str, tenant: str) -> None:
    """Show one batch as the API returns it."""
    service, tenant_id = _service_and_tenant(tenant)
    _show(service.get(tenant_id, batch_id))


@batches.command("cancel")
@click.argument("batch_id")
@tenant_option
@clear_errors
def cancel(batch_id: str, tenant: str) -> None:
    """Cancel a batch: no new line is sent; what is done is written out."""
    service, tenant_id = _service_and_tenant(tenant)
    batch = service.cancel(tenant_id, batch_id)
    click.echo(f"{batch.id} is {batch.status.value}.")
