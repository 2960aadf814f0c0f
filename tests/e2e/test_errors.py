"""Bad input gets a precise 4xx in OpenAI's error shape, and no usage is billed."""

from __future__ import annotations

import time

import openai
import pytest

from tests.e2e.conftest import Platform

MODEL = "smollm2-135m-instruct"
HELLO = [{"role": "user", "content": "Hi"}]


def _error(response) -> dict:  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def _assert_unbilled(platform: Platform, request_id: str, status: int) -> None:
    usage = platform.usage(request_id)
    assert usage.http_status == status
    assert usage.status == "error"
    assert (usage.prompt_tokens, usage.completion_tokens) == (0, 0)


def test_wrong_key_is_401(platform: Platform) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        platform.client("tm-not-a-real-key").chat.completions.create(model=MODEL, messages=HELLO)
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"


def test_missing_key_is_401(platform: Platform) -> None:
    with platform.http() as http:
        response = http.get("/v1/models", headers={"authorization": ""})
    assert response.status_code == 401
    assert _error(response)["code"] == "invalid_api_key"


def test_revoked_key_is_401(platform: Platform) -> None:
    out = platform.cli("keys", "create", "--name", "soon-revoked")
    secret = out.strip().splitlines()[-1]
    key_id = out.split()[2]
    client = platform.client(secret)
    assert client.models.list().data
    platform.cli("keys", "revoke", key_id)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            client.models.list()
        except openai.AuthenticationError as err:
            assert "revoked" in err.message
            return
        time.sleep(0.1)
    raise AssertionError("a revoked key was still accepted after 5 s")


def test_unknown_model_is_404(platform: Platform) -> None:
    with platform.http() as http:
        response = http.post("/v1/chat/completions", json={"model": "nope", "messages": HELLO})
    assert response.status_code == 404
    error = _error(response)
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    _assert_unbilled(platform, response.headers["x-request-id"], 404)


def test_malformed_json_is_400(platform: Platform) -> None:
    with platform.http() as http:
        response = http.post(
            "/v1/chat/completions",
            content=b'{"model": "x", "messages": [',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400
    assert _error(response)["type"] == "invalid_request_error"
    _assert_unbilled(platform, response.headers["x-request-id"], 400)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_tokens", -1), ("max_tokens", 0), ("temperature", 2.5), ("top_p", -0.1), ("n", 0)],
)
def test_out_of_range_parameter_is_400_naming_it(
    platform: Platform, field: str, value: float
) -> None:
    with platform.http() as http:
        response = http.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": HELLO, field: value}
        )
    assert response.status_code == 400
    assert _error(response)["param"] == field
    _assert_unbilled(platform, response.headers["x-request-id"], 400)


def test_prompt_longer_than_context_is_400_naming_the_limit(platform: Platform) -> None:
    long_text = "hello world " * 3000
    with platform.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": long_text}]},
        )
    assert response.status_code == 400, response.text
    error = _error(response)
    assert error["code"] == "context_length_exceeded"
    assert "2048" in error["message"]
    _assert_unbilled(platform, response.headers["x-request-id"], 400)


def test_huge_max_tokens_is_400(platform: Platform) -> None:
    with platform.http() as http:
        response = http.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": HELLO, "max_tokens": 10**9}
        )
    assert response.status_code == 400
    assert _error(response)["code"] == "context_length_exceeded"
    _assert_unbilled(platform, response.headers["x-request-id"], 400)


def test_unknown_route_and_method_are_openai_shaped(platform: Platform) -> None:
    with platform.http() as http:
        assert _error(http.get("/v1/nothing-here")) and http.get("/v1/nothing").status_code == 404
        response = http.get("/v1/chat/completions")
    assert response.status_code == 405
    _error(response)
