"""Logs never contain a key, a prompt or a completion (the gateway process).

The real gateway in-process, in front of a stand-in replica served on a local port, with every
log record of every logger captured at DEBUG: chat completions answered whole and streamed,
refused (a wrong key, a revoked one, a body that is not JSON, a replica that fails and echoes
the prompt), admin calls that create a key or fail, and a bug in a request's handling. No
record (its message, arguments, exception and extra fields) holds a secret (no 12 characters of
one in a row: ``tm-`` and 8 more are its public display prefix), the prompt or the completion.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
import pytest

from tests.gateway.conftest import AdminKeys, admin_keys, error_of
from tests.gateway.live import MODEL, read_body, send_json, served_name, sse_event
from tests.gateway.test_responses import serving
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.control.keycache import REVOKED_MESSAGE
from tokenmill.control.keys import DISPLAY_PREFIX_CHARS
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import Gateway, build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database

Json = dict[str, Any]
Phase = Literal["setup", "call", "teardown"]
CHAT = "/v1/chat/completions"
# Words found nowhere else, so that a log holding any of them holds a piece of the text.
PROMPT = "Describe the Quintessabell lighthouse of Marrowgate harbour in one line."
PROMPT_WORDS = ("Quintessabell", "Marrowgate")
COMPLETION_WORDS = ("Saffronlark", "Vellichorn", "Brimwhistle", "Ondravey")
COMPLETION = " ".join(COMPLETION_WORDS)
PROMPT_TOKENS, COMPLETION_TOKENS = 14, len(COMPLETION_WORDS)
# A record's standard attributes; any other is an ``extra`` a structured formatter would write.
STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class Replica:
    """Stands in for the engine: answers a chat completion with ``COMPLETION``, whole or
    streamed a word at a time; with ``failing``, answers 500 with an error that echoes the
    request's messages, as a careless engine might."""

    def __init__(self) -> None:
        self.failing = False
        self.completions = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if scope["method"] == "DELETE":  # the gateway cancelling a request
            await send_json(send, 200, {"usage": _usage(0)})
            return
        request = orjson.loads(body)
        self.completions += 1
        if self.failing:
            echo = orjson.dumps(request["messages"]).decode()
            error = {"message": f"the engine choked on {echo}", "type": "server_error"}
            await send_json(send, 500, {"error": {**error, "param": None, "code": "engine_error"}})
        elif request.get("stream"):
            headers = [(b"content-type", b"text/event-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for n, word in enumerate(COMPLETION_WORDS):
                delta = {"role": "assistant", "content": (" " if n else "") + word}
                chunk = sse_event({"choices": [{"index": 0, "delta": delta}]})
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            tail = sse_event({"choices": [], "usage": _usage(COMPLETION_TOKENS)})
            await send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n"})
        else:
            message = {"role": "assistant", "content": COMPLETION}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            answer = {"object": "chat.completion", "model": MODEL, "choices": [choice]}
            await send_json(send, 200, {**answer, "usage": _usage(COMPLETION_TOKENS)})


def _usage(completion_tokens: int) -> Json:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": PROMPT_TOKENS + completion_tokens,
    }


def streamed_content(body: str) -> str:
    """The text a stream of ``chat.completion.chunk`` events carries."""
    content = ""
    for frame in body.strip().split("\n\n"):
        data = frame.removeprefix("data: ")
        if data != "[DONE]":
            content += "".join(c["delta"].get("content", "") for c in orjson.loads(data)["choices"])
    return content


@contextmanager
def every_record(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every logger's records, DEBUG and up, reach ``caplog``: each logger that exists now is
    enabled, set to inherit the root's level and to propagate (uvicorn's, for one, do not);
    each is put back afterwards. Loggers made later propagate at the root's level anyway.

    Except SQLAlchemy's level: that is its ``echo`` switch (every statement, parameter and row
    logged), which the gateway never turns on. It stays at the WARNING SQLAlchemy gives it,
    as it is in the gateway at any ``log_level``; its warnings and errors are captured."""
    caplog.set_level(logging.DEBUG)
    saved: list[tuple[logging.Logger, int, bool, bool]] = []
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            saved.append((logger, logger.level, logger.propagate, logger.disabled))
            if name != "sqlalchemy" and not name.startswith("sqlalchemy."):
                logger.setLevel(logging.NOTSET)
            logger.propagate, logger.disabled = True, False
    try:
        yield
    finally:
        for logger, level, propagate, disabled in saved:
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled


def record_text(record: logging.LogRecord) -> str:
    """All of a record a handler could write: the formatted message, the raw message and
    arguments, the exception and stack, and any extra fields."""
    try:
        message = record.getMessage()
    except Exception as error:  # arguments that do not fit the message: still written out
        message = f"<unformattable: {error!r}>"
    parts = [message, str(record.msg), repr(record.args)]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:  # already formatted, the exception itself gone
        parts.append(record.exc_text)
    parts.append(record.stack_info or "")
    parts += [f"{name}={value!r}" for name, value in vars(record).items() if name not in STANDARD]
    return "\n".join(parts)


def forbidden(secrets_: list[str]) -> dict[str, str]:
    """What no log may hold, each with what it is: the prompt and the completion (whole, and
    each of their distinctive words, for a log of a part or a stream chunk), and every run of
    one more character of a secret than its public prefix shows (``tm-`` and 8)."""
    needles = {PROMPT: "the prompt", COMPLETION: "the completion"}
    needles |= {word: "a word of the prompt" for word in PROMPT_WORDS}
    needles |= {word: "a word of the completion" for word in COMPLETION_WORDS}
    run = DISPLAY_PREFIX_CHARS + 1
    for n, secret in enumerate(secrets_):
        assert len(secret) > run
        for start in range(len(secret) - run + 1):
            needles[secret[start : start + run]] = f"secret #{n} ({secret[:DISPLAY_PREFIX_CHARS]}…)"
    return needles


def assert_clean(records: list[logging.LogRecord], secrets_: list[str]) -> None:
    """No record holds a forbidden text; on failure, the offending record in full."""
    needles = forbidden(secrets_)
    for record in records:
        text = record_text(record)
        for needle, what in needles.items():
            if needle in text:
                print(f"LEAK of {what}: {record!r}\n{text}")
                pytest.fail(
                    f"a log record leaks {what} ({needle!r}):\n"
                    f"  logger {record.name!r}, {record.levelname}, "
                    f"{record.pathname}:{record.lineno}\n"
                    f"  record: {record!r}\n"
                    f"  text:\n{text}",
                    pytrace=False,
                )


@dataclass
class World:
    http: httpx.AsyncClient
    gateway: Gateway
    replica: Replica
    k: AdminKeys
    caplog: pytest.LogCaptureFixture
    secrets: list[str] = field(default_factory=list)  # every key offered or made, good or not

    async def call(self, key: str, method: str, path: str, body: Any = None) -> httpx.Response:
        self.secrets.append(key)
        headers = {"authorization": f"Bearer {key}"}
        return await self.http.request(method, path, json=body, headers=headers)

    async def chat(self, key: str, **extra: Any) -> httpx.Response:
        messages = [{"role": "user", "content": PROMPT}]
        return await self.call(key, "POST", CHAT, {"model": MODEL, "messages": messages, **extra})

    def records(self, *phases: Phase) -> list[logging.LogRecord]:
        return [r for phase in phases for r in self.caplog.get_records(phase)]

    def assert_clean(self) -> None:
        """The records of the world's making (the setup) and of the test so far are clean."""
        records = self.records("setup", "call")
        assert any(r.name == __name__ for r in records), "the capture is not working"
        assert any(r.name != __name__ for r in records), "nothing was logged at all"
        assert_clean(records, self.secrets)


@asynccontextmanager
async def open_world(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[World]:
    """``MODEL`` registered and served by the stand-in replica; the platform admin's key and
    alpha's and beta's; every log record captured from before the gateway is built."""
    replica = Replica()
    async with serving(replica) as replica_url:  # uvicorn sets its loggers up: capture after
        with every_record(caplog):
            logging.getLogger(__name__).debug("capturing every log record")
            clock = SystemClock()
            k = admin_keys(database, clock)
            ModelRepository(database, clock).register(
                MODEL, task="chat", artifact="-", context_tokens=4096
            )
            router = Router()
            router.set_replicas(served_name(MODEL), [replica_url])
            gateway = build_gateway(
                Settings(data_dir=tmp_path), database, clock, router,
                admission=False, journal=False, worker=False,
            )  # fmt: skip
            transport = httpx.ASGITransport(app=build_app(gateway.services))
            keys = [k.platform, k.alpha_admin, k.alpha_inference, k.beta_admin]
            try:
                async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
                    yield World(http, gateway, replica, k, caplog, keys)
            finally:
                await gateway.services.upstream.close()
                gateway.close()


@pytest.fixture
async def world(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[World]:
    async with open_world(database, tmp_path, caplog) as opened:
        yield opened
    assert_clean(opened.records("teardown"), opened.secrets)  # closing the gateway, too


async def test_answered_chat_completions_whole_and_streamed_log_no_text_or_key(
    world: World,
) -> None:
    whole = await world.chat(world.k.alpha_inference)
    assert whole.status_code == 200, whole.text
    assert whole.json()["choices"][0]["message"]["content"] == COMPLETION

    streamed = await world.chat(
        world.k.alpha_inference, stream=True, stream_options={"include_usage": True}
    )
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.endswith("data: [DONE]\n\n")
    assert streamed_content(streamed.text) == COMPLETION
    assert world.replica.completions == 2
    await world.gateway.services.recorder.aflush()  # the usage events written too
    world.assert_clean()


async def test_wrong_and_revoked_keys_log_no_key(world: World) -> None:
    k = world.k
    wrong = "tm-" + secrets.token_urlsafe(32)
    typo = k.alpha_inference[:-1] + ("A" if k.alpha_inference[-1] != "A" else "B")
    for key in (wrong, typo, "not-even-a-key-" + secrets.token_urlsafe(24)):
        assert error_of(await world.chat(key), 401)["code"] == "invalid_api_key"

    alpha = f"/admin/v1/tenants/{k.alpha_id}"
    made = await world.call(k.alpha_admin, "POST", f"{alpha}/keys", {"name": "soon-revoked"})
    assert made.status_code == 200, made.text
    secret = made.json()["secret"]
    world.secrets.append(secret)
    assert (await world.chat(secret)).status_code == 200  # known to the key cache now
    revoked = await world.call(k.alpha_admin, "POST", f"/admin/v1/keys/{made.json()['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    refused = error_of(await world.chat(secret), 401)
    assert (refused["code"], refused["message"]) == ("invalid_api_key", REVOKED_MESSAGE)
    assert world.replica.completions == 1
    world.assert_clean()


async def test_refused_bodies_log_no_prompt(world: World) -> None:
    key = world.k.alpha_inference
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    cut = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]})[:-2]
    for body in (cut, b"{'model': '" + MODEL.encode() + b"', 'prompt': '" + PROMPT.encode() + b"'"):
        error_of(await world.http.post(CHAT, content=body, headers=headers), 400)
    error_of(await world.call(key, "POST", CHAT, {"model": MODEL, "messages": PROMPT}), 400)
    refused = await world.call(
        key,
        "POST",
        CHAT,
        {"model": "no-such-model", "messages": [{"role": "user", "content": PROMPT}]},
    )
    assert refused.status_code == 404, refused.text
    assert world.replica.completions == 0
    world.assert_clean()


async def test_a_failing_replica_that_echoes_the_prompt_is_not_logged(world: World) -> None:
    world.replica.failing = True
    for extra in ({}, {"stream": True}):
        failed = await world.chat(world.k.alpha_inference, **extra)
        assert failed.status_code == 500, failed.text
        assert PROMPT_WORDS[0] in failed.text  # the client gets what its replica said
    assert world.replica.completions == 2
    await world.gateway.services.recorder.aflush()
    world.assert_clean()


async def test_admin_calls_that_create_a_key_or_fail_log_no_secret(world: World) -> None:
    k = world.k
    alpha = f"/admin/v1/tenants/{k.alpha_id}/keys"
    for key in (k.platform, k.alpha_admin):
        made = await world.call(key, "POST", alpha, {"name": "ci", "role": "tenant_admin"})
        assert made.status_code == 200, made.text
        world.secrets.append(made.json()["secret"])
    listed = await world.call(k.alpha_admin, "GET", alpha)
    assert listed.status_code == 200 and world.secrets[-1] not in listed.text

    error_of(await world.call(k.beta_admin, "POST", alpha, {"name": PROMPT}), 404)
    error_of(await world.call(k.alpha_inference, "POST", alpha, {"name": PROMPT}), 403)
    error_of(await world.call(k.alpha_admin, "POST", alpha, {"name": PROMPT, "role": "root"}), 400)
    error_of(await world.call(k.alpha_admin, "POST", alpha, {"name": 7, "scopes": PROMPT}), 400)
    headers = {"authorization": f"Bearer {k.platform}"}
    bad = b'{"name": "' + PROMPT.encode() + b'", "secret": "' + k.alpha_admin.encode() + b'"'
    error_of(await world.http.post(alpha, content=bad, headers=headers), 400)
    error_of(await world.call("tm-" + secrets.token_urlsafe(32), "POST", alpha, {"name": "x"}), 401)
    world.assert_clean()


async def test_a_bug_mid_request_is_logged_without_the_prompt_or_key(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one log on a request's way: an unhandled error, with its traceback."""

    def broken(*args: Any) -> Any:
        raise RuntimeError("the model directory is broken")

    monkeypatch.setattr(world.gateway.services.directory, "resolve", broken)
    error_of(await world.chat(world.k.alpha_inference), 500)
    [logged] = [r for r in world.records("call") if r.name == "tokenmill.gateway.app"]
    assert logged.exc_info is not None
    assert "the model directory is broken" in record_text(logged)
    world.assert_clean()
