"""``tokenmill eval`` against a fresh data directory, a worker with a stand-in for the
platform's model calls running the evaluations it creates, as ``tokenmill serve`` would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from tests.work.threaded import running
from tokenmill.cli.main import main
from tokenmill.clock import SystemClock
from tokenmill.evals.execution import KIND, eval_handler
from tokenmill.evals.objects import EvalInfo
from tokenmill.evals.repository import EvalRepository
from tokenmill.evals.scoring import Reply
from tokenmill.evals.sources import source_reader
from tokenmill.files.service import FileService
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import WorkRunner

MODEL = "smollm2-135m-instruct"
ANSWERS = {"Capital of France?": "Paris", "Capital of Italy?": "Rome", "Capital of Spain?": "Lyon"}


class Capitals:
    """Answers chat calls from ``ANSWERS`` (one of three wrong); loss is not asked here."""

    def send(self, info: EvalInfo, path: str, body: dict[str, Any]) -> Reply:
        question = body["messages"][-1]["content"]
        return Reply(200, {"choices": [{"message": {"content": ANSWERS[question]}}]})

    def render(self, info: EvalInfo, model: str, messages: list[dict[str, Any]]) -> str | None:
        return None


@pytest.fixture
def worker(cli: CliRunner) -> Iterator[None]:
    assert cli.invoke(main, ["tenants", "list"]).exit_code == 0  # the database exists
    db, clock = Database.from_settings(Settings()), SystemClock()
    files = FileService.build(Settings(), db, clock)
    handler = eval_handler(EvalRepository(db, clock), source_reader(files, None), Capitals())
    runner = WorkRunner(WorkQueue(db, clock), {KIND: handler}, poll_seconds=0.05)
    with running(runner):
        yield
    db.dispose()


def test_eval_waits_with_a_bar_and_prints_a_table_per_model(
    cli: CliRunner, worker: None, tmp_path: Path
) -> None:
    assert cli.invoke(main, ["tenants", "create", "acme"]).exit_code == 0
    assert cli.invoke(main, ["keys", "create", "--name", "app", "--tenant", "acme"]).exit_code == 0
    source = tmp_path / "held_out.jsonl"
    capitals = {
        "Capital of France?": "Paris",
        "Capital of Italy?": "Rome",
        "Capital of Spain?": "Madrid",
    }
    source.write_bytes(
        b"".join(
            orjson.dumps(
                {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            )
            + b"\n"
            for q, a in capitals.items()
        )
    )
    made = cli.invoke(
        main,
        ["eval", "--dataset", str(source), "--model", MODEL, "--metric", "exact_match",
         "--metric", "contains", "--tenant", "acme", "--wait", "--timeout", "60"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "completed: 3 examples" in made.output
    lines = made.output.splitlines()
    table = lines[lines.index(f"{MODEL} (0 failed calls)") + 1 :]
    assert [line.split() for line in table] == [
        ["METRIC", "SCORE", "COUNT"],
        ["exact_match", "0.6667", "3"],
        ["contains", "0.6667", "3"],
    ]
    eval_id = next(w for w in made.output.split() if w.startswith("eval_")).rstrip(":")

    listed = cli.invoke(main, ["eval", "list", "--tenant", "acme"])
    assert listed.exit_code == 0 and eval_id in listed.output and "completed" in listed.output
    shown = cli.invoke(main, ["eval", "get", eval_id, "--tenant", "acme"])
    assert shown.exit_code == 0 and "0.6667" in shown.output
    again = cli.invoke(main, ["eval", "cancel", eval_id, "--tenant", "acme"])
    assert again.exit_code == 1 and "completed" in again.output
    assert cli.invoke(main, ["tenants", "create", "other"]).exit_code == 0
    theirs = cli.invoke(main, ["eval", "get", eval_id, "--tenant", "other"])
    assert theirs.exit_code == 1 and "No evaluation" in theirs.output


def test_eval_refuses_an_unknown_model_and_a_missing_dataset(cli: CliRunner) -> None:
    assert cli.invoke(main, ["tenants", "create", "acme"]).exit_code == 0
    assert cli.invoke(main, ["keys", "create", "--name", "app", "--tenant", "acme"]).exit_code == 0
    unknown = cli.invoke(
        main, ["eval", "--dataset", "file-" + "0" * 24, "--model", "nope", "--tenant", "acme"]
    )
    assert unknown.exit_code == 1 and "nope" in unknown.output
    missing = cli.invoke(
        main, ["eval", "--dataset", "file-" + "0" * 24, "--model", MODEL, "--tenant", "acme"]
    )
    assert missing.exit_code == 1 and "file-" in missing.output
    assert cli.invoke(main, ["eval", "--model", MODEL]).exit_code == 2
