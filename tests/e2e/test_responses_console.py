"""The console's Responses page in headless Chromium against a live ``tokenmill serve``: a
question answered with file search forced over a handbook, streamed with its search results,
citations, status and usage; then the stored response listed, opened with its input and output
items, and deleted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import openai
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Platform
from tests.e2e.test_console import ARTIFACTS, CHAT_MODEL, WAIT_MS, _open, _visit
from tests.e2e.test_console import browser as browser  # the fixture, shared
from tests.e2e.test_vector_stores import HANDBOOK

RUN_MS = 180_000  # the first response may wait for the chat model's replica to start
QUESTION = "How long is parental leave?"
TYPES = "els => els.map(e => e.dataset.type)"


def _handbook_store(platform: Platform, tmp_path: Path) -> str:
    """A vector store of the admin's tenant holding the handbook, indexed."""
    client = platform.client()
    path = tmp_path / "handbook.md"
    path.write_text(HANDBOOK)
    store = client.vector_stores.create(name="console-responses")
    with path.open("rb") as handle:
        entry = client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id, file=handle, poll_interval_ms=200
        )
    assert entry.status == "completed", entry.last_error
    return store.id


def test_the_console_streams_a_grounded_response_and_lists_it(
    browser: Any, platform: Platform, tmp_path: Path
) -> None:
    store_id = _handbook_store(platform, tmp_path)
    client = platform.client()
    page = _open(browser, platform, platform.admin_key)
    page.on("dialog", lambda dialog: dialog.accept())
    _visit(page, "responses", "#responses-input")
    page.select_option("#responses-model", CHAT_MODEL)
    page.select_option("#responses-store", store_id)
    page.select_option("#responses-tool-choice", "file_search")
    page.fill("#responses-max-output", "48")
    page.fill("#responses-input", QUESTION)
    page.press("#responses-input", "Control+Enter")

    # Streamed: the search with its results, then the answer and how the response ended.
    turn = page.locator("#responses-log .turn")
    expect(turn.locator(".fs-result .filename").first).to_have_text("handbook.md", timeout=RUN_MS)
    expect(turn).to_have_attribute(
        "data-status", re.compile("^(completed|incomplete)$"), timeout=RUN_MS
    )
    response_id = turn.get_attribute("data-response-id")
    assert response_id is not None and response_id.startswith("resp_")
    stored = client.responses.retrieve(response_id, include=["file_search_call.results"])
    assert stored.status == turn.get_attribute("data-status") and stored.usage is not None
    search = stored.output[0]  # forced: the question searched as asked, before the model
    assert search.type == "file_search_call" and search.results
    assert turn.locator(".file-search .query").first.inner_text() == f"“{QUESTION}”"
    assert turn.locator(".fs-result .score").first.inner_text() == f"{search.results[0].score:.3f}"
    answer = [item for item in stored.output if item.type == "message"][-1]
    assert turn.locator(".message.assistant .content").last.inner_text().strip()
    cited = {
        a.filename
        for part in answer.content
        if part.type == "output_text"
        for a in part.annotations
    }
    assert set(
        turn.locator(".message.assistant").last.locator(".sources li").all_inner_texts()
    ) == {f"[{n}] {name}" for n, name in enumerate(sorted(cited), 1)}
    usage = f"{stored.usage.input_tokens:,} input + {stored.usage.output_tokens:,} output tokens"
    assert usage in turn.locator(".turn-meta").inner_text()
    expect(page.locator("#responses-thread")).to_contain_text(response_id)
    page.screenshot(path=str(ARTIFACTS / "responses.png"), full_page=True)

    # Listed with its model, status, items and tokens; opened, its items as stored.
    row = page.locator(f"tr[data-response-id='{response_id}']")
    expect(row).to_contain_text(stored.status, timeout=WAIT_MS)
    cells = row.locator("td").all_inner_texts()
    assert cells[1:5] == [
        CHAT_MODEL,
        stored.status,
        str(len(stored.output)),
        f"{stored.usage.total_tokens:,}",
    ]
    row.locator("button.link").click()
    detail = page.locator("#response-detail")
    expect(detail.locator("#response-input .message.user .content")).to_have_text(
        QUESTION, timeout=WAIT_MS
    )
    assert detail.locator("#response-input .items > *").count() == 1
    shown = detail.locator("#response-output .items > *").evaluate_all(TYPES)
    assert shown == [item.type for item in stored.output]
    expect(detail.locator("#response-output .fs-result .filename").first).to_have_text(
        "handbook.md"
    )
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top of the full page
    page.screenshot(path=str(ARTIFACTS / "response-detail.png"), full_page=True)

    # Deleted: gone from the list and the API, and the next send starts a new conversation.
    detail.locator("#response-delete").click()
    expect(row).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator("#responses-thread")).to_have_text("a new conversation")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response_id)
    assert page.console_errors == [], page.console_errors
