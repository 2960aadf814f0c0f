"""``tokenmill fine-tuning`` against a fresh data directory. Without a worker a job stays
``validating_files``; a stand-in worker (no training: it writes the events, a checkpoint and
the outcome a real run would) shows ``--wait`` following a job to its end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from tests.work.threaded import running
from tokenmill.cli.main import main
from tokenmill.clock import SystemClock
from tokenmill.files.service import FileService
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.tuning.repository import JobRepository
from tokenmill.tuning.service import KIND
from tokenmill.tuning.status import JobStatus
from tokenmill.work.items import WorkItem
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import WorkContext, WorkRunner

MODEL = "smollm2-135m-instruct"
STEPS = 4
EXAMPLE = {
    "messages": [
        {"role": "user", "content": "What colour is the sky?"},
        {"role": "assistant", "content": "Blue."},
    ]
}


@pytest.fixture
def acme_key(acme: str, cli: CliRunner) -> str:
    made = cli.invoke(main, ["keys", "create", "--name", "tuner", "--tenant", "acme"])
    assert made.exit_code == 0, made.output
    return acme


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"".join(orjson.dumps(EXAMPLE) + b"\n" for _ in range(12)))
    return path


def _db() -> Database:
    return Database.from_settings(Settings())


def _ft(cli: CliRunner, *args: str) -> Result:
    return cli.invoke(main, ["fine-tuning", *args, "--tenant", "acme"])


def _job_id(output: str) -> str:
    return next(w for w in output.split() if w.startswith("ftjob-"))


def _stand_in(db: Database) -> Any:
    """What a real run writes, without training: validated, queued, running with a metrics
    event a step, a checkpoint, succeeded with its model, tokens and cost."""
    jobs = JobRepository(db, SystemClock())

    def handle(item: WorkItem, context: WorkContext) -> dict[str, Any]:
        job_id = item.payload["job_id"]
        context.event("info", "Files validated, moving job to queued state")
        jobs.update(job_id, JobStatus.QUEUED)
        jobs.update(job_id, JobStatus.RUNNING)
        for step in range(1, STEPS + 1):
            data = {"step": step, "total_steps": STEPS, "train_loss": 2.0 / step}
            context.event("metrics", f"Step {step}/{STEPS}: training loss={2.0 / step:.4f}", data)
            context.progress(step / STEPS)
        metrics = {"train_loss": 0.5, "valid_loss": 0.75, "train_mean_token_accuracy": 0.875}
        jobs.add_checkpoint(job_id, STEPS, metrics, "/nowhere")
        jobs.update(
            job_id,
            JobStatus.SUCCEEDED,
            fine_tuned_model=f"ft:{MODEL}:acme::stand-in",
            trained_tokens=1234,
            cost_micros=247,
        )
        context.event("info", "The job has successfully completed")
        return {"job_id": job_id}

    return handle


@pytest.fixture
def worker(acme_key: str) -> Iterator[None]:
    """Runs jobs in a thread while the test runs, as a gateway's tuning worker does."""
    db, clock = _db(), SystemClock()
    runner = WorkRunner(WorkQueue(db, clock), {KIND: _stand_in(db)}, poll_seconds=0.05)
    with running(runner):
        yield
    db.dispose()


def test_create_list_show_cancel_without_a_worker(
    cli: CliRunner, acme_key: str, examples: Path
) -> None:
    made = _ft(cli, "create", str(examples), "--model", MODEL, "--suffix", "Sky", "--epochs", "2")
    assert made.exit_code == 0, made.output
    job_id = _job_id(made.output)
    assert f"on {MODEL} over file-" in made.output and "(train.jsonl)" in made.output

    listed = _ft(cli, "list").output
    assert job_id in listed and "validating_files" in listed and MODEL in listed
    shown = orjson.loads(_ft(cli, "show", job_id).output)
    assert shown["object"] == "fine_tuning.job" and shown["status"] == "validating_files"
    assert shown["user_provided_suffix"] == "Sky"
    assert shown["hyperparameters"]["n_epochs"] == 2
    assert shown["hyperparameters"]["batch_size"] == "auto"
    training = FileService.build(Settings(), _db(), SystemClock()).get(
        acme_key, shown["training_file"]
    )
    assert training.purpose == "fine-tune" and training.filename == "train.jsonl"
    assert _ft(cli, "events", job_id).output == ""  # no worker has taken it yet
    assert "STEP" in _ft(cli, "checkpoints", job_id).output

    paused = _ft(cli, "pause", job_id)
    assert paused.exit_code == 1
    assert "Cannot pause a fine-tuning job that is validating_files" in paused.output
    cancelled = _ft(cli, "cancel", job_id)
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.output.strip() == f"{job_id} is cancelled."
    again = _ft(cli, "cancel", job_id)
    assert again.exit_code == 1 and "that is cancelled" in again.output

    hidden = cli.invoke(main, ["fine-tuning", "show", job_id, "--tenant", "other"])
    assert hidden.exit_code == 1 and "No fine-tuning job found" in hidden.output


def test_pause_and_resume_a_queued_job(cli: CliRunner, acme_key: str, examples: Path) -> None:
    job_id = _job_id(_ft(cli, "create", str(examples), "--model", MODEL).output)
    db = _db()
    JobRepository(db, SystemClock()).update(job_id, JobStatus.QUEUED)  # as if validated
    assert _ft(cli, "pause", job_id).output.strip() == f"{job_id} is paused."
    assert _ft(cli, "resume", job_id).output.strip() == f"{job_id} is queued."
    resumed = JobRepository(db, SystemClock()).get(acme_key, job_id)
    assert resumed.runs == 1 and resumed.work_item_id is not None
    item = WorkQueue(db, SystemClock()).get(resumed.work_item_id)
    assert item is not None and item.status.value == "queued"  # a new run, waiting for a worker
    db.dispose()


def test_wait_follows_a_job_to_its_model(
    cli: CliRunner, worker: None, examples: Path, tmp_path: Path
) -> None:
    held_out = tmp_path / "valid.jsonl"
    held_out.write_bytes(orjson.dumps(EXAMPLE) + b"\n")
    made = _ft(
        cli, "create", str(examples), "--model", MODEL, "--validation", str(held_out),
        "--seed", "7", "--wait", "--timeout", "60",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    job_id = _job_id(made.output)
    assert (
        f"{job_id} succeeded after {STEPS}/{STEPS} steps: model ft:{MODEL}:acme::stand-in, "
        "1,234 trained tokens, cost 0.000247." in made.output
    )
    shown = orjson.loads(_ft(cli, "show", job_id).output)
    assert shown["seed"] == 7 and shown["validation_file"].startswith("file-")

    lines = _ft(cli, "events", job_id).output.splitlines()
    assert "Files validated" in lines[0] and "successfully completed" in lines[-1]
    assert sum("metrics" in line for line in lines) == STEPS
    table = _ft(cli, "checkpoints", job_id).output.splitlines()
    assert table[0].split()[:3] == ["STEP", "TRAIN", "LOSS"]
    assert table[1].split()[:5] == [str(STEPS), "0.5000", "0.7500", "0.8750", "-"]
    listed = _ft(cli, "list").output
    assert f"ft:{MODEL}:acme::stand-in" in listed and "1,234" in listed


def test_wait_gives_up_after_its_timeout(cli: CliRunner, acme_key: str, examples: Path) -> None:
    made = _ft(cli, "create", str(examples), "--model", MODEL, "--wait", "--timeout", "0.5")
    assert made.exit_code == 1
    assert "is still validating_files after 0.5 s" in made.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--model", "no-such-model"], "no-such-model"),
        (["--model", "all-minilm-l6-v2"], "cannot be fine-tuned here"),
        (["--model", MODEL, "--epochs", "0"], "'n_epochs' must be from 1 to 50"),
        (["--model", MODEL, "--suffix", "no spaces"], "'suffix' is 1 to 64 letters"),
        (["--model", MODEL, "--key", "nobody"], "no active key named 'nobody'"),
    ],
)
def test_a_refused_job_is_one_clear_error_and_leaves_no_file(
    cli: CliRunner, acme_key: str, examples: Path, options: list[str], message: str
) -> None:
    refused = _ft(cli, "create", str(examples), *options)
    assert refused.exit_code == 1, refused.output
    assert message in refused.output
    assert "Traceback" not in refused.output
    assert "file-" not in cli.invoke(main, ["files", "list", "--tenant", "acme"]).output
    assert "ftjob-" not in _ft(cli, "list").output


def test_a_missing_file_and_a_tenant_without_a_key(
    cli: CliRunner, acme: str, examples: Path, tmp_path: Path
) -> None:
    missing = _ft(cli, "create", str(tmp_path / "absent.jsonl"), "--model", MODEL)
    assert missing.exit_code == 2 and "does not exist" in missing.output
    keyless = _ft(cli, "create", str(examples), "--model", MODEL)
    assert keyless.exit_code == 1 and "The tenant has no key." in keyless.output


def test_merge_makes_a_fine_tune_a_model_of_the_tenant_and_refuses_another_tenants(
    cli: CliRunner, acme: str, tmp_path: Path
) -> None:
    from tests.tuning.test_standalone import add_fine_tune

    db = _db()
    try:
        name = add_fine_tune(db, acme, tmp_path / "adapters")
    finally:
        db.dispose()
    refused = cli.invoke(main, ["fine-tuning", "merge", name, "--tenant", "other"])
    assert refused.exit_code == 1 and f"No fine-tuned model named '{name}'" in refused.output

    merged = _ft(cli, "merge", name)
    assert merged.exit_code == 0, merged.output
    assert merged.output.startswith(f"{name}:merged: 271 MB at {tmp_path / 'tenant-models' / acme}")
    assert f"tokenmill deployments create '{name}:merged' --dedicated-to acme" in merged.output
    listed = cli.invoke(main, ["models", "list"])
    assert f"{name}:merged" in listed.output
