"""The model library through a live ``tokenmill serve``: the official openai client lists
models, reads cards, and uses each of the three bundled models; aliases move without a
restart; a tenant's private model stays private."""

from __future__ import annotations

import math
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.conftest import Platform
from tokenmill.catalog.bundled import bundled_model

CHAT = "smollm2-135m-instruct"
COMPLETION = "gemma-3-270m"
EMBEDDINGS = "all-minilm-l6-v2"


def _tenant_with_admin_key(platform: Platform, name: str) -> tuple[str, str]:
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": name}).json()
        key = http.post(
            f"/admin/v1/tenants/{tenant['id']}/keys",
            json={"name": f"{name}-admin", "role": "tenant_admin"},
        ).json()
    return tenant["id"], key["secret"]


def _until(condition: Any, timeout_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def test_the_model_list_has_the_three_bundled_models_and_their_aliases(
    platform: Platform,
) -> None:
    ids = {m.id for m in platform.client().models.list().data}
    assert {CHAT, COMPLETION, EMBEDDINGS, "chat-small", "complete-small", "embed-small"} <= ids


def test_a_model_reads_with_its_card(platform: Platform) -> None:
    model = platform.client().models.retrieve("chat-small")
    assert model.id == "chat-small"
    card = (model.model_extra or {})["card"]
    assert card["license"] == "Apache-2.0"
    assert card["parameters"] == 134515008 and card["quantization"] == "Q4_1"
    assert card["capabilities"] == ["chat", "completion"]
    assert len(card["sha256"]) == 64 and card["file_size_bytes"] > 0
    assert card["prices"]["output_micros_per_mtok"] > 0
    with platform.http() as http:
        admin = http.get(f"/admin/v1/models/{EMBEDDINGS}").json()
    assert admin["card"]["dimensions"] == 384 and admin["versions"][0]["version"] == "1"


def test_completion_on_gemma(platform: Platform) -> None:
    raw = platform.client().completions.with_raw_response.create(
        model=COMPLETION, prompt="1, 2, 3, 4,", max_tokens=6, temperature=0
    )
    reply = raw.parse()
    assert reply.model == f"{COMPLETION}@1"
    assert reply.choices[0].text and reply.usage is not None
    usage = platform.usage(raw.headers["x-request-id"])
    assert (usage.model, usage.completion_tokens) == (COMPLETION, reply.usage.completion_tokens)


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_embeddings_on_minilm_put_paraphrases_closer_than_unrelated_text(
    platform: Platform,
) -> None:
    texts = [
        "The cat sat on the mat.",
        "A cat was sitting on a rug.",
        "Quarterly revenue grew by eight percent.",
    ]
    raw = platform.client().embeddings.with_raw_response.create(
        model="embed-small", input=texts, encoding_format="float"
    )
    reply = raw.parse()
    vectors = [d.embedding for d in reply.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2]) + 0.3
    usage = platform.usage(raw.headers["x-request-id"])
    assert usage.prompt_tokens == reply.usage.prompt_tokens > 0
    assert usage.model == EMBEDDINGS


def test_a_model_refuses_an_endpoint_it_does_not_serve(platform: Platform) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        platform.client().chat.completions.create(
            model=EMBEDDINGS, messages=[{"role": "user", "content": "hi"}]
        )
    assert error.value.code == "model_not_supported"


def test_an_alias_moves_without_a_restart(platform: Platform) -> None:
    with platform.http() as http:
        http.post("/admin/v1/aliases", json={"name": "e2e-alias", "model": CHAT, "version": "1"})
        client = platform.client()
        _until(lambda: "e2e-alias" in {m.id for m in client.models.list().data})
        first = client.completions.create(model="e2e-alias", prompt="Hello", max_tokens=2)
        assert first.model == f"{CHAT}@1"
        http.post(
            "/admin/v1/aliases", json={"name": "e2e-alias", "model": COMPLETION, "version": "1"}
        )

        def moved() -> bool:
            reply = client.completions.create(model="e2e-alias", prompt="Hello", max_tokens=2)
            return reply.model == f"{COMPLETION}@1"

        _until(moved)


def test_a_private_model_is_invisible_to_another_tenant(platform: Platform) -> None:
    owner_id, owner_key = _tenant_with_admin_key(platform, "library-owner")
    _, other_key = _tenant_with_admin_key(platform, "library-other")
    # the operator puts the file in the tenant's own directory; the tenant names it there
    copy = platform.data_dir / "tenant-models" / owner_id / "owned.gguf"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(bundled_model(CHAT).path(), copy)
    with platform.http(owner_key) as http:
        added = http.post("/admin/v1/models", json={"path": "owned.gguf", "id": "owned-chat"})
        assert added.status_code == 200, added.text
        assert added.json()["owner"] == owner_id
    _until(lambda: "owned-chat" in {m.id for m in platform.client(owner_key).models.list().data})
    assert "owned-chat" not in {m.id for m in platform.client(other_key).models.list().data}
    with pytest.raises(openai.NotFoundError):
        platform.client(other_key).models.retrieve("owned-chat")
    with pytest.raises(openai.NotFoundError) as error:
        platform.client(other_key).completions.create(model="owned-chat", prompt="x")
    assert error.value.code == "model_not_found"
    with platform.http(other_key) as http:
        assert http.get("/admin/v1/models/owned-chat").status_code == 404


def test_a_corrupt_model_file_is_refused_at_add_time(platform: Platform, tmp_path: Path) -> None:
    bad = tmp_path / "half.gguf"
    bad.write_bytes(bundled_model(CHAT).path().read_bytes()[:40_000_000])
    with platform.http() as http:
        response = http.post("/admin/v1/models", json={"path": str(bad)})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_artifact"
    assert "truncated" in response.json()["error"]["message"]


def _pid_listening_on(port: int) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--port" in argv and argv[argv.index(b"--port") + 1] == str(port).encode():
            return int(entry.name)
    raise AssertionError(f"no process with --port {port}")


def _ready_replicas(platform: Platform, model: str) -> list[dict[str, Any]]:
    with platform.http() as http:
        deployments = http.get("/admin/v1/deployments").json()["data"]
    return [
        r
        for d in deployments
        if d["model"] == model
        for r in d["replicas"]
        if r["state"] == "ready"
    ]


def test_kill_9_of_a_replica_mid_stream_is_a_clean_error_and_the_replica_comes_back(
    platform: Platform,
) -> None:
    _until(lambda: bool(_ready_replicas(platform, CHAT)), 120)
    replica = _ready_replicas(platform, CHAT)[0]
    pid = _pid_listening_on(int(replica["url"].rsplit(":", 1)[1]))
    stream = platform.client().chat.completions.with_raw_response.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Count from 1 to 500."}],
        max_tokens=400,
        stream=True,
    )
    request_id = stream.headers["x-request-id"]
    chunks = stream.parse()
    next(iter(chunks))  # the stream has started
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(openai.APIError):
        for _ in chunks:
            pass
    record = platform.usage(request_id)
    assert record.status == "error"
    _until(lambda: any(r["id"] != replica["id"] for r in _ready_replicas(platform, CHAT)), 120)
    reply = platform.client().chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
    )
    assert reply.choices[0].message.content is not None
