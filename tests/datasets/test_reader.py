"""``read_rows``: a version's split as the JSONL examples, for evaluations."""

from __future__ import annotations

import pytest

from tests.datasets.conftest import Library, examples, jsonl
from tokenmill.datasets.content import SplitPlan, canonical
from tokenmill.datasets.reader import read_rows
from tokenmill.errors import InvalidRequest, NotFound


def test_rows_of_a_split_by_id_or_name_newest_by_default(library: Library) -> None:
    rows = examples(10)
    first = library.create(library.alpha, jsonl(rows), name="qa", plan=SplitPlan(0.3, seed=1))
    more = examples(20, tag="b")
    library.create(library.alpha, jsonl(more), name="qa", plan=SplitPlan(0.3, seed=1))
    dataset_id = first.dataset.id
    held = read_rows(library.service, library.alpha, dataset_id, 1)
    train = read_rows(library.service, library.alpha, "qa", 1, split="train")
    assert len(held) == 3 and len(train) == 7
    assert sorted(map(canonical, held + train)) == sorted(map(canonical, rows))
    assert [r for r in rows if r in train] == train  # the file's order
    newest = read_rows(library.service, library.alpha, "qa")
    assert len(newest) == 6 and all(r in more for r in newest)
    with pytest.raises(NotFound):
        read_rows(library.service, library.beta, dataset_id)
    with pytest.raises(NotFound):
        read_rows(library.service, library.alpha, "qa", 7)
    with pytest.raises(InvalidRequest):
        read_rows(library.service, library.alpha, "qa", split="test")  # type: ignore[arg-type]
    library.service.publish(dataset_id, 1)
    assert read_rows(library.service, library.beta, dataset_id, 1) == held
    assert read_rows(library.service, None, dataset_id, 2, "train")  # a platform admin
