"""The admin routes of the model library and the fleet: who may see and change what."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.gateway.test_admin import World, world  # noqa: F401 (the fixture)
from tokenmill.catalog.bundled import bundled_model
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock

CHAT = "smollm2-135m-instruct"


@pytest.fixture
def gguf(world: World, tmp_path: Path) -> Path:  # noqa: F811
    """A model file in tenant alpha's own directory (the data dir's ``tenant-models``)."""
    target = tmp_path / "tenant-models" / world.alpha_id / "own.gguf"
    target.parent.mkdir(parents=True)
    shutil.copyfile(bundled_model(CHAT).path(), target)
    return target


async def test_a_tenant_admin_adds_a_private_model_others_cannot_see(
    world: World,  # noqa: F811
    gguf: Path,
) -> None:
    added = await world.call(world.alpha_admin, "POST", "/admin/v1/models", {"path": str(gguf)})
    assert added.status_code == 200, added.text
    model = added.json()
    assert (model["id"], model["owner"], model["published"]) == ("own", world.alpha_id, False)
    assert model["card"]["architecture"] == "llama" and model["versions"][0]["sha256"]
    listed = await world.call(world.beta_admin, "GET", "/admin/v1/models")
    assert "own" not in [m["id"] for m in listed.json()["data"]]
    hidden = await world.call(world.beta_admin, "GET", "/admin/v1/models/own")
    assert hidden.status_code == 404
    refused = await world.call(
        world.alpha_admin, "PATCH", "/admin/v1/models/own", {"published": True}
    )
    assert refused.status_code == 403  # only a platform admin publishes
    published = await world.call(
        world.platform, "PATCH", "/admin/v1/models/own", {"published": True}
    )
    assert published.json()["published"] is True
    seen = await world.call(world.beta_admin, "GET", "/admin/v1/models/own")
    assert seen.status_code == 200


async def test_a_tenant_admin_adds_models_only_from_its_own_directory(
    world: World,  # noqa: F811
    gguf: Path,
    tmp_path: Path,
) -> None:
    relative = await world.call(world.alpha_admin, "POST", "/admin/v1/models", {"path": "own.gguf"})
    assert relative.status_code == 200, relative.text  # a name within its directory
    secret = tmp_path / "secret.key"
    secret.write_text("a-sealing-key-nobody-may-read")
    elsewhere = [str(secret), str(tmp_path / "missing.gguf"), "../../secret.key",
                 str(gguf).replace(world.alpha_id, world.beta_id)]  # fmt: skip
    answers = []
    for path in elsewhere:
        refused = await world.call(world.alpha_admin, "POST", "/admin/v1/models", {"path": path})
        assert refused.status_code == 403, refused.text
        answers.append(refused.json())
        assert "a-sealing" not in refused.text
    assert all(answer == answers[0] for answer in answers)  # nothing said of the files
    platform = await world.call(world.platform, "POST", "/admin/v1/models", {"path": str(secret)})
    assert platform.status_code == 400 and "a-sealing" not in platform.text  # what, not its bytes


async def test_aliases_are_the_platforms_or_a_tenants_own(
    world: World,  # noqa: F811
    gguf: Path,
) -> None:
    ModelRepository(world.db, SystemClock()).register(
        CHAT, task="chat", artifact="/x", context_tokens=512
    )
    body = {"name": "chat-small", "model": CHAT, "version": "1"}
    assert (await world.call(world.platform, "POST", "/admin/v1/aliases", body)).status_code == 200
    # a tenant admin may alias only its own models
    foreign = await world.call(
        world.alpha_admin, "POST", "/admin/v1/aliases", {**body, "name": "x"}
    )
    assert foreign.status_code == 404
    await world.call(world.alpha_admin, "POST", "/admin/v1/models", {"path": str(gguf)})
    own = {"name": "ours", "model": "own", "version": "1"}
    assert (
        await world.call(world.alpha_admin, "POST", "/admin/v1/aliases", own)
    ).status_code == 200
    beta = await world.call(world.beta_admin, "GET", "/admin/v1/aliases")
    assert [a["name"] for a in beta.json()["data"]] == ["chat-small"]


async def test_deployments_are_made_by_platform_admins_and_seen_by_their_tenant(
    world: World,  # noqa: F811
) -> None:
    ModelRepository(world.db, SystemClock()).register(
        CHAT, task="chat", artifact="/x", context_tokens=512
    )
    body = {"model": CHAT, "mode": "dedicated", "tenant_id": world.alpha_id, "max_replicas": 2}
    denied = await world.call(world.alpha_admin, "POST", "/admin/v1/deployments", body)
    assert denied.status_code == 403
    made = await world.call(world.platform, "POST", "/admin/v1/deployments", body)
    assert made.status_code == 200, made.text
    deployment = made.json()
    assert (deployment["version"], deployment["replicas"]) == ("1", [])
    path = f"/admin/v1/deployments/{deployment['id']}"
    assert (await world.call(world.alpha_admin, "GET", path)).status_code == 200
    assert (await world.call(world.beta_admin, "GET", path)).status_code == 404
    beta_list = await world.call(world.beta_admin, "GET", "/admin/v1/deployments")
    assert beta_list.json()["data"] == []
    scaled = await world.call(world.platform, "PATCH", path, {"min_replicas": 1})
    assert scaled.json()["min_replicas"] == 1
    bad = await world.call(world.platform, "PATCH", path, {"min_replicas": 5})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "max_replicas"
    stopped = await world.call(world.platform, "POST", f"{path}/stop")
    assert stopped.json()["status"] == "stopped"


async def test_a_bad_file_is_a_400_naming_what_is_wrong(world: World, tmp_path: Path) -> None:  # noqa: F811
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    response = await world.call(world.platform, "POST", "/admin/v1/models", {"path": str(text)})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_artifact"


async def test_deployment_fields_of_the_wrong_type_are_a_400_naming_them(
    world: World,  # noqa: F811
) -> None:
    """Found by the fuzz (tests/gateway/test_fuzz.py): these were 500s."""
    ModelRepository(world.db, SystemClock()).register(
        CHAT, task="chat", artifact="/x", context_tokens=512
    )
    made = await world.call(world.platform, "POST", "/admin/v1/deployments", {"model": CHAT})
    path = f"/admin/v1/deployments/{made.json()['id']}"
    for body, param in [
        ({"min_replicas": {}}, "min_replicas"),
        ({"idle_seconds": "30"}, "idle_seconds"),
        ({"settings": [1]}, "settings"),
        ({"scaling": "fast"}, "scaling"),
    ]:
        refused = await world.call(world.platform, "PATCH", path, body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == param
    for body, param in [({"model": CHAT, "constraints": [1]}, "constraints"),
                        ({"model": CHAT, "tenant_id": 5}, "tenant_id")]:  # fmt: skip
        refused = await world.call(world.platform, "POST", "/admin/v1/deployments", body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == param
    assert (await world.call(world.platform, "GET", path)).json()["min_replicas"] == 0


async def test_a_model_path_with_a_nul_byte_is_a_400(world: World) -> None:  # noqa: F811
    """Found by the fuzz: a 500 (``ValueError: embedded null byte``) before."""
    for key in (world.platform, world.alpha_admin):
        refused = await world.call(key, "POST", "/admin/v1/models", {"path": "a\x00b.gguf"})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "path"


async def test_a_model_update_of_the_wrong_types_is_a_400(world: World) -> None:  # noqa: F811
    """Found by the fuzz: a default_version that is an object was a 500 (unhashable)."""
    ModelRepository(world.db, SystemClock()).register(
        CHAT, task="chat", artifact="/x", context_tokens=512
    )
    path = f"/admin/v1/models/{CHAT}"
    for body, param in (
        ({"default_version": {"a": 1}}, "default_version"),
        ({"default_version": 1}, "default_version"),
        ({"card": {"languages": 5}}, "card.languages"),
        ({"card": {"capabilities": [{"x": 1}]}}, "card.capabilities"),
    ):
        refused = await world.call(world.platform, "PATCH", path, body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == param
    kept = await world.call(world.platform, "PATCH", path, {"card": {"languages": ["en"]}})
    assert kept.status_code == 200 and kept.json()["card"]["languages"] == ["en"]


async def test_a_model_path_in_an_unknown_users_home_is_refused(world: World) -> None:  # noqa: F811
    """Found by the fuzz: ``~nobody-here/m.gguf`` was a 500 (``expanduser`` raises). A tenant
    admin gets the answer any path outside its directory gets, which says nothing of users."""
    body = {"path": "~no-such-user-here/m.gguf"}
    refused = await world.call(world.platform, "POST", "/admin/v1/models", body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "path"
    tenant = await world.call(world.alpha_admin, "POST", "/admin/v1/models", body)
    outside = await world.call(world.alpha_admin, "POST", "/admin/v1/models", {"path": "/etc/x"})
    assert tenant.status_code == outside.status_code == 403
    assert tenant.json() == outside.json()
