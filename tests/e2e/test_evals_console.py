"""Evaluations end to end, against a live ``tokenmill serve`` with the bundled model: the
prompt's logprobs through the gateway with the openai client (``echo``), then the console's
Evaluations page starting an evaluation of a ``fine-tune`` file (each call made through the
gateway as the signed-in key), following it to the end and showing a table per model, and
the figures on the model's card."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Platform
from tests.e2e.test_console import ARTIFACTS, CHAT_MODEL, WAIT_MS, _open, _visit
from tests.e2e.test_console import browser as browser  # the fixture, shared

RUN_MS = 240_000
EXAMPLES = [
    ("What colour is the sky on a clear day? Answer with one word.", "Blue"),
    ("What is two plus two? Answer with a number.", "4"),
    ("Name the planet we live on, in one word.", "Earth"),
]


def test_echoed_prompt_logprobs_through_the_gateway(platform: Platform) -> None:
    client = platform.client().with_options(timeout=RUN_MS / 1000)  # the replica may start
    prompt = "The capital of France is Paris."
    made = client.completions.with_raw_response.create(
        model=CHAT_MODEL, prompt=prompt, echo=True, logprobs=1, max_tokens=0
    )
    reply = made.parse()
    choice = reply.choices[0]
    assert choice.text == prompt and choice.logprobs is not None
    logprobs = choice.logprobs
    assert logprobs.token_logprobs is not None and logprobs.tokens is not None
    assert logprobs.token_logprobs[0] is None and len(logprobs.tokens) > 3
    assert all(lp is not None and lp < 0 for lp in logprobs.token_logprobs[1:])
    assert reply.usage is not None and reply.usage.completion_tokens == 0
    event = platform.usage(made.headers["x-request-id"])
    assert event.prompt_tokens == len(logprobs.tokens) and event.completion_tokens == 0


def test_the_console_starts_an_evaluation_and_shows_a_table_per_model(
    browser: Any, platform: Platform, tmp_path: Path
) -> None:
    key = platform.admin_key
    source = tmp_path / "held_out.jsonl"
    source.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": q},
                                     {"role": "assistant", "content": a}]}) + "\n"
            for q, a in EXAMPLES
        )
    )  # fmt: skip
    page = _open(browser, platform, key)
    _visit(page, "evals", "#eval-start")
    page.set_input_files("#eval-file", str(source))
    page.fill("#eval-models", CHAT_MODEL)
    page.check("#eval-metrics input[value=contains]")
    page.click("#eval-start")
    status = page.wait_for_selector("#eval-start-status >> text=Started eval_", timeout=WAIT_MS)
    found = re.search(r"Started (eval_\w+)\.", status.inner_text())
    assert found is not None, status.inner_text()
    eval_id = found[1]
    page.wait_for_selector(f"tr[data-eval-id='{eval_id}']", timeout=WAIT_MS)
    page.click(f"tr[data-eval-id='{eval_id}'] a")
    page.wait_for_selector("#eval-status >> text=completed", timeout=RUN_MS)
    for metric in ("exact_match", "contains", "loss"):
        row = page.inner_text(
            f"#eval-results tr[data-model='{CHAT_MODEL}'][data-metric='{metric}']"
        )
        assert "3" in row or metric == "loss", row
    page.screenshot(path=str(ARTIFACTS / "evals.png"), full_page=True)
    assert page.console_errors == [], page.console_errors

    with platform.http(key) as http:
        shown = http.get(f"/admin/v1/evals/{eval_id}").json()
        card = http.get(f"/v1/models/{CHAT_MODEL}").json()["card"]
    [result] = shown["results"]
    assert result["exact_match"]["count"] == result["contains"]["count"] == 3
    assert result["loss"]["count"] >= 3 and result["loss"]["mean"] > 0
    assert result["loss"]["perplexity"] > 1 and result["errors"] == 0
    assert [e["eval_id"] for e in card["evaluations"]][:1] == [eval_id]
