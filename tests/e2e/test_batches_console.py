"""The console's Batches page in headless Chromium against a live ``tokenmill serve``: a JSONL
file of two chat requests uploaded and run as a batch, its progress to ``completed`` with its
counts, its output downloaded and previewed, its timeline; a long batch cancelled from its row."""

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

RUN_MS = 180_000  # the first batch may wait for the chat model's replica to start
BILLING_SYNC_SECONDS = 1.0  # the default: how soon a gateway sees a top-up
QUESTIONS = {"sky": "What colour is the sky?", "capital": "What is the capital of France?"}
LONG_LINES = 200  # far more than run before the Cancel click lands
CHAT = "/v1/chat/completions"
STRAY_TEXT = """[...document.querySelectorAll('#batch-actions, #batch-output')]
    .flatMap(e => [...e.childNodes]).filter(n => n.nodeType === Node.TEXT_NODE).length"""
"""Text nodes where only elements belong (an array or a `false` given to replaceChildren)."""


def _jsonl(questions: dict[str, str], max_tokens: int) -> str:
    lines = []
    for custom_id, question in questions.items():
        body = {
            "model": CHAT_MODEL,
            "messages": [{"role": "user", "content": question}],
            "max_tokens": max_tokens,
        }
        lines.append(
            json.dumps({"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body})
        )
    return "\n".join(lines) + "\n"


def _tenant_admin(platform: Platform) -> str:
    """A tenant admin key of a new tenant with credit the gateway has seen (batch lines are
    admitted against it)."""
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": "batch-console"}).json()
        made = http.post(
            f"/admin/v1/tenants/{tenant['id']}/keys",
            json={"name": "batch-console-admin", "role": "tenant_admin"},
        ).json()
        credit = {"amount_micros": 10_000_000, "idempotency_key": "batch-console"}
        assert http.post(f"/admin/v1/tenants/{tenant['id']}/credits", json=credit).is_success
    time.sleep(BILLING_SYNC_SECONDS * 1.5)
    return str(made["secret"])


def _run(page: Any, source: Path) -> str:
    """Uploads ``source`` through the page's form and returns the new batch's id."""
    page.set_input_files("#batch-file-input", str(source))
    # Not wait_for_function: a string evaluated in the page breaks the console's CSP.
    expect(page.locator("#batch-endpoint")).to_have_value(CHAT, timeout=WAIT_MS)
    page.click("#batch-upload")
    status = page.wait_for_selector("#batch-upload-status >> text=Created batch_", timeout=WAIT_MS)
    found = re.search(r"Created (batch_\w+) of " + re.escape(source.name), status.inner_text())
    assert found is not None, status.inner_text()
    return found[1]


def test_the_console_runs_downloads_and_cancels_batches(
    browser: Any, platform: Platform, tmp_path: Path
) -> None:
    key = _tenant_admin(platform)
    client = platform.client(key)
    page = _open(browser, platform, key)
    page.on("dialog", lambda dialog: dialog.accept())
    _visit(page, "batches", "#batch-upload")
    page.wait_for_selector("#batches-total >> text=0 batches", timeout=WAIT_MS)  # listed

    # A two-line batch: uploaded, the endpoint picked from its lines, run to completed.
    source = tmp_path / "questions.jsonl"
    source.write_text(_jsonl(QUESTIONS, max_tokens=4))
    page.select_option("#batch-endpoint", "/v1/embeddings")
    batch_id = _run(page, source)
    row = f"tr[data-batch-id='{batch_id}']"
    page.wait_for_selector(f"{row}[data-status=completed]", timeout=RUN_MS)
    assert "2 completed, 0 failed of 2" in page.inner_text(row)
    assert page.get_attribute(f"{row} progress", "value") == "2"
    assert page.is_disabled(f"{row} button[data-action=cancel]")
    assert page.is_disabled(f"{row} button[data-file=error]")
    page.screenshot(path=str(ARTIFACTS / "batches.png"), full_page=True)
    batch = client.batches.retrieve(batch_id)
    assert batch.status == "completed" and batch.endpoint == CHAT and batch.output_file_id
    assert batch.request_counts is not None and batch.request_counts.completed == 2

    with page.expect_download() as download:
        page.click(f"{row} button[data-file=output]")
    assert download.value.suggested_filename == f"{batch_id}_output.jsonl"
    output = [json.loads(x) for x in Path(download.value.path()).read_text().splitlines()]
    assert [x["custom_id"] for x in output] == list(QUESTIONS)
    assert output == [
        json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()
    ]

    # Its page: the statuses it went through, and the output previewed line by line.
    page.click(f"{row} a")
    page.wait_for_selector("#batch-output tr[data-custom-id=capital]", timeout=WAIT_MS)
    timeline = page.eval_on_selector_all(
        "#batch-timeline li", "ls => ls.map(l => l.dataset.status)"
    )
    assert timeline == ["validating", "in_progress", "finalizing", "completed"]
    assert "2 completed, 0 failed of 2" in page.inner_text("#batch-counts")
    assert "questions.jsonl" in page.inner_text("#page-batches dl.card")
    for line in output:
        shown = page.inner_text(f"#batch-output tr[data-custom-id={line['custom_id']}] .answer")
        assert shown == line["response"]["body"]["choices"][0]["message"]["content"].strip()
    assert page.query_selector("#batch-error tr") is None
    assert page.is_disabled("#batch-actions button[data-action=cancel]")
    assert page.is_enabled("#batch-actions button[data-file=output]")
    assert page.evaluate(STRAY_TEXT) == 0
    page.screenshot(path=str(ARTIFACTS / "batch-completed.png"), full_page=True)

    # A long batch: Cancel is offered while it runs; clicked, the batch stops short of its total.
    questions = {f"q{i}": f"Count to {i}." for i in range(LONG_LINES)}
    source = tmp_path / "long.jsonl"
    source.write_text(_jsonl(questions, max_tokens=16))
    _visit(page, "batches", "#batch-upload", shot="batches-before-cancel")
    batch_id = _run(page, source)
    row = f"tr[data-batch-id='{batch_id}']"
    page.click(f"{row}[data-status=in_progress] button[data-action=cancel]", timeout=WAIT_MS)
    page.wait_for_selector(f"{row}[data-status=cancelled]", timeout=WAIT_MS)
    assert page.is_disabled(f"{row} button[data-action=cancel]")
    batch = client.batches.retrieve(batch_id)
    counts = batch.request_counts
    assert batch.status == "cancelled" and counts is not None, batch
    assert counts.completed + counts.failed < counts.total == LONG_LINES, counts
    assert f"{counts.completed} completed" in page.inner_text(row)
    page.screenshot(path=str(ARTIFACTS / "batches-cancelled.png"), full_page=True)
    assert page.console_errors == [], page.console_errors
