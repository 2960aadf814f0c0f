"""``tokenmill apps``: a tenant's Apps and their versions, against the database.

The same repository as ``/v1/apps``: an App created or published here is what a running
``tokenmill serve`` calls at once. A configuration is a JSON file in the shape of
``tokenmill.apps.config``; each save makes a new, immutable version.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from tokenmill.cli.library import clear_errors

if TYPE_CHECKING:
    from tokenmill.apps.repository import AppRepository

CLI_KEY_ID = "cli"  # what a version records as the key that saved it

tenant_option = click.option(
    "--tenant", default="admin", show_default=True, help="The tenant's name."
)
config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The configuration, a JSON file.",
)


def _repository_and_tenant(tenant: str) -> tuple[AppRepository, str]:
    from tokenmill.apps.repository import AppRepository
    from tokenmill.cli.admin import _tenant
    from tokenmill.cli.main import _open_db

    db, clock = _open_db()
    return AppRepository(db, clock), _tenant(db, clock, tenant).id


def read_config(path: Path) -> Any:
    """The file's JSON value (checked as a configuration by the repository)."""
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        raise click.ClickException(f"{path} is not valid JSON: {error}.") from None


def _cell(value: Any) -> str:
    """A diff value on one line: JSON, or ``-`` where the path is absent."""
    return "-" if value is None else orjson.dumps(value).decode()


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


@click.group()
def apps() -> None:
    """Build, version and publish a tenant's Apps."""


@apps.command("list")
@tenant_option
@clear_errors
def list_apps(tenant: str) -> None:
    """List the tenant's Apps, newest first."""
    from tokenmill.cli.main import _when, format_table

    repository, tenant_id = _repository_and_tenant(tenant)
    rows = [
        [
            app.id,
            app.name,
            str(app.published_version or "-"),
            str(app.latest_version),
            _when(app.updated_at),
        ]
        for app in repository.list(tenant_id)
    ]
    click.echo(format_table(["ID", "NAME", "PUBLISHED", "LATEST", "UPDATED"], rows))


@apps.command("show")
@click.argument("app_id")
@click.option("--version", help="This version [default: the published one, else the latest].")
@click.option("--json", "as_json", is_flag=True, help="The App and the version's config.")
@tenant_option
@clear_errors
def show(app_id: str, version: str | None, as_json: bool, tenant: str) -> None:
    """Show an App and one version's configuration."""
    from tokenmill.cli.main import _when

    repository, tenant_id = _repository_and_tenant(tenant)
    app, shown = repository.version(tenant_id, app_id, version)
    if as_json:
        body = {**app.as_json(), "version": str(shown.version), "config": shown.config}
        click.echo(_dumps(body))
        return
    click.echo(f"{app.id}  {app.name}")
    click.echo(f"published: {app.published_version or '-'}, latest: {app.latest_version}")
    note = f" ({shown.note})" if shown.note else ""
    click.echo(f"version {shown.version}{note}, saved {_when(shown.created_at)}")
    click.echo(_dumps(shown.config))


@apps.command("create")
@click.argument("name")
@config_option
@tenant_option
@clear_errors
def create(name: str, config_path: Path, tenant: str) -> None:
    """Create an App named NAME whose version 1 is the configuration; prints its id."""
    repository, tenant_id = _repository_and_tenant(tenant)
    app = repository.create(tenant_id, name, read_config(config_path), CLI_KEY_ID)
    click.echo(f"Created {app.id} ({app.name}) for tenant {tenant}: version 1, unpublished.")


@apps.command("save")
@click.argument("app_id")
@config_option
@click.option("--note", help="What changed, kept with the version.")
@tenant_option
@clear_errors
def save(app_id: str, config_path: Path, note: str | None, tenant: str) -> None:
    """Save the configuration as the App's next version."""
    repository, tenant_id = _repository_and_tenant(tenant)
    saved = repository.save_version(tenant_id, app_id, read_config(config_path), note, CLI_KEY_ID)
    click.echo(f"Saved version {saved.version} of {app_id}.")


@apps.command("versions")
@click.argument("app_id")
@tenant_option
@clear_errors
def versions(app_id: str, tenant: str) -> None:
    """List an App's versions, newest first; the published one is marked."""
    from tokenmill.cli.main import _when, format_table

    repository, tenant_id = _repository_and_tenant(tenant)
    app = repository.get(tenant_id, app_id)
    rows = [
        [
            str(v.version),
            "yes" if v.version == app.published_version else "",
            v.config["model"],
            _when(v.created_at),
            v.created_by,
            v.note or "-",
        ]
        for v in repository.versions(tenant_id, app_id)
    ]
    headers = ["VERSION", "PUBLISHED", "MODEL", "SAVED", "BY", "NOTE"]
    click.echo(format_table(headers, rows))


@apps.command("diff")
@click.argument("app_id")
@click.argument("before", metavar="FROM")
@click.argument("after", metavar="TO")
@tenant_option
@clear_errors
def diff(app_id: str, before: str, after: str, tenant: str) -> None:
    """What changed from version FROM to version TO, one line per field path."""
    from tokenmill.apps.diff import diff as changes_between
    from tokenmill.cli.main import format_table

    repository, tenant_id = _repository_and_tenant(tenant)
    _, old = repository.version(tenant_id, app_id, before, param="from")
    _, new = repository.version(tenant_id, app_id, after, param="to")
    changes = changes_between(old.config, new.config)
    if not changes:
        click.echo(f"Versions {old.version} and {new.version} are the same.")
        return
    rows = [[c["path"], _cell(c["before"]), _cell(c["after"])] for c in changes]
    click.echo(format_table(["PATH", f"VERSION {old.version}", f"VERSION {new.version}"], rows))


@apps.command("publish")
@click.argument("app_id")
@click.argument("version")
@tenant_option
@clear_errors
def publish(app_id: str, version: str, tenant: str) -> None:
    """Publish VERSION: the one a call that names no version gets."""
    repository, tenant_id = _repository_and_tenant(tenant)
    app = repository.update(tenant_id, app_id, {"published_version": version})
    click.echo(f"Published version {app.published_version} of {app.id} ({app.name}).")
