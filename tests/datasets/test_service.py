"""Datasets made from uploaded files, counted with the bundled model's own tokenizer: cards,
pages of rows, the bytes in storage, publishing and deleting."""

from __future__ import annotations

import pytest

from tests.datasets.conftest import CHAT, MODEL, Library, chat, examples, jsonl
from tokenmill.catalog.bundled import bundled_model
from tokenmill.datasets.content import SplitPlan
from tokenmill.datasets.service import Provenance
from tokenmill.datasets.tokenizers import gguf_counter
from tokenmill.errors import Conflict, InvalidRequest, ModelNotFound, NotFound, PermissionDenied


def test_a_file_becomes_a_version_with_its_card(library: Library) -> None:
    rows = examples(20)
    added = library.create(
        library.alpha,
        jsonl(rows),
        filename="sums.jsonl",
        licence="CC0-1.0",
        source="written for the test",
        plan=SplitPlan(0.25, seed=5),
    )
    card = added.version.card(added.dataset)
    assert added.created and (card["name"], card["version"]) == ("sums", 1)
    assert (
        card["rows"],
        card["splits"]["train"]["rows"],
        card["splits"]["validation"]["rows"],
    ) == (20, 15, 5)
    count = gguf_counter(bundled_model(CHAT).path())  # the bundled model's, as training counts
    assert card["tokens"] == sum(count(r) for r in rows) > 20 * 10
    assert (
        card["splits"]["train"]["tokens"] + card["splits"]["validation"]["tokens"] == card["tokens"]
    )
    assert (card["licence"], card["source"], card["format"]) == (
        "CC0-1.0",
        "written for the test",
        "chat",
    )
    assert card["tokenizer"] == f"{MODEL}@1" and len(card["sha256"]) == 64
    assert card["split"] == {"method": "fraction", "validation_fraction": 0.25, "seed": 5}
    assert library.blobs() == [added.version.blob]

    page = library.service.page(library.alpha, added.dataset.id, 1, "validation", 1, 3)
    assert (page["total"], page["offset"], len(page["data"]), page["has_more"]) == (5, 1, 3, True)
    assert all(r["example"] in rows and r["tokens"] == count(r["example"]) for r in page["data"])
    assert page["data"][0]["example"] == rows[page["data"][0]["line"] - 1]
    last = library.service.page(library.alpha, added.dataset.id, 1, "train", 10, 100)
    assert (len(last["data"]), last["has_more"]) == (5, False)


def test_the_same_content_again_is_the_same_version_and_writes_nothing(library: Library) -> None:
    data = jsonl(examples(12))
    first = library.create(library.alpha, data, filename="a.jsonl", name="qa")
    again = library.create(library.alpha, data.replace(b'", "', b'",   "'), name="qa")
    assert not again.created and again.version == first.version
    assert library.blobs() == [first.version.blob]
    other = library.create(library.alpha, jsonl(examples(13)), name="qa")
    assert other.created and other.version.version == 2
    assert len(library.blobs()) == 2


def test_an_invalid_file_is_refused_with_its_lines(library: Library) -> None:
    data = (
        jsonl(examples(3))
        + b"not json\n"
        + jsonl([{"messages": [{"role": "user", "content": "x"}]}])
    )
    with pytest.raises(InvalidRequest) as refused:
        library.create(library.alpha, data)
    assert refused.value.code == "invalid_file"
    assert "line 4" in refused.value.message and "line 5" in refused.value.message
    assert library.blobs() == [] and library.service.list(library.alpha) == []


def test_files_and_models_are_the_tenants_own(library: Library) -> None:
    betas = library.upload(library.beta, jsonl(examples(3)))
    with pytest.raises(NotFound) as missing:
        library.service.create(library.alpha, Provenance("k"), file_id=betas, model=MODEL)
    assert missing.value.param == "file_id"
    mine = library.upload(library.alpha, jsonl(examples(3)))
    with pytest.raises(ModelNotFound):
        library.service.create(library.alpha, Provenance("k"), file_id=mine, model="nope")
    plan = SplitPlan(validation_file_id=betas)
    with pytest.raises(NotFound) as hidden:
        library.service.create(library.alpha, Provenance("k"), file_id=mine, model=MODEL, plan=plan)
    assert hidden.value.param == "validation_file_id"


def test_a_validation_file_is_the_validation_split(library: Library) -> None:
    held = library.upload(library.alpha, jsonl([chat("Held out?", "Yes.")] * 2), "held.jsonl")
    added = library.create(
        library.alpha, jsonl(examples(4)), plan=SplitPlan(validation_file_id=held)
    )
    assert (added.version.train_rows, added.version.validation_rows) == (4, 2)
    assert added.version.split == {"method": "file", "validation_file": held}


def test_publish_and_delete(library: Library) -> None:
    added = library.create(library.alpha, jsonl(examples(10)), name="qa")
    second = library.create(library.alpha, jsonl(examples(11)), name="qa")
    dataset_id = added.dataset.id
    with pytest.raises(NotFound):
        library.service.page(library.beta, dataset_id, 1, "train", 0, 5)
    library.service.publish(dataset_id, 1)
    shared = library.service.page(library.beta, dataset_id, 1, "train", 0, 5)
    assert len(shared["data"]) == 5  # every tenant reads a published version
    with pytest.raises(PermissionDenied):
        library.service.delete_version(library.beta, dataset_id, 1)
    with pytest.raises(Conflict):
        library.service.delete_version(library.alpha, dataset_id, 1)
    with pytest.raises(Conflict):
        library.service.delete(library.alpha, dataset_id)
    library.service.delete_version(library.alpha, dataset_id, 2)
    assert library.blobs() == [added.version.blob]
    assert second.version.blob not in library.blobs()
    library.service.delete(None, dataset_id)  # a platform admin deletes published ones too
    assert library.blobs() == [] and library.service.list(None) == []
