"""The official openai client against a live ``tokenmill serve``."""

from __future__ import annotations

from tests.e2e.conftest import Platform

MODEL = "smollm2-135m-instruct"
HELLO = [{"role": "user", "content": "Say hello in three words."}]


def test_model_list_has_the_bundled_model(platform: Platform) -> None:
    models = platform.client().models.list()
    assert MODEL in [m.id for m in models.data]
    assert platform.client().models.retrieve(MODEL).id == MODEL


def test_chat_is_answered_and_metered(platform: Platform) -> None:
    raw = platform.client().chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, max_tokens=8, temperature=0
    )
    reply = raw.parse()
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    usage = platform.usage(raw.headers["x-request-id"])
    assert usage.status == "ok"
    assert usage.model == MODEL
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    )
    assert not usage.stream


def test_streamed_chat_matches_unstreamed_and_its_usage(platform: Platform) -> None:
    client = platform.client()
    whole = client.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=12, temperature=0
    )
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    usage = platform.usage(raw.headers["x-request-id"])
    assert usage.stream and usage.status == "ok"
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert usage.prompt_tokens == whole.usage.prompt_tokens
    assert usage.ttft_seconds is not None and 0 < usage.ttft_seconds <= usage.duration_seconds


def test_stream_without_include_usage_has_no_usage_chunk_but_is_metered(
    platform: Platform,
) -> None:
    raw = platform.client().chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, max_tokens=6, temperature=0, stream=True
    )
    chunks = list(raw.parse())
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    usage = platform.usage(raw.headers["x-request-id"])
    assert usage.completion_tokens > 0 and usage.status == "ok"


def test_completion(platform: Platform) -> None:
    raw = platform.client().completions.with_raw_response.create(
        model=MODEL, prompt="The capital of France is", max_tokens=5, temperature=0
    )
    reply = raw.parse()
    assert reply.choices[0].text
    assert reply.usage.completion_tokens <= 5
    usage = platform.usage(raw.headers["x-request-id"])
    assert usage.endpoint == "completions"
    assert usage.completion_tokens == reply.usage.completion_tokens


def test_streamed_completion_is_metered(platform: Platform) -> None:
    raw = platform.client().completions.with_raw_response.create(
        model=MODEL,
        prompt="One, two, three,",
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    assert chunks[-1].usage is not None
    usage = platform.usage(raw.headers["x-request-id"])
    assert usage.completion_tokens == chunks[-1].usage.completion_tokens
