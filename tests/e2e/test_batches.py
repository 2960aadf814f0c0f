"""The Batch API through a live ``tokenmill serve`` with the official openai client: a batch of
two chat requests to the bundled chat model and one for a model that does not exist runs to
``completed`` for a tenant with credit; its output and error files hold the lines, and each
answered line is metered to the tenant at the batch price."""

from __future__ import annotations

import json
import math
import time

from tests.e2e.conftest import Platform
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import TokenUsage
from tokenmill.clock import SystemClock

MODEL = "smollm2-135m-instruct"
BATCH_PRICE_FACTOR = 0.5  # the default
WAIT_SECONDS = 180
BILLING_SYNC_SECONDS = 1.0  # the default: how soon a gateway sees a top-up


def _line(custom_id: str, model: str, question: str) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 8}
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps(line).encode() + b"\n"


def test_a_batch_runs_through_the_openai_client(platform: Platform) -> None:
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": "batch-tenant"}).json()
        made = http.post(f"/admin/v1/tenants/{tenant['id']}/keys", json={"name": "batch-app"})
        credit = {"amount_micros": 10_000_000, "idempotency_key": "batch-e2e"}
        assert http.post(f"/admin/v1/tenants/{tenant['id']}/credits", json=credit).is_success
    time.sleep(BILLING_SYNC_SECONDS * 1.5)  # lines are admitted once the gateway sees the credit
    client = platform.client(str(made.json()["secret"]))
    data = (
        _line("capital", MODEL, "What is the capital of France?")
        + _line("nobody", "no-such-model", "Hello?")
        + _line("colour", MODEL, "What colour is the sky?")
    )
    upload = client.files.create(file=("requests.jsonl", data), purpose="batch")

    batch = client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "e2e"},
    )
    assert batch.object == "batch" and batch.status == "validating"
    deadline = time.monotonic() + WAIT_SECONDS
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        assert time.monotonic() < deadline, f"still {batch.status} after {WAIT_SECONDS} s"
        time.sleep(0.5)
        batch = client.batches.retrieve(batch.id)

    assert batch.status == "completed", batch.errors
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (3, 2)
    assert batch.request_counts.failed == 1 and batch.metadata == {"run": "e2e"}
    assert batch.output_file_id and batch.error_file_id
    assert [b.id for b in client.batches.list().data] == [batch.id]

    output = [json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()]
    assert [x["custom_id"] for x in output] == ["capital", "colour"]
    errors = [json.loads(x) for x in client.files.content(batch.error_file_id).text.splitlines()]
    assert [x["custom_id"] for x in errors] == ["nobody"]
    assert errors[0]["response"]["status_code"] == 404
    assert errors[0]["response"]["body"]["error"]["code"] == "model_not_found"

    prices = PriceBookRepository(platform.db, SystemClock()).load()
    for line in output:
        reply = line["response"]["body"]
        assert line["response"]["status_code"] == 200 and reply["object"] == "chat.completion"
        assert 1 <= reply["usage"]["completion_tokens"] <= 8
        usage = platform.usage(line["response"]["request_id"])
        assert usage.tenant_id == tenant["id"] and usage.endpoint == "chat.completions"
        assert usage.model == MODEL and usage.status == "ok" and not usage.stream
        assert usage.prompt_tokens == reply["usage"]["prompt_tokens"]
        assert usage.completion_tokens == reply["usage"]["completion_tokens"]
        tokens = TokenUsage(usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens)
        full = prices.cost_micros(MODEL, tokens, usage.created_at)
        assert full > 0 and usage.cost_micros == math.ceil(full * BATCH_PRICE_FACTOR)
