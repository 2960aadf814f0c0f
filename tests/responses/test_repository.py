"""Stored responses on SQLite and PostgreSQL: read back by their tenant only, deleted, walked
back along ``previous_response_id``, and their input items paged."""

from __future__ import annotations

from typing import Any

import pytest

from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.responses.items import message_item
from tokenmill.responses.repository import ResponseRepository
from tokenmill.store.db import Database

Json = dict[str, Any]
RESULTS = [{"file_id": "file_1", "filename": "tea.txt", "score": 0.5, "text": "Tea.",
            "attributes": {"lang": "en", "year": 2024}}]  # fmt: skip


@pytest.fixture
def tenants(database: Database, clock: ManualClock) -> tuple[str, str]:
    repo = TenantRepository(database, clock)
    return repo.create("alpha").id, repo.create("beta").id


@pytest.fixture
def repo(database: Database) -> ResponseRepository:
    return ResponseRepository(database)


def response(response_id: str, previous: str | None = None, *output: Json) -> Json:
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1_767_225_600,
        "status": "completed",
        "model": "m",
        "previous_response_id": previous,
        "output": list(output),
        "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
        "metadata": {"team": "red"},
    }


def store(
    repo: ResponseRepository,
    clock: ManualClock,
    tenant_id: str,
    body: Json,
    input_items: list[Json],
) -> None:
    repo.save(tenant_id, "key_1", body, input_items, frozenset(), clock.utcnow())
    clock.advance(1)


def chain(repo: ResponseRepository, clock: ManualClock, tenant_id: str) -> list[list[Json]]:
    """Three responses, each continuing the one before: the items of each (input, output)."""
    turns = []
    previous = None
    for n in range(3):
        asked = [message_item("user", f"question {n}", f"msg_q{n}")]
        answered = [message_item("assistant", f"answer {n}", f"msg_a{n}")]
        store(repo, clock, tenant_id, response(f"resp_{n}", previous, *answered), asked)
        turns.append(asked + answered)
        previous = f"resp_{n}"
    return turns


def test_a_saved_response_reads_back_whole(
    repo: ResponseRepository, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    search = {"type": "file_search_call", "id": "fs_1", "status": "completed",
              "queries": ["tea"], "results": RESULTS}  # fmt: skip
    body = response("resp_1", None, search, message_item("assistant", "Tea.", "msg_2"))
    items = [message_item("user", "Tea?", "msg_1")]
    include = frozenset({"file_search_call.results", "message.output_text.logprobs"})
    repo.save(alpha, "key_1", body, items, include, clock.utcnow())
    saved = repo.get(alpha, "resp_1")
    assert saved.body == body
    assert saved.input_items == items
    assert saved.include == include


def test_saving_again_replaces_the_stored_response(
    repo: ResponseRepository, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    body = response("resp_1")
    store(repo, clock, alpha, {**body, "status": "in_progress"}, [])
    store(repo, clock, alpha, body, [message_item("user", "hi", "msg_1")])
    saved = repo.get(alpha, "resp_1")
    assert saved.body["status"] == "completed" and len(saved.input_items) == 1


def test_another_tenant_finds_no_response(
    repo: ResponseRepository, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, beta = tenants
    store(repo, clock, alpha, response("resp_1"), [message_item("user", "hi", "msg_1")])
    for call in (
        lambda: repo.get(beta, "resp_1"),
        lambda: repo.delete(beta, "resp_1"),
        lambda: repo.input_items(beta, "resp_1"),
        lambda: repo.conversation(beta, "resp_1"),
    ):
        with pytest.raises(NotFound) as missing:
            call()
        assert missing.value.status == 404
        assert missing.value.message == "No response found with id 'resp_1'."
    assert repo.get(alpha, "resp_1").body["id"] == "resp_1"  # beta's delete changed nothing


def test_a_deleted_response_is_gone(
    repo: ResponseRepository, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    store(repo, clock, alpha, response("resp_1"), [])
    store(repo, clock, alpha, response("resp_2"), [])
    repo.delete(alpha, "resp_1")
    with pytest.raises(NotFound) as missing:
        repo.get(alpha, "resp_1")
    assert missing.value.param == "response_id"
    with pytest.raises(NotFound):
        repo.delete(alpha, "resp_1")
    assert repo.get(alpha, "resp_2").body["id"] == "resp_2"


def test_a_conversation_is_the_chain_oldest_first(
    repo: ResponseRepository, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    turns = chain(repo, clock, alpha)
    assert repo.conversation(alpha, "resp_2") == turns[0] + turns[1] + turns[2]
    assert repo.conversation(alpha, "resp_1") == turns[0] + turns[1]
    assert repo.conversation(alpha, "resp_0") == turns[0]


def test_a_broken_chain_names_the_missing_link(
    repo: ResponseRepository, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    chain(repo, clock, alpha)
    repo.delete(alpha, "resp_1")
    with pytest.raises(NotFound) as missing:
        repo.conversation(alpha, "resp_2")
    assert missing.value.param == "previous_response_id"
    assert missing.value.message == "No response found with id 'resp_1'."
    with pytest.raises(NotFound) as unknown:
        repo.conversation(alpha, "resp_nope")
    assert unknown.value.param == "previous_response_id"


def test_a_chain_through_another_tenant_s_response_is_broken(
    repo: ResponseRepository, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, beta = tenants
    store(repo, clock, beta, response("resp_beta"), [])
    store(repo, clock, alpha, response("resp_alpha", "resp_beta"), [])
    with pytest.raises(NotFound) as missing:
        repo.conversation(alpha, "resp_alpha")
    assert missing.value.message == "No response found with id 'resp_beta'."


def five_items(repo: ResponseRepository, clock: ManualClock, tenant_id: str) -> list[str]:
    items = [message_item("user", f"part {n}", f"msg_{n}") for n in range(5)]
    store(repo, clock, tenant_id, response("resp_1"), items)
    return [item["id"] for item in items]


def ids(page: Any) -> list[str]:
    return [item["id"] for item in page.data]


def test_input_items_page_newest_first_by_default(
    repo: ResponseRepository, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    items = five_items(repo, clock, alpha)
    everything = repo.input_items(alpha, "resp_1")
    assert ids(everything) == items[::-1] and not everything.has_more
    first = repo.input_items(alpha, "resp_1", limit=2)
    assert ids(first) == [items[4], items[3]] and first.has_more
    assert first.as_openai() == {
        "object": "list",
        "data": first.data,
        "first_id": items[4],
        "last_id": items[3],
        "has_more": True,
    }
    second = repo.input_items(alpha, "resp_1", limit=2, after=items[3])
    assert ids(second) == [items[2], items[1]] and second.has_more
    last = repo.input_items(alpha, "resp_1", limit=2, after=items[1])
    assert ids(last) == [items[0]] and not last.has_more


def test_input_items_page_oldest_first(
    repo: ResponseRepository, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    items = five_items(repo, clock, alpha)
    first = repo.input_items(alpha, "resp_1", limit=2, order="asc")
    assert ids(first) == items[:2] and first.has_more
    rest = repo.input_items(alpha, "resp_1", limit=3, order="asc", after=items[1])
    assert ids(rest) == items[2:] and not rest.has_more
    end = repo.input_items(alpha, "resp_1", order="asc", after=items[4])
    assert end.data == [] and not end.has_more
    assert end.as_openai()["first_id"] is None and end.as_openai()["last_id"] is None


def test_bad_limits_and_cursors_are_refused(
    repo: ResponseRepository, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    five_items(repo, clock, alpha)
    for limit in (0, -1, 101):
        with pytest.raises(InvalidRequest) as bad:
            repo.input_items(alpha, "resp_1", limit=limit)
        assert bad.value.param == "limit"
    assert len(repo.input_items(alpha, "resp_1", limit=100).data) == 5
    with pytest.raises(InvalidRequest) as unknown:
        repo.input_items(alpha, "resp_1", after="msg_nope")
    assert unknown.value.param == "after"
    with pytest.raises(NotFound):
        repo.input_items(alpha, "resp_nope")


def test_responses_list_newest_first_for_their_tenant(
    repo: ResponseRepository, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, beta = tenants
    for n in range(3):
        store(repo, clock, alpha, response(f"resp_{n}"), [])
    store(repo, clock, beta, response("resp_beta"), [])
    assert [b["id"] for b in repo.list(alpha).data] == ["resp_2", "resp_1", "resp_0"]
    assert [b["id"] for b in repo.list(alpha, limit=2).data] == ["resp_2", "resp_1"]
    assert [b["id"] for b in repo.list(alpha, after="resp_1").data] == ["resp_0"]
    assert [b["id"] for b in repo.list(beta).data] == ["resp_beta"]
    assert repo.list(alpha).data[0] == response("resp_2")
    with pytest.raises(NotFound) as foreign:
        repo.list(alpha, after="resp_beta")  # another tenant's id is no cursor
    assert foreign.value.param == "after"
    for limit in (0, 101):
        with pytest.raises(InvalidRequest) as bad:
            repo.list(alpha, limit=limit)
        assert bad.value.param == "limit"


def test_responses_made_in_the_same_instant_are_listed_once_each(
    repo: ResponseRepository, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    for response_id in ("resp_a", "resp_c", "resp_b"):
        repo.save(alpha, "key_1", response(response_id), [], frozenset(), clock.utcnow())
    seen: list[str] = []
    after = None
    while page := repo.list(alpha, limit=1, after=after).data:
        seen.append(page[0]["id"])
        after = page[0]["id"]
    assert seen == ["resp_c", "resp_b", "resp_a"]
