"""``tokenmill apps`` against a fresh data directory: an App created from a JSON file, saved
again, listed, shown, its versions listed and compared, published; refusals as one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from tokenmill.apps.repository import AppRepository
from tokenmill.cli.main import main
from tokenmill.clock import SystemClock
from tokenmill.settings import Settings
from tokenmill.store.db import Database

# The configuration is checked for its shape and tools, not against the model library: a
# model that is not installed is saved (a call of the App names it and is refused then).
FIRST = {
    "model": "not-installed-model",
    "instructions": "You answer questions about {{product}}.",
    "variables": {"product": "the handbook"},
    "max_output_tokens": 200,
    "guardrails": {"blocked_topics": ["medical advice"]},
}
SECOND = {
    **FIRST,
    "instructions": "You answer questions about {{product}}, briefly.",
    "temperature": 0.2,
    "guardrails": {"max_output_tokens": 100, "blocked_topics": ["medical advice", "law"]},
}


def run(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(main, ["apps", *args])
    assert result.exit_code == 0, result.output
    return result.output


def config_file(tmp_path: Path, name: str, config: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return str(path)


def create(cli: CliRunner, tmp_path: Path, name: str = "Handbook", tenant: str = "acme") -> str:
    """An App made with ``tokenmill apps create``: its id."""
    path = config_file(tmp_path, "first.json", FIRST)
    output = run(cli, "create", name, "--config", path, "--tenant", tenant)
    assert output.startswith("Created app_")
    assert output.strip().endswith("version 1, unpublished.")
    return output.split()[1]


def test_create_save_list_show_and_publish(cli: CliRunner, acme: str, tmp_path: Path) -> None:
    app_id = create(cli, tmp_path)
    second = config_file(tmp_path, "second.json", SECOND)
    saved = run(cli, "save", app_id, "--config", second, "--note", "briefer", "--tenant", "acme")
    assert saved.strip() == f"Saved version 2 of {app_id}."

    header, *rows = run(cli, "list", "--tenant", "acme").splitlines()
    assert header.split() == ["ID", "NAME", "PUBLISHED", "LATEST", "UPDATED"]
    assert [row.split()[:4] for row in rows] == [[app_id, "Handbook", "-", "2"]]
    assert run(cli, "list", "--tenant", "other").splitlines()[1:] == []

    # Unpublished, the App shows its latest version; a version may be asked for.
    shown = run(cli, "show", app_id, "--tenant", "acme").splitlines()
    assert shown[:2] == [f"{app_id}  Handbook", "published: -, latest: 2"]
    assert shown[2].startswith("version 2 (briefer), saved ")
    assert orjson.loads("\n".join(shown[3:]))["instructions"] == SECOND["instructions"]
    first = orjson.loads(run(cli, "show", app_id, "--version", "1", "--json", "--tenant", "acme"))
    assert first["object"] == "app" and first["id"] == app_id and first["version"] == "1"
    assert first["config"]["instructions"] == FIRST["instructions"]
    # Stored as parse_config makes it: its defaults filled in.
    assert first["config"]["search"] == "auto" and first["config"]["steps"] == {
        "rewrite_model": None
    }

    published = run(cli, "publish", app_id, "1", "--tenant", "acme")
    assert published.strip() == f"Published version 1 of {app_id} (Handbook)."
    assert run(cli, "list", "--tenant", "acme").splitlines()[1].split()[2:4] == ["1", "2"]
    shown_now = orjson.loads(run(cli, "show", app_id, "--json", "--tenant", "acme"))
    assert shown_now["published_version"] == 1 and shown_now["version"] == "1"

    header, *rows = run(cli, "versions", app_id, "--tenant", "acme").splitlines()
    assert header.split() == ["VERSION", "PUBLISHED", "MODEL", "SAVED", "BY", "NOTE"]
    assert rows[0].split()[0] == "2" and rows[0].split()[-2:] == ["cli", "briefer"]
    assert rows[1].split()[:3] == ["1", "yes", "not-installed-model"]
    assert rows[1].split()[-2:] == ["cli", "-"]

    # What the API's repository holds is what the CLI wrote.
    db = Database.from_settings(Settings())
    try:
        app = AppRepository(db, SystemClock()).get(acme, app_id)
    finally:
        db.dispose()
    assert (app.published_version, app.latest_version) == (1, 2)


def test_diff_lists_each_changed_path(cli: CliRunner, acme: str, tmp_path: Path) -> None:
    app_id = create(cli, tmp_path)
    run(
        cli, "save", app_id, "--config", config_file(tmp_path, "2.json", SECOND), "--tenant", "acme"
    )
    header, *rows = run(cli, "diff", app_id, "1", "2", "--tenant", "acme").splitlines()
    assert header.split() == ["PATH", "VERSION", "1", "VERSION", "2"]
    changes = {row.split()[0]: row.split(None, 1)[1] for row in rows}
    assert sorted(changes) == [
        "guardrails.blocked_topics[1]",
        "guardrails.max_output_tokens",
        "instructions",
        "temperature",
    ]
    assert changes["guardrails.blocked_topics[1]"].split() == ["-", '"law"']
    assert changes["guardrails.max_output_tokens"].split() == ["-", "100"]  # null before
    assert changes["temperature"].split() == ["-", "0.2"]  # absent before
    assert changes["instructions"].startswith('"You answer questions about {{product}}."')
    same = run(cli, "diff", app_id, "2", "2", "--tenant", "acme")
    assert same.strip() == "Versions 2 and 2 are the same."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "app_nope"], "No App found with id 'app_nope'."),
        (["publish", "{app}", "3"], "The App has versions 1 to 1."),
        (["publish", "{app}", "v1"], "'published_version' must be a version number"),
        (["show", "{app}", "--version", "9"], "has no version 9."),
        (["diff", "{app}", "1", "4"], "has no version 4."),
        (["versions", "{app}", "--tenant", "other"], "No App found"),  # another tenant's
        (["list", "--tenant", "nobody"], "No tenant named 'nobody'."),
    ],
)
def test_refusals_are_one_line(
    cli: CliRunner, acme: str, tmp_path: Path, args: list[str], message: str
) -> None:
    app_id = create(cli, tmp_path)
    args = [arg.replace("{app}", app_id) for arg in args]
    if "--tenant" not in args:
        args += ["--tenant", "acme"]
    result = cli.invoke(main, ["apps", *args])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[]", "'config' must be an object."),
        ('{"instructions": "hi"}', "'config.model' is required."),
        ('{"model": "m", "colour": "red"}', "Unknown parameter: 'config.colour'."),
        ('{"model": "m", "search": "sometimes"}', "'config.search' is 'auto' or 'always'."),
        ('{"model": "m", "functions": [{"description": "no name"}]}', "does not make a valid"),
    ],
)
def test_a_bad_configuration_is_refused(
    cli: CliRunner, acme: str, tmp_path: Path, config: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(config)
    created = cli.invoke(main, ["apps", "create", "Bad", "--config", str(path), "--tenant", "acme"])
    assert created.exit_code == 1 and message in created.output, created.output
    app_id = create(cli, tmp_path)
    saved = cli.invoke(main, ["apps", "save", app_id, "--config", str(path), "--tenant", "acme"])
    assert saved.exit_code == 1 and message in saved.output, saved.output
    assert run(cli, "show", app_id, "--json", "--tenant", "acme").count('"version": "1"') == 1
