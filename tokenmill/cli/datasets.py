"""``tokenmill datasets``: a tenant's dataset library, against the database and data dir.

The same service as ``/admin/v1/datasets``: a version made here is read by a running
``tokenmill serve`` at once. ``create`` takes a local JSONL file (uploaded as a Files API file
with purpose fine-tune, with a progress bar) or a file id, and counts its tokens with a
library model's tokenizer (a bundled model is put in the library first), with a bar too.
DATASET is a dataset id or the name of one of the tenant's own datasets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tokenmill.cli.files import CLI_KEY_ID, tenant_option
from tokenmill.cli.library import clear_errors

if TYPE_CHECKING:
    from tokenmill.datasets.objects import DatasetInfo
    from tokenmill.datasets.service import DatasetService

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True, slots=True)
class _Scope:
    service: DatasetService
    tenant_id: str


def _scope(tenant: str, model: str | None = None) -> _Scope:
    """``model``: a bundled model is put in the library first, so a fresh data dir counts."""
    from tokenmill.billing.pricebook import PriceBookRepository
    from tokenmill.catalog.install import install_bundled
    from tokenmill.catalog.repository import ModelRepository
    from tokenmill.cli.admin import _tenant
    from tokenmill.cli.main import _open_db
    from tokenmill.datasets.compose import build_datasets
    from tokenmill.files.service import FileService
    from tokenmill.settings import Settings

    db, clock = _open_db()
    settings = Settings()
    models = ModelRepository(db, clock)
    if model in settings.bundled_models and models.get(model) is None:
        install_bundled(models, PriceBookRepository(db, clock), [model])
    service = build_datasets(db, clock, FileService.build(settings, db, clock))
    return _Scope(service, _tenant(db, clock, tenant).id)


def _file_id(scope: _Scope, source: str) -> str:
    """A file id as it is; a local path uploaded first (purpose fine-tune)."""
    from tokenmill.cli.files import upload_file

    path = Path(source)
    if source.startswith("file-") and not path.exists():
        return source
    if not path.is_file():
        raise click.ClickException(f"{source} is neither a file here nor a file id.")
    uploaded = upload_file(scope.service.files, scope.tenant_id, CLI_KEY_ID, path, "fine-tune")
    return uploaded.id


def _dataset(scope: _Scope, dataset: str) -> DatasetInfo:
    from tokenmill.datasets.reader import find_dataset

    return find_dataset(scope.service, scope.tenant_id, dataset)


def _json(value: Any) -> None:
    import orjson

    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@click.group()
def datasets() -> None:
    """A tenant's datasets: versioned, content-hashed fine-tuning data."""


@datasets.command("create")
@click.argument("source")
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="The library model whose tokenizer counts the tokens.")  # fmt: skip
@click.option("--name", help="The dataset's name (default: the file's).")
@click.option("--licence", help="The data's licence, e.g. CC-BY-4.0.")
@click.option("--source", "origin", help="Where the data comes from.")
@click.option("--validation-fraction", type=float, default=0.1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the split.")
@click.option("--validation-file", help="A JSONL file (or file id) to hold out instead.")
@tenant_option
@clear_errors
def create(
    source: str,
    model: str,
    name: str | None,
    licence: str | None,
    origin: str | None,
    validation_fraction: float,
    seed: int,
    validation_file: str | None,
    tenant: str,
) -> None:
    """Make a version of a dataset from SOURCE, a JSONL file or a file id."""
    from tokenmill.datasets.content import SplitPlan
    from tokenmill.datasets.objects import check_name
    from tokenmill.datasets.service import Provenance

    scope = _scope(tenant, model)
    file_id = _file_id(scope, source)
    held = _file_id(scope, validation_file) if validation_file else None
    plan = SplitPlan(validation_fraction, seed, held)
    with click.progressbar(length=1, label="counting tokens", width=30) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        added = scope.service.create(
            scope.tenant_id,
            Provenance(CLI_KEY_ID, licence, origin),
            file_id=file_id,
            model=model,
            name=None if name is None else check_name(name),
            plan=plan,
            progress=progress,
        )
        bar.update(max(bar.length or 0, 1) - bar.pos)
    version = added.version
    said = "Created" if added.created else "Already there:"
    click.echo(
        f"{said} {added.dataset.name} version {version.version} ({added.dataset.id}): "
        f"{version.rows} rows ({version.train_rows} train, {version.validation_rows} "
        f"validation), {version.tokens} tokens, sha256 {version.sha256}"
    )


@datasets.command("list")
@tenant_option
@clear_errors
def list_datasets(tenant: str) -> None:
    """The tenant's datasets and those published to every tenant."""
    from tokenmill.cli.main import format_table

    scope = _scope(tenant)
    rows = []
    for d in scope.service.list(scope.tenant_id):
        latest = d.latest
        rows.append(
            [
                d.id,
                d.name,
                "yours" if d.tenant_id == scope.tenant_id else "published",
                str(len(d.versions)),
                str(latest.version) if latest else "-",
                str(latest.rows) if latest else "-",
                str(latest.tokens) if latest else "-",
            ]
        )
    headers = ["ID", "NAME", "OWNER", "VERSIONS", "LATEST", "ROWS", "TOKENS"]
    click.echo(format_table(headers, rows))


@datasets.command("show")
@click.argument("dataset")
@click.option("--version", type=int, help="One version's card (default: the dataset).")
@tenant_option
@clear_errors
def show(dataset: str, version: int | None, tenant: str) -> None:
    """A dataset with its versions' cards, or one version's card."""
    scope = _scope(tenant)
    found = _dataset(scope, dataset)
    if version is None:
        _json(found.as_json(with_versions=True))
        return
    _, chosen = scope.service.version(scope.tenant_id, found.id, version)
    _json(chosen.card(found))


@datasets.command("rows")
@click.argument("dataset")
@click.argument("version", type=int)
@click.option("--split", type=click.Choice(["train", "validation"]), default="train")
@click.option("--offset", type=int, default=0, show_default=True)
@click.option("--limit", type=int, default=20, show_default=True)
@tenant_option
@clear_errors
def rows(dataset: str, version: int, split: str, offset: int, limit: int, tenant: str) -> None:
    """A page of a version's rows, one JSON line each."""
    import orjson

    from tokenmill.datasets.objects import check_split

    scope = _scope(tenant)
    found = _dataset(scope, dataset)
    page = scope.service.page(scope.tenant_id, found.id, version, check_split(split), offset, limit)
    for row in page["data"]:
        click.echo(orjson.dumps(row).decode())
    shown = f"{offset + 1}-{offset + len(page['data'])}" if page["data"] else "none"
    click.echo(f"rows {shown} of {page['total']} ({split})", err=True)


@datasets.command("publish")
@click.argument("dataset")
@click.argument("version", type=int)
@tenant_option
@clear_errors
def publish(dataset: str, version: int, tenant: str) -> None:
    """Publish a version to every tenant (the operator's act, as a platform admin's)."""
    scope = _scope(tenant)
    found, published = scope.service.publish(_dataset(scope, dataset).id, version)
    click.echo(f"Published {found.name} version {published.version} ({found.id}).")


@datasets.command("delete")
@click.argument("dataset")
@click.option("--version", type=int, help="Only this version (default: the whole dataset).")
@tenant_option
@clear_errors
def delete(dataset: str, version: int | None, tenant: str) -> None:
    """Delete a dataset, or one version of it, with its rows (not published ones)."""
    scope = _scope(tenant)
    found = _dataset(scope, dataset)
    if version is None:
        scope.service.delete(scope.tenant_id, found.id)
        click.echo(f"Deleted {found.name} ({found.id}).")
    else:
        scope.service.delete_version(scope.tenant_id, found.id, version)
        click.echo(f"Deleted {found.name} version {version}.")
