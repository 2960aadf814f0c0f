from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from starlette.testclient import TestClient
from tokenizers import Tokenizer

from tests.engine.embed.conftest import SERVED_NAME

PAIRS = ["A man is playing a guitar.", "Someone is strumming a guitar.", "Stocks fell sharply."]


def embed(api: TestClient, **fields: Any) -> dict[str, Any]:
    response = api.post("/v1/embeddings", json={"model": SERVED_NAME, **fields})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def vectors(body: dict[str, Any]) -> np.ndarray:
    return np.array([item["embedding"] for item in body["data"]], dtype=np.float32)


def error(api: TestClient, payload: Any = None, content: bytes | None = None) -> dict[str, Any]:
    response = api.post("/v1/embeddings", json=payload, content=content)
    assert response.status_code == 400, response.text
    found: dict[str, Any] = response.json()["error"]
    return found


def test_the_openai_response_shape(api: TestClient, tokenizer: Tokenizer) -> None:
    response = api.post(
        "/v1/embeddings",
        json={"model": SERVED_NAME, "input": PAIRS},
        headers={"x-request-id": "req-embed-1"},
    )
    assert response.headers["x-request-id"] == "req-embed-1"
    body = response.json()
    assert body["object"] == "list" and body["model"] == SERVED_NAME
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", i) for i in range(3)]
    found = vectors(body)
    assert found.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(found, axis=1), 1.0, atol=1e-5)
    expected = sum(len(tokenizer.encode(text).ids) for text in PAIRS)
    assert body["usage"] == {"prompt_tokens": expected, "total_tokens": expected}


def test_paraphrases_are_closer_than_an_unrelated_sentence(api: TestClient) -> None:
    found = vectors(embed(api, input=PAIRS))
    assert found[0] @ found[1] > found[0] @ found[2] + 0.3


def test_base64_is_the_same_float32_little_endian(api: TestClient) -> None:
    floats = vectors(embed(api, input=PAIRS))
    encoded = embed(api, input=PAIRS, encoding_format="base64")["data"]
    decoded = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in encoded])
    np.testing.assert_array_equal(decoded, floats)


def test_a_batch_keeps_its_order(api: TestClient) -> None:
    texts = [f"item {i}: " + "more words " * i for i in range(12)]
    together = vectors(embed(api, input=texts[::-1]))[::-1]
    for i in (0, 5, 11):
        np.testing.assert_allclose(together[i], vectors(embed(api, input=texts[i]))[0], atol=1e-5)


def test_concurrent_requests_each_get_their_own_answer(api: TestClient) -> None:
    texts = [f"request number {i} about topic {i * 7}" for i in range(16)]
    alone = {text: vectors(embed(api, input=text))[0] for text in texts}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda text: vectors(embed(api, input=[text, "x"]))[0], texts))
    for text, answer in zip(texts, answers, strict=True):
        np.testing.assert_allclose(answer, alone[text], atol=1e-5)


def test_token_id_inputs(api: TestClient, tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode(PAIRS[0], add_special_tokens=False).ids
    body = embed(api, input=[ids, ids[:3]])
    np.testing.assert_allclose(vectors(body)[0], vectors(embed(api, input=PAIRS[0]))[0], atol=1e-5)
    assert body["usage"]["prompt_tokens"] == len(ids) + 2 + 3 + 2
    assert error(api, {"model": SERVED_NAME, "input": [10**9]})["param"] == "input"


def test_too_long_an_input_is_a_400_context_length_exceeded(api: TestClient) -> None:
    found = error(api, {"model": SERVED_NAME, "input": ["fine", "word " * 300]})
    assert (found["code"], found["param"], found["type"]) == (
        "context_length_exceeded",
        "input",
        "invalid_request_error",
    )


def test_malformed_bodies_are_400s(api: TestClient) -> None:
    assert "not valid JSON" in error(api, content=b'{"model": ')["message"]
    assert error(api, content=b"[1, 2]")["message"] == "The request body must be a JSON object."
    assert error(api, {"model": SERVED_NAME, "input": ""})["param"] == "input"
    assert error(api, {"model": SERVED_NAME, "input": "x", "encoding_format": "hex"})["param"] == (
        "encoding_format"
    )


def test_dimensions_other_than_the_models_width_are_refused(api: TestClient) -> None:
    assert len(embed(api, input="hi", dimensions=384)["data"][0]["embedding"]) == 384
    for wrong in (128, 385):
        found = error(api, {"model": SERVED_NAME, "input": "hi", "dimensions": wrong})
        assert found["param"] == "dimensions"


def test_another_models_name_is_a_404(api: TestClient) -> None:
    response = api.post("/v1/embeddings", json={"model": "other", "input": "hi"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_models_health_and_routes(api: TestClient) -> None:
    [model] = api.get("/v1/models").json()["data"]
    assert (model["id"], model["max_model_len"]) == (SERVED_NAME, 256)
    assert api.get("/health").json() == {"status": "ok", "model": SERVED_NAME}
    assert api.get("/v1/nothing").json()["error"]["code"] == "not_found"
    assert api.get("/v1/embeddings").status_code == 405
    bad_id = api.post("/v1/embeddings", json={}, headers={"x-request-id": "bad id!"})
    assert bad_id.status_code == 400 and bad_id.json()["error"]["param"] == "x-request-id"


def test_metrics_count_prompt_tokens_and_latency(api: TestClient, tokenizer: Tokenizer) -> None:
    embed(api, input=PAIRS)
    embed(api, input="one more")
    text = api.get("/metrics").text
    tokens = sum(len(tokenizer.encode(t).ids) for t in [*PAIRS, "one more"])
    assert f"tokenmill:prompt_tokens_total {float(tokens)}" in text
    assert "tokenmill:e2e_request_latency_seconds_count 2.0" in text
    assert "tokenmill:num_requests_running 0.0" in text
    assert "tokenmill:num_requests_waiting 0.0" in text
