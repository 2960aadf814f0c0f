"""Reading a dataset version's rows, for the platform's own users of datasets (evaluations).

    read_rows(datasets, tenant_id, dataset, version=None, split="validation") -> list[dict]

``dataset`` is a dataset id (``ds-...``) or the name of one of the tenant's own datasets;
``version`` None is the newest version the tenant sees. The rows are the examples as the
JSONL lines they came from (``{"messages": [...]}`` or ``{"prompt": ..., "completion": ...}``),
in the split's order. A dataset the tenant does not see is a ``NotFound`` (404), as on the
admin API; ``tenant_id`` None reads as a platform admin.
"""

from __future__ import annotations

from typing import Any

from tokenmill.datasets.content import Split
from tokenmill.datasets.objects import DatasetInfo, check_split, no_such_version
from tokenmill.datasets.service import DatasetService


def find_dataset(datasets: DatasetService, tenant_id: str | None, dataset: str) -> DatasetInfo:
    """A dataset by id, or by the name of one of the tenant's own."""
    if dataset.startswith("ds-") or tenant_id is None:
        return datasets.get(tenant_id, dataset)
    return datasets.repository.by_name(tenant_id, dataset)


def read_rows(
    datasets: DatasetService,
    tenant_id: str | None,
    dataset: str,
    version: int | None = None,
    split: Split = "validation",
) -> list[dict[str, Any]]:
    found = find_dataset(datasets, tenant_id, dataset)
    check_split(split)
    chosen = (
        found.latest
        if version is None
        else next((v for v in found.versions if v.version == version), None)
    )
    if chosen is None:
        raise no_such_version(dataset, "yet" if version is None else version)
    return datasets.rows(found, chosen).examples(split)
