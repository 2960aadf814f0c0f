"""``/v1/embeddings`` via the openai client, through a live gateway to the real replica."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from tests.gateway.live import EMBEDDINGS_MODEL, live_gateways
from tokenmill.billing.usage import UsageEvent, UsageRepository
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.control.keys import KeyRepository
from tokenmill.control.tenants import TenantRepository
from tokenmill.store.db import Database

TEXTS = ["A man is playing a guitar.", "Someone is strumming a guitar.", "Stocks fell sharply."]


@dataclass
class Setup:
    client: openai.OpenAI
    usage: UsageRepository

    def record(self, request_id: str, timeout_seconds: float = 10.0) -> UsageEvent:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            event = self.usage.get(request_id)
            if event is not None:
                return event
            time.sleep(0.05)
        raise AssertionError(f"no usage record for {request_id}")


@pytest.fixture
def setup(database: Database, tmp_path: Path) -> Iterator[Setup]:
    clock = SystemClock()
    tenant = TenantRepository(database, clock).create("acme")
    _, secret = KeyRepository(database, clock).create(tenant.id, "embeddings")
    ModelRepository(database, clock).register(
        EMBEDDINGS_MODEL, task="embeddings", artifact="-", context_tokens=256
    )
    url = database.url.render_as_string(hide_password=False)
    with live_gateways(url, tmp_path, embeddings=True) as (_, [gateway]):
        client = openai.OpenAI(
            base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0, timeout=60
        )
        yield Setup(client, UsageRepository(database))


def as_array(reply: openai.types.CreateEmbeddingResponse) -> np.ndarray:
    """The vectors; asked for explicitly, base64 comes back as the replica sent it."""
    rows: list[Any] = [
        np.frombuffer(base64.b64decode(item.embedding), "<f4")
        if isinstance(item.embedding, str)
        else item.embedding
        for item in reply.data
    ]
    return np.array(rows, dtype=np.float32)


def test_embeddings_through_the_gateway(setup: Setup) -> None:
    raw = setup.client.embeddings.with_raw_response.create(model=EMBEDDINGS_MODEL, input=TEXTS[0])
    one = raw.parse()  # the client asks for base64 unless told otherwise, and decodes it
    assert len(one.data) == 1 and len(one.data[0].embedding) == 384
    record = setup.record(raw.headers["x-request-id"])
    assert (record.endpoint, record.status, record.http_status) == ("embeddings", "ok", 200)
    assert record.model == EMBEDDINGS_MODEL
    assert record.prompt_tokens == one.usage.prompt_tokens > 0
    assert record.completion_tokens == 0

    floats = setup.client.embeddings.create(
        model=EMBEDDINGS_MODEL, input=TEXTS, encoding_format="float"
    )
    encoded = setup.client.embeddings.create(
        model=EMBEDDINGS_MODEL, input=TEXTS, encoding_format="base64"
    )
    assert all(isinstance(d.embedding, str) for d in encoded.data)
    assert [d.index for d in floats.data] == [0, 1, 2]
    np.testing.assert_array_equal(as_array(floats), as_array(encoded))
    np.testing.assert_allclose(as_array(floats)[0], as_array(one)[0], atol=1e-5)
    similarity = as_array(floats) @ as_array(floats).T
    assert similarity[0, 1] > similarity[0, 2] + 0.3
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > one.usage.prompt_tokens


def test_a_too_long_input_is_refused_and_metered_as_an_error(setup: Setup) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        setup.client.embeddings.create(model=EMBEDDINGS_MODEL, input="word " * 300)
    assert caught.value.code == "context_length_exceeded"
    request_id = caught.value.response.headers["x-request-id"]
    record = setup.record(request_id)
    assert (record.status, record.http_status, record.error_code) == (
        "error",
        400,
        "context_length_exceeded",
    )
    with pytest.raises(openai.BadRequestError) as empty:
        setup.client.embeddings.create(model=EMBEDDINGS_MODEL, input=[])
    assert empty.value.param == "input"
