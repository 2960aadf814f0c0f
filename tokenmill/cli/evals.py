"""``tokenmill eval``: evaluate models on a held-out split, against the database and data dir.

``--dataset`` is a JSONL file here (uploaded with purpose ``fine-tune``; the whole file is the
split), a file id (``file-...``), or a dataset id (``ds-...``, ``ds-...@3`` for version 3; its
``validation`` split unless ``--split``). The evaluation is run by a running ``tokenmill
serve`` (its workers) as the tenant's first active key unless ``--key`` names another, each
call metered and billed like any other; ``--wait`` follows it with a progress bar and prints a
table per model.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tokenmill.cli.library import clear_errors
from tokenmill.evals.metrics import METRICS

if TYPE_CHECKING:
    from tokenmill.evals.objects import EvalInfo
    from tokenmill.evals.service import EvalService

POLL_SECONDS = 0.5


def _reader(tenant: str) -> tuple[EvalService, str]:
    """The service and the id of the tenant it reads for."""
    from tokenmill.cli.admin import _tenant
    from tokenmill.cli.main import _open_db
    from tokenmill.evals.repository import EvalRepository
    from tokenmill.evals.service import EvalService
    from tokenmill.files.service import FileService
    from tokenmill.settings import Settings
    from tokenmill.work.queue import WorkQueue

    db, clock = _open_db()
    files = FileService.build(Settings(), db, clock)
    service = EvalService(EvalRepository(db, clock), files, WorkQueue(db, clock), clock)
    return service, _tenant(db, clock, tenant).id


def _acting(tenant: str, key: str | None) -> tuple[EvalService, Any, Any]:
    """The service, the principal it acts as (``key``, or the tenant's first active key), and
    the model directory it checks names with (the bundled models put in the library first, as
    ``tokenmill models`` does)."""
    from tokenmill.billing.pricebook import PriceBookRepository
    from tokenmill.catalog.install import install_bundled
    from tokenmill.catalog.repository import ModelRepository
    from tokenmill.cli.batches import _key_id
    from tokenmill.cli.main import _open_db
    from tokenmill.control.keys import KeyRepository
    from tokenmill.gateway.library import load_directory
    from tokenmill.settings import Settings

    service, tenant_id = _reader(tenant)
    db, clock = _open_db()
    models = ModelRepository(db, clock)
    install_bundled(models, PriceBookRepository(db, clock), Settings().bundled_models)
    principal = KeyRepository(db, clock).principal(_key_id(tenant_id, key))
    return service, principal, load_directory(models)


def _source(service: EvalService, principal: Any, dataset: str, split: str) -> dict[str, Any]:
    if dataset.startswith("file-"):
        return {"file_id": dataset}
    path = Path(dataset)
    if path.is_file():
        from tokenmill.cli.files import upload_file

        upload = upload_file(
            service.files, principal.tenant_id, principal.key_id, path, "fine-tune"
        )
        click.echo(f"Uploaded {path.name} as {upload.id}.")
        return {"file_id": upload.id}
    name, _, version = dataset.partition("@")
    source: dict[str, Any] = {"dataset": name, "split": split}
    if version:
        if not version.isdigit():
            raise click.BadParameter(
                f"{version!r} is not a version number.", param_hint="--dataset"
            )
        source["version"] = int(version)
    return source


def model_rows(info: EvalInfo, model: str) -> list[list[str]]:
    """A model's rows: per metric, its mean (loss with its perplexity) and count."""
    summary = info.results.get(model) or {}
    rows = []
    for metric in info.request.metrics:
        figure = summary.get(metric) or {}
        mean = figure.get("mean")
        shown = "-" if mean is None else f"{mean:.4f}"
        if metric == "loss" and figure.get("perplexity") is not None:
            shown += f" (perplexity {figure['perplexity']:.2f})"
        rows.append([metric, shown, str(figure.get("count", 0))])
    return rows


def _tables(info: EvalInfo) -> str:
    """A table per model, under its name and its count of failed calls."""
    from tokenmill.cli.main import format_table

    parts = []
    for model in info.request.models:
        summary = info.results.get(model)
        head = (
            f"{model}: not scored yet"
            if summary is None
            else (f"{model} ({summary.get('errors', 0)} failed calls)")
        )
        parts.append(
            head + "\n" + format_table(["METRIC", "SCORE", "COUNT"], model_rows(info, model))
        )
    return "\n\n".join(parts)


def _wait(service: EvalService, info: EvalInfo, timeout: float) -> EvalInfo:
    """Polls until the evaluation ends, a bar showing the share of examples scored."""
    from tokenmill.evals.objects import EvalStatus

    deadline = time.monotonic() + timeout
    with click.progressbar(length=1000, label=info.id, width=30) as bar:
        while info.status not in EvalStatus.finished():
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"{info.id} is still {info.status.value} after {timeout:g} s."
                )
            time.sleep(POLL_SECONDS)
            info = service.get(info.tenant_id, info.id)
            bar.update(round(info.progress * 1000) - bar.pos)
    return info


tenant_option = click.option(
    "--tenant", default="admin", show_default=True, help="The tenant's name."
)


@click.group("eval", invoke_without_command=True)
@click.option("--dataset", help="A JSONL file, a file id, or a dataset id (ds-...[@version]).")
@click.option("--model", "models", multiple=True, help="A model to evaluate (repeat for more).")
@click.option("--metric", "metrics", multiple=True, type=click.Choice(METRICS), help="Repeatable.")
@click.option("--regex", help="The pattern of the regex metric.")
@click.option(
    "--split", default="validation", show_default=True, type=click.Choice(["train", "validation"])
)
@click.option("--limit", type=int, help="Evaluate at most this many examples.")
@click.option("--publish", is_flag=True, help="Publish the figures on the models' cards.")
@click.option("--key", help="The key (id or name) the calls are made as.")
@click.option("--wait", is_flag=True, help="Follow it to the end and print the table.")
@click.option("--timeout", default=24 * 3600.0, show_default=True, help="Seconds to --wait.")
@tenant_option
@click.pass_context
@clear_errors
def evals(
    ctx: click.Context,
    dataset: str | None,
    models: tuple[str, ...],
    metrics: tuple[str, ...],
    regex: str | None,
    split: str,
    limit: int | None,
    publish: bool,
    key: str | None,
    wait: bool,
    timeout: float,
    tenant: str,
) -> None:
    """Evaluate models on a dataset's held-out split: exact match, contains, JSON-valid,
    regex and loss (perplexity), a table per model."""
    if ctx.invoked_subcommand is not None:
        return
    if dataset is None or not models:
        raise click.UsageError("Give --dataset and at least one --model (or a subcommand).")
    from tokenmill.control.keys import Role
    from tokenmill.evals.objects import parse_request

    service, principal, directory = _acting(tenant, key)
    body: dict[str, Any] = {**_source(service, principal, dataset, split), "models": list(models)}
    body.update(
        {k: v for k, v in (("metrics", list(metrics)), ("regex", regex), ("limit", limit)) if v}
    )
    body["publish"] = publish
    request = parse_request(body)
    if publish and principal.role != Role.PLATFORM_ADMIN:
        raise click.ClickException("Only a platform admin's key may publish evaluation results.")
    for model in request.models:
        if directory.resolve(model, principal).task not in ("chat", "completion"):
            raise click.ClickException(f"{model} is not a chat or completion model.")
    info = service.create(principal.tenant_id, principal.key_id, request)
    click.echo(
        f"Created {info.id}: {', '.join(request.models)} on {body.get('file_id') or dataset}."
    )
    if wait:
        info = _wait(service, info, timeout)
        click.echo(f"{info.id} {info.status.value}: {info.examples or 0} examples.")
        if info.error:
            click.echo(f"error: {info.error}")
        click.echo(_tables(info))
        if info.status.value != "completed":
            raise SystemExit(1)


@evals.command("list")
@click.option("--limit", default=20, show_default=True)
@tenant_option
@clear_errors
def list_evals(limit: int, tenant: str) -> None:
    """The tenant's evaluations, newest first."""
    from tokenmill.cli.main import _when, format_table

    service, tenant_id = _reader(tenant)
    rows = [
        [
            e.id,
            e.status.value,
            f"{e.progress:.0%}",
            ",".join(e.request.models),
            ",".join(e.request.metrics),
            _when(e.created_at),
        ]
        for e in service.list(tenant_id, limit=limit)
    ]
    click.echo(format_table(["ID", "STATUS", "DONE", "MODELS", "METRICS", "CREATED"], rows))


@evals.command("get")
@click.argument("eval_id")
@tenant_option
@clear_errors
def get(eval_id: str, tenant: str) -> None:
    """One evaluation: its status and a table per model."""
    service, tenant_id = _reader(tenant)
    info = service.get(tenant_id, eval_id)
    click.echo(
        f"{info.id} {info.status.value} ({info.progress:.0%}), {info.examples or 0} examples"
    )
    click.echo(_tables(info))


@evals.command("cancel")
@click.argument("eval_id")
@tenant_option
@clear_errors
def cancel(eval_id: str, tenant: str) -> None:
    """Cancel an evaluation: it ends at once; its worker stops at the next example."""
    service, tenant_id = _reader(tenant)
    click.echo(f"{eval_id} is {service.cancel(tenant_id, eval_id).status.value}.")
