"""Evaluations on the database (SQLite and PostgreSQL) with the work queue and a stand-in for
the platform's model calls: created against the tenant's own files, run model by model and
recorded, resumed without scoring a recorded model again, cancelled, failed on a bad source,
another tenant's answered as if it did not exist, and the figures a model card shows."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.gateway.conftest import two_tenants
from tokenmill.clock import ManualClock
from tokenmill.control.keys import KeyRepository, Principal
from tokenmill.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from tokenmill.evals.execution import KIND, eval_handler
from tokenmill.evals.objects import EvalInfo, EvalStatus, parse_request
from tokenmill.evals.repository import EvalRepository
from tokenmill.evals.scoring import CHAT_PATH, Reply
from tokenmill.evals.service import EvalService
from tokenmill.evals.sources import source_reader
from tokenmill.files.service import FileService
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.work.items import WorkStatus
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import WorkRunner

REFERENCES = ["Paris", "Rome", '{"city": "Oslo"}']
GOOD_LOGPROB, BAD_LOGPROB, PROMPT_LOGPROB = -0.5, -2.0, -9.0


@dataclass
class Answers:
    """The platform's calls as a good model and a bad one answer them: ``good`` says the
    reference, ``bad`` says "no idea"; echoed text costs ``PROMPT_LOGPROB`` a character in the
    prompt and the model's own figure in the reference (one token per character)."""

    sent: list[tuple[str, str]] = field(default_factory=list)
    fail_model: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, info: EvalInfo, path: str, body: dict[str, Any]) -> Reply:
        model = body["model"]
        with self.lock:
            self.sent.append((model, path))
        if model == self.fail_model:
            raise ServiceUnavailable("The replica went away.")
        if model == "refused":
            return Reply(404, {"error": {"message": "no such model"}})
        if path == CHAT_PATH:
            question = body["messages"][-1]["content"]
            answer = REFERENCES[int(question)] if model == "good" else "no idea"
            return Reply(200, {"choices": [{"message": {"content": answer}}]})
        text: str = body["prompt"]
        assert body["echo"] is True and body["max_tokens"] == 0
        prefix = len(text) - len(next(r for r in REFERENCES if text.endswith(r)))
        own = GOOD_LOGPROB if model == "good" else BAD_LOGPROB
        logprobs = [None] + [PROMPT_LOGPROB if i < prefix else own for i in range(1, len(text))]
        echoed = {"token_logprobs": logprobs, "text_offset": list(range(len(text)))}
        return Reply(200, {"choices": [{"text": text, "logprobs": echoed}]})

    def render(self, info: EvalInfo, model: str, messages: list[dict[str, Any]]) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


@dataclass
class Bench:
    service: EvalService
    files: FileService
    answers: Answers
    alpha: Principal
    beta: Principal
    clock: ManualClock

    def upload(self, who: Principal | None = None, purpose: str = "fine-tune") -> str:
        who = who or self.alpha
        rows = [
            {"messages": [{"role": "user", "content": str(i)}, {"role": "assistant", "content": r}]}
            for i, r in enumerate(REFERENCES)
        ]
        data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        return self.files.write(who.tenant_id, who.key_id, "eval.jsonl", purpose, data).id

    def create(self, who: Principal | None = None, **body: Any) -> EvalInfo:
        who = who or self.alpha
        asked = {"file_id": self.upload(who), "models": ["good", "bad"], **body}
        return self.service.create(who.tenant_id, who.key_id, parse_request(asked))

    def runner(self) -> WorkRunner:
        read = source_reader(self.files, None)
        handler = eval_handler(self.service.evals, read, self.answers, concurrency=2)
        return WorkRunner(self.service.queue, {KIND: handler})


@pytest.fixture
def bench(database: Database, clock: ManualClock, tmp_path: Path) -> Bench:
    _, _, alpha_id = two_tenants(database, clock)
    keys = KeyRepository(database, clock)
    principals = [p for p in (keys.principal(k.id) for k in keys.list()) if p is not None]
    alpha = next(p for p in principals if p.tenant_id == alpha_id)
    beta = next(p for p in principals if p.tenant_id != alpha_id)
    files = FileService.build(Settings(data_dir=tmp_path), database, clock)
    evals, queue = EvalRepository(database, clock), WorkQueue(database, clock)
    return Bench(EvalService(evals, files, queue, clock), files, Answers(), alpha, beta, clock)


def test_an_evaluation_scores_each_model_and_records_its_figures(bench: Bench) -> None:
    created = bench.create(metrics=["exact_match", "contains", "json_valid", "loss"])
    assert created.status == EvalStatus.QUEUED
    item = bench.runner().run_once()
    assert item is not None and item.status == WorkStatus.SUCCEEDED
    done = bench.service.get(bench.alpha.tenant_id, created.id)
    assert (done.status, done.progress, done.examples) == (EvalStatus.COMPLETED, 1.0, 3)
    good, bad = done.results["good"], done.results["bad"]
    assert good["exact_match"] == {"mean": 1.0, "count": 3}
    assert good["json_valid"]["mean"] == pytest.approx(1 / 3)
    assert bad["exact_match"] == {"mean": 0.0, "count": 3} and bad["contains"]["mean"] == 0.0
    characters = sum(len(r) for r in REFERENCES)  # only the reference's tokens are scored
    assert good["loss"]["count"] == bad["loss"]["count"] == characters
    assert good["loss"]["mean"] == pytest.approx(-GOOD_LOGPROB)
    assert bad["loss"]["mean"] == pytest.approx(-BAD_LOGPROB)
    assert good["errors"] == bad["errors"] == 0
    shown = done.as_json()
    assert [r["model"] for r in shown["results"]] == ["good", "bad"]
    assert shown["status"] == "completed" and shown["source"] == {
        "file_id": created.request.source.file_id
    }


def test_a_refused_call_counts_as_an_error_not_a_score(bench: Bench) -> None:
    created = bench.create(models=["refused"], metrics=["exact_match"])
    bench.runner().run_once()
    result = bench.service.get(None, created.id).results["refused"]
    assert result["exact_match"] == {"mean": None, "count": 0} and result["errors"] == 3


def test_a_retried_run_does_not_score_a_recorded_model_again(bench: Bench) -> None:
    bench.answers.fail_model = "bad"
    created = bench.create(metrics=["exact_match"])
    item = bench.runner().run_once()
    assert item is not None and item.status == WorkStatus.QUEUED and item.attempts == 1
    half = bench.service.get(None, created.id)
    assert half.status == EvalStatus.RUNNING and list(half.results) == ["good"]
    assert half.progress == pytest.approx(0.5)
    bench.answers.fail_model = None
    bench.answers.sent.clear()
    bench.clock.advance(3600)  # past the retry's back-off
    assert bench.runner().run_once() is not None
    assert {model for model, _ in bench.answers.sent} == {"bad"}
    assert bench.service.get(None, created.id).status == EvalStatus.COMPLETED


def test_the_last_failed_attempt_fails_the_evaluation(bench: Bench) -> None:
    bench.answers.fail_model = "good"
    created = bench.create(metrics=["exact_match"])
    for _ in range(3):
        bench.clock.advance(3600)
        bench.runner().run_once()
    failed = bench.service.get(None, created.id)
    assert failed.status == EvalStatus.FAILED and "ServiceUnavailable" in (failed.error or "")


def test_a_source_without_examples_fails_the_evaluation(bench: Bench) -> None:
    data = b'{"messages": [{"role": "user", "content": "no answer"}]}\n'
    who = bench.alpha
    file_id = bench.files.write(who.tenant_id, who.key_id, "x.jsonl", "fine-tune", data).id
    request = parse_request({"file_id": file_id, "models": ["good"]})
    created = bench.service.create(who.tenant_id, who.key_id, request)
    item = bench.runner().run_once()
    assert item is not None and item.status == WorkStatus.SUCCEEDED
    failed = bench.service.get(None, created.id)
    assert failed.status == EvalStatus.FAILED and "no example" in (failed.error or "")
    assert bench.answers.sent == []


def test_files_must_be_the_tenants_own_fine_tune_uploads(bench: Bench) -> None:
    theirs = bench.upload(bench.beta)
    for file_id in (theirs, "file-nosuch"):
        with pytest.raises(NotFound) as missing:
            bench.service.create(
                bench.alpha.tenant_id,
                bench.alpha.key_id,
                parse_request({"file_id": file_id, "models": ["good"]}),
            )
        assert missing.value.param == "file_id"
    batch_file = bench.upload(purpose="batch")
    with pytest.raises(InvalidRequest) as refused:
        bench.service.create(
            bench.alpha.tenant_id,
            bench.alpha.key_id,
            parse_request({"file_id": batch_file, "models": ["good"]}),
        )
    assert refused.value.code == "invalid_file_purpose"


def test_another_tenants_evaluation_does_not_exist_for_it(bench: Bench) -> None:
    created = bench.create()
    for call in (bench.service.get, bench.service.cancel):
        with pytest.raises(NotFound):
            call(bench.beta.tenant_id, created.id)
    assert bench.service.list(bench.beta.tenant_id) == []
    assert [e.id for e in bench.service.list(bench.alpha.tenant_id)] == [created.id]
    assert [e.id for e in bench.service.list(None)] == [created.id]


def test_a_cancelled_evaluation_ends_at_once_and_is_not_run(bench: Bench) -> None:
    created = bench.create()
    cancelled = bench.service.cancel(bench.alpha.tenant_id, created.id)
    assert cancelled.status == EvalStatus.CANCELLED and cancelled.finished_at is not None
    assert bench.runner().run_once() is None  # its work item was cancelled too
    assert bench.answers.sent == []
    with pytest.raises(Conflict):
        bench.service.cancel(bench.alpha.tenant_id, created.id)


def test_a_card_shows_the_readers_own_figures_and_published_ones(bench: Bench) -> None:
    own = bench.create(metrics=["exact_match"])
    bench.runner().run_once()
    published = bench.create(bench.beta, metrics=["exact_match"], publish=True)
    bench.runner().run_once()
    private = bench.create(bench.beta, metrics=["exact_match"])
    bench.runner().run_once()
    seen = bench.service.card_results(["good"], bench.alpha.tenant_id)
    assert {r["eval_id"] for r in seen} == {own.id, published.id}
    assert all(r["exact_match"] == {"mean": 1.0, "count": 3} for r in seen)
    assert {r["published"] for r in seen} == {True, False}
    assert {r["eval_id"] for r in bench.service.card_results(["good", "good@1"], None)} == {
        own.id, published.id, private.id,
    }  # fmt: skip
