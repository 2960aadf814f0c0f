"""Where an evaluation's examples come from: a ``fine-tune`` file of the tenant (the whole
file is the split), or a split of a dataset version the tenant may read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokenmill.datasets.objects import check_split
from tokenmill.datasets.service import DatasetService
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.evals.examples import Examples, from_jsonl, from_rows
from tokenmill.evals.objects import EvalInfo, EvalSource
from tokenmill.files.service import FileService

FILE_PURPOSE = "fine-tune"

ReadSplit = Callable[[str, str, int | None, str], list[dict[str, Any]]]
"""(tenant, dataset id, version or None for the latest, split) -> the split's rows; NotFound
for a dataset or version the tenant cannot read."""


def check_file(files: FileService, tenant_id: str, source: EvalSource) -> None:
    """A file source must be the tenant's (404) and a ``fine-tune`` upload (400)."""
    if source.file_id is None:
        return
    try:
        upload = files.get(tenant_id, source.file_id)
    except NotFound as missing:
        raise NotFound(missing.message, param="file_id") from None
    if upload.purpose != FILE_PURPOSE:
        raise InvalidRequest(
            f"The file {source.file_id} has purpose {upload.purpose!r}; an evaluation reads a "
            "file uploaded with purpose 'fine-tune'.",
            param="file_id",
            code="invalid_file_purpose",
        )


def source_reader(
    files: FileService, read_split: ReadSplit | None
) -> Callable[[EvalInfo], Examples]:
    def read(info: EvalInfo) -> Examples:
        source, limit = info.request.source, info.request.limit
        if source.file_id is not None:
            data = b"".join(files.storage.read(info.tenant_id, source.file_id))
            return from_jsonl(data, limit)
        if read_split is None or source.dataset is None:
            raise InvalidRequest("Datasets are not available on this gateway.", param="dataset")
        rows = read_split(info.tenant_id, source.dataset, source.version, source.split)
        return from_rows(rows, limit)

    return read


def dataset_split_reader(datasets: DatasetService) -> ReadSplit:
    """A split of a dataset version from the dataset library, as the tenant reads it (its
    own datasets and published ones): the version asked, or the latest."""

    def read(
        tenant_id: str, dataset_id: str, version: int | None, split: str
    ) -> list[dict[str, Any]]:
        if version is None:
            dataset = datasets.get(tenant_id, dataset_id)
            found = dataset.latest
            if found is None:
                raise NotFound(f"The dataset {dataset_id} has no version.", param="dataset")
        else:
            dataset, found = datasets.version(tenant_id, dataset_id, version)
        return datasets.rows(dataset, found).examples(check_split(split))

    return read
