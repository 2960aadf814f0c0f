"""What one example costs a model: the calls made for it, and how their answers are tallied."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tokenmill.evals.examples import Example
from tokenmill.evals.metrics import Tally
from tokenmill.evals.objects import EvalInfo, EvalSource, EvalStatus, parse_request
from tokenmill.evals.scoring import CHAT_PATH, COMPLETIONS_PATH, Reply, score_example, token_bound


def info(*metrics: str) -> EvalInfo:
    request = parse_request({"file_id": "f", "models": ["m"], "metrics": list(metrics)})
    assert request.source == EvalSource(file_id="f")
    created = datetime(2026, 12, 2, tzinfo=UTC)
    return EvalInfo("eval_1", "ten", "key", request, EvalStatus.RUNNING, created)


class Recorder:
    """Answers "4" to everything and echoes any text with -1 a character."""

    def __init__(self, template: str | None = "<chat>") -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.template = template

    def send(self, info: EvalInfo, path: str, body: dict[str, Any]) -> Reply:
        self.calls.append((path, body))
        if body.get("echo"):
            text = body["prompt"]
            logprobs = {"token_logprobs": [None] + [-1.0] * (len(text) - 1),
                        "text_offset": list(range(len(text)))}  # fmt: skip
            return Reply(200, {"choices": [{"text": text, "logprobs": logprobs}]})
        if path == CHAT_PATH:
            return Reply(200, {"choices": [{"message": {"content": "4"}}]})
        return Reply(200, {"choices": [{"text": " 4"}]})

    def render(self, info: EvalInfo, model: str, messages: list[dict[str, Any]]) -> str | None:
        return self.template


def test_a_prompt_row_is_completed_greedily_and_echoed_for_its_loss() -> None:
    calls, tally = Recorder(), Tally.empty()
    score_example(
        calls, info("exact_match", "loss"), "m", Example(" 4", prompt="2+2="), None, tally
    )
    (path, asked), (echo_path, echoed) = calls.calls
    assert path == COMPLETIONS_PATH
    assert asked == {
        "model": "m",
        "temperature": 0,
        "max_tokens": token_bound(" 4"),
        "prompt": "2+2=",
    }
    assert echo_path == COMPLETIONS_PATH
    assert echoed == {
        "model": "m",
        "prompt": "2+2= 4",
        "echo": True,
        "logprobs": 0,
        "max_tokens": 0,
    }
    summary = tally.summary(["exact_match", "loss"])
    assert summary["exact_match"] == {"mean": 1.0, "count": 1}
    assert summary["loss"]["mean"] == 1.0 and summary["loss"]["count"] == 2  # " 4" only


def test_a_chat_rows_loss_follows_its_rendered_prompt() -> None:
    calls, tally = Recorder(), Tally.empty()
    example = Example("4", messages=({"role": "user", "content": "2+2?"},))
    score_example(calls, info("contains", "loss"), "m", example, None, tally)
    (path, asked), (_, echoed) = calls.calls
    assert path == CHAT_PATH and asked["messages"] == [{"role": "user", "content": "2+2?"}]
    assert echoed["prompt"] == "<chat>4"
    assert tally.summary(["loss"])["loss"]["count"] == 1


def test_a_model_without_a_chat_template_has_no_chat_loss() -> None:
    calls, tally = Recorder(template=None), Tally.empty()
    example = Example("4", messages=({"role": "user", "content": "2+2?"},))
    score_example(calls, info("loss"), "m", example, None, tally)
    assert calls.calls == [] and tally.errors == 1


def test_generation_is_bounded_by_the_reference() -> None:
    assert token_bound("") == 16 and token_bound("x" * 100) == 66
    assert token_bound("x" * 100_000) == 1024
