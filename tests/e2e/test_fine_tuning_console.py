"""The console's Fine-tuning page in headless Chromium against a live ``tokenmill serve``, with
no training run: two jobs made through the openai client, one on a file with bad lines (the
worker's validation fails it at once) and one on a valid file; both listed; the valid one
cancelled from its page before it trains; the refused one's page shows its bad lines. Metrics
events and a checkpoint written to the database as a trainer would write them are drawn as the
loss curve and the checkpoint table. A job made from the page's form (its file uploaded with
purpose fine-tune) is listed and fails in validation in turn."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Platform
from tests.e2e.test_console import ARTIFACTS, CHAT_MODEL, WAIT_MS, _open, _visit
from tests.e2e.test_console import browser as browser  # the fixture, shared
from tokenmill.clock import SystemClock
from tokenmill.tuning.repository import JobRepository
from tokenmill.work.queue import WorkQueue

RUN_MS = 180_000  # validation loads the base model's tokenizer; a cancel may wait for a step
BILLING_SYNC_SECONDS = 1.0
EXAMPLE = {
    "messages": [
        {"role": "user", "content": "What colour is the sky?"},
        {"role": "assistant", "content": "Blue."},
    ]
}
BAD_LINES = [
    json.dumps(EXAMPLE),
    "this is not JSON",
    json.dumps({"messages": [{"role": "user", "content": "No answer here."}]}),
]
TRAIN_LOSS = {1: 2.5, 2: 1.75, 3: 1.25, 4: 1.0}
VALID_LOSS = 1.5


def _tenant_admin(platform: Platform) -> str:
    """A tenant admin key of a new tenant with credit the gateway has seen (a job's estimated
    cost is held against it)."""
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": "tuning-console"}).json()
        made = http.post(
            f"/admin/v1/tenants/{tenant['id']}/keys",
            json={"name": "tuning-console-admin", "role": "tenant_admin"},
        ).json()
        credit = {"amount_micros": 10_000_000, "idempotency_key": "tuning-console"}
        assert http.post(f"/admin/v1/tenants/{tenant['id']}/credits", json=credit).is_success
    time.sleep(BILLING_SYNC_SECONDS * 1.5)
    return str(made["secret"])


def _job(client: Any, name: str, lines: list[str]) -> str:
    data = ("\n".join(lines) + "\n").encode()
    upload = client.files.create(file=(name, data), purpose="fine-tune")
    return str(client.fine_tuning.jobs.create(model=CHAT_MODEL, training_file=upload.id).id)


def _status(page: Any, status: str) -> None:
    expect(page.locator("#ft-status")).to_have_text(status, timeout=RUN_MS)


def _write_metrics(platform: Platform, job_id: str) -> None:
    """What a trainer leaves: a metrics event a step (on the job's work item), a checkpoint."""
    clock = SystemClock()
    job = JobRepository(platform.db, clock).load(job_id)
    assert job.work_item_id is not None
    queue = WorkQueue(platform.db, clock)
    for step, loss in TRAIN_LOSS.items():
        data = {"step": step, "total_steps": len(TRAIN_LOSS), "train_loss": loss}
        queue.event(job.work_item_id, "metrics", f"Step {step}: training loss={loss}", data)
    metrics = {"train_loss": 1.0, "valid_loss": VALID_LOSS, "train_mean_token_accuracy": 0.5}
    JobRepository(platform.db, clock).add_checkpoint(job_id, len(TRAIN_LOSS), metrics, "/none")


def test_the_console_lists_explains_and_cancels_fine_tuning_jobs(
    browser: Any, platform: Platform, tmp_path: Path
) -> None:
    key = _tenant_admin(platform)
    client = platform.client(key)
    refused = _job(client, "bad.jsonl", BAD_LINES)
    valid = _job(client, "good.jsonl", [json.dumps(EXAMPLE)] * 12)
    page = _open(browser, platform, key)
    page.on("dialog", lambda dialog: dialog.accept())

    # Both jobs are listed, newest first, with their model.
    _visit(page, "fine-tuning", "#ft-create")
    page.wait_for_selector("#ft-total >> text=2 jobs", timeout=WAIT_MS)
    rows = page.eval_on_selector_all("tr[data-job-id]", "rs => rs.map(r => r.dataset.jobId)")
    assert rows == [valid, refused]
    assert CHAT_MODEL in page.inner_text(f"tr[data-job-id='{valid}']")
    offered = page.eval_on_selector_all("#ft-model option", "os => os.map(o => o.value)")
    assert CHAT_MODEL in offered and "all-minilm-l6-v2" not in offered  # chat models only

    # The valid one is cancelled from its page (before it trains, or within a step).
    page.click(f"tr[data-job-id='{valid}'] a")
    page.wait_for_selector("#ft-actions button[data-action=cancel]", timeout=WAIT_MS)
    assert page.is_disabled("#ft-actions button[data-action=resume]")
    page.click("#ft-actions button[data-action=cancel]:not([disabled])")
    _status(page, "cancelled")
    assert page.is_disabled("#ft-actions button[data-action=cancel]")
    assert client.fine_tuning.jobs.retrieve(valid).status == "cancelled"

    # A trainer's metrics and checkpoint: the loss curve and the checkpoint table.
    _write_metrics(platform, valid)
    page.reload()
    train = "#ft-loss circle[data-series='train loss']"
    page.wait_for_selector(train, timeout=WAIT_MS)
    drawn = page.eval_on_selector_all(train, "cs => cs.map(c => [c.dataset.step, c.dataset.value])")
    assert [(int(s), float(v)) for s, v in drawn] == list(TRAIN_LOSS.items())
    shown = page.get_attribute("#ft-loss circle[data-series='valid loss']", "data-value")
    assert shown is not None and float(shown) == VALID_LOSS
    assert "1.5" in page.inner_text(f"#ft-checkpoints tr[data-step='{len(TRAIN_LOSS)}']")
    assert page.query_selector("#ft-progress") is None  # it has ended
    page.screenshot(path=str(ARTIFACTS / "fine-tuning-job.png"), full_page=True)

    # The refused one fails in validation; its page names the bad lines.
    page.click("a >> text=← Fine-tuning")
    page.wait_for_selector(f"tr[data-job-id='{refused}'][data-status=failed]", timeout=RUN_MS)
    page.click(f"tr[data-job-id='{refused}'] a")
    page.wait_for_selector("#ft-validation tr[data-line='2']", timeout=WAIT_MS)
    assert page.query_selector("#ft-validation tr[data-line='3']") is not None
    error = client.fine_tuning.jobs.retrieve(refused).error
    assert error is not None and error.code == "invalid_training_file", error
    assert "The training file is not valid" in page.inner_text("#ft-validation")
    assert "not valid JSON" in page.inner_text("#ft-validation tr[data-line='2']")
    assert "at least 10 needed" in page.inner_text("#ft-validation tr[data-line='']")
    assert page.is_disabled("#ft-actions button[data-action=cancel]")
    page.screenshot(path=str(ARTIFACTS / "fine-tuning-failed.png"), full_page=True)

    # A job made from the form: its file uploaded, the job created, listed, refused in turn.
    source = tmp_path / "form.jsonl"
    source.write_text("\n".join(BAD_LINES) + "\n")
    _visit(page, "fine-tuning", "#ft-create")
    page.set_input_files("#ft-file-input", str(source))
    page.select_option("#ft-model", CHAT_MODEL)
    page.fill("#ft-suffix", "console")
    page.fill("#ft-epochs", "2")
    page.click("#ft-create")
    status = page.wait_for_selector("#ft-create-status >> text=Created ftjob-", timeout=WAIT_MS)
    found = re.search(r"Created (ftjob-\w+) on ", status.inner_text())
    assert found is not None, status.inner_text()
    made = client.fine_tuning.jobs.retrieve(found[1])
    assert made.user_provided_suffix == "console" and made.hyperparameters.n_epochs == 2
    assert client.files.retrieve(made.training_file).purpose == "fine-tune"
    page.wait_for_selector(f"tr[data-job-id='{made.id}'][data-status=failed]", timeout=RUN_MS)
    page.screenshot(path=str(ARTIFACTS / "fine-tuning.png"), full_page=True)
    assert page.console_errors == [], page.console_errors
