"""LoRA adapters through the replica API, against a live ``python -m tokenmill.engine
--adapters-dir`` process: the header, its errors, health and metrics."""

from __future__ import annotations

import httpx
import pytest

from tokenmill.protocol.tenancy import ADAPTER_HEADER

from .test_server import chat_body, completion_body, error_of, metric, stream

pytestmark = pytest.mark.model


def chat(client: httpx.Client, adapter: str | None) -> httpx.Response:
    headers = {ADAPTER_HEADER: adapter} if adapter is not None else {}
    return client.post("/v1/chat/completions", json=chat_body(max_tokens=8), headers=headers)


def test_the_header_picks_the_adapter_that_answers(client: httpx.Client) -> None:
    loads = metric(client, "tokenmill:lora_adapter_loads_total")
    base = chat(client, None)
    tuned = chat(client, "a0")
    assert base.status_code == tuned.status_code == 200
    text = tuned.json()["choices"][0]["message"]["content"]
    assert text and text != base.json()["choices"][0]["message"]["content"]
    assert chat(client, "a0").json()["choices"][0]["message"]["content"] == text
    assert "a0" in client.get("/health").json()["adapters"]
    assert metric(client, "tokenmill:lora_adapter_loads_total") <= loads + 1
    assert metric(client, "tokenmill:lora_adapters_loaded") >= 1


def test_completions_and_streams_take_the_header_too(client: httpx.Client) -> None:
    headers = {ADAPTER_HEADER: "a1"}
    whole = client.post("/v1/completions", json=completion_body(max_tokens=6), headers=headers)
    assert whole.status_code == 200
    with client.stream(
        "POST", "/v1/completions", json={**completion_body(max_tokens=6), "stream": True},
        headers=headers,
    ) as response:  # fmt: skip
        assert response.status_code == 200
        chunks = [line for line in response.iter_lines() if line.startswith("data: {")]
    assert chunks
    base = stream(client, "/v1/completions", completion_body(max_tokens=6))
    assert base[-1] == "[DONE]"


@pytest.mark.parametrize("adapter", ["../a0", "a0/x", ".a0", "a" * 129])
def test_a_malformed_adapter_id_is_a_400(client: httpx.Client, adapter: str) -> None:
    response = chat(client, adapter)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == ADAPTER_HEADER
    assert error["type"] == "invalid_request_error"


def test_an_unknown_adapter_is_a_404_naming_it(client: httpx.Client) -> None:
    response = chat(client, "no-such-adapter")
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "model_not_found"
    assert "'no-such-adapter'" in error["message"]


def test_a_file_llama_cpp_refuses_is_a_400(client: httpx.Client) -> None:
    response = chat(client, "other-arch")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_artifact"
    assert "other-arch" not in client.get("/health").json()["adapters"]
