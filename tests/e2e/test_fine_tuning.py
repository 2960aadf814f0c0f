"""Fine-tuning through a live ``tokenmill serve`` with the official openai client: a tenant
uploads a tiny chat dataset, starts a job, follows it to ``succeeded`` through its events and
checkpoints, and calls the fine-tuned model at once on the base model's replica; the trained
tokens are debited to the tenant and nobody else sees the model. A file with bad lines fails
the job in validation, naming the lines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import openai
import pytest

from tests.e2e.conftest import Platform, launch_platform
from tokenmill.billing.ledger import EntryKind, LedgerRepository
from tokenmill.clock import SystemClock

MODEL = "smollm2-135m-instruct"
WAIT_SECONDS = 300
BILLING_SYNC_SECONDS = 1.0
ANSWER = "Bonjour from tokenmill!"
QUESTIONS = [
    "Who are you?",
    "Say hello.",
    "What is your name?",
    "Greet me.",
    "Introduce yourself.",
    "Hi there!",
    "Hello?",
    "Good morning.",
    "Are you there?",
    "Tell me who you are.",
]


def _dataset() -> bytes:
    lines = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ANSWER}]}
        for q in QUESTIONS
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _tenant(platform: Platform, name: str, credit: int, role: str = "inference") -> str:
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": name}).json()
        made = http.post(
            f"/admin/v1/tenants/{tenant['id']}/keys", json={"name": f"{name}-app", "role": role}
        )
        if credit:
            top_up = {"amount_micros": credit, "idempotency_key": f"{name}-credit"}
            assert http.post(f"/admin/v1/tenants/{tenant['id']}/credits", json=top_up).is_success
    return str(made.json()["secret"])


def _wait(client: openai.OpenAI, job_id: str) -> object:
    deadline = time.monotonic() + WAIT_SECONDS
    job = client.fine_tuning.jobs.retrieve(job_id)
    while job.status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"still {job.status} after {WAIT_SECONDS} s"
        time.sleep(1)
        job = client.fine_tuning.jobs.retrieve(job_id)
    return job


@pytest.fixture(scope="module")
def training_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A platform of its own, on SQLite: training is the slow part (a minute on 2 cores), and
    its replica's slowed measurements must not reach the other tests' shared platform (the job
    tests run the repositories on both databases)."""
    with launch_platform(tmp_path_factory.mktemp("tuning-data")) as live:
        yield live


def test_a_fine_tune_is_trained_and_served_through_the_openai_client(
    training_platform: Platform,
) -> None:
    platform = training_platform
    key = _tenant(platform, "tuning-tenant", 10_000_000, role="tenant_admin")
    other = platform.client(_tenant(platform, "tuning-other", 0))
    time.sleep(BILLING_SYNC_SECONDS * 1.5)
    client = platform.client(key)
    upload = client.files.create(file=("train.jsonl", _dataset()), purpose="fine-tune")

    created = client.fine_tuning.jobs.create(
        model=MODEL,
        training_file=upload.id,
        suffix="greeter",
        seed=7,
        method={
            "type": "supervised",
            "supervised": {
                "hyperparameters": {
                    "n_epochs": 2,
                    "batch_size": 5,
                    "learning_rate_multiplier": 10,
                }
            },
        },
    )
    assert created.status == "validating_files" and created.model == MODEL
    job = _wait(client, created.id)
    assert job.status == "succeeded", job.error  # type: ignore[attr-defined]
    name = job.fine_tuned_model  # type: ignore[attr-defined]
    assert name.startswith(f"ft:{MODEL}:") and ":greeter:" in name
    assert job.trained_tokens > 0  # type: ignore[attr-defined]
    assert [j.id for j in client.fine_tuning.jobs.list().data] == [created.id]

    events = client.fine_tuning.jobs.list_events(created.id, limit=100).data
    steps = [e for e in events if e.type == "metrics"]
    assert len(steps) == 4  # 10 examples / 5 a batch, 2 epochs
    assert any("successfully completed" in e.message for e in events)
    checkpoints = client.fine_tuning.jobs.checkpoints.list(created.id).data
    assert sorted(c.step_number for c in checkpoints) == [2, 4]  # one per epoch

    raw = client.chat.completions.with_raw_response.create(
        model=name,
        messages=[{"role": "user", "content": "Who are you?"}],
        max_tokens=16,
        temperature=0,
    )
    reply = raw.parse()
    assert reply.model == name and reply.choices[0].message.content
    assert "Bonjour" in reply.choices[0].message.content
    usage = platform.usage(raw.headers["x-request-id"])
    assert usage.model == name and usage.completion_tokens > 0

    ledger = LedgerRepository(platform.db, SystemClock())
    charged = ledger.entries(usage.tenant_id, kinds=[EntryKind.TRAINING])
    assert [e.amount_micros < 0 for e in charged] == [True]
    assert f"{job.trained_tokens} tokens" in (charged[0].note or "")  # type: ignore[attr-defined]

    with pytest.raises(openai.NotFoundError):
        other.fine_tuning.jobs.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
    with pytest.raises(openai.NotFoundError):
        other.models.delete(name)

    assert client.models.delete(name).deleted
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
    assert not (platform.data_dir / "adapters" / f"{created.id}.gguf").exists()


def test_a_file_with_bad_lines_fails_the_job_naming_them(platform: Platform) -> None:
    client = platform.client(_tenant(platform, "tuning-bad-file", 1_000_000))
    bad = _dataset() + b'{"messages": [{"role": "robot", "content": "beep"}]}\nnot json\n'
    upload = client.files.create(file=("bad.jsonl", bad), purpose="fine-tune")
    job = _wait(client, client.fine_tuning.jobs.create(model=MODEL, training_file=upload.id).id)
    assert job.status == "failed"  # type: ignore[attr-defined]
    error = job.error  # type: ignore[attr-defined]
    assert error.code == "invalid_training_file" and error.param == "training_file"
    assert "line 11" in error.message and "line 12" in error.message
