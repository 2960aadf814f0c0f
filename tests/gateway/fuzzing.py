"""Fuzzing a live platform with schemathesis, against the platform's own ``/openapi.json``.

Every operation of the document gets ``examples`` schema-valid requests and as many
schema-invalid ones, each with one of the given keys (a platform admin's and a tenant
admin's). What counts against an operation:
- a 5xx (``server_errors``);
- an error (4xx or 5xx) not in OpenAI's shape ``{"error": {message, type, param, code}}``
  (``unshaped``);
- ``other``: a schema-valid request the gateway does not route (a documented path that does
  not exist), a status, content type or body the document does not declare
  (schemathesis's conformance checks), or a request that got no answer at all.

No shrinking and a fixed seed: the same run finds the same requests. Used by
tests/gateway/test_fuzz.py (few examples, in CI) and bench/fuzz.py (many).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import orjson
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.gateway.conftest import admin_keys
from tests.gateway.live import MODEL, TestReplica, served_name
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.control.keys import KeyRepository
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database

CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
ERROR_FIELDS = {"message", "type", "param", "code"}
SAMPLES_KEPT = 3
TIMEOUT_SECONDS = 30


@dataclass(slots=True)
class Tally:
    """What one operation's requests found."""

    operation: str
    examples: int = 0
    server_errors: int = 0
    unshaped: int = 0
    other: int = 0
    samples: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return self.server_errors + self.unshaped + self.other

    def fail(self, kind: str, what: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.samples) < SAMPLES_KEPT:
            self.samples.append(what)

    def as_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "examples": self.examples,
            "server_errors": self.server_errors,
            "unshaped_errors": self.unshaped,
            "other_failures": self.other,
            "samples": self.samples,
        }


@dataclass(frozen=True, slots=True)
class Platform:
    url: str
    keys: tuple[str, ...]  # a platform admin's, then a tenant admin's
    known: dict[str, str]  # ids of objects that exist, by path parameter name


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a loopback port, in a thread of this process.

    The socket listens before the server starts, so a request sent at once waits in its
    backlog until the server (its lifespan started) answers: nothing to poll."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


@contextmanager
def live_platform(data_dir: Path) -> Iterator[Platform]:
    """The gateway ``tokenmill serve`` builds (admission and journal on) on a fresh SQLite
    database, in front of the test replica (``tests.gateway.live``), both served over HTTP
    on loopback: a platform admin, tenants alpha and beta with keys, the replica's model
    registered."""
    clock = SystemClock()
    database = Database(f"sqlite:///{data_dir / 'fuzz.db'}")
    database.migrate()
    keys = admin_keys(database, clock)
    ModelRepository(database, clock).register(
        MODEL, task="chat", artifact="test", context_tokens=4096
    )
    # a key the fuzz may revoke (not one it calls with)
    spare, _ = KeyRepository(database, clock).create(keys.alpha_id, "spare")
    known = {"tenant_id": keys.beta_id, "key_id": spare.id, "model": MODEL, "model_id": MODEL}
    with ExitStack() as stack:
        stack.callback(database.dispose)
        replica = stack.enter_context(serving(TestReplica(token_delay_seconds=0.0)))
        router = Router()
        router.set_replicas(served_name(MODEL), [replica])
        gateway = build_gateway(Settings(data_dir=data_dir), database, clock, router)
        stack.callback(gateway.close)
        url = stack.enter_context(serving(build_app(gateway.services)))
        known.update(seed_objects(url, keys.platform, keys.alpha_admin))
        yield Platform(url, (keys.platform, keys.alpha_admin), known)


def seed_objects(url: str, platform_key: str, tenant_key: str) -> dict[str, str]:
    """A file, a vector store, a batch, a stored response, an App and a deployment of the
    tenant's (the deployment the platform's), so requests naming them get past the 404."""
    batch_line = {
        "custom_id": "1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    }
    with httpx.Client(base_url=url, timeout=TIMEOUT_SECONDS) as client:

        def made(path: str, key: str = tenant_key, **kwargs: Any) -> str:
            response = client.post(path, headers={"authorization": f"Bearer {key}"}, **kwargs)
            assert response.status_code == 200, response.text
            return str(response.json()["id"])

        notes = ("notes.txt", b"Paris is the capital of France.", "text/plain")
        lines = ("lines.jsonl", orjson.dumps(batch_line) + b"\n", "application/jsonl")
        batch_file = made("/v1/files", data={"purpose": "batch"}, files={"file": lines})
        return {
            "file_id": made("/v1/files", data={"purpose": "assistants"}, files={"file": notes}),
            "vector_store_id": made("/v1/vector_stores", json={"name": "seed"}),
            "batch_id": made(
                "/v1/batches",
                json={
                    "input_file_id": batch_file,
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                },
            ),
            "response_id": made("/v1/responses", json={"model": MODEL, "input": "hi"}),
            "app_id": made("/v1/apps", json={"name": "seed", "config": {"model": MODEL}}),
            "deployment_id": made("/admin/v1/deployments", platform_key, json={"model": MODEL}),
            "month": "2026-12",
            "version": "1",
        }


def openai_shaped(response: requests.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    return (
        isinstance(error, dict)
        and set(body) == {"error"}
        and set(error) == ERROR_FIELDS
        and isinstance(error["message"], str)
        and isinstance(error["type"], str)
        and all(error[k] is None or isinstance(error[k], str) for k in ("param", "code"))
    )


def _unrouted(response: requests.Response) -> bool:
    if response.status_code != 404 or not openai_shaped(response):
        return False
    error = response.json()["error"]
    return error["code"] == "not_found" and str(error["message"]).startswith("No route")


def check(tally: Tally, case: schemathesis.Case, mode: GenerationMode, response: Any) -> None:
    tally.examples += 1
    where = f"{case.method} {response.request.path_url} -> {response.status_code}"
    if response.status_code >= 500:
        tally.fail("server_errors", f"{where}: {response.text[:300]}")
    elif response.status_code >= 400 and not openai_shaped(response):
        tally.fail("unshaped", f"{where}: {response.text[:300]}")
    elif mode == GenerationMode.POSITIVE and _unrouted(response):
        tally.fail("other", f"{where}: a documented operation is not routed")
    else:
        try:
            case.validate_response(response, checks=CONFORMANCE)
        except AssertionError as failed:  # schemathesis's FailureGroup is one
            tally.fail("other", f"{where}: {str(failed).splitlines()[0]}")


def fuzz_operation(
    operation: Any,
    url: str,
    keys: Sequence[str],
    examples: int,
    seed: int,
    known: dict[str, str] | None = None,
) -> Tally:
    tally = Tally(operation.label)
    with requests.Session() as session:

        def call(case: schemathesis.Case, key: str, mode: GenerationMode) -> None:
            try:
                response = case.call(
                    base_url=url,
                    session=session,
                    headers={"authorization": f"Bearer {key}"},
                    timeout=TIMEOUT_SECONDS,
                )
            except requests.RequestException as error:
                tally.examples += 1
                tally.fail("other", f"{case.method} {case.path}: no answer: {error}")
                return
            check(tally, case, mode, response)

        _examples(operation, GenerationMode.POSITIVE, keys, examples, seed, call, known)()
        # (unsatisfiable: nothing of this operation's request can be made schema-invalid)
        with suppress(Unsatisfiable):
            _examples(operation, GenerationMode.NEGATIVE, keys, examples, seed, call, known)()
    return tally


def _examples(
    operation: Any,
    mode: GenerationMode,
    keys: Sequence[str],
    examples: int,
    seed: int,
    call: Callable[[schemathesis.Case, str, GenerationMode], None],
    known: dict[str, str] | None,
) -> Callable[[], None]:
    cases = operation.as_strategy(generation_mode=mode)
    names = [p.name for p in operation.path_parameters]
    if names and known and all(name in known for name in names):  # half of them name real ids
        real = {name: known[name] for name in names}
        cases = st.one_of(cases, operation.as_strategy(generation_mode=mode, path_parameters=real))

    @hypothesis.seed(seed)
    @settings(
        max_examples=examples,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, key=st.sampled_from(keys))
    def run(case: schemathesis.Case, key: str) -> None:
        call(case, key, mode)

    return run  # type: ignore[no-any-return]


def fuzz(platform: Platform, examples: int, seed: int = 0) -> list[Tally]:
    """Every operation of the platform's document, in the document's order."""
    url, keys, known = platform.url, platform.keys, platform.known
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=TIMEOUT_SECONDS)
    operations = [result.ok() for result in schema.get_all_operations()]
    return [fuzz_operation(op, url, keys, examples, seed, known) for op in operations]


def report(tallies: Sequence[Tally]) -> str:
    """A table: operation, examples, 5xx, errors not in OpenAI's shape, other failures."""
    width = max((len(t.operation) for t in tallies), default=9)
    lines = [f"{'operation':<{width}}  examples   5xx  unshaped  other"]
    for t in tallies:
        lines.append(
            f"{t.operation:<{width}}  {t.examples:>8}  {t.server_errors:>4}  {t.unshaped:>8}"
            f"  {t.other:>5}"
        )
        lines.extend(f"    {sample}" for sample in t.samples)
    return "\n".join(lines)
