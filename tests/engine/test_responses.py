from __future__ import annotations

from tokenmill.engine.request import PromptLogprobs, TokenLogprob, TopLogprob, Usage
from tokenmill.engine.responses import ChatFormat, Choice, CompletionFormat, usage_json

USAGE = Usage(prompt_tokens=10, completion_tokens=4, cached_tokens=6)
HELLO = TokenLogprob(b"Hel", -0.5, (TopLogprob(b"Hel", -0.5), TopLogprob(b"Hi", -1.5)))
LO = TokenLogprob(b"lo", -0.25, (TopLogprob(b"p", -0.1),))


def test_usage_shape() -> None:
    assert usage_json(USAGE) == {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 6},
    }


def test_chat_chunks() -> None:
    fmt = ChatFormat("r1", 1700000000, "m")
    [opening] = fmt.opening(0)
    assert opening["id"] == "chatcmpl-r1"
    assert opening["object"] == "chat.completion.chunk"
    assert opening["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert fmt.delta(0, "hi", (), 0)["choices"][0]["delta"] == {"content": "hi"}
    assert fmt.finish(2, "stop")["choices"][0] == {
        "index": 2, "delta": {}, "logprobs": None, "finish_reason": "stop"
    }  # fmt: skip
    assert fmt.usage_chunk(USAGE)["choices"] == []
    response = fmt.response([Choice("hello", "length")], USAGE)
    assert response["object"] == "chat.completion"
    assert response["choices"][0]["message"] == {"role": "assistant", "content": "hello"}
    assert response["choices"][0]["logprobs"] is None


def test_chat_logprobs() -> None:
    fmt = ChatFormat("r1", 1700000000, "m", logprobs=True)
    expected = {
        "content": [
            {
                "token": "Hel", "logprob": -0.5, "bytes": [72, 101, 108],
                "top_logprobs": [
                    {"token": "Hel", "logprob": -0.5, "bytes": [72, 101, 108]},
                    {"token": "Hi", "logprob": -1.5, "bytes": [72, 105]},
                ],
            }
        ]
    }  # fmt: skip
    assert fmt.delta(0, "Hel", [HELLO], 0)["choices"][0]["logprobs"] == expected
    choices = [Choice("Hel", "stop", (HELLO,)), Choice("", "stop")]
    response = fmt.response(choices, USAGE)
    assert [c["index"] for c in response["choices"]] == [0, 1]
    assert response["choices"][0]["logprobs"] == expected
    assert response["choices"][1]["logprobs"] == {"content": []}


def test_completion_chunks_and_echo() -> None:
    fmt = CompletionFormat("r2", 1700000000, "m")
    assert fmt.opening(0) == []
    assert fmt.delta(0, "x", (), 0)["id"] == "cmpl-r2"
    assert fmt.delta(0, "x", (), 0)["object"] == "text_completion"
    echo = CompletionFormat("r2", 1700000000, "m", echo="Once upon")
    assert [c["choices"][0]["text"] for c in echo.opening(0)] == ["Once upon"]
    response = echo.response([Choice(" a time", "stop")], USAGE)
    assert response["choices"][0]["text"] == "Once upon a time"


def test_completion_logprobs_hold_the_sampled_token_and_offsets() -> None:
    fmt = CompletionFormat("r2", 1700000000, "m", logprobs=True)
    assert fmt.delta(0, "Hello", [HELLO, LO], 7)["choices"][0]["logprobs"] == {
        "tokens": ["Hel", "lo"],
        "token_logprobs": [-0.5, -0.25],
        "top_logprobs": [{"Hel": -0.5, "Hi": -1.5}, {"p": -0.1, "lo": -0.25}],
        "text_offset": [7, 10],
    }
    response = fmt.response([Choice("Hello", "length", (HELLO, LO))], USAGE)
    assert response["choices"][0]["logprobs"]["text_offset"] == [0, 3]


def test_an_echoed_prompt_comes_with_its_logprobs_before_the_generated_ones() -> None:
    # "<bos>" was added by the tokenizer: it is not in the text, so it sits at offset 0.
    echoed = PromptLogprobs(b"<bos>", (HELLO, LO))
    fmt = CompletionFormat("r1", 1700000000, "m", echo="Hello", logprobs=True)
    assert fmt.opening(0) == []  # the prompt waits for its logprobs
    chunk = fmt.prompt(0, echoed)["choices"][0]
    assert chunk["text"] == "Hello"
    assert chunk["logprobs"]["tokens"] == ["<bos>", "Hel", "lo"]
    assert chunk["logprobs"]["token_logprobs"] == [None, -0.5, -0.25]
    assert chunk["logprobs"]["top_logprobs"][0] is None
    assert chunk["logprobs"]["text_offset"] == [0, 0, 3]
    generated = TokenLogprob(b"!", -1.0, ())
    response = fmt.response([Choice("!", "length", (generated,), prompt=echoed)], USAGE)
    logprobs = response["choices"][0]["logprobs"]
    assert response["choices"][0]["text"] == "Hello!"
    assert logprobs["tokens"] == ["<bos>", "Hel", "lo", "!"]
    assert logprobs["token_logprobs"] == [None, -0.5, -0.25, -1.0]
    assert logprobs["text_offset"] == [0, 0, 3, 5]
    assert fmt.delta(0, "!", (generated,), 0)["choices"][0]["logprobs"]["text_offset"] == [5]
