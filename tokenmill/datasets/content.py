"""A dataset version's content, decided from validated files: its rows in two splits, their
token counts, and the sha256 that names the content.

``build_content`` takes the training file's ``ValidationReport`` (and a separate validation
file's, when there is one) and a ``SplitPlan``:
1. the rows of a validation file are the validation split; without one, the seeded split of
   ``tuning.validation.split`` holds out ``validation_fraction`` of the training examples;
2. each row keeps its source line and is counted with ``count_tokens`` (the base model's
   tokenizer, as the validator counts);
3. the sha256 is over the rows' canonical JSON, train then validation, so the same examples
   split the same way are the same content, whatever the file's whitespace or key order.
Pure: no I/O, no tokenizer of its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from tokenmill.errors import InvalidRequest
from tokenmill.tuning.validation import Example, Format, TokenCounter, ValidationReport, split

Split = Literal["train", "validation"]
SPLITS: tuple[Split, ...] = ("train", "validation")
DEFAULT_VALIDATION_FRACTION = 0.1
MAX_SEED = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Row:
    split: Split
    index: int  # 0-based, within its split
    line: int  # 1-based, in the file it came from
    tokens: int
    example: Example


@dataclass(frozen=True, slots=True)
class SplitPlan:
    """How validation rows are chosen: a seeded fraction of the training file, or a file."""

    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    seed: int = 0
    validation_file_id: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.validation_fraction < 1:
            raise InvalidRequest(
                "validation_fraction is at least 0 and below 1.", param="validation_fraction"
            )
        if not 0 <= self.seed <= MAX_SEED:
            raise InvalidRequest(f"seed is an integer from 0 to {MAX_SEED}.", param="seed")

    def as_json(self) -> dict[str, Any]:
        if self.validation_file_id is not None:
            return {"method": "file", "validation_file": self.validation_file_id}
        return {
            "method": "fraction",
            "validation_fraction": self.validation_fraction,
            "seed": self.seed,
        }


@dataclass(frozen=True, slots=True)
class DatasetContent:
    format: Format
    rows: tuple[Row, ...]  # train rows, then validation rows
    sha256: str
    plan: SplitPlan

    def count(self, which: Split | None = None) -> int:
        return sum(1 for r in self.rows if which in (None, r.split))

    def tokens(self, which: Split | None = None) -> int:
        return sum(r.tokens for r in self.rows if which in (None, r.split))


def canonical(example: Example) -> bytes:
    """An example as one line of JSON with sorted keys: what is hashed and stored."""
    return orjson.dumps(example, option=orjson.OPT_SORT_KEYS)


def content_sha256(rows: tuple[Row, ...]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(row.split.encode() + b"\t" + canonical(row.example) + b"\n")
    return digest.hexdigest()


def build_content(
    training: ValidationReport,
    validation: ValidationReport | None,
    plan: SplitPlan,
    count_tokens: TokenCounter,
) -> DatasetContent:
    """Raises ``InvalidRequest`` when a report has errors or the two files' formats differ."""
    _check(training, "file_id")
    if training.format is None:  # a valid report always has examples, so a format
        raise InvalidRequest("The file has no examples.", param="file_id")
    train = list(zip(training.example_lines, training.examples_data, strict=True))
    if validation is not None:
        _check(validation, "validation_file_id")
        if validation.format != training.format:
            raise InvalidRequest(
                f"The validation file is {validation.format}, the training file "
                f"{training.format}: a dataset has one format.",
                param="validation_file_id",
                code="mixed_formats",
            )
        held = list(zip(validation.example_lines, validation.examples_data, strict=True))
    else:
        _, out = split(training.examples_data, plan.validation_fraction, plan.seed)
        held_ids = {id(example) for example in out}
        held = [(n, ex) for n, ex in train if id(ex) in held_ids]
        train = [(n, ex) for n, ex in train if id(ex) not in held_ids]
    parts: tuple[tuple[Split, list[tuple[int, Example]]], ...] = (
        ("train", train),
        ("validation", held),
    )
    rows = tuple(
        Row(name, index, line, int(count_tokens(example)), example)
        for name, part in parts
        for index, (line, example) in enumerate(part)
    )
    return DatasetContent(training.format, rows, content_sha256(rows), plan)


def _check(report: ValidationReport, param: str) -> None:
    if report.ok:
        return
    shown = "; ".join(
        f"line {e.line}: {e.message}" if e.line else e.message for e in report.errors[:5]
    )
    if not shown:
        shown = f"it has {report.examples} examples; at least {report.min_examples} are needed"
    raise InvalidRequest(
        f"The file is not a valid fine-tuning file: {shown}.", param=param, code="invalid_file"
    )
