"""``tokenmill fine-tuning``: a tenant's fine-tuning jobs (the fine-tuning API's), against the
database and data dir. A job created here is run by a running ``tokenmill serve`` (its tuning
workers), as the tenant's first active key unless ``--key`` names another; ``--wait`` follows
it with a bar over its training steps to the end."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tokenmill.cli.library import clear_errors

if TYPE_CHECKING:
    from tokenmill.clock import Clock
    from tokenmill.control.keys import Principal
    from tokenmill.files.objects import FileInfo
    from tokenmill.store.db import Database
    from tokenmill.tuning.objects import FineTuningJobInfo
    from tokenmill.tuning.service import FineTuningService
    from tokenmill.work.queue import WorkQueue

POLL_SECONDS = 1.0
EVENTS_PER_POLL = 1000


@dataclass(frozen=True, slots=True)
class _Scope:
    """The service, the tenant it acts for, and the database under both."""

    service: FineTuningService
    tenant_id: str
    db: Database
    clock: Clock


def _scope(tenant: str, *, bundled: bool = False) -> _Scope:
    """``bundled``: the bundled models are put in the library first (as ``tokenmill models``
    does), so a fresh data dir can fine-tune them."""
    from tokenmill.billing.ledger import LedgerRepository
    from tokenmill.billing.pricebook import PriceBookRepository
    from tokenmill.catalog.install import install_bundled
    from tokenmill.catalog.repository import ModelRepository
    from tokenmill.cli.admin import _tenant
    from tokenmill.cli.main import _open_db
    from tokenmill.files.service import FileService
    from tokenmill.gateway.library import load_directory
    from tokenmill.settings import Settings
    from tokenmill.tuning.billing import TrainingBilling
    from tokenmill.tuning.repository import JobRepository
    from tokenmill.tuning.service import FineTuningService
    from tokenmill.work.queue import WorkQueue

    db, clock = _open_db()
    settings = Settings()
    models, prices = ModelRepository(db, clock), PriceBookRepository(db, clock)
    if bundled:
        install_bundled(models, prices, settings.bundled_models)
    jobs = JobRepository(db, clock)
    service = FineTuningService(
        jobs,
        FileService.build(settings, db, clock),
        WorkQueue(db, clock),
        load_directory(models),
        TrainingBilling(prices, LedgerRepository(db, clock), jobs),
        clock,
    )
    return _Scope(service, _tenant(db, clock, tenant).id, db, clock)


def _principal(scope: _Scope, key: str | None) -> Principal:
    """Who the job runs as: ``key`` (an id or a name) or the tenant's first active key."""
    from tokenmill.control.keys import KeyRepository

    keys = KeyRepository(scope.db, scope.clock)
    active = [k for k in keys.list(scope.tenant_id) if not k.revoked]
    chosen = [k for k in active if key in (None, k.id, k.name)]
    principal = keys.principal(chosen[0].id) if chosen else None
    if principal is None:
        raise click.ClickException(
            f"The tenant has no active key named {key!r}." if key else "The tenant has no key."
        )
    return principal


def _hyperparameters(
    epochs: int | None, batch_size: int | None, lr: float | None
) -> dict[str, Any]:
    """The options as the API's hyperparameters, checked by the API's own rules."""
    from tokenmill.tuning.objects import parse_hyperparameters

    asked = {"n_epochs": epochs, "batch_size": batch_size, "learning_rate_multiplier": lr}
    return parse_hyperparameters(
        {"hyperparameters": {k: v for k, v in asked.items() if v is not None}}
    )


@dataclass(slots=True)
class _Steps:
    """Training steps done and in all, read from the job's new metrics events (its work item's
    progress, in percent, until the first one)."""

    queue: WorkQueue
    item_id: str | None = None
    seen_id: int = 0
    done: int = 0
    total: int = 0

    def read(self, job: FineTuningJobInfo) -> tuple[int, int]:
        if job.work_item_id != self.item_id:  # a resumed job runs as a new work item
            self.item_id, self.seen_id = job.work_item_id, 0
        if self.item_id is None:
            return self.done, self.total
        for event in self.queue.events(self.item_id, after_id=self.seen_id, limit=EVENTS_PER_POLL):
            self.seen_id = event.id
            data = event.data or {}
            if event.level == "metrics" and "step" in data and "total_steps" in data:
                self.done, self.total = int(data["step"]), int(data["total_steps"])
        if self.total == 0:
            item = self.queue.get(self.item_id)
            if item is not None and item.progress is not None:
                return round(item.progress * 100), 100
        return self.done, self.total


def _wait(scope: _Scope, job: FineTuningJobInfo, timeout: float) -> tuple[FineTuningJobInfo, str]:
    """Polls the job until it ends (or pauses), a bar showing its steps; the job and its
    steps as ``done/total`` (empty before its first step)."""
    from tokenmill.tuning.status import JobStatus

    deadline = time.monotonic() + timeout
    steps = _Steps(scope.service.queue)
    done, total = 0, 0
    with click.progressbar(length=1, label=job.status.value, width=30, show_pos=True) as bar:
        while not job.finished and job.status != JobStatus.PAUSED:
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"{job.id} is still {job.status.value} after {timeout:g} s."
                )
            time.sleep(POLL_SECONDS)
            job = scope.service.get(scope.tenant_id, job.id)
            done, total = steps.read(job)
            bar.label = job.status.value
            bar.length = max(total, 1)
            bar.update(min(done, bar.length) - bar.pos)
    return job, f"{done}/{total}" if total else ""


def _outcome(job: FineTuningJobInfo, steps: str) -> str:
    from tokenmill.billing.pricing import format_micros

    ended = f"{job.id} {job.status.value}" + (f" after {steps} steps" if steps else "")
    if job.error:
        return f"{ended}: {job.error.get('message', job.error)}"
    cost = "-" if job.cost_micros is None else format_micros(job.cost_micros)
    return (
        f"{ended}: model {job.fine_tuned_model or '-'}, "
        f"{job.trained_tokens or 0:,} trained tokens, cost {cost}."
    )


def _show(payload: dict[str, Any]) -> None:
    import orjson

    click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


tenant_option = click.option(
    "--tenant", default="admin", show_default=True, help="The tenant's name."
)


@click.group("fine-tuning")
def fine_tuning() -> None:
    """Create, follow, list, pause, resume and cancel fine-tuning jobs; merge a fine-tune."""


@fine_tuning.command("create")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", required=True, help="The base model (a chat model of the library).")
@click.option(
    "--validation",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSONL file of held-out examples.",
)
@click.option("--suffix", help="Up to 40 letters, digits, '-' or '_' in the new model's name.")
@click.option("--epochs", type=int, help="Passes over the examples (default: auto).")
@click.option("--batch-size", type=int, help="Examples per step (default: auto).")
@click.option("--lr-multiplier", type=float, help="Learning rate multiplier (default: auto).")
@click.option("--seed", type=int, help="For a repeatable run (default: random).")
@click.option("--key", help="The key (id or name) the job runs as.")
@click.option("--wait", is_flag=True, help="Follow the job until it ends.")
@click.option("--timeout", default=24 * 3600.0, show_default=True, help="Seconds to --wait.")
@tenant_option
@clear_errors
def create(
    path: Path,
    model: str,
    validation: Path | None,
    suffix: str | None,
    epochs: int | None,
    batch_size: int | None,
    lr_multiplier: float | None,
    seed: int | None,
    key: str | None,
    wait: bool,
    timeout: float,
    tenant: str,
) -> None:
    """Upload PATH (JSONL, one chat example per line) and start a fine-tuning job on it."""
    from tokenmill.cli.files import upload_file
    from tokenmill.errors import TokenmillError
    from tokenmill.tuning.objects import parse_seed, parse_suffix
    from tokenmill.tuning.service import PURPOSE

    hyperparameters = _hyperparameters(epochs, batch_size, lr_multiplier)
    chosen_suffix, chosen_seed = parse_suffix(suffix), parse_seed(seed)
    scope = _scope(tenant, bundled=True)
    service, principal = scope.service, _principal(scope, key)
    sources = [path] if validation is None else [path, validation]
    uploads: list[FileInfo] = []
    try:
        for source in sources:
            uploads.append(
                upload_file(service.files, scope.tenant_id, principal.key_id, source, PURPOSE)
            )
        job = service.create(
            principal,
            model=model,
            training_file=uploads[0].id,
            validation_file=uploads[1].id if validation is not None else None,
            suffix=chosen_suffix,
            seed=chosen_seed,
            hyperparameters=hyperparameters,
            metadata={},
        )
    except TokenmillError:
        for upload in uploads:  # a refused job leaves no file behind
            service.files.delete(scope.tenant_id, upload.id)
        raise
    click.echo(f"Created {job.id} on {job.model} over {uploads[0].id} ({uploads[0].filename}).")
    if wait:
        job, steps = _wait(scope, job, timeout)
        click.echo(_outcome(job, steps))
        if job.status.value != "succeeded":
            raise SystemExit(1)


@fine_tuning.command("list")
@click.option("--limit", default=20, show_default=True)
@tenant_option
@clear_errors
def list_jobs(limit: int, tenant: str) -> None:
    """List the tenant's fine-tuning jobs, newest first."""
    from tokenmill.cli.main import _when, format_table

    scope = _scope(tenant)
    rows = [
        [
            j.id,
            j.status.value,
            j.model,
            j.fine_tuned_model or "-",
            f"{j.trained_tokens:,}" if j.trained_tokens is not None else "-",
            _when(j.created_at),
        ]
        for j in scope.service.list(scope.tenant_id, limit=limit, after=None, metadata={}).data
    ]
    headers = ["ID", "STATUS", "MODEL", "FINE-TUNED MODEL", "TRAINED TOKENS", "CREATED"]
    click.echo(format_table(headers, rows))


@fine_tuning.command("show")
@click.argument("job_id")
@tenant_option
@clear_errors
def show(job_id: str, tenant: str) -> None:
    """Show one job as the API returns it."""
    scope = _scope(tenant)
    _show(scope.service.get(scope.tenant_id, job_id).as_openai())


@fine_tuning.command("events")
@click.argument("job_id")
@click.option("--limit", default=50, show_default=True, help="The newest this many events.")
@tenant_option
@clear_errors
def events(job_id: str, limit: int, tenant: str) -> None:
    """A job's events, oldest first: validation, each step's metrics, checkpoints, the end."""
    from datetime import UTC, datetime

    scope = _scope(tenant)
    page = scope.service.events(scope.tenant_id, job_id, limit=limit, after=None)
    for event in reversed(page["data"]):
        at = datetime.fromtimestamp(event["created_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        kind = "metrics" if event["type"] == "metrics" else event["level"]
        click.echo(f"{at}  {kind:<7}  {event['message']}")


def _metric(metrics: dict[str, Any], name: str) -> str:
    value = metrics.get(name)
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


@fine_tuning.command("checkpoints")
@click.argument("job_id")
@click.option("--limit", default=10, show_default=True)
@tenant_option
@clear_errors
def checkpoints(job_id: str, limit: int, tenant: str) -> None:
    """A job's checkpoints, the latest step first, with their losses and accuracy."""
    from tokenmill.cli.main import format_table

    scope = _scope(tenant)
    page = scope.service.checkpoints(scope.tenant_id, job_id, limit=limit, after=None)
    rows = [
        [
            str(c.step),
            _metric(c.metrics, "train_loss"),
            _metric(c.metrics, "valid_loss"),
            _metric(c.metrics, "train_mean_token_accuracy"),
            _metric(c.metrics, "valid_mean_token_accuracy"),
            c.id,
        ]
        for c in page.data
    ]
    headers = ["STEP", "TRAIN LOSS", "VALID LOSS", "TRAIN ACCURACY", "VALID ACCURACY", "ID"]
    click.echo(format_table(headers, rows))


def _acted(job: FineTuningJobInfo, asked: str) -> str:
    """What became of the job: a running one stops at its worker's next step."""
    if job.control == asked:
        return f"{job.id} is {job.status.value}; it will {asked} within a training step."
    return f"{job.id} is {job.status.value}."


@fine_tuning.command("cancel")
@click.argument("job_id")
@tenant_option
@clear_errors
def cancel(job_id: str, tenant: str) -> None:
    """Cancel a job; the tokens it trained until then are billed."""
    scope = _scope(tenant)
    click.echo(_acted(scope.service.cancel(scope.tenant_id, job_id), "cancel"))


@fine_tuning.command("pause")
@click.argument("job_id")
@tenant_option
@clear_errors
def pause(job_id: str, tenant: str) -> None:
    """Pause a queued or running job (a running one checkpoints first)."""
    scope = _scope(tenant)
    click.echo(_acted(scope.service.pause(scope.tenant_id, job_id), "pause"))


@fine_tuning.command("resume")
@click.argument("job_id")
@tenant_option
@clear_errors
def resume(job_id: str, tenant: str) -> None:
    """Queue a paused job again; it goes on from its last checkpoint."""
    scope = _scope(tenant)
    click.echo(_acted(scope.service.resume(scope.tenant_id, job_id), "resume"))


@fine_tuning.command("merge")
@click.argument("model")
@tenant_option
@clear_errors
def merge(model: str, tenant: str) -> None:
    """Merge the fine-tune MODEL (ft:...) into its base: a standalone F16 model of the tenant,
    ``MODEL:merged``, to deploy like any model of the library."""
    from tokenmill.billing.pricebook import PriceBookRepository
    from tokenmill.catalog.repository import ModelRepository
    from tokenmill.settings import Settings
    from tokenmill.tuning.standalone import merge_fine_tune

    scope = _scope(tenant)
    started = time.monotonic()
    merged = merge_fine_tune(
        ModelRepository(scope.db, scope.clock),
        PriceBookRepository(scope.db, scope.clock),
        model,
        tenant_id=scope.tenant_id,
        models_dir=Settings().resolved_tenant_models_dir,
        now=scope.clock.utcnow(),
    )
    version = merged.version()
    size = f"{version.size_bytes / 1e6:,.0f} MB" if version and version.size_bytes else "?"
    click.echo(
        f"{merged.id}: {size} at {merged.artifact} ({time.monotonic() - started:.1f} s). "
        f"Deploy it: tokenmill deployments create '{merged.id}' --dedicated-to {tenant}"
    )
