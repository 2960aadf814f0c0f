"""The dataset library's admin routes: a tenant admin's datasets are its own until a platform
admin publishes a version; everything else of another tenant is a 404 in OpenAI's shape."""

from __future__ import annotations

from pathlib import Path

from tests.datasets.conftest import CHAT, MODEL, examples, jsonl
from tests.gateway.conftest import error_of
from tests.gateway.test_admin import World, world  # noqa: F401 (the fixture)
from tokenmill.catalog.bundled import bundled_model
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock


async def upload(world: World, key: str, data: bytes, filename: str = "support.jsonl") -> str:  # noqa: F811
    sent = await world.http.post(
        "/v1/files",
        data={"purpose": "fine-tune"},
        files={"file": (filename, data, "application/jsonl")},
        headers={"authorization": f"Bearer {key}"},
    )
    assert sent.status_code == 200, sent.text
    return str(sent.json()["id"])


def library_model(world: World) -> None:  # noqa: F811
    ModelRepository(world.db, SystemClock()).register(
        MODEL, task="chat", artifact=str(bundled_model(CHAT).path()), context_tokens=2048
    )


async def test_a_tenants_dataset_its_card_rows_and_isolation(world: World, tmp_path: Path) -> None:  # noqa: F811
    library_model(world)
    rows = examples(20)
    file_id = await upload(world, world.alpha_admin, jsonl(rows))
    body = {"file_id": file_id, "model": MODEL, "licence": "CC0-1.0", "source": "hand-written",
            "validation_fraction": 0.2, "seed": 3}  # fmt: skip
    made = await world.call(world.alpha_admin, "POST", "/admin/v1/datasets", body)
    assert made.status_code == 200, made.text
    dataset = made.json()
    card = dataset["version"]
    assert (
        dataset["created"] and dataset["name"] == "support" and dataset["owner"] == world.alpha_id
    )
    assert (card["version"], card["rows"], card["licence"], card["source"]) == (
        1,
        20,
        "CC0-1.0",
        "hand-written",
    )
    assert card["splits"]["validation"]["rows"] == 4 and card["tokens"] > 0
    assert card["training_file"] == file_id and card["tokenizer"] == f"{MODEL}@1"
    path = f"/admin/v1/datasets/{dataset['id']}"

    again = await world.call(world.alpha_admin, "POST", "/admin/v1/datasets", body)
    assert again.json()["created"] is False and again.json()["version"]["id"] == card["id"]
    shown = (await world.call(world.alpha_admin, "GET", path)).json()
    assert [v["version"] for v in shown["versions"]] == [1]
    assert (await world.call(world.alpha_admin, "GET", f"{path}/versions/1")).json() == card
    page = await world.call(
        world.alpha_admin, "GET", f"{path}/versions/1/rows?split=validation&offset=1&limit=2"
    )
    assert page.status_code == 200, page.text
    assert page.json()["total"] == 4 and len(page.json()["data"]) == 2 and page.json()["has_more"]
    assert all(r["example"] in rows for r in page.json()["data"])
    listed = (await world.call(world.alpha_admin, "GET", "/admin/v1/datasets")).json()["data"]
    assert [d["id"] for d in listed] == [dataset["id"]]

    # Beta's admin sees none of it, and is told nothing of it.
    assert (await world.call(world.beta_admin, "GET", "/admin/v1/datasets")).json()["data"] == []
    for method, route in [("GET", path), ("GET", f"{path}/versions/1"),
                          ("GET", f"{path}/versions/1/rows"), ("DELETE", path),
                          ("DELETE", f"{path}/versions/1")]:  # fmt: skip
        error = error_of(await world.call(world.beta_admin, method, route), 404)
        assert error["code"] == "not_found" and "support" not in error["message"]
    stolen = await world.call(world.beta_admin, "POST", "/admin/v1/datasets", {**body})
    assert error_of(stolen, 404)["param"] == "file_id"  # alpha's file is no file of beta's
    refused = await world.call(world.alpha_inference, "GET", "/admin/v1/datasets")
    error_of(refused, 403)

    # Only a platform admin publishes; then every tenant reads that version.
    error_of(await world.call(world.alpha_admin, "POST", f"{path}/versions/1/publish"), 403)
    error_of(await world.call(world.beta_admin, "POST", f"{path}/versions/1/publish"), 403)
    published = await world.call(world.platform, "POST", f"{path}/versions/1/publish")
    assert published.status_code == 200 and published.json()["published"] is True
    seen = await world.call(
        world.beta_admin, "GET", f"{path}/versions/1/rows?split=train&limit=100"
    )
    assert seen.status_code == 200 and len(seen.json()["data"]) == 16
    assert [
        d["id"]
        for d in (await world.call(world.beta_admin, "GET", "/admin/v1/datasets")).json()["data"]
    ] == [dataset["id"]]
    error_of(await world.call(world.beta_admin, "DELETE", f"{path}/versions/1"), 403)
    kept = await world.call(world.alpha_admin, "DELETE", f"{path}/versions/1")
    assert error_of(kept, 409)["code"] == "dataset_published"

    # A new version of alpha's: unpublished, so beta does not see it; alpha deletes it.
    second = await upload(world, world.alpha_admin, jsonl(examples(12, tag="x")))
    made = await world.call(
        world.alpha_admin,
        "POST",
        "/admin/v1/datasets",
        {**body, "file_id": second, "name": "support"},
    )
    assert made.json()["version"]["version"] == 2
    error_of(await world.call(world.beta_admin, "GET", f"{path}/versions/2"), 404)
    gone = await world.call(world.alpha_admin, "DELETE", f"{path}/versions/2")
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    error_of(await world.call(world.alpha_admin, "GET", f"{path}/versions/2"), 404)
    deleted = await world.call(world.platform, "DELETE", path)
    assert deleted.status_code == 200
    error_of(await world.call(world.alpha_admin, "GET", path), 404)


async def test_bad_requests_are_openai_errors(world: World) -> None:  # noqa: F811
    library_model(world)
    good = await upload(world, world.alpha_admin, jsonl(examples(3)))
    bad = await upload(world, world.alpha_admin, jsonl(examples(2)) + b"{oops\n")
    cases = [
        ({"model": MODEL}, "file_id"),
        ({"file_id": good}, "model"),
        ({"file_id": good, "model": MODEL, "validation_fraction": 1.5}, "validation_fraction"),
        ({"file_id": good, "model": MODEL, "seed": "x"}, "seed"),
        ({"file_id": good, "model": MODEL, "name": "../etc"}, "name"),
        ({"file_id": bad, "model": MODEL}, "file_id"),
    ]
    for body, param in cases:
        refused = await world.call(world.alpha_admin, "POST", "/admin/v1/datasets", body)
        assert error_of(refused, 400)["param"] == param, refused.text
    invalid = await world.call(
        world.alpha_admin, "POST", "/admin/v1/datasets", {"file_id": bad, "model": MODEL}
    )
    assert "line 3" in error_of(invalid, 400)["message"]
    unknown = await world.call(
        world.alpha_admin, "POST", "/admin/v1/datasets", {"file_id": good, "model": "nope"}
    )
    assert error_of(unknown, 404)["param"] == "model"
    made = (
        await world.call(
            world.alpha_admin, "POST", "/admin/v1/datasets", {"file_id": good, "model": MODEL}
        )
    ).json()
    rows = f"/admin/v1/datasets/{made['id']}/versions/1/rows"
    assert (
        error_of(await world.call(world.alpha_admin, "GET", f"{rows}?split=test"), 400)["param"]
        == "split"
    )
    assert (
        error_of(await world.call(world.alpha_admin, "GET", f"{rows}?limit=1000"), 400)["param"]
        == "limit"
    )
    error_of(
        await world.call(world.alpha_admin, "GET", f"/admin/v1/datasets/{made['id']}/versions/x"),
        404,
    )
