"""Dataset names, the checks on what a caller asks, and a version's card."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tokenmill.datasets.objects import (
    DatasetInfo,
    DatasetVersionInfo,
    check_name,
    check_page,
    check_split,
    name_from_filename,
)
from tokenmill.errors import InvalidRequest

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("train.jsonl", "train"),
        ("support chats (v2).jsonl", "support_chats_v2"),
        ("../../etc/passwd", "passwd"),
        ("....jsonl", "dataset"),
        ("ünïcode.json", "n_code"),
    ],
)
def test_a_files_name_becomes_a_dataset_name(filename: str, name: str) -> None:
    assert name_from_filename(filename) == name
    assert check_name(name) == name


@pytest.mark.parametrize("bad", ["", "-x", ".hidden", "a/b", "x" * 101, 7, None])
def test_bad_names_are_refused(bad: object) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_name(bad)
    assert refused.value.param == "name"


def test_splits_and_pages_are_checked() -> None:
    assert check_split("train") == "train" and check_split("validation") == "validation"
    for bad in ("test", None, ""):
        with pytest.raises(InvalidRequest):
            check_split(bad)
    check_page(0, 100)
    for offset, limit in ((-1, 10), (0, 0), (0, 101)):
        with pytest.raises(InvalidRequest):
            check_page(offset, limit)


def test_a_card_says_what_the_version_is() -> None:
    version = DatasetVersionInfo(
        id="dsv-1",
        dataset_id="ds-1",
        version=2,
        sha256="ab" * 32,
        format="chat",
        rows=10,
        train_rows=9,
        validation_rows=1,
        tokens=100,
        train_tokens=91,
        validation_tokens=9,
        tokenizer="smol@1",
        licence="CC-BY-4.0",
        source="support logs",
        split={"method": "fraction", "validation_fraction": 0.1, "seed": 0},
        training_file_id="file-1",
        blob="dsv-1",
        size_bytes=2048,
        published_at=None,
        created_by="key_1",
        created_at=WHEN,
    )
    dataset = DatasetInfo("ds-1", "tenant_1", "support", "key_1", WHEN, (version,))
    card = version.card(dataset)
    assert card["splits"] == {
        "train": {"rows": 9, "tokens": 91},
        "validation": {"rows": 1, "tokens": 9},
    }
    assert (card["name"], card["version"], card["rows"], card["tokens"]) == ("support", 2, 10, 100)
    assert (card["licence"], card["source"], card["sha256"]) == (
        "CC-BY-4.0",
        "support logs",
        version.sha256,
    )
    assert (card["format"], card["created_at"], card["published"]) == (
        "chat",
        int(WHEN.timestamp()),
        False,
    )
    assert version.reference() == {"id": "ds-1", "version": 2, "sha256": version.sha256}
    shown = dataset.as_json()
    assert shown["latest_version"] == card and "versions" not in shown
    assert dataset.as_json(with_versions=True)["versions"] == [card]
