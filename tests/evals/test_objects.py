"""What an evaluation may ask for, checked before anything is stored."""

from __future__ import annotations

from typing import Any

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.evals.objects import EvalSource, parse_request


def test_a_file_evaluation_with_defaults() -> None:
    request = parse_request({"file_id": "file-1", "models": ["a", "b", "a"]})
    assert request.source == EvalSource(file_id="file-1")
    assert request.models == ("a", "b") and request.metrics == ("exact_match", "loss")
    assert not request.publish and request.regex is None and request.limit is None


def test_a_dataset_evaluation_reads_its_validation_split_by_default() -> None:
    request = parse_request({"dataset": "ds_1", "model": "a", "metrics": ["regex"], "regex": "x+"})
    assert request.source == EvalSource(dataset="ds_1", version=None, split="validation")
    assert request.source.as_json() == {"dataset": "ds_1", "version": None, "split": "validation"}
    assert EvalSource.from_json(request.source.as_json()) == request.source
    assert request.metrics == ("regex",) and request.regex == "x+"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"models": ["a"]}, "dataset"),
        ({"file_id": "f", "dataset": "d", "models": ["a"]}, "dataset"),
        ({"file_id": "f"}, "models"),
        ({"file_id": "f", "models": []}, "models"),
        ({"file_id": "f", "models": ["m"] * 9}, "models"),
        ({"file_id": "f", "models": ["a"], "metrics": ["bleu"]}, "metrics"),
        ({"file_id": "f", "models": ["a"], "metrics": ["regex"]}, "regex"),
        ({"file_id": "f", "models": ["a"], "regex": "("}, "regex"),
        ({"file_id": "f", "models": ["a"], "limit": 0}, "limit"),
        ({"file_id": "f", "models": ["a"], "publish": "yes"}, "publish"),
        ({"dataset": "d", "models": ["a"], "version": 0}, "version"),
        ({"dataset": "d", "models": ["a"], "split": "test"}, "split"),
    ],
)
def test_bad_requests_name_their_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_request(body)
    assert refused.value.param == param
