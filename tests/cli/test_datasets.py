"""``tokenmill datasets`` against a fresh data directory, as a user would run it: a local
file uploaded and counted with the bundled model's tokenizer, shown, paged, published to
another tenant and deleted."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tests.datasets.conftest import examples, jsonl
from tokenmill.cli.main import main


def run(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(main, ["datasets", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_create_list_show_rows_publish_delete(cli: CliRunner, acme: str, tmp_path: Path) -> None:
    source = tmp_path / "faq.jsonl"
    source.write_bytes(jsonl(examples(30)))
    made = run(cli, "create", str(source), "--licence", "CC0-1.0", "--validation-fraction", "0.2",
               "--tenant", "acme")  # fmt: skip
    assert "uploading" in made and "counting tokens" in made  # the progress bars
    assert "Created faq version 1" in made and "30 rows (24 train, 6 validation)" in made
    dataset_id = next(
        w for w in made.replace("(", " ").replace(")", " ").split() if w.startswith("ds-")
    )

    again = run(cli, "create", str(source), "--validation-fraction", "0.2", "--tenant", "acme")
    assert "Already there: faq version 1" in again

    listed = run(cli, "list", "--tenant", "acme")
    assert dataset_id in listed and "faq" in listed and "yours" in listed
    assert dataset_id not in run(cli, "list", "--tenant", "other")

    card = json.loads(run(cli, "show", "faq", "--version", "1", "--tenant", "acme"))
    assert (card["rows"], card["licence"], card["format"]) == (30, "CC0-1.0", "chat")
    assert card["splits"]["validation"] == {
        "rows": 6,
        "tokens": card["splits"]["validation"]["tokens"],
    }
    shown = json.loads(run(cli, "show", dataset_id, "--tenant", "acme"))
    assert [v["version"] for v in shown["versions"]] == [1]

    page = cli.invoke(
        main,
        [
            "datasets",
            "rows",
            "faq",
            "1",
            "--split",
            "validation",
            "--limit",
            "4",
            "--tenant",
            "acme",
        ],
    )
    lines = [json.loads(line) for line in page.stdout.splitlines()]
    assert len(lines) == 4 and all(row["example"] in examples(30) for row in lines)
    assert "rows 1-4 of 6 (validation)" in page.stderr

    hidden = cli.invoke(main, ["datasets", "show", dataset_id, "--tenant", "other"])
    assert hidden.exit_code == 1 and "No dataset found" in hidden.output
    assert "Published faq version 1" in run(cli, "publish", dataset_id, "1", "--tenant", "acme")
    assert json.loads(run(cli, "show", dataset_id, "--version", "1", "--tenant", "other"))[
        "published"
    ]
    refused = cli.invoke(main, ["datasets", "delete", dataset_id, "--tenant", "acme"])
    assert refused.exit_code == 1 and "published" in refused.output

    source.write_bytes(jsonl(examples(31)))
    assert "Created faq version 2" in run(cli, "create", str(source), "--tenant", "acme")
    assert "Deleted faq version 2." in run(
        cli, "delete", "faq", "--version", "2", "--tenant", "acme"
    )


def test_a_bad_file_is_one_clear_error(cli: CliRunner, acme: str, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_bytes(jsonl(examples(2)) + b"{nope\n")
    result = cli.invoke(main, ["datasets", "create", str(source), "--tenant", "acme"])
    assert result.exit_code == 1 and "line 3" in result.output
    missing = cli.invoke(
        main, ["datasets", "create", "file-0123456789abcdef01234567", "--tenant", "acme"]
    )
    assert missing.exit_code == 1 and "No such File object" in missing.output
