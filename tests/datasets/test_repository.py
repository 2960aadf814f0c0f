"""The dataset tables on SQLite and PostgreSQL: versions by content, numbers never reused,
and what each tenant sees."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.datasets.conftest import Library
from tokenmill.datasets.objects import DatasetVersionInfo
from tokenmill.datasets.repository import DatasetRepository
from tokenmill.errors import NotFound

WHEN = datetime(2026, 12, 1, tzinfo=UTC)


def version(sha: str, blob: str = "dsv-x") -> DatasetVersionInfo:
    return DatasetVersionInfo(
        id=blob,
        dataset_id="",
        version=0,
        sha256=sha * 64,
        format="chat",
        rows=3,
        train_rows=2,
        validation_rows=1,
        tokens=30,
        train_tokens=20,
        validation_tokens=10,
        tokenizer="smol@1",
        licence=None,
        source=None,
        split={"method": "fraction", "validation_fraction": 0.3, "seed": 0},
        training_file_id=None,
        blob=blob,
        size_bytes=100,
        published_at=None,
        created_by="key_x",
        created_at=WHEN,
    )


def test_same_content_is_the_same_version_new_content_the_next(library: Library) -> None:
    repo = library.service.repository
    first = repo.add(library.alpha, "qa", version("a", "dsv-1"))
    assert first.created and first.version.version == 1 and first.dataset.name == "qa"
    again = repo.add(library.alpha, "qa", version("a", "dsv-2"))
    assert not again.created and again.version.id == "dsv-1"
    second = repo.add(library.alpha, "qa", version("b", "dsv-3"))
    assert second.created and second.version.version == 2
    assert second.dataset.id == first.dataset.id
    assert [v.version for v in second.dataset.versions] == [1, 2]
    assert repo.find(library.alpha, "qa", "b" * 64) == second.version
    assert repo.find(library.beta, "qa", "b" * 64) is None
    elsewhere = repo.add(library.beta, "qa", version("a", "dsv-4"))  # beta's own "qa"
    assert elsewhere.created and elsewhere.dataset.id != first.dataset.id


def test_numbers_are_never_reused_after_a_delete(library: Library) -> None:
    repo = library.service.repository
    one = repo.add(library.alpha, "qa", version("a", "dsv-1"))
    repo.add(library.alpha, "qa", version("b", "dsv-2"))
    assert repo.delete_version(one.dataset.id, 2).id == "dsv-2"
    third = repo.add(library.alpha, "qa", version("c", "dsv-3"))
    assert third.version.version == 3
    assert [v.version for v in repo.get(library.alpha, one.dataset.id).versions] == [1, 3]
    with pytest.raises(NotFound):
        repo.delete_version(one.dataset.id, 2)
    removed = repo.delete(one.dataset.id)
    assert sorted(v.id for v in removed) == ["dsv-1", "dsv-3"]
    with pytest.raises(NotFound):
        repo.get(None, one.dataset.id)


def test_a_tenant_sees_its_own_and_published_versions_of_others(library: Library) -> None:
    repo: DatasetRepository = library.service.repository
    alpha = repo.add(library.alpha, "qa", version("a", "dsv-1")).dataset
    repo.add(library.alpha, "qa", version("b", "dsv-2"))
    repo.add(library.beta, "beta-only", version("c", "dsv-3"))
    with pytest.raises(NotFound) as hidden:
        repo.get(library.beta, alpha.id)
    assert hidden.value.code == "not_found"
    assert [d.name for d in repo.list(library.beta)] == ["beta-only"]
    assert {d.name for d in repo.list(None)} == {"qa", "beta-only"}  # a platform admin

    published = repo.publish(alpha.id, 1)
    assert published.published and repo.publish(alpha.id, 1) == published  # once
    seen = repo.get(library.beta, alpha.id)
    assert [v.version for v in seen.versions] == [1]  # not the unpublished version 2
    assert [d.name for d in repo.list(library.beta)] == ["beta-only", "qa"]  # its own first
    with pytest.raises(NotFound):
        repo.version(library.beta, alpha.id, 2)
    assert repo.version(library.alpha, alpha.id, 2).version == 2
    with pytest.raises(NotFound):
        repo.by_name(library.beta, "qa")  # a name is looked up among one's own only
    assert repo.by_name(library.alpha, "qa").id == alpha.id


def test_a_version_is_recorded_as_given(library: Library) -> None:
    given = replace(version("d", "dsv-9"), licence="MIT", source="made by hand")
    added = library.service.repository.add(library.alpha, "qa", given)
    assert added.version == replace(given, dataset_id=added.dataset.id, version=1)
