from __future__ import annotations

from tokenmill.engine.request import Usage
from tokenmill.engine.responses import ChatFormat, CompletionFormat, usage_json

USAGE = Usage(prompt_tokens=10, completion_tokens=4, cached_tokens=6)


def test_usage_shape() -> None:
    assert usage_json(USAGE) == {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 6},
    }


def test_chat_chunks() -> None:
    fmt = ChatFormat("r1", 1700000000, "m")
    [opening] = fmt.opening()
    assert opening["id"] == "chatcmpl-r1"
    assert opening["object"] == "chat.completion.chunk"
    assert opening["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert fmt.delta("hi")["choices"][0]["delta"] == {"content": "hi"}
    assert fmt.finish("stop")["choices"][0] == {
        "index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"
    }  # fmt: skip
    assert fmt.usage_chunk(USAGE)["choices"] == []
    response = fmt.response("hello", "length", USAGE)
    assert response["object"] == "chat.completion"
    assert response["choices"][0]["message"] == {"role": "assistant", "content": "hello"}


def test_completion_chunks_and_echo() -> None:
    fmt = CompletionFormat("r2", 1700000000, "m")
    assert fmt.opening() == []
    assert fmt.delta("x")["id"] == "cmpl-r2"
    assert fmt.delta("x")["object"] == "text_completion"
    echo = CompletionFormat("r2", 1700000000, "m", echo="Once upon")
    assert [c["choices"][0]["text"] for c in echo.opening()] == ["Once upon"]
    assert echo.response(" a time", "stop", USAGE)["choices"][0]["text"] == "Once upon a time"
