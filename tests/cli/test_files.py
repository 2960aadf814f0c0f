"""``tokenmill files`` against a fresh data directory, as a user would run it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from click.testing import CliRunner

from tests.files.test_storage import files_under
from tokenmill.cli.main import main


def test_upload_list_get_download_delete(cli: CliRunner, tmp_path: Path) -> None:
    assert cli.invoke(main, ["tenants", "create", "acme"]).exit_code == 0
    assert cli.invoke(main, ["tenants", "create", "other"]).exit_code == 0
    source = tmp_path / "train.jsonl"
    data = b'{"prompt": "a", "completion": "b"}\n' * 50_000  # more than one read chunk
    source.write_bytes(data)

    uploaded = cli.invoke(
        main, ["files", "upload", str(source), "--purpose", "fine-tune", "--tenant", "acme"]
    )
    assert uploaded.exit_code == 0, uploaded.output
    assert hashlib.sha256(data).hexdigest() in uploaded.output
    file_id = next(w for w in uploaded.output.split() if w.startswith("file-"))

    listed = cli.invoke(main, ["files", "list", "--tenant", "acme"]).output
    assert file_id in listed and "fine-tune" in listed and "1.7 MiB stored" in listed
    assert file_id not in cli.invoke(main, ["files", "list", "--tenant", "other"]).output

    shown = cli.invoke(main, ["files", "get", file_id, "--tenant", "acme"])
    assert f'"bytes": {len(data)}' in shown.output

    copy = tmp_path / "copy.jsonl"
    got = cli.invoke(main, ["files", "download", file_id, "-o", str(copy), "--tenant", "acme"])
    assert got.exit_code == 0, got.output
    assert copy.read_bytes() == data

    other = cli.invoke(main, ["files", "get", file_id, "--tenant", "other"])
    assert other.exit_code == 1 and f"No such File object: {file_id}" in other.output

    deleted = cli.invoke(main, ["files", "delete", file_id, "--tenant", "acme"])
    assert deleted.exit_code == 0, deleted.output
    assert files_under(tmp_path / "files") == []


def test_an_empty_file_is_one_clear_error_and_leaves_nothing(
    cli: CliRunner, tmp_path: Path
) -> None:
    cli.invoke(main, ["tenants", "create", "acme"])
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    result = cli.invoke(
        main, ["files", "upload", str(empty), "--purpose", "assistants", "--tenant", "acme"]
    )
    assert result.exit_code == 1 and "The file is empty." in result.output
    assert files_under(tmp_path / "files") == []
