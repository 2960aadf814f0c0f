"""Apps and their versions on SQLite and PostgreSQL: numbered from 1, immutable, published
one at a time, seen by their own tenant only, and public only when published with ``embed``."""

from __future__ import annotations

from typing import Any

import pytest

from tokenmill.apps.repository import AppRepository
from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.store.db import Database

Json = dict[str, Any]
V1: Json = {"model": "m", "instructions": "About {{product}}.", "variables": {"product": "tea"}}
V2: Json = {"model": "m2", "instructions": "Be brief."}
V3: Json = {"model": "m3", "temperature": 0.5}


@pytest.fixture
def tenants(database: Database, clock: ManualClock) -> tuple[str, str]:
    repo = TenantRepository(database, clock)
    return repo.create("alpha").id, repo.create("beta").id


@pytest.fixture
def apps(database: Database, clock: ManualClock) -> AppRepository:
    return AppRepository(database, clock)


@pytest.fixture
def tenant(tenants: tuple[str, str]) -> str:
    return tenants[0]


def refused(call: Any, *args: Any) -> str | None:
    with pytest.raises(InvalidRequest) as caught:
        call(*args)
    assert caught.value.status == 400
    return caught.value.param


def test_create_makes_version_one_unpublished(
    apps: AppRepository, tenant: str, clock: ManualClock
) -> None:
    made = apps.create(tenant, "  Support bot ", V1, "key_1")
    assert made.id.startswith("app_")
    assert (made.tenant_id, made.name) == (tenant, "Support bot")
    assert (made.latest_version, made.published_version, made.embed) == (1, None, False)
    assert made.created_at == made.updated_at == clock.utcnow()
    info, version = apps.version(tenant, made.id)
    assert info == made
    assert (version.app_id, version.version, version.note) == (made.id, 1, None)
    assert version.created_by == "key_1"
    assert version.config["instructions"] == "About {{product}}."
    assert version.config["search"] == "auto"  # stored parsed, defaults filled
    assert apps.get(tenant, made.id) == made


def test_create_checks_the_name_and_config(apps: AppRepository, tenant: str) -> None:
    assert refused(apps.create, tenant, "", V1, "key_1") == "name"
    assert refused(apps.create, tenant, "x" * 201, V1, "key_1") == "name"
    assert refused(apps.create, tenant, 7, V1, "key_1") == "name"
    assert refused(apps.create, tenant, "bot", {"instructions": "hi"}, "key_1") == "config.model"
    assert apps.list(tenant) == []


def test_saving_numbers_the_versions(apps: AppRepository, tenant: str, clock: ManualClock) -> None:
    made = apps.create(tenant, "bot", V1, "key_1")
    clock.advance(60)
    second = apps.save_version(tenant, made.id, V2, "shorter", "key_2")
    third = apps.save_version(tenant, made.id, V3, None, "key_1")
    assert (second.version, second.note, second.created_by) == (2, "shorter", "key_2")
    assert second.created_at == clock.utcnow()
    assert third.version == 3
    info = apps.get(tenant, made.id)
    assert (info.latest_version, info.published_version) == (3, None)
    assert info.updated_at == clock.utcnow() != info.created_at
    assert [v.version for v in apps.versions(tenant, made.id)] == [3, 2, 1]


def test_save_version_checks_the_config_and_note(apps: AppRepository, tenant: str) -> None:
    made = apps.create(tenant, "bot", V1, "key_1")
    args = (tenant, made.id)
    assert refused(apps.save_version, *args, {"model": "m", "x": 1}, None, "k") == "config.x"
    assert refused(apps.save_version, *args, V2, "n" * 501, "k") == "note"
    assert refused(apps.save_version, *args, V2, 5, "k") == "note"
    assert apps.get(tenant, made.id).latest_version == 1


def test_the_latest_version_until_one_is_published(apps: AppRepository, tenant: str) -> None:
    made = apps.create(tenant, "bot", V1, "key_1")
    apps.save_version(tenant, made.id, V2, None, "key_1")
    assert apps.version(tenant, made.id)[1].version == 2
    published = apps.update(tenant, made.id, {"published_version": 1})
    assert published.published_version == 1
    apps.save_version(tenant, made.id, V3, None, "key_1")
    info, version = apps.version(tenant, made.id)
    assert (info.published_version, info.latest_version, version.version) == (1, 3, 1)
    assert version.config["model"] == "m"
    assert apps.version(tenant, made.id, 3)[1].config["model"] == "m3"
    apps.update(tenant, made.id, {"published_version": None})  # unpublished: the latest again
    assert apps.version(tenant, made.id)[1].version == 3


def test_publishing_a_version_that_does_not_exist_is_a_400(
    apps: AppRepository, tenant: str
) -> None:
    made = apps.create(tenant, "bot", V1, "key_1")
    for missing in (2, "2", 0, "0"):
        assert refused(apps.update, tenant, made.id, {"published_version": missing}) == (
            "published_version"
        )
    assert apps.get(tenant, made.id).published_version is None


def test_asking_for_a_version_that_does_not_exist_is_a_404(
    apps: AppRepository, tenant: str
) -> None:
    made = apps.create(tenant, "bot", V1, "key_1")
    with pytest.raises(NotFound) as caught:
        apps.version(tenant, made.id, "2")
    assert (caught.value.status, caught.value.param) == (404, "version")
    with pytest.raises(NotFound):
        apps.version(tenant, made.id, 0, param="prompt.version")


def test_versions_are_immutable(apps: AppRepository, tenant: str) -> None:
    made = apps.create(tenant, "bot", V1, "key_1")
    first = apps.version(tenant, made.id, 1)[1]
    apps.save_version(tenant, made.id, V2, None, "key_1")
    again = apps.version(tenant, made.id, 1)[1]
    assert again == first
    assert again.config["model"] == "m"
    assert again.config["variables"] == {"product": "tea"}
    first.config["model"] = "changed by a caller"  # a copy: the stored version stays
    assert apps.version(tenant, made.id, 1)[1].config["model"] == "m"


def test_another_tenants_app_is_not_found(apps: AppRepository, tenants: tuple[str, str]) -> None:
    alpha, beta = tenants
    made = apps.create(alpha, "bot", V1, "key_1")
    calls = [
        lambda: apps.get(beta, made.id),
        lambda: apps.version(beta, made.id),
        lambda: apps.version(beta, made.id, 1),
        lambda: apps.versions(beta, made.id),
        lambda: apps.update(beta, made.id, {"name": "mine"}),
        lambda: apps.update(beta, made.id, {"published_version": 1}),
        lambda: apps.save_version(beta, made.id, V2, None, "key_9"),
    ]
    for call in calls:
        with pytest.raises(NotFound) as caught:
            call()
        assert (caught.value.status, caught.value.param) == (404, "app_id")
    assert apps.list(beta) == []
    info = apps.get(alpha, made.id)
    assert (info.name, info.latest_version, info.published_version) == ("bot", 1, None)


def test_an_unknown_app_is_not_found(apps: AppRepository, tenant: str) -> None:
    with pytest.raises(NotFound):
        apps.get(tenant, "app_nope")
    with pytest.raises(NotFound):
        apps.save_version(tenant, "app_nope", V2, None, "key_1")


def test_list_is_newest_first(
    apps: AppRepository, tenants: tuple[str, str], clock: ManualClock
) -> None:
    alpha, beta = tenants
    first = apps.create(alpha, "first", V1, "key_1")
    clock.advance(1)
    apps.create(beta, "theirs", V1, "key_9")
    clock.advance(1)
    second = apps.create(alpha, "second", V1, "key_1")
    assert [a.id for a in apps.list(alpha)] == [second.id, first.id]


def test_update_renames_and_embeds(apps: AppRepository, tenant: str, clock: ManualClock) -> None:
    made = apps.create(tenant, "bot", V1, "key_1")
    clock.advance(5)
    updated = apps.update(tenant, made.id, {"name": " helper ", "embed": True})
    assert (updated.name, updated.embed, updated.updated_at) == ("helper", True, clock.utcnow())
    assert apps.get(tenant, made.id) == updated


def test_update_refuses_unknown_fields_and_bad_embed(apps: AppRepository, tenant: str) -> None:
    made = apps.create(tenant, "bot", V1, "key_1")
    assert refused(apps.update, tenant, made.id, {"config": V2}) == "config"
    assert refused(apps.update, tenant, made.id, {"embed": "yes"}) == "embed"
    assert refused(apps.update, tenant, made.id, {"embed": 1}) == "embed"
    assert refused(apps.update, tenant, made.id, {"name": " "}) == "name"
    assert apps.get(tenant, made.id) == made


def test_public_needs_embed_and_a_published_version(apps: AppRepository, tenant: str) -> None:
    made = apps.create(tenant, "bot", V1, "key_1")
    apps.save_version(tenant, made.id, V2, None, "key_1")
    assert apps.public(made.id) is None
    apps.update(tenant, made.id, {"embed": True})
    assert apps.public(made.id) is None  # not published: a draft is not public
    apps.update(tenant, made.id, {"published_version": "1"})
    found = apps.public(made.id)
    assert found is not None
    info, version = found
    assert (info.id, info.embed, version.version, version.config["model"]) == (
        made.id,
        True,
        1,
        "m",
    )
    apps.update(tenant, made.id, {"embed": False})
    assert apps.public(made.id) is None
    assert apps.public("app_nope") is None


@pytest.mark.parametrize("number", ["2", 2])
def test_version_numbers_are_strings_or_ints(apps: AppRepository, tenant: str, number: Any) -> None:
    made = apps.create(tenant, "bot", V1, "key_1")
    apps.save_version(tenant, made.id, V2, None, "key_1")
    assert apps.version(tenant, made.id, number)[1].version == 2
    assert apps.update(tenant, made.id, {"published_version": number}).published_version == 2


@pytest.mark.parametrize("number", ["two", True, False, "-1", -1, "1.0", 1.0, "", " 1", [1]])
def test_other_version_numbers_are_a_400(apps: AppRepository, tenant: str, number: Any) -> None:
    made = apps.create(tenant, "bot", V1, "key_1")
    assert refused(apps.version, tenant, made.id, number) == "version"
    assert refused(apps.update, tenant, made.id, {"published_version": number}) == (
        "published_version"
    )


def test_the_param_of_a_version_is_the_callers(apps: AppRepository, tenant: str) -> None:
    made = apps.create(tenant, "bot", V1, "key_1")
    with pytest.raises(InvalidRequest) as caught:
        apps.version(tenant, made.id, "two", param="prompt.version")
    assert caught.value.param == "prompt.version"


def test_as_json_gives_versions_as_strings(apps: AppRepository, tenant: str) -> None:
    made = apps.create(tenant, "bot", V1, "key_1")
    shown = made.as_json()
    assert (shown["object"], shown["id"], shown["published_version"]) == ("app", made.id, None)
    assert "tenant_id" not in shown
    assert shown["embed_url"] is None
    embedded = apps.update(tenant, made.id, {"embed": True}).as_json()
    assert embedded["embed_url"] == f"/apps/{made.id}"
    version = apps.version(tenant, made.id)[1].as_json()
    assert (version["object"], version["version"]) == ("app.version", "1")
    assert "created_by" not in version


def test_the_embed_key_is_kept_for_its_tenant(
    apps: AppRepository, tenants: tuple[str, str]
) -> None:
    alpha, beta = tenants
    made = apps.create(alpha, "bot", V1, "key_1")
    assert made.embed_key_id is None
    assert apps.set_embed_key(alpha, made.id, "key_embed").embed_key_id == "key_embed"
    assert apps.get(alpha, made.id).embed_key_id == "key_embed"
    with pytest.raises(NotFound):
        apps.set_embed_key(beta, made.id, "key_theirs")
    assert apps.get(alpha, made.id).embed_key_id == "key_embed"


# Found while writing these tests: each fails against the code as it stands.


@pytest.mark.parametrize("number", ["²", "99999999999999999999"])
def test_odd_digit_strings_are_a_400_or_404(apps: AppRepository, tenant: str, number: str) -> None:
    # "²".isdigit() is True but int("²") raises ValueError; a 20-digit number overflows
    # SQLite's INTEGER (OverflowError). Both were 500s.
    made = apps.create(tenant, "bot", V1, "key_1")
    with pytest.raises((InvalidRequest, NotFound)):
        apps.version(tenant, made.id, number)
    with pytest.raises(InvalidRequest):
        apps.update(tenant, made.id, {"published_version": number})
