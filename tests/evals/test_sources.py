"""Where an evaluation's examples come from: a split of a dataset version from the dataset
library (as the tenant may read it), or a ``fine-tune`` file."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.datasets.conftest import Library, examples, jsonl
from tests.datasets.conftest import library as library  # the fixture, shared
from tokenmill.datasets.content import SplitPlan
from tokenmill.errors import NotFound
from tokenmill.evals.examples import example_of
from tokenmill.evals.objects import EvalInfo, EvalStatus, parse_request
from tokenmill.evals.sources import dataset_split_reader, source_reader


def test_a_dataset_split_is_read_as_its_reader_may(library: Library) -> None:
    added = library.create(library.alpha, jsonl(examples(20)), plan=SplitPlan(0.25, seed=5))
    read = dataset_split_reader(library.service)
    rows = read(library.alpha, added.dataset.id, None, "validation")
    assert len(rows) == 5 and all(example_of(row) is not None for row in rows)
    assert read(library.alpha, added.dataset.id, 1, "validation") == rows
    assert len(read(library.alpha, added.dataset.id, 1, "train")) == 15
    with pytest.raises(NotFound):
        read(library.beta, added.dataset.id, None, "validation")
    with pytest.raises(NotFound):
        read(library.alpha, added.dataset.id, 2, "validation")


def test_an_evaluation_reads_its_source_up_to_its_limit(library: Library) -> None:
    added = library.create(library.alpha, jsonl(examples(20)), plan=SplitPlan(0.25, seed=5))
    file_id = library.upload(library.alpha, jsonl(examples(8)))
    read = source_reader(library.files, dataset_split_reader(library.service))
    created = datetime(2026, 12, 2, tzinfo=UTC)

    def evaluation(**body: object) -> EvalInfo:
        request = parse_request({"models": ["m"], **body})
        return EvalInfo("eval_1", library.alpha, "key_x", request, EvalStatus.RUNNING, created)

    from_file = read(evaluation(file_id=file_id, limit=3))
    assert len(from_file.examples) == 3 and from_file.examples[0].reference == "1"
    from_dataset = read(evaluation(dataset=added.dataset.id))
    assert len(from_dataset.examples) == 5 and from_dataset.skipped == 0
