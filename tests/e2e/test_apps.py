"""An App through a live ``tokenmill serve``: built over a vector store with two models (the
bundled Gemma rewrites the question into the search query, SmolLM2 answers), called by the
official ``openai`` client with ``prompt`` and by its own key on its chat route."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.conftest import Platform
from tests.e2e.test_files import _tenant_key
from tests.e2e.test_responses import MODEL, _unknown_fields
from tests.e2e.test_vector_stores import HANDBOOK
from tokenmill.billing.usage import UsageRepository

REWRITER = "gemma-3-270m"


def test_a_multi_model_app_answers_through_both_apis(platform: Platform, tmp_path: Path) -> None:
    key = _tenant_key(platform, "apps-alpha", credit_micros=10_000_000)
    client = platform.client(key)
    with platform.http() as http:
        tenant = next(
            t for t in http.get("/admin/v1/tenants").json()["data"] if t["name"] == "apps-alpha"
        )
        admin = http.post(
            f"/admin/v1/tenants/{tenant['id']}/keys",
            json={"name": "builder", "role": "tenant_admin"},
        ).json()["secret"]
    path = tmp_path / "handbook.md"
    path.write_text(HANDBOOK)
    store = client.vector_stores.create(name="handbook")
    with path.open("rb") as handle:
        client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id, file=handle, poll_interval_ms=200
        )
    config = {
        "model": MODEL,
        "instructions": "You answer questions about the {{company}} handbook.",
        "vector_store_ids": [store.id],
        "max_num_results": 2,
        "search": "always",
        "temperature": 0,
        "max_output_tokens": 48,
        "steps": {"rewrite_model": REWRITER},
    }
    with platform.http(admin) as http:
        app = http.post("/v1/apps", json={"name": "Handbook", "config": config}).json()
        assert http.post(f"/v1/apps/{app['id']}", json={"published_version": "1"}).is_success
        app_key = http.post(f"/v1/apps/{app['id']}/keys", json={"name": "site"}).json()["secret"]

    response = client.responses.create(
        model=MODEL, input="How long is parental leave?",
        prompt={"id": app["id"], "variables": {"company": "Acme"}},
        include=["file_search_call.results"],
    )  # fmt: skip
    assert _unknown_fields(response) == []
    assert response.prompt is not None and response.prompt.id == app["id"]
    search = next(item for item in response.output if item.type == "file_search_call")
    assert search.queries and search.results  # type: ignore[union-attr]
    assert response.output_text

    with platform.http(app_key) as http:
        turn = http.post(
            f"/v1/apps/{app['id']}/chat",
            json={"message": "How many vacation days?", "variables": {"company": "Acme"}},
        )
        assert turn.status_code == 200, turn.text
        assert http.get("/v1/models").status_code == 403
    body = turn.json()
    assert body["answer"] and body["version"] == "1"
    passages = body["steps"][0]["passages"]
    assert passages and all(p["filename"] == "handbook.md" and p["score"] > 0 for p in passages)

    deadline = time.monotonic() + 10
    while True:
        events = [e for e in UsageRepository(platform.db).list(tenant["id"]) if e.app_id]
        models = {e.model for e in events if e.endpoint == "responses"}
        if {MODEL, REWRITER} <= models or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {MODEL, REWRITER} <= models  # each step's model billed to the App
    assert all(e.app_id == app["id"] for e in events)
