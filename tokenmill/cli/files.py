"""``tokenmill files``: a tenant's files (the Files API's), against the database and data dir.

The same service as ``/v1/files``: the same limits, the same storage, so a file uploaded here
is served by a running ``tokenmill serve`` at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from tokenmill.cli.library import clear_errors
from tokenmill.files.objects import PURPOSES

if TYPE_CHECKING:
    from tokenmill.files.objects import FileInfo
    from tokenmill.files.service import FileService

CLI_KEY_ID = "cli"  # what the files table records as the uploading key
READ_CHUNK_BYTES = 1024 * 1024


def _service_and_tenant(tenant: str) -> tuple[FileService, str]:
    from tokenmill.cli.admin import _tenant
    from tokenmill.cli.main import _open_db
    from tokenmill.files.service import FileService
    from tokenmill.settings import Settings

    db, clock = _open_db()
    return FileService.build(Settings(), db, clock), _tenant(db, clock, tenant).id


def _size(size_bytes: int) -> str:
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def upload_file(
    service: FileService, tenant_id: str, key_id: str, path: Path, purpose: str
) -> FileInfo:
    """Uploads ``path`` within the Files API's limits, with a progress bar."""
    from tokenmill.files.objects import clean_filename

    started = service.start_upload(tenant_id, key_id)
    try:
        total = path.stat().st_size
        with (
            path.open("rb") as handle,
            click.progressbar(length=max(total, 1), label="uploading", width=30) as bar,
        ):
            while chunk := handle.read(READ_CHUNK_BYTES):
                started.write(chunk)
                bar.update(len(chunk))
        return service.finish_upload(started, clean_filename(path.name), purpose)
    finally:
        started.abort()  # a no-op once the file is in place


tenant_option = click.option(
    "--tenant", default="admin", show_default=True, help="The tenant's name."
)


@click.group()
def files() -> None:
    """Upload, list, download and delete a tenant's files."""


@files.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--purpose", required=True, type=click.Choice(PURPOSES))
@tenant_option
@clear_errors
def upload(path: Path, purpose: str, tenant: str) -> None:
    """Upload a file; prints its id."""
    service, tenant_id = _service_and_tenant(tenant)
    info = upload_file(service, tenant_id, CLI_KEY_ID, path, purpose)
    click.echo(
        f"Uploaded {info.id} ({info.filename}, {info.size_bytes} bytes, sha256 {info.sha256})"
    )


@files.command("list")
@click.option("--purpose", type=click.Choice(PURPOSES))
@tenant_option
@clear_errors
def list_files(purpose: str | None, tenant: str) -> None:
    """List the tenant's files, newest first."""
    from tokenmill.cli.main import _when, format_table

    service, tenant_id = _service_and_tenant(tenant)
    rows = [
        [f.id, f.filename, f.purpose, _size(f.size_bytes), _when(f.created_at), _when(f.expires_at)]
        for f in service.list(tenant_id, purpose=purpose).data
    ]
    headers = ["ID", "FILENAME", "PURPOSE", "SIZE", "CREATED", "EXPIRES"]
    click.echo(format_table(headers, rows))
    click.echo(f"{_size(service.repository.stored_bytes(tenant_id))} stored.")


@files.command("get")
@click.argument("file_id")
@tenant_option
@clear_errors
def get(file_id: str, tenant: str) -> None:
    """Show one file as the API returns it, with its sha256."""
    import orjson

    service, tenant_id = _service_and_tenant(tenant)
    info = service.get(tenant_id, file_id)
    shown = {**info.as_openai(), "sha256": info.sha256}
    click.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())


@files.command("download")
@click.argument("file_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@tenant_option
@clear_errors
def download(file_id: str, output: Path, tenant: str) -> None:
    """Write a file's bytes to OUTPUT."""
    service, tenant_id = _service_and_tenant(tenant)
    info, chunks = service.content(tenant_id, file_id)
    with (
        output.open("wb") as handle,
        click.progressbar(length=max(info.size_bytes, 1), label="downloading", width=30) as bar,
    ):
        for chunk in chunks:
            handle.write(chunk)
            bar.update(len(chunk))
    click.echo(f"Wrote {info.size_bytes} bytes to {output}.")


@files.command("delete")
@click.argument("file_id")
@tenant_option
@clear_errors
def delete(file_id: str, tenant: str) -> None:
    """Delete a file and its bytes."""
    service, tenant_id = _service_and_tenant(tenant)
    info = service.delete(tenant_id, file_id)
    click.echo(f"Deleted {info.id} ({info.filename}).")
