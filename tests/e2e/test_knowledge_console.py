"""The console's Knowledge page in headless Chromium against a live ``tokenmill serve``: a
vector store created, two files uploaded with attributes and indexed by the real embedding
model, a file's indexed text and its chunks, a search ranked, filtered, and refused with the
API's message."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Platform
from tests.e2e.test_console import ARTIFACTS, WAIT_MS, _open, _visit
from tests.e2e.test_console import browser as browser  # the fixture, shared

FILES = {
    "green-tea.md": (
        "Green tea is brewed with water at 70 to 80 degrees Celsius, never boiling, "
        "for two to three minutes; hotter water makes the leaves bitter.\n",
        {"topic": "tea", "year": 2024},
    ),
    "batteries.md": (
        "Lithium-ion batteries last longest when their charge stays between 20 and 80 percent "
        "and they are kept away from heat.\n",
        {"topic": "batteries", "year": 2023},
    ),
}
QUERY = "how hot should water be for green tea"
SEARCH = "#search-form button[type=submit]"


def _search(page: Any, filters: str = "") -> list[dict[str, str]]:
    """Runs the page's search for QUERY and returns its passages, best first."""
    page.fill("#search-query", QUERY)
    page.fill("#search-filters", filters)
    page.click(SEARCH)
    page.wait_for_selector(f"{SEARCH}:not([disabled])", timeout=WAIT_MS)
    return page.eval_on_selector_all(
        "#search-results .passage",
        """ps => ps.map(p => ({filename: p.querySelector('.filename').textContent,
                               score: p.querySelector('.score').textContent,
                               attributes: p.querySelector('.attributes').textContent,
                               text: p.querySelector('.passage-text').textContent}))""",
    )


def test_the_console_indexes_and_searches_a_knowledge_base(
    browser: Any, platform: Platform, tmp_path: Path
) -> None:
    page = _open(browser, platform, platform.admin_key)
    page.on("dialog", lambda dialog: dialog.accept())
    _visit(page, "knowledge", "#store-name")
    page.fill("#store-name", "console-handbook")
    page.click("#page-knowledge form button[type=submit] >> text=Create")
    page.wait_for_selector("#knowledge-upload", timeout=WAIT_MS)
    store_id = page.evaluate("location.hash").rsplit("/", 1)[1]
    page.wait_for_selector("h1:text-is('console-handbook')", timeout=WAIT_MS)
    assert store_id.startswith("vs_")

    for name, (text, attributes) in FILES.items():
        source = tmp_path / name
        source.write_text(text)
        page.set_input_files("#knowledge-file-input", str(source))
        page.fill("#file-attributes", json.dumps(attributes))
        page.click("#knowledge-upload")
        page.wait_for_selector(f"#knowledge-upload-status >> text=Added {name}", timeout=WAIT_MS)
    page.wait_for_selector("#store-counts >> text=2 files: 2 completed", timeout=WAIT_MS)
    assert len(page.query_selector_all("tr[data-status=completed]")) == 2
    tea_row = page.wait_for_selector("tr[data-file-id]:has-text('green-tea.md')")
    assert 'topic: "tea"' in tea_row.inner_text() and "year: 2024" in tea_row.inner_text()
    stored = platform.client().vector_stores.retrieve(store_id)
    assert stored.file_counts.completed == 2 and stored.usage_bytes > 0

    tea_id = tea_row.get_attribute("data-file-id")
    page.click(f"tr[data-file-id='{tea_id}'] button >> text=Indexed text")
    indexed = page.wait_for_selector("#file-text pre.indexed-text", timeout=WAIT_MS)
    assert "70 to 80 degrees Celsius" in indexed.inner_text()
    assert "green-tea.md" in page.inner_text("#file-text h2")

    # The file's chunks, as the chunks route lists them: position, tokens, range, text.
    page.click(f"tr[data-file-id='{tea_id}'] button >> text=Chunks")
    first = page.wait_for_selector("#file-chunks .chunk[data-position='0']", timeout=WAIT_MS)
    assert "70 to 80 degrees Celsius" in first.inner_text()
    tokens = int(page.inner_text("#file-chunks .chunk .tokens").split()[0])
    assert 20 < tokens < 60, tokens  # the model's tokens of one sentence, no padding
    text = FILES["green-tea.md"][0]
    assert page.inner_text("#file-chunks .chunk .chars") == f"chars 0\u2013{len(text)}"
    assert "green-tea.md" in page.inner_text("#file-chunks h2")
    assert page.is_hidden("#chunks-more")  # one short file: one page
    page.screenshot(path=str(ARTIFACTS / "knowledge-store.png"), full_page=True)

    # Search: the tea passage first with its score, as the API ranks it.
    found = _search(page)
    assert [p["filename"] for p in found] == ["green-tea.md", "batteries.md"], found
    assert re.fullmatch(r"[01]\.\d{3}", found[0]["score"]) and "70 to 80" in found[0]["text"]
    assert 'topic: "tea"' in found[0]["attributes"]
    api = platform.client().vector_stores.search(store_id, query=QUERY)
    assert [f"{r.score:.3f}" for r in api] == [p["score"] for p in found]
    page.screenshot(path=str(ARTIFACTS / "knowledge-search.png"), full_page=True)

    # A filter that leaves the tea file out.
    found = _search(page, json.dumps({"type": "ne", "key": "topic", "value": "tea"}))
    assert [p["filename"] for p in found] == ["batteries.md"], found

    # A malformed filter: the API's message in the page, no passages, no crash.
    _search(page, json.dumps({"type": "almost", "key": "topic", "value": "tea"}))
    error = page.inner_text("#search-form .form-status.error")
    assert "Unknown filter type 'almost'" in error, error
    assert page.query_selector("#search-results .passage") is None
    _search(page, '{"type": "eq",')
    assert "Filters: not valid JSON" in page.inner_text("#search-form .form-status.error")
    page.screenshot(path=str(ARTIFACTS / "knowledge-search-error.png"), full_page=True)

    # The list shows the store with its counts; deleting it there removes it.
    _visit(page, "knowledge", f"tr[data-store-id='{store_id}']")
    assert "2 files: 2 completed" in page.inner_text(f"tr[data-store-id='{store_id}']")
    page.click(f"tr[data-store-id='{store_id}'] button >> text=Delete")
    page.wait_for_selector(f"tr[data-store-id='{store_id}']", state="detached", timeout=WAIT_MS)
    assert all(s.id != store_id for s in platform.client().vector_stores.list())
    assert page.console_errors == [], page.console_errors
