"""``tokenmill batches`` against a fresh data directory, a worker with a stand-in model call
running the batches it creates, as ``tokenmill serve`` would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from tests.work.threaded import running
from tokenmill.batches.execution import KIND, batch_handler
from tokenmill.batches.lines import BatchRequest
from tokenmill.batches.objects import BatchInfo
from tokenmill.batches.output import LineResult
from tokenmill.batches.repository import BatchRepository
from tokenmill.cli.main import main
from tokenmill.clock import SystemClock
from tokenmill.files.service import FileService
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import WorkRunner


def answer(batch: BatchInfo, request: BatchRequest) -> LineResult:
    return LineResult.answered(request.line, request.custom_id, 200, "req", {"data": []})


@pytest.fixture
def worker(cli: CliRunner) -> Iterator[None]:
    """Runs batches in a thread while the test runs, as a gateway's batch worker does."""
    assert cli.invoke(main, ["tenants", "list"]).exit_code == 0  # the database exists
    db, clock = Database.from_settings(Settings()), SystemClock()
    files = FileService.build(Settings(), db, clock)
    handler = batch_handler(BatchRepository(db, clock), files, answer, clock)
    runner = WorkRunner(WorkQueue(db, clock), {KIND: handler}, poll_seconds=0.05)
    with running(runner):
        yield


def test_create_wait_list_get_cancel(cli: CliRunner, worker: None, tmp_path: Path) -> None:
    assert cli.invoke(main, ["tenants", "create", "acme"]).exit_code == 0
    assert cli.invoke(main, ["keys", "create", "--name", "app", "--tenant", "acme"]).exit_code == 0
    source = tmp_path / "requests.jsonl"
    source.write_bytes(
        b"".join(
            orjson.dumps(
                {"custom_id": c, "method": "POST", "url": "/v1/embeddings",
                 "body": {"model": "m", "input": c}}
            ) + b"\n"
            for c in ("one", "two", "three")
        )
    )  # fmt: skip

    made = cli.invoke(
        main,
        ["batches", "create", str(source), "--endpoint", "/v1/embeddings", "--tenant", "acme",
         "--wait", "--timeout", "60"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "completed: 3 of 3 lines answered, 0 failed" in made.output
    batch_id = next(w for w in made.output.split() if w.startswith("batch_"))

    listed = cli.invoke(main, ["batches", "list", "--tenant", "acme"]).output
    assert batch_id in listed and "completed" in listed and "3/3" in listed
    shown = orjson.loads(cli.invoke(main, ["batches", "get", batch_id, "--tenant", "acme"]).output)
    assert shown["object"] == "batch" and shown["request_counts"]["completed"] == 3

    refused = cli.invoke(main, ["batches", "cancel", batch_id, "--tenant", "acme"])
    assert refused.exit_code == 1 and "Cannot cancel a batch that is completed" in refused.output
    assert cli.invoke(main, ["tenants", "create", "other"]).exit_code == 0
    hidden = cli.invoke(main, ["batches", "get", batch_id, "--tenant", "other"])
    assert hidden.exit_code == 1 and "No batch found" in hidden.output


def test_a_tenant_without_a_key_cannot_create_one(cli: CliRunner, tmp_path: Path) -> None:
    assert cli.invoke(main, ["tenants", "create", "acme"]).exit_code == 0
    source = tmp_path / "requests.jsonl"
    source.write_bytes(b"{}\n")
    made = cli.invoke(
        main, ["batches", "create", str(source), "--endpoint", "/v1/embeddings", "--tenant", "acme"]
    )
    assert made.exit_code == 1 and "The tenant has no key." in made.output
